// Migration between two libvirt connections: how the ledger's saga (services/migration.ts) meets libvirt's own.
//
// libvirt runs its five phases (Begin3 and Perform3 and Confirm3 on the source daemon, Prepare3 and Finish3 on the
// destination's) inside one `virsh migrate` call, which drives them across both connections (virsh is the
// managing client: no --p2p, so the source daemon needs no way to reach the destination's). virsh has no command
// for a single phase, so the saga's phases map onto it like this:
//
//   Begin    `migrate` decided by the rules (MIG-SNAPSHOTS, MIG-ACTIVE, …): nothing reaches libvirt before they
//            pass; the driver only checks that the destination host has a connection
//   Prepare  migrationPhase('prepare'): the destination's libvirt is asked whether the name or UUID is taken
//            there (what the ledger cannot see: a domain defined behind its back)
//   Perform  `migrate-phase perform` is the effect, through the exactly-once protocol (services/intents.ts):
//            `virsh -c SOURCE migrate [--live] [--offline] [--persistent] [--undefinesource] DOM DESTURI`, which
//            is libvirt's Begin3…Confirm3. libvirt refusing it is recorded as the phase's failure (rule LIBVIRT,
//            libvirt's code and text), so the domain's job ends and it stays where libvirt left it: on the source
//   Finish   `migrate-incoming` on the destination: recorded once the destination's libvirt shows the domain
//   Confirm  `migrate-phase confirm` on the source: recorded (libvirt confirmed within Perform)
//
// Where the migration stream goes is the destination daemon's business, as on any libvirt host: its qemu.conf
// `migration_host` / `migration_address` (without them it announces its hostname).
import type { CommandOf } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import type { DomainState } from '../../machines/model';
import type { LibvirtConnection } from '../libvirt/connection';
import { LIBVIRT_RULE, libvirtRefusal } from '../libvirt/errors';
import { observeOnLibvirt } from './libvirtSettle';
import type { EffectIntent, EffectResult, Settlement } from './types';

/** The one migration step that changes libvirt: Perform, when the rules did not fail it already. */
export function isMigrationEffect(c: { verb: string; phase?: string }, decided: readonly Fact[]): boolean {
  return c.verb === 'migrate-phase' && c.phase === 'perform' && decided.some((f) => f.type === 'MigrationPhaseReached');
}

/** `virsh migrate` for a domain whose migration job the rules hold (the job carries the flags of `migrate`). */
export function migrateArgv(state: DomainState, destinationUri: string, live: boolean): string[] {
  const job = state.migration;
  if (!job) throw new Error(`domain '${state.name}' has no migration job`);
  const flags = { live: live && !job.offline, offline: job.offline, persistent: job.persistent, undefinesource: job.undefinesource };
  return [
    'migrate',
    ...Object.entries(flags)
      .filter(([, on]) => on)
      .map(([name]) => `--${name}`),
    state.name,
    destinationUri,
  ];
}

/** The failure of Perform as the fact the saga reads (the domain's job ends; it stays on the source). */
function performFailed(message: string, rule: string, code: number): Fact[] {
  return [{ type: 'MigrationFailed', phase: 'perform', message, rule, code }];
}

/** Perform: libvirt's whole migration; its refusal becomes the phase's failure. */
export async function performMigration(
  source: LibvirtConnection,
  destination: LibvirtConnection,
  state: DomainState,
  decided: Fact[],
  live: boolean,
): Promise<EffectResult & { refusedBy?: string }> {
  const r = await source.run(migrateArgv(state, destination.uri, live));
  if (!r.failed) return { facts: decided };
  const refused = libvirtRefusal(r.stderr);
  return { facts: performFailed(refused.message, refused.rule, refused.code), refusedBy: refused.message };
}

/** Prepare on the destination's libvirt: the message that fails the phase, if the name or UUID is taken there. */
export async function prepareOnDestination(destination: LibvirtConnection, state: DomainState, host: string): Promise<string | undefined> {
  const there = await destination.run(['domuuid', state.name]);
  if (there.failed) return undefined; // not there: free
  const uuid = there.stdout.trim();
  if (state.uuid && uuid !== state.uuid) return `domain '${state.name}' already exists on host '${host}' with uuid ${uuid} (libvirt)`;
  const active = await destination.run(['domstate', state.name]);
  const shown = active.stdout.trim();
  if (!active.failed && shown !== 'shut off') return `domain '${state.name}' is already active on host '${host}' (libvirt: ${shown})`;
  return undefined;
}

/** Finish: the refusal when the destination's libvirt does not show the domain that arrived. */
export async function checkArrival(destination: LibvirtConnection, c: CommandOf<'migrate-incoming'>): Promise<string | undefined> {
  const seen = await observeOnLibvirt(destination, c.config.name);
  if (!seen.exists) return `domain '${c.config.name}' is not on the destination's libvirt (${destination.uri})`;
  if (c.active && !seen.active) return `domain '${c.config.name}' arrived but is not running on the destination's libvirt (${destination.uri})`;
  return undefined;
}

/**
 * Settles a Perform whose result was never recorded, from what both daemons show: the guest on the destination
 * (running, or defined after --offline) and no longer running on the source is a migration that happened; the
 * guest still on the source and absent from the destination is one that did not (recorded as the phase's failure,
 * so the job ends). Anything else stays open.
 */
export async function settleMigration(
  source: LibvirtConnection,
  destination: LibvirtConnection,
  intent: Pick<EffectIntent, 'command' | 'state' | 'decided'>,
): Promise<Settlement> {
  const name = intent.state.name;
  const offline = intent.state.migration?.offline ?? false;
  const [src, dst] = await Promise.all([observeOnLibvirt(source, name), observeOnLibvirt(destination, name)]);
  const arrived = offline ? dst.exists && dst.persistent : dst.active;
  const left = offline || !src.active;
  if (arrived && left) return { performed: true, result: { facts: intent.decided } };
  if (!dst.exists && src.active === intent.state.active) {
    const message = `migration of domain '${name}' was interrupted before libvirt performed it; it stays on the source`;
    return { performed: true, result: { facts: performFailed(`operation failed: ${message}`, LIBVIRT_RULE, 9) } };
  }
  throw new Error(
    `cannot settle the migration of ${name} (command ${intent.command.meta.commandId}): source shows ${JSON.stringify(src)}, destination ${JSON.stringify(dst)}`,
  );
}
