// Migration as a saga over two domain streams (docs/rules.md MIG-PHASES, seed 003):
//
//   Begin    source       `migrate` is decided (all source checks) → MigrationStarted: the job holds the domain
//   Prepare  destination  decide(destination state, migrate-incoming) without appending: what the XML alone shows
//                         (host devices) and name/UUID clashes there → `migrate-phase prepare` on the source
//   Perform  source       `migrate-phase perform`: the machine re-runs the source checks (an older source may not
//                         have run them at Begin) and records MigrationFailed if one fails
//   Finish   destination  `migrate-incoming` appended on the destination stream (DomainMigratedIn),
//                         then `migrate-phase finish` on the source
//   Confirm  source       `migrate-phase confirm` → DomainMigratedOut
//
// A failure at Prepare, Perform or Finish appends `migrate-phase <phase> failed=…` on the source (MigrationFailed:
// the domain returns to where it was) and nothing on the destination.
//
// Every step is an ordinary ledger command with its own command id (`<id>/prepare`, `<id>/perform`,
// `<id>/incoming`, `<id>/finish`, `<id>/confirm`; Begin keeps the migrate command's own id), so each step is
// idempotent: running the saga again with the same migrate command id (after a crash, say) skips the steps that
// were recorded and continues from the first that was not. Every fact of the saga, Begin's included, carries one
// correlation id: the client's, or else the migrate command's id (the audit log groups a migration by it).
//
// A failed phase records the rule id and libvirt code of the check that failed it on its MigrationFailed fact, so
// the audit (and what-if) can name the rule, and a saga resumed after a crash answers with the same refusal.
//
// Fault injection for the effects engineer (issue 4): `failAt` in the ledger options, or a driver that implements
// `migrationPhase(phase, context)` and returns a failure message.
import type { Command, CommandOf } from '../machines/commands';
import { firstRefusal } from '../machines/decide';
import { ERROR_CODES, refusal as makeRefusal, type ErrorCodeName, type Refusal } from '../machines/errors';
import type { HostView } from '../machines/guards';
import type { DomainState } from '../machines/model';
import { internalCommandId } from '../machines/names';
import { PERFORM_RECHECKS } from '../machines/verbs';
import type { HypervisorDriver } from './drivers/types';
import type { CommandOutcome, LoadedDomain } from './ledger-types';

/** Phases at which a migration can be made to fail (Begin failures are ordinary refusals). */
export type MigrationFailPhase = 'prepare' | 'perform' | 'finish' | 'confirm';

export interface MigrationContext {
  command: CommandOf<'migrate'>;
  source: DomainState;
}

/** A driver that takes part in migrations: returns a failure message to make that phase fail. */
export interface MigrationAwareDriver extends HypervisorDriver {
  migrationPhase?(phase: MigrationFailPhase, context: MigrationContext): Promise<string | undefined>;
}

export interface MigrationOptions {
  /** Make this phase fail (fault injection). */
  failAt?: MigrationFailPhase;
  /** The failure text recorded for `failAt` (default: `injected failure`). */
  failMessage?: string;
}

/** What the saga needs from the ledger. */
export interface MigrationPort {
  /** Runs one command (recalled by its command id if it ran before). `save` keeps its outcome for idempotency. */
  step(command: Command, options: { save: boolean }): Promise<CommandOutcome>;
  load(host: string, name: string): Promise<LoadedDomain>;
  /** Prepare's check: the refusal the destination would give this arrival now, if any. */
  checkIncoming(command: CommandOf<'migrate-incoming'>): Promise<Refusal | undefined>;
  recall(commandId: string): Promise<CommandOutcome | undefined>;
  readonly hostView: HostView;
}

export interface SagaResult {
  outcome: CommandOutcome;
  /** True when the saga stopped on a transient condition and must not be remembered as the command's outcome. */
  transient: boolean;
}

