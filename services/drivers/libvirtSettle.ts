// Settling an effect whose result was never recorded (the process died between asking libvirt and recording
// its answer): what libvirt shows now says whether it happened. The domain as libvirt reports it (does it exist,
// is it running or paused, persistent, with a managed-save image, which snapshots, which disks mirror, on which
// sources) is compared with the state the decided facts lead to and with the state the command was decided on.
// It asks libvirt only queries: nothing is performed here.
import { commandDomainName } from '../../machines/commands';
import { evolveAll } from '../../machines/evolve';
import type { DomainState } from '../../machines/model';
import type { LibvirtConnection } from '../libvirt/connection';
import { readDomain, type LibvirtDomain } from '../libvirt/observe';
import type { EffectIntent, Settlement } from './types';

/** What libvirt and the model can both say about a domain. */
export interface Observed {
  exists: boolean;
  active: boolean;
  paused: boolean;
  persistent: boolean;
  managedSave: boolean;
  snapshots: string[];
  mirroring: string[];
}

export function observedOf(s: DomainState): Observed {
  const exists = s.life === 'exists';
  return {
    exists,
    active: exists && s.active,
    paused: exists && s.active && s.paused,
    persistent: exists && s.persistent,
    managedSave: exists && s.hasManagedSave,
    snapshots: exists ? Object.keys(s.snapshots).sort() : [],
    mirroring: exists ? Object.keys(s.blockJobs).filter((d) => s.blockJobs[d]!.kind !== 'pull').sort() : [],
  };
}

/** The domain as libvirt shows it now (services/libvirt/observe.ts reads it), in the terms the model has. */
export async function observeOnLibvirt(connection: LibvirtConnection, name: string): Promise<Observed> {
  return observedOfLibvirt(await readDomain(connection, name));
}

export function observedOfLibvirt(d: LibvirtDomain): Observed {
  if (!d.exists) return { exists: false, active: false, paused: false, persistent: false, managedSave: false, snapshots: [], mirroring: [] };
  return {
    exists: true,
    active: d.active,
    paused: d.paused,
    persistent: d.persistent,
    managedSave: d.managedSave,
    snapshots: d.snapshotNames,
    mirroring: d.disks
      .filter((disk) => disk.mirror !== undefined)
      .map((disk) => disk.target)
      .sort(),
  };
}

const same = (a: Observed, b: Observed) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Whether the effect happened: libvirt shows the state the decided facts lead to (performed: the decided facts),
 * or the state it was decided on (not performed). When both look alike (a reboot, a redefinition as current) it
 * counts as performed: doing it again is what must not happen. Anything else is left open (throws), for a
 * person or a later settle to look at: the domain stays busy meanwhile.
 */
export async function settleOnLibvirt(connection: LibvirtConnection, intent: Pick<EffectIntent, 'command' | 'state' | 'decided'>): Promise<Settlement> {
  const name = commandDomainName(intent.command);
  const now = await observeOnLibvirt(connection, name);
  const after = observedOf(evolveAll(intent.state, intent.decided));
  if (same(now, after)) return { performed: true, result: { facts: intent.decided } };
  if (same(now, observedOf(intent.state))) return { performed: false };
  // A block copy that started is still copying on libvirt (its readiness comes later as a report).
  throw new Error(
    `cannot settle ${intent.command.verb} ${name} (command ${intent.command.meta.commandId}): libvirt shows ${JSON.stringify(now)}, ` +
      `neither the state it was decided on nor the one it leads to (${JSON.stringify(after)})`,
  );
}
