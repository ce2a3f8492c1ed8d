// Settling an effect whose result was never recorded (the process died between asking libvirt and recording
// its answer): what libvirt shows now says whether it happened. The domain as libvirt reports it (does it exist,
// is it running or paused, persistent, with a managed-save image, which snapshots, which disks mirror, on which
// sources) is compared with the state the decided facts lead to and with the state the command was decided on.
// It asks libvirt only queries: nothing is performed here.
import { commandDomainName } from '../../machines/commands';
import { evolveAll } from '../../machines/evolve';
import type { DomainState } from '../../machines/model';
import type { LibvirtConnection } from '../libvirt/connection';
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

const field = (text: string, name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();

/** The domain as libvirt shows it now (dominfo, snapshot-list, the live XML's mirrors). */
export async function observeOnLibvirt(connection: LibvirtConnection, name: string): Promise<Observed> {
  const info = await connection.run(['dominfo', name]);
  if (info.failed) {
    if (/failed to get domain|Domain not found/.test(info.stderr)) {
      return { exists: false, active: false, paused: false, persistent: false, managedSave: false, snapshots: [], mirroring: [] };
    }
    throw new Error(`cannot settle: dominfo ${name}: ${info.stderr.trim()}`);
  }
  const state = field(info.stdout, 'State') ?? '';
  const snaps = await connection.run(['snapshot-list', name, '--name']);
  const xml = await connection.run(['dumpxml', name]);
  const mirroring = [...xml.stdout.matchAll(/<disk\b[\s\S]*?<\/disk>/g)]
    .filter((m) => /<mirror\b/.test(m[0]))
    .map((m) => /<target\b[^>]*\bdev=['"]([^'"]+)['"]/.exec(m[0])?.[1])
    .filter((d): d is string => d !== undefined)
    .sort();
  const active = state === 'running' || state === 'paused' || state === 'idle' || state === 'in shutdown';
  return {
    exists: true,
    active,
    paused: state === 'paused',
    persistent: field(info.stdout, 'Persistent') === 'yes',
    managedSave: field(info.stdout, 'Managed save') === 'yes',
    snapshots: snaps.failed
      ? []
      : snaps.stdout
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '')
          .sort(),
    mirroring,
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