export async function runMigration(
  port: MigrationPort,
  c: CommandOf<'migrate'>,
  options: MigrationOptions & { driver?: HypervisorDriver } = {},
): Promise<SagaResult> {
  const id = c.meta.commandId;
  const correlationId = c.meta.correlationId ?? id;
  // The saga's own steps carry who asked (actor, auth) but not the migrate command's signature, which covers only it.
  const { signature: _signature, ...asked } = c.meta;
  const meta = (step: string) => ({
    ...asked,
    commandId: internalCommandId(id, step),
    correlationId,
    expectedRevision: undefined,
  });
  const phase = (p: 'prepare' | 'perform' | 'finish' | 'confirm', failed?: Refusal): Command => ({
    verb: 'migrate-phase',
    host: c.host,
    domain: c.domain,
    meta: meta(p),
    phase: p,
    ...(failed !== undefined ? { failed: failed.message, rule: failed.rule, code: failed.code } : {}),
  });

  // Begin (the migrate command itself, under the saga's correlation id; its outcome doc is the saga's, written by
  // the caller).
  const begin = await port.step({ ...c, meta: { ...c.meta, correlationId } }, { save: false });
  if (!begin.ok) return { outcome: begin, transient: begin.rule === 'CONCURRENCY' && !begin.audit };
  const events = [...begin.events];
  let sourceRevision = begin.revision;

  const result = (ok: boolean, r?: Refusal, destination?: { host: string; revision: number }): SagaResult => ({
    outcome: {
      ok,
      command: 'migrate',
      host: c.host,
      domain: c.domain,
      commandId: id,
      events,
      revision: sourceRevision,
      ...(r ? { rule: r.rule, code: r.code, codeName: r.codeName, message: r.message } : {}),
      ...(destination ? { destination } : {}),
    },
    transient: false,
  });
  const take = (o: CommandOutcome) => {
    events.push(...o.events);
    if (o.host === c.host && o.domain === c.domain && o.revision >= 0) sourceRevision = Math.max(sourceRevision, o.revision);
  };
  /** Records the failure of a phase on the source (the domain returns to where it was). */
  const fail = async (p: MigrationFailPhase, r: Refusal): Promise<SagaResult> => {
    const failed = await port.step(phase(p, r), { save: true });
    take(failed);
    // Recalled after a crash, the step says what failed it (its MigrationFailed fact); the same refusal either way.
    return result(false, (failed.duplicate ? failedIn(failed) : undefined) ?? r);
  };
  const injected = async (p: MigrationFailPhase, source: DomainState): Promise<Refusal | undefined> => {
    let message: string | undefined;
    if (options.failAt === p) message = options.failMessage ?? 'injected failure';
    const driver = options.driver as MigrationAwareDriver | undefined;
    message ??= await driver?.migrationPhase?.(p, { command: c, source });
    return message === undefined
      ? undefined
      : makeRefusal('MIG-PHASES', 'VIR_ERR_OPERATION_FAILED', `migration failed at phase ${p}: ${message}`);
  };

  let source = (await port.load(c.host, c.domain)).state;
  const job = source.migration;
  const incomingId = internalCommandId(id, 'incoming');
  const incoming = (s: DomainState): CommandOf<'migrate-incoming'> => ({
    verb: 'migrate-incoming',
    host: c.desthost,
    meta: { ...meta('incoming'), commandId: incomingId },
    source: c.host,
    config: s.config!,
    // MIG-PERSIST: --persistent defines it there; otherwise it arrives transient (an existing definition stays).
    persistent: c.persistent,
    active: s.active && !c.offline,
    paused: s.active && s.paused,
  });

  // Prepare
  let prepared = await port.recall(`${id}/prepare`);
  if (!prepared) {
    if (!job || !source.config) {
      return fail('prepare', makeRefusal('MIG-PHASES', 'VIR_ERR_OPERATION_FAILED', `domain '${c.domain}' lost its migration job`));
    }
    if (!(await port.recall(incomingId))) {
      const refused = (await injected('prepare', source)) ?? (await port.checkIncoming(incoming(source)));
      if (refused) return fail('prepare', refused);
    }
    prepared = await port.step(phase('prepare'), { save: true });
  }
  take(prepared);
  if (!prepared.ok) return result(false, refusalOf(prepared));
  // Resumed after a crash that followed a recorded Prepare failure: the saga ended there.
  const preparedFailure = failedIn(prepared);
  if (preparedFailure) return result(false, preparedFailure);

  // Perform (the machine re-checks the source; a failed re-check is recorded as MigrationFailed)
  let performed = await port.recall(`${id}/perform`);
  if (!performed) {
    source = (await port.load(c.host, c.domain)).state;
    const refused = await injected('perform', source);
    if (refused) return fail('perform', refused);
    const recheck = firstRefusal(source, phase('perform') as CommandOf<'migrate-phase'>, PERFORM_RECHECKS, { host: port.hostView });
    performed = await port.step(phase('perform'), { save: true });
    const performFailure = performed.ok ? failedIn(performed) : undefined;
    if (performFailure) {
      take(performed);
      return result(false, recheck ?? performFailure);
    }
  } else {
    const performFailure = failedIn(performed);
    if (performFailure) {
      take(performed);
      return result(false, performFailure);
    }
  }
  take(performed);
  if (!performed.ok) return result(false, refusalOf(performed));

  // Finish: the domain arrives on the destination, then the source records the phase.
  let arrived = await port.recall(incomingId);
  // Whether the destination held this domain before it arrived (a Confirm failure must then leave it defined).
  const destinationExisted = arrived ? undefined : (await port.load(c.desthost, c.domain)).state.life === 'exists';
  if (!arrived) {
    source = (await port.load(c.host, c.domain)).state;
    const refused = await injected('finish', source);
    if (refused) return fail('finish', refused);
    if (!source.config) {
      return fail('finish', makeRefusal('MIG-PHASES', 'VIR_ERR_OPERATION_FAILED', `domain '${c.domain}' has no configuration to send`));
    }
    arrived = await port.step(incoming(source), { save: true });
    if (!arrived.ok) return fail('finish', refusalOf(arrived));
  }
  take(arrived);
  const destination = { host: c.desthost, revision: arrived.revision };

  const finished = await port.step(phase('finish'), { save: true });
  take(finished);
  if (!finished.ok) return result(false, refusalOf(finished), destination);

  // Confirm failing (fault injection): the domain goes back to the source. The two streams cannot change at once,
  // so the destination lets go first (the guest then runs nowhere) and only then does the source resume it:
  // never active on two hosts. A definition the arrival created (--persistent) is removed again, storage kept.
  if (!(await port.recall(`${id}/confirm`))) {
    const refused = await injected('confirm', (await port.load(c.host, c.domain)).state);
    if (refused) {
      const dest = (await port.load(c.desthost, c.domain)).state;
      const onDest = { host: c.desthost, domain: c.domain };
      if (dest.life === 'exists' && dest.active) {
        take(await port.step({ verb: 'destroy', ...onDest, meta: meta('rollback-destroy'), graceful: false }, { save: true }));
      }
      const after = (await port.load(c.desthost, c.domain)).state;
      if (destinationExisted === false && after.life === 'exists' && !after.active) {
        const undefine: Command = {
          verb: 'undefine',
          ...onDest,
          meta: meta('rollback-undefine'),
          managedSave: false,
          snapshotsMetadata: false,
          removeAllStorage: false,
          wipeStorage: false,
        };
        take(await port.step(undefine, { save: true }));
      }
      return fail('confirm', refused);
    }
  }

  // Confirm: the source lets go.
  const confirmed = await port.step(phase('confirm'), { save: true });
  take(confirmed);
  if (!confirmed.ok) return result(false, refusalOf(confirmed), destination);
  return result(true, undefined, destination);
}

const CODE_NAMES = new Map<number, ErrorCodeName>(Object.entries(ERROR_CODES).map(([name, code]) => [code, name as ErrorCodeName]));

/**
 * The refusal a recorded MigrationFailed stands for: its rule and code (MIG-PHASES and 55 for facts recorded
 * before they carried them), and its message as recorded (already rendered).
 */
export function migrationFailure(fact: { message: string; rule?: string; code?: number }): Refusal {
  const codeName = (fact.code !== undefined ? CODE_NAMES.get(fact.code) : undefined) ?? 'VIR_ERR_OPERATION_INVALID';
  return { ...makeRefusal(fact.rule ?? 'MIG-PHASES', codeName, fact.message, false), code: fact.code ?? ERROR_CODES[codeName] };
}

/** The failure a step's MigrationFailed fact records, if the step failed its phase. */
function failedIn(o: CommandOutcome): Refusal | undefined {
  const fact = o.events.find((e) => e.type === 'MigrationFailed');
  return fact ? migrationFailure(fact.data as { message: string; rule?: string; code?: number }) : undefined;
}

function refusalOf(o: CommandOutcome): Refusal {
  return {
    rule: o.rule ?? 'MIG-PHASES',
    code: o.code ?? 9,
    codeName: (o.codeName ?? 'VIR_ERR_OPERATION_FAILED') as Refusal['codeName'],
    message: o.message ?? 'operation failed: migration step failed',
  };
}
