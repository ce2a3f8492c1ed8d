// Audit replay over the recorded log:
//
//   replayCheck  re-runs every recorded decision through the current machine (decide on the state before it,
//                with the host as it was then) and reports the ones today's rules would refuse; verifies every
//                stream's hash chain (which covers each decision's recorded command) and names each changed,
//                removed or reordered fact, and each decision whose metadata disagrees with its recorded command.
//   stateAt      time travel: the domain list and snapshot trees as of a global position or a time.
//   whatIf       replays the recorded commands (accepted and refused) with some rules switched off and lists
//                every decision that would come out differently.
//
// All three fold the global log once, in position order, with plain reducers (machines/evolve), never an
// XState actor per event.
import type { Command } from '../machines/commands';
import { decide, type Decision } from '../machines/decide';
import { FactSchema, type Fact } from '../machines/events';
import { GUARDS, type HostView } from '../machines/guards';
import { domainStream, initialDomainState, type DomainState } from '../machines/model';
import { RULES } from '../machines/rules';
import { domainRows, evolveKnown, foldDomainEvent, newStreamFold, type StreamFold } from '../projections/domainList';
import { canonicalJson, eventHash } from './factHash';
import { isIdentityRule } from './identity/rules';
import { verifyCommandSignature } from './identity/signature';
import {
  acceptedNoopOf,
  COMMAND_ACCEPTED,
  COMMAND_REFUSED,
  commandOf,
  commandTarget,
  factOf,
  EFFECT_INTENDED,
  isDomainStream,
  isEffectRecord,
  isNoopStream,
  isRefusalStream,
  type RecordedNoop,
  type RecordedRefusal,
  refusalOf,
  timeMs,
  type LogPoint,
} from '../projections/log';
import type { DomainView } from '../projections/queries';
import { buildSnapshotTree } from '../projections/snapshotTree';
import { DamagedRecordError } from './eventstore/shared';
import { StoreCorruptError, type EventStore, type RecordedEvent } from './eventstore/types';

// ---------------------------------------------------------------------------------------------------
// The host as decide sees it: which existing domain holds a UUID (DEF-NAME), kept current as states change.

export class HostIndex implements HostView {
  private readonly byHost = new Map<string, Map<string, string>>();

  domainNameByUuid(host: string, uuid: string): string | undefined {
    return this.byHost.get(host)?.get(uuid);
  }

  /** Records that one domain went from `before` to `after`. */
  update(before: DomainState | undefined, after: DomainState): void {
    const was = before && before.life === 'exists' ? before.uuid : null;
    const is = after.life === 'exists' ? after.uuid : null;
    if (before && was === is && before.name === after.name && before.host === after.host) return;
    if (before && was !== null) {
      const uuids = this.byHost.get(before.host);
      if (uuids?.get(was) === before.name) uuids.delete(was);
    }
    if (is !== null) {
      let uuids = this.byHost.get(after.host);
      if (!uuids) this.byHost.set(after.host, (uuids = new Map()));
      uuids.set(is, after.name);
    }
  }
}

/**
 * What a decision came to, as the audit log and the what-if report show it. A migration phase that failed by a
 * rule (its MigrationFailed names one: a Prepare check on the destination, a Perform re-check, a Finish refusal)
 * counts as refused by that rule: the fact is recorded, but the migration did not get past that rule.
 */
export type Outcome = { outcome: 'accepted' } | { outcome: 'refused'; rule: string; message: string };

function outcomeOf(decision: Decision, command?: Command): Outcome {
  if (!decision.ok) return { outcome: 'refused', rule: decision.refusal.rule, message: decision.refusal.message };
  if (command?.verb === 'migrate-phase') {
    const failed = decision.facts.find((f) => f.type === 'MigrationFailed' && f.rule !== undefined);
    if (failed?.type === 'MigrationFailed') return { outcome: 'refused', rule: failed.rule!, message: failed.message };
  }
  return { outcome: 'accepted' };
}

/** How a recorded decision came out, from its first fact: accepted, or a migration phase failed by a rule. */
function recordedOutcome(event: RecordedEvent, command: Command): Outcome {
  if (command.verb !== 'migrate-phase' || event.type !== 'MigrationFailed') return { outcome: 'accepted' };
  const data = event.data as { rule?: unknown; message?: unknown };
  return typeof data.rule === 'string' ? { outcome: 'refused', rule: data.rule, message: String(data.message ?? '') } : { outcome: 'accepted' };
}

/**
 * A migration phase recorded as failed by a rule that is switched off (`migrate-phase … failed` with that rule):
 * what-if decides the phase as if the check had passed. (Only that rule is known to have failed it: another
 * check of the destination might still have, which the log cannot tell.)
 */
function withoutDisabledFailure(command: Command, disabled: ReadonlySet<string>): Command {
  if (command.verb !== 'migrate-phase' || command.failed === undefined || command.rule === undefined || !disabled.has(command.rule)) return command;
  const { failed: _failed, rule: _rule, code: _code, ...passed } = command;
  return passed;
}

function sameOutcome(a: Outcome, b: Outcome): boolean {
  return a.outcome === b.outcome && (a.outcome === 'accepted' || a.rule === (b as { rule: string }).rule);
}

/** decide() on a recorded command, which may be damaged: an exception becomes a refusal under REPLAY-ERROR. */
function safeDecide(state: DomainState, command: Command, host: HostView, disabledRules?: ReadonlySet<string>): Decision {
  try {
    return decide(state, command, { host, ...(disabledRules ? { disabledRules } : {}) });
  } catch (error) {
    return {
      ok: false,
      refusal: {
        rule: 'REPLAY-ERROR',
        code: 1,
        codeName: 'VIR_ERR_INTERNAL_ERROR',
        message: `the recorded command cannot be decided: ${error instanceof Error ? error.message : String(error)}`,
      },
    };
  }
}

function safeTarget(command: Command): { host: string; name: string } | undefined {
  try {
    const target = commandTarget(command);
    return typeof target.host === 'string' && typeof target.name === 'string' ? target : undefined;
  } catch {
    return undefined;
  }
}

/** Why a fact fails its hash: its content, or (on a fact that carries one) the command recorded with it. */
function changedDetail(event: RecordedEvent): string {
  const command = event.metadata.command as { verb?: unknown; meta?: { commandId?: unknown } } | undefined;
  if (command === undefined) return `its ${event.type} content does not match its recorded hash: the fact was changed`;
  const verb = command && typeof command === 'object' && typeof command.verb === 'string' ? command.verb : '?';
  const id = command && typeof command === 'object' && typeof command.meta?.commandId === 'string' ? command.meta.commandId : '?';
  return `its ${event.type} content does not match its recorded hash, which covers the command recorded with it too (now '${verb}', id ${id}): the fact or its command was changed`;
}

/**
 * The metadata the ledger copies from a decision's command (command id, actor, time, correlation id, host,
 * domain; and for a refusal, the command in its data) must agree with that command, which the hash covers.
 * Returns what disagrees, or undefined.
 */
function metadataMismatch(event: RecordedEvent, command: Command): string | undefined {
  const m = event.metadata;
  const meta = (command.meta ?? {}) as Partial<Command['meta']>;
  const fields: [string, unknown, unknown][] = [
    ['commandId', m.commandId, meta.commandId],
    ['actor', m.actor, meta.actor],
    ['time', m.time, meta.time],
    ['correlationId', m.correlationId, meta.correlationId],
  ];
  const target = safeTarget(command);
  if (target && typeof m.host === 'string') fields.push(['host', m.host, target.host]);
  if (target && typeof m.domain === 'string') fields.push(['domain', m.domain, target.name]);
  const wrong = fields.filter(([, a, b]) => a !== b).map(([k, a, b]) => `metadata ${k} ${JSON.stringify(a) ?? 'missing'} is not the recorded command's ${JSON.stringify(b) ?? '(none)'}`);
  if ((event.type === COMMAND_REFUSED || event.type === COMMAND_ACCEPTED) && m.command !== undefined && canonicalJson(m.command) !== canonicalJson(command)) {
    wrong.push(`the command in the ${event.type} record's metadata is not the command in its data`);
  }
  return wrong.length > 0 ? wrong.join('; ') : undefined;
}

/** A recorded command's signature, if it carries one, must verify over the recorded command (a rehashed chain hides nothing here). */
function signatureProblem(command: Command): string | undefined {
  if ((command.meta as { signature?: unknown } | undefined)?.signature === undefined) return undefined;
  const check = verifyCommandSignature(command);
  return check.ok ? undefined : `the recorded command's signature does not verify: ${check.reason}`;
}

/**
 * A fact the hypervisor reported without a command is checked as the guest-event it stands for (docs/rules.md §1:
 * accepted in any active state); facts with no guest-event counterpart just evolve.
 */
function guestEventFor(event: RecordedEvent, state: DomainState): Command | undefined {
  const fact = factOf(event);
  let body: { event: 'poweroff' | 'reboot' | 'crash' | 'blockjob-ready'; disk?: string } | undefined;
  if (fact.type === 'DomainStopped' && fact.reason === 'shutdown') body = { event: 'poweroff' };
  else if (fact.type === 'DomainStopped' && fact.reason === 'crashed') body = { event: 'crash' };
  else if (fact.type === 'DomainRebooted') body = { event: 'reboot' };
  else if (fact.type === 'BlockJobReady') body = { event: 'blockjob-ready', disk: fact.disk };
  if (!body) return undefined;
  const m = event.metadata;
  return {
    verb: 'guest-event',
    host: state.host,
    domain: state.name,
    meta: { commandId: String(m.commandId ?? ''), actor: String(m.actor ?? 'hypervisor'), time: String(m.time ?? '') },
    ...body,
  } as Command;
}

// ---------------------------------------------------------------------------------------------------
// replayCheck

export interface ReplayProgress {
  /** Facts read so far, and the log's head when the check started. */
  done: number;
  total: number;
  elapsedMs: number;
  /** Facts per second so far. */
  rate: number;
}

export interface ReplayOptions {
  onProgress?: (progress: ReplayProgress) => void;
  /** Report progress every this many facts (default 10 000) and once at the end. */
  progressEvery?: number;
  /**
   * Keep a verified anchor (head position and hash, in docs `replay/anchor`) and check the log still holds it:
   * that is how facts cut from the end of the log are noticed. Default true.
   */
  anchor?: boolean;
}

/** A recorded decision (or hypervisor report) the current rules would refuse. */
export interface ReplayViolation {
  position: number;
  stream: string;
  revision: number;
  commandId: string;
  verb: string;
  host: string;
  domain: string;
  rule: string;
  code: number;
  message: string;
}

export type TamperProblem = 'changed' | 'removed' | 'reordered' | 'unchained' | 'missing-hash' | 'truncated' | 'damaged';

export interface TamperFinding {
  stream: string;
  revision: number;
  /** Global position of the fact (for a removed fact: where it was, when that can be told). */
  position: number | null;
  problem: TamperProblem;
  detail: string;
}

/** A recorded refusal the current rules would decide differently (informational: nothing was applied). */
export interface RefusalDrift {
  position: number;
  commandId: string;
  verb: string;
  host: string;
  domain: string;
  recorded: { rule: string; message: string };
  now: Outcome;
}

export interface ReplaySummary {
  /** True when there is no violation and no tampering. */
  ok: boolean;
  /**
   * Facts read (every stream), decisions re-run (accepted commands that appended facts), refusals read, accepted
   * no-ops re-run (on the domain revision each names), hypervisor reports.
   */
  facts: number;
  decisions: number;
  refusals: number;
  noops: number;
  hypervisorReports: number;
  /** Effects recorded as intended before they were performed (services/intents.ts), and how many are still open. */
  intents: number;
  openIntents: number;
  /** Domain streams seen. */
  domains: number;
  head: number;
  elapsedMs: number;
  /** Facts per second. */
  rate: number;
  violations: ReplayViolation[];
  tampered: TamperFinding[];
  refusalDrift: RefusalDrift[];
}

export const ANCHOR_COLLECTION = 'replay';
export const ANCHOR_KEY = 'anchor';

interface ChainCursor {
  revision: number;
  position: number;
  hash: string;
}

export async function replayCheck(store: EventStore, options: ReplayOptions = {}): Promise<ReplaySummary> {
  const started = performance.now();
  const total = await store.headPosition();
  const progressEvery = Math.max(1, options.progressEvery ?? 10_000);
  const useAnchor = options.anchor ?? true;
  const anchor = useAnchor ? await readAnchor(store) : undefined;

  const folds: Record<string, StreamFold> = {};
  let domains = 0;
  const hosts = new HostIndex();
  const chains = new Map<string, ChainCursor>();
  const violations: ReplayViolation[] = [];
  const tampered: TamperFinding[] = [];
  const refusalDrift: RefusalDrift[] = [];
  const suspicious = new Set<string>();
  const positionGaps: [number, number][] = [];
  const knownFacts = knownFactTypes();

  let facts = 0;
  let decisions = 0;
  let refusals = 0;
  let noops = 0;
  /** Refusals decided on a domain revision the pass had already gone past (a writer got in between). */
  const laterRefusals: { event: RecordedEvent; refused: RecordedRefusal; target: { host: string; name: string }; revision: number }[] = [];
  /** No-op records decided on a domain revision the pass had already gone past (a writer got in between). */
  const laterNoops: { event: RecordedEvent; noop: RecordedNoop; target: { host: string; name: string } }[] = [];
  let hypervisorReports = 0;
  let intents = 0;
  /** Per domain stream, the command id of its open intent (services/intents.ts): only its own result may follow. */
  const openIntents = new Map<string, string>();
  let lastPosition = 0;
  let anchorSeen = false;
  /** Facts whose metadata disagrees with their (hashed) command: reported unless the chain check names them. */
  const mismatches: TamperFinding[] = [];
  /** The decision whose facts are being read: later facts of the same command continue it. */
  let open: { stream: string; commandId: unknown } | undefined;

  const violation = (event: RecordedEvent, verb: string, host: string, domain: string, refusal: { rule: string; code: number; message: string }) =>
    violations.push({
      position: event.position,
      stream: event.stream,
      revision: event.revision,
      commandId: String(event.metadata.commandId ?? ''),
      verb,
      host,
      domain,
      rule: refusal.rule,
      code: refusal.code,
      message: refusal.message,
    });

  // A record whose bytes no longer parse is named and skipped; a damaged page ends the read there (both: exit 2).
  const damagedStreams = new Set<string>();
  if (store.damage !== undefined) tampered.push({ stream: '', revision: -1, position: null, problem: 'damaged', detail: store.damage });
  let readFrom = 0;
  for (;;) {
    try {
      for await (const event of store.readAll(readFrom)) {
        readFrom = event.position;
        facts++;

        // Global positions are gap-free: a hole is a deleted fact (named by the stream's revision gap below).
        if (event.position !== lastPosition + 1) positionGaps.push([lastPosition + 1, event.position - 1]);
        lastPosition = event.position;
        if (anchor && event.position === anchor.position) {
          anchorSeen = true;
          if (event.stream !== anchor.stream || event.revision !== anchor.revision || event.metadata.hash !== anchor.hash) {
            tampered.push({
              stream: event.stream,
              revision: event.revision,
              position: event.position,
              problem: 'changed',
              detail: `position ${anchor.position} held ${anchor.stream} revision ${anchor.revision} when the log was last verified; the fact there now is another`,
            });
          }
        }

        // Hash chain of the stream: each fact's hash chains to the hash recorded on the fact before it. Anything
        // irregular only flags the stream here; checkStream() reads it again in revision order and names the facts.
        let chain = chains.get(event.stream);
        if (!chain) chains.set(event.stream, (chain = { revision: -1, position: 0, hash: '' }));
        const recordedHash = typeof event.metadata.hash === 'string' ? event.metadata.hash : undefined;
        if (
          event.revision !== chain.revision + 1 ||
          recordedHash === undefined ||
          eventHash(chain.hash, event) !== recordedHash
        ) {
          suspicious.add(event.stream);
        }
        chain.revision = event.revision;
        chain.position = event.position;
        chain.hash = recordedHash ?? '';
        const carried = commandOf(event);
        const mismatch = carried !== undefined ? (metadataMismatch(event, carried) ?? signatureProblem(carried)) : undefined;
        if (mismatch) {
          mismatches.push({ stream: event.stream, revision: event.revision, position: event.position, problem: 'changed', detail: mismatch });
        }

        if (isDomainStream(event.stream)) {
          const before = folds[event.stream] ?? newStreamFold(event);
          const command = commandOf(event);
          const commandId = String(event.metadata.commandId ?? '');
          const intentOf = openIntents.get(event.stream);
          if (intentOf !== undefined && intentOf !== commandId) {
            violation(event, command ? String(command.verb) : 'hypervisor', before.state.host, before.state.name, {
              rule: 'JOB-BUSY',
              code: 68,
              message: `recorded while the effect of command ${intentOf} was intended and not yet settled`,
            });
          }
          if (event.type === EFFECT_INTENDED) openIntents.set(event.stream, commandId);
          else openIntents.delete(event.stream);
          if (isEffectRecord(event.type)) {
            // An intent or its settlement: no fact; the decision is checked on the result's first fact as always.
            if (event.type === EFFECT_INTENDED) intents++;
            open = { stream: event.stream, commandId: event.metadata.commandId };
          } else if (!knownFacts.has(event.type)) {
            violation(event, command ? String(command.verb) : 'hypervisor', before.state.host, before.state.name, {
              rule: 'FACT-UNKNOWN',
              code: 1,
              message: `the machine knows no fact of type '${event.type}'`,
            });
          } else if (command) {
            decisions++;
            open = { stream: event.stream, commandId: event.metadata.commandId };
            const target = safeTarget(command);
            const inOwnStream = target !== undefined && domainStream(target.host, target.name) === event.stream;
            if (!inOwnStream) {
              violation(event, String(command.verb), before.state.host, before.state.name, {
                rule: 'REPLAY-ERROR',
                code: 1,
                message: `the recorded command names ${target ? domainStream(target.host, target.name) : 'no domain'}, not the stream it is stored in`,
              });
            } else {
              const decision = safeDecide(before.state, command, hosts);
              if (!decision.ok) violation(event, String(command.verb), target.host, target.name, decision.refusal);
            }
          } else if (!(open && open.stream === event.stream && open.commandId === event.metadata.commandId)) {
            hypervisorReports++;
            open = { stream: event.stream, commandId: event.metadata.commandId };
            const guestEvent = guestEventFor(event, before.state);
            if (guestEvent) {
              const decision = safeDecide(before.state, guestEvent, hosts);
              if (!decision.ok) violation(event, 'guest-event', before.state.host, before.state.name, decision.refusal);
            }
          }
          if (before.revision < 0) domains++;
          folds[event.stream] = before;
          const after = foldDomainEvent(folds, event)!;
          hosts.update(before.state, after.state);
        } else if (isNoopStream(event.stream)) {
          // An accepted no-op: re-decided on the domain state it names (the revision it was decided on), whose hash
          // it quotes. Usually that is where the pass stands; if another writer got in between, checked afterwards.
          open = undefined;
          const noop = acceptedNoopOf(event);
          const target = noop && safeTarget(noop.command);
          if (noop && target) {
            noops++;
            const fold = folds[domainStream(target.host, target.name)];
            if ((fold?.revision ?? -1) === noop.domainRevision) {
              const hash = chains.get(domainStream(target.host, target.name))?.hash;
              const finding = noopChecks(event, noop, target, fold?.state ?? initialDomainState(target.host, target.name), hash, hosts, violation);
              if (finding) mismatches.push(finding);
            } else {
              laterNoops.push({ event, noop, target });
            }
          }
        } else if (isRefusalStream(event.stream)) {
          open = undefined;
          const refused = refusalOf(event);
          const target = refused && safeTarget(refused.command);
          if (refused && target) {
            refusals++;
            // Re-decided on the domain as it was when refused (the revision recorded with the refusal): under racing
            // writers the log may already hold later facts of that domain here.
            const stream = domainStream(target.host, target.name);
            const at = refusedAt(event);
            const fold = folds[stream];
            if (at === undefined || (fold?.revision ?? -1) === at) {
              const drift = refusalDriftOf(event, refused, target, fold?.state ?? initialDomainState(target.host, target.name), fold?.revision ?? -1, hosts);
              if (drift) refusalDrift.push(drift);
            } else {
              laterRefusals.push({ event, refused, target, revision: at });
            }
          }
        } else {
          open = undefined;
        }

        if (options.onProgress && facts % progressEvery === 0) options.onProgress(progressOf(facts, total, started));
      }
      break;
    } catch (error) {
      if (error instanceof DamagedRecordError) {
        tampered.push({ stream: error.stream, revision: error.revision, position: error.position, problem: 'damaged', detail: error.message });
        damagedStreams.add(error.stream);
        facts++;
        readFrom = lastPosition = error.position;
        continue;
      }
      if (!isCorruption(error)) throw error;
      tampered.push({
        stream: '',
        revision: -1,
        position: readFrom + 1,
        problem: 'damaged',
        detail: `the log cannot be read past position ${readFrom}: ${(error as Error).message}`,
      });
      break;
    }
  }

  if (anchor && !anchorSeen) {
    tampered.push({
      stream: anchor.stream,
      revision: anchor.revision,
      position: anchor.position,
      problem: 'truncated',
      detail: `the log was verified up to position ${anchor.position}, but it now ends at ${lastPosition}: facts were cut from its end`,
    });
  }
  for (const { event, noop, target } of laterNoops) {
    const at = await domainAt(store, domainStream(target.host, target.name), target, noop.domainRevision);
    if (!at) {
      mismatches.push({
        stream: event.stream,
        revision: event.revision,
        position: event.position,
        problem: 'unchained',
        detail: `it names revision ${noop.domainRevision} of ${domainStream(target.host, target.name)}, which the log does not hold`,
      });
      continue;
    }
    const finding = noopChecks(event, noop, target, at.state, at.hash, hosts, violation);
    if (finding) mismatches.push(finding);
  }
  for (const { event, refused, target, revision } of laterRefusals) {
    // A revision the stream does not reach is the hash chains' to report; the refusal is then decided on the last state.
    const last = folds[domainStream(target.host, target.name)];
    const at = await domainAt(store, domainStream(target.host, target.name), target, revision);
    const drift = at
      ? refusalDriftOf(event, refused, target, at.state, revision, hosts)
      : refusalDriftOf(event, refused, target, last?.state ?? initialDomainState(target.host, target.name), last?.revision ?? -1, hosts);
    if (drift) refusalDrift.push(drift);
  }
  refusalDrift.sort((a, b) => a.position - b.position);
  violations.sort((a, b) => a.position - b.position);
  const claimed = new Set<number>();
  for (const stream of suspicious) {
    if (!damagedStreams.has(stream)) tampered.push(...(await checkStream(store, stream, positionGaps, claimed)));
  }
  for (const m of mismatches) {
    if (!tampered.some((t) => t.stream === m.stream && t.revision === m.revision)) tampered.push(m);
  }
  for (const [from, to] of positionGaps) {
    for (let p = from; p <= to; p++) {
      if (claimed.has(p)) continue;
      tampered.push({
        stream: '',
        revision: -1,
        position: p,
        problem: 'removed',
        detail: `position ${p} is missing from the global log (the last fact of some stream was removed)`,
      });
    }
  }
  tampered.sort((a, b) => (a.position ?? Infinity) - (b.position ?? Infinity) || a.stream.localeCompare(b.stream) || a.revision - b.revision);

  if (options.onProgress) options.onProgress(progressOf(facts, total, started));
  const elapsedMs = performance.now() - started;
  const summary: ReplaySummary = {
    ok: violations.length === 0 && tampered.length === 0,
    facts,
    decisions,
    refusals,
    noops,
    hypervisorReports,
    intents,
    openIntents: openIntents.size,
    domains,
    head: lastPosition,
    elapsedMs: Math.round(elapsedMs),
    rate: Math.round((facts / Math.max(elapsedMs, 1e-3)) * 1000),
    violations,
    tampered,
    refusalDrift,
  };
  if (useAnchor && tampered.length === 0 && lastPosition > 0) {
    const last = chains.get(lastStream(chains, lastPosition) ?? '');
    const stream = lastStream(chains, lastPosition);
    if (stream && last) {
      await store.putDoc(ANCHOR_COLLECTION, ANCHOR_KEY, { position: lastPosition, stream, revision: last.revision, hash: last.hash });
    }
  }
  return summary;
}

/**
 * Checks an accepted no-op against the domain state it was decided on: today's rules must still accept it (else a
 * violation), and the domain's fact at that revision must still carry the hash the record quotes (else the
 * domain stream was rewritten under it: returned as a finding on the record).
 */
function noopChecks(
  event: RecordedEvent,
  noop: RecordedNoop,
  target: { host: string; name: string },
  state: DomainState,
  domainHash: string | undefined,
  hosts: HostView,
  violation: (event: RecordedEvent, verb: string, host: string, domain: string, refusal: { rule: string; code: number; message: string }) => void,
): TamperFinding | undefined {
  const decision = safeDecide(state, noop.command, hosts);
  if (!decision.ok) violation(event, String(noop.command.verb), target.host, target.name, decision.refusal);
  if (noop.domainRevision >= 0 && noop.domainHash !== domainHash) {
    return {
      stream: event.stream,
      revision: event.revision,
      position: event.position,
      problem: 'unchained',
      detail:
        `it was decided on revision ${noop.domainRevision} of ${domainStream(target.host, target.name)}, whose hash was ${noop.domainHash ?? '(none)'}; ` +
        `the fact there now carries ${domainHash ?? 'no hash'}`,
    };
  }
  return undefined;
}

/** The domain revision a refusal was decided at (in its hashed data; older records: in its metadata), if recorded. */
function refusedAt(event: RecordedEvent): number | undefined {
  const inData = (event.data as { domainRevision?: unknown } | null)?.domainRevision;
  const at = typeof inData === 'number' ? inData : event.metadata.domainRevision;
  return typeof at === 'number' && Number.isSafeInteger(at) && at >= -1 ? at : undefined;
}

/**
 * A recorded refusal decided again on the domain state it was refused at (`revision`: that state's revision): the
 * caller's expected revision first (CONCURRENCY), then the rules. Returns the drift when it comes out differently.
 */
function refusalDriftOf(
  event: RecordedEvent,
  refused: RecordedRefusal,
  target: { host: string; name: string },
  state: DomainState,
  revision: number,
  hosts: HostView,
): RefusalDrift | undefined {
  // A refusal for who asked (access policy, identity) is no decision of the machine's to compare.
  if (isIdentityRule(refused.rule)) return undefined;
  const expected = (refused.command.meta as { expectedRevision?: unknown } | undefined)?.expectedRevision;
  let now: Outcome;
  if (typeof expected === 'number' && expected !== revision) {
    now = { outcome: 'refused', rule: 'CONCURRENCY', message: `expected revision ${expected}, actual ${revision}` };
  } else {
    now = outcomeOf(safeDecide(state, refused.command, hosts), refused.command);
  }
  if (now.outcome === 'refused' && now.rule === refused.rule) return undefined;
  return {
    position: event.position,
    commandId: String(event.metadata.commandId ?? ''),
    verb: String(refused.command.verb),
    host: target.host,
    domain: target.name,
    recorded: { rule: refused.rule, message: refused.message },
    now,
  };
}

/** A domain's state and last hash at a revision, folded from its stream; undefined when the stream does not reach it. */
async function domainAt(store: EventStore, stream: string, target: { host: string; name: string }, revision: number) {
  try {
    return await domainAtUnchecked(store, stream, target, revision);
  } catch (error) {
    if (isCorruption(error)) return undefined; // reported where the pass met the damage
    throw error;
  }
}

/** A damaged store: our own errors, or SQLite's when a page does not parse. */
function isCorruption(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof StoreCorruptError || (typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB'));
}

async function domainAtUnchecked(store: EventStore, stream: string, target: { host: string; name: string }, revision: number) {
  let state = initialDomainState(target.host, target.name);
  let hash: string | undefined;
  let reached = revision < 0;
  for await (const e of store.readStream(stream)) {
    if (e.revision > revision) break;
    state = evolveKnown(state, factOf(e));
    hash = typeof e.metadata.hash === 'string' ? e.metadata.hash : undefined;
    reached = e.revision === revision;
  }
  return reached ? { state, hash } : undefined;
}

function lastStream(chains: Map<string, ChainCursor>, position: number): string | undefined {
  for (const [stream, cursor] of chains) if (cursor.position === position) return stream;
  return undefined;
}

async function readAnchor(store: EventStore) {
  const doc = (await store.getDoc(ANCHOR_COLLECTION, ANCHOR_KEY)) as
    | { position?: unknown; stream?: unknown; revision?: unknown; hash?: unknown }
    | undefined;
  if (!doc || typeof doc.position !== 'number' || typeof doc.stream !== 'string' || typeof doc.revision !== 'number') return undefined;
  return { position: doc.position, stream: doc.stream, revision: doc.revision, hash: typeof doc.hash === 'string' ? doc.hash : '' };
}

function progressOf(done: number, total: number, started: number): ReplayProgress {
  const elapsedMs = performance.now() - started;
  return { done, total: Math.max(total, done), elapsedMs, rate: Math.round((done / Math.max(elapsedMs, 1e-3)) * 1000) };
}

/** Read from the schema, so a fact type added to machines/events.ts is known here at once. */
function knownFactTypes(): Set<string> {
  return new Set(FactSchema.options.map((o) => o.shape.type.value as string));
}

/**
 * Second look at a stream the first pass flagged, in revision order: revisions that are missing (removed, with
 * the global positions that went missing between their neighbours), facts whose global order contradicts their
 * revisions, and the hash chain, from which the order the facts were recorded in is re-derived (each fact's hash
 * names the hash it was chained to) to tell a changed fact from a moved one. One finding per fact.
 */
async function checkStream(store: EventStore, stream: string, positionGaps: [number, number][], claimed: Set<number>): Promise<TamperFinding[]> {
  const events: RecordedEvent[] = [];
  for await (const event of store.readStream(stream)) events.push(event);
  const findings = new Map<number, TamperFinding>(); // by revision
  const report = (finding: TamperFinding) => {
    const known = findings.get(finding.revision);
    if (!known) findings.set(finding.revision, finding);
    else if (finding.problem === 'reordered' && known.problem === 'reordered') known.detail += `; ${finding.detail}`;
    else if (finding.problem === 'reordered' || finding.problem === 'removed') findings.set(finding.revision, finding);
  };

  // Removed: holes in the revisions, matched with holes in the global positions between the neighbours.
  events.forEach((event, i) => {
    const previous = events[i - 1];
    const from = previous ? previous.revision + 1 : 0;
    if (event.revision <= from) return;
    const after = previous?.position ?? 0;
    const missing: number[] = [];
    for (const [a, b] of positionGaps) for (let p = Math.max(a, after + 1); p <= Math.min(b, event.position - 1); p++) missing.push(p);
    const count = event.revision - from;
    for (let k = 0; k < count; k++) {
      const revision = from + k;
      const position = missing.length === count ? missing[k]! : null;
      if (position !== null) claimed.add(position);
      report({
        stream,
        revision,
        position,
        problem: 'removed',
        detail:
          `revision ${revision} is missing (the stream goes from revision ${from - 1}${previous ? ` at position ${after}` : ''} ` +
          `to revision ${event.revision} at position ${event.position})` +
          (position !== null ? `; it was at position ${position}` : ''),
      });
    }
  });

  // Global order: the facts whose positions contradict their revisions are those outside the longest run of
  // increasing positions (in revision order): the fewest facts that, moved back, would make the order agree.
  const inOrder = longestIncreasingRun(events.map((e) => e.position));
  events.forEach((event, i) => {
    if (inOrder.has(i)) return;
    report({
      stream,
      revision: event.revision,
      position: event.position,
      problem: 'reordered',
      detail: `revision ${event.revision} is at position ${event.position}, out of order with the stream's other revisions`,
    });
  });

  // The hash chain.
  const hashes = events.map((e) => (typeof e.metadata.hash === 'string' ? e.metadata.hash : ''));
  const holder = new Map<string, number>(); // recorded hash → index in `events`
  hashes.forEach((h, i) => h && holder.set(h, i));
  /** Index of the fact each fact chains to: -1 for the stream's start, undefined when none fits. */
  const predecessor: (number | undefined)[] = events.map((event, i) => {
    const own = hashes[i]!;
    if (!own) return undefined;
    if (i > 0 && eventHash(hashes[i - 1], event) === own) return i - 1;
    if (eventHash('', event) === own) return -1;
    for (const [hash, j] of holder) if (j !== i && eventHash(hash, event) === own) return j;
    return undefined;
  });
  // The revision each fact was recorded at: one after the revision its predecessor was recorded at.
  const recordedAt = new Map<number, number>();
  const originalRevision = (i: number, depth = 0): number => {
    const known = recordedAt.get(i);
    if (known !== undefined) return known;
    const p = predecessor[i];
    const value = p === undefined || depth > events.length ? events[i]!.revision : p === -1 ? 0 : originalRevision(p, depth + 1) + 1;
    recordedAt.set(i, value);
    return value;
  };
  events.forEach((event, i) => {
    if (!hashes[i]) {
      report({ stream, revision: event.revision, position: event.position, problem: 'missing-hash', detail: 'the fact carries no hash' });
      return;
    }
    const base = { stream, revision: event.revision, position: event.position };
    const p = predecessor[i];
    if (p === undefined) {
      const previous = events[i - 1];
      if (i === 0 ? event.revision !== 0 : previous!.revision !== event.revision - 1) return; // after a removal: not checkable alone
      // A hole in the global log right before it: the fact recorded before it was removed, and the stream renumbered.
      const after = previous?.position ?? 0;
      const hole = positionGaps
        .flatMap(([a, b]) => Array.from({ length: Math.max(0, Math.min(b, event.position - 1) - Math.max(a, after + 1) + 1) }, (_, k) => Math.max(a, after + 1) + k))
        .filter((position) => !claimed.has(position));
      if (hole.length > 0) {
        for (const position of hole) claimed.add(position);
        report({
          stream,
          revision: event.revision,
          position: hole[0]!,
          problem: 'removed',
          detail:
            `revision ${event.revision} (position ${hole.join(', ')}) was removed and the later revisions renumbered: ` +
            `the ${event.type} now at revision ${event.revision} (position ${event.position}) chains to a hash no stored fact has`,
        });
        return;
      }
      const previousBroken = i > 0 && predecessor[i - 1] === undefined;
      if (previousBroken) {
        report({ ...base, problem: 'unchained', detail: `it does not chain to revision ${event.revision - 1}'s recorded hash (that hash was changed, or this fact was too)` });
      } else {
        report({ ...base, problem: 'changed', detail: changedDetail(event) });
      }
      return;
    }
    const original = originalRevision(i);
    if (original !== event.revision) {
      report({
        ...base,
        problem: 'reordered',
        detail: `this ${event.type} was recorded as revision ${original} (its hash chains to the fact recorded before it), but it is stored as revision ${event.revision}`,
      });
    }
  });
  return [...findings.values()];
}

/** Indexes of one longest strictly increasing subsequence of `values` (patience sorting, O(n log n)). */
function longestIncreasingRun(values: readonly number[]): Set<number> {
  const tails: number[] = []; // index of the last element of the best run of each length
  const previous: number[] = new Array(values.length).fill(-1);
  values.forEach((v, i) => {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[tails[mid]!]! < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1]!;
    tails[lo] = i;
  });
  const run = new Set<number>();
  for (let i = tails.at(-1) ?? -1; i >= 0; i = previous[i]!) run.add(i);
  return run;
}

// ---------------------------------------------------------------------------------------------------
// Time travel

export interface StateAt {
  /** Last global position folded, and its time. */
  position: number;
  time: string | null;
  /** Domains that existed then, with their state and snapshot tree. */
  domains: DomainView[];
}

/**
 * The ledger as of a global position, or as of a time: every fact up to the last one stamped at or before it
 * (facts are stamped with their command's time; one stamped later is held back, and dropped unless a later
 * fact is stamped in time, so the result is always a prefix of the log).
 */
export async function stateAt(store: EventStore, at: LogPoint, options: { includeGone?: boolean } = {}): Promise<StateAt> {
  const streams: Record<string, StreamFold> = {};
  let position = 0;
  let time: string | null = null;
  if ('position' in at) {
    for await (const event of store.readAll(0, at.position)) {
      foldDomainEvent(streams, event);
      position = event.position;
      time = typeof event.metadata.time === 'string' ? event.metadata.time : time;
    }
  } else {
    const limit = timeMs(at.time);
    if (Number.isNaN(limit)) throw new Error(`'${at.time}' is not an ISO-8601 time`);
    let held: RecordedEvent[] = [];
    for await (const event of store.readAll(0)) {
      if (timeMs(event.metadata.time) <= limit) {
        for (const e of held) foldDomainEvent(streams, e);
        held = [];
        foldDomainEvent(streams, event);
        position = event.position;
        time = String(event.metadata.time);
      } else {
        held.push(event);
      }
    }
  }
  const rows = domainRows(streams, { includeGone: options.includeGone ?? false });
  return {
    position,
    time,
    domains: rows.map((row) => {
      const state = streams[row.stream]!.state;
      return { ...row, detail: state, tree: buildSnapshotTree(state) };
    }),
  };
}

// ---------------------------------------------------------------------------------------------------
// What-if

export interface WhatIfOptions {
  /** Rule ids (guards) to switch off. */
  without: readonly string[];
  onProgress?: (progress: ReplayProgress) => void;
  progressEvery?: number;
}

export interface WhatIfChange {
  position: number;
  commandId: string;
  verb: string;
  host: string;
  domain: string;
  /**
   * `rule`: the switched-off rule decided this command (same state, same host, only the rules differ).
   * `consequence`: it changes because an earlier changed decision left the domain (or its host) elsewhere.
   */
  cause: 'rule' | 'consequence';
  was: Outcome;
  wouldBe: Outcome;
}

export interface WhatIfReport {
  without: string[];
  /** Commands replayed: accepted decisions and refusals. */
  commands: number;
  changes: WhatIfChange[];
  direct: number;
  consequences: number;
  elapsedMs: number;
}

/** Rule ids that can be switched off: those with a guard. */
export function switchableRules(): string[] {
  return Object.keys(GUARDS);
}

export function assertSwitchableRules(ids: readonly string[]): void {
  const guards = new Set(switchableRules());
  for (const id of ids) {
    if (guards.has(id)) continue;
    const rule = RULES.find((r) => r.id === id);
    if (rule) throw new Error(`rule ${id} shapes the facts of accepted commands (kind: effect); only rules that refuse can be switched off`);
    throw new Error(`unknown rule '${id}'; rules that can be switched off: ${[...guards].join(', ')}`);
  }
}

/**
 * Replays the recorded commands in log order with some rules switched off. Two worlds are folded side by side:
 * the recorded one (the facts as stored) and the what-if one. While a domain's what-if state is the recorded
 * state, an unchanged decision follows the record (so driver-reported facts are kept); once a decision changes,
 * the domain's what-if state is evolved with what decide says instead, and its later decisions are compared
 * with what was recorded.
 */
export async function whatIf(store: EventStore, options: WhatIfOptions): Promise<WhatIfReport> {
  assertSwitchableRules(options.without);
  const started = performance.now();
  const disabled: ReadonlySet<string> = new Set(options.without);
  const total = await store.headPosition();
  const progressEvery = Math.max(1, options.progressEvery ?? 10_000);

  const recorded = new Map<string, DomainState>();
  const whatIfStates = new Map<string, DomainState>();
  const recordedHosts = new HostIndex();
  const whatIfHosts = new HostIndex();
  const changes: WhatIfChange[] = [];
  let commands = 0;
  let read = 0;
  /** The decision whose facts are being read, and whether the what-if world follows its recorded facts. */
  let open: { stream: string; commandId: unknown; follow: boolean } | undefined;

  /** Both worlds start a stream from the same object: a stream has diverged exactly when the two differ by reference. */
  const ensure = (stream: string, host: string, name: string) => {
    if (recorded.has(stream)) return;
    const initial = initialDomainState(host, name);
    recorded.set(stream, initial);
    whatIfStates.set(stream, initial);
  };
  const setWhatIf = (stream: string, next: DomainState) => {
    whatIfHosts.update(whatIfStates.get(stream), next);
    whatIfStates.set(stream, next);
  };
  const applyWhatIf = (stream: string, facts: Fact[]) => {
    let next = whatIfStates.get(stream)!;
    for (const f of facts) next = evolveKnown(next, f);
    setWhatIf(stream, next);
  };

  /** One decision point; returns whether the what-if world keeps following the record for this decision. */
  const decidePoint = (event: RecordedEvent, command: Command, stream: string, target: { host: string; name: string }, was: Outcome): boolean => {
    commands++;
    ensure(stream, target.host, target.name);
    const rs = recorded.get(stream)!;
    const ws = whatIfStates.get(stream)!;
    const diverged = rs !== ws;
    const asIf = withoutDisabledFailure(command, disabled);
    const wouldDecision = safeDecide(ws, asIf, whatIfHosts, disabled);
    const wouldBe = outcomeOf(wouldDecision, asIf);
    const change = (cause: WhatIfChange['cause']) =>
      changes.push({
        position: event.position,
        commandId: String(event.metadata.commandId ?? command.meta?.commandId ?? ''),
        verb: String(command.verb),
        host: target.host,
        domain: target.name,
        cause,
        was,
        wouldBe,
      });
    if (!diverged) {
      // Compare with today's rules on the same history, so rule drift and driver refusals are not "changes".
      const baseline = outcomeOf(safeDecide(rs, command, recordedHosts), command);
      if (sameOutcome(wouldBe, baseline)) return true;
      const direct = outcomeOf(safeDecide(rs, asIf, recordedHosts, disabled), asIf);
      change(sameOutcome(direct, baseline) ? 'consequence' : 'rule');
      // A migration phase that would pass: the saga's later steps (and the destination's) are not in the log, so
      // the what-if world keeps following the record rather than invent them (or strand the domain mid-migration).
      if (command.verb === 'migrate-phase' && was.outcome === 'refused' && wouldBe.outcome === 'accepted') return true;
    } else if (!sameOutcome(wouldBe, was)) {
      change('consequence');
    }
    // The what-if world goes its own way for this decision: decide's facts, or nothing when it would be refused
    // (the recorded facts then move only the recorded world, and the two part).
    if (wouldDecision.ok) applyWhatIf(stream, wouldDecision.facts);
    return false;
  };

  for await (const event of store.readAll(0)) {
    read++;
    if (isDomainStream(event.stream)) {
      const known = recorded.get(event.stream) ?? newStreamFold(event).state;
      const identity = { host: known.host, name: known.name };
      ensure(event.stream, identity.host, identity.name);
      const command = commandOf(event);
      const continues = !command && open && open.stream === event.stream && open.commandId === event.metadata.commandId;
      let follow: boolean;
      if (continues) {
        follow = open!.follow;
      } else if (command) {
        const target = safeTarget(command) ?? identity;
        follow = decidePoint(event, command, event.stream, target, recordedOutcome(event, command));
        open = { stream: event.stream, commandId: event.metadata.commandId, follow };
      } else {
        // A hypervisor report: followed while the domain is undiverged, else re-decided as its guest-event.
        const ws = whatIfStates.get(event.stream)!;
        follow = recorded.get(event.stream) === ws;
        if (!follow) {
          const guestEvent = guestEventFor(event, ws);
          const decision = guestEvent ? safeDecide(ws, guestEvent, whatIfHosts, disabled) : undefined;
          if (decision?.ok) applyWhatIf(event.stream, decision.facts);
        }
        open = { stream: event.stream, commandId: event.metadata.commandId, follow };
      }
      const rsBefore = recorded.get(event.stream)!;
      const wsBefore = whatIfStates.get(event.stream)!;
      const rsAfter = evolveKnown(rsBefore, factOf(event));
      recordedHosts.update(rsBefore, rsAfter);
      recorded.set(event.stream, rsAfter);
      if (follow && wsBefore === rsBefore) setWhatIf(event.stream, rsAfter);
    } else if (isNoopStream(event.stream)) {
      // An accepted no-op: nothing recorded to follow; where the what-if world differs it may do something now.
      open = undefined;
      const noop = acceptedNoopOf(event);
      const target = noop && safeTarget(noop.command);
      if (noop && target) decidePoint(event, noop.command, domainStream(target.host, target.name), target, { outcome: 'accepted' });
    } else if (isRefusalStream(event.stream)) {
      open = undefined;
      const refused = refusalOf(event);
      const target = refused && safeTarget(refused.command);
      if (refused && target) {
        decidePoint(event, refused.command, domainStream(target.host, target.name), target, {
          outcome: 'refused',
          rule: refused.rule,
          message: refused.message,
        });
      }
    } else {
      open = undefined;
    }
    if (options.onProgress && read % progressEvery === 0) options.onProgress(progressOf(read, total, started));
  }
  if (options.onProgress) options.onProgress(progressOf(read, total, started));
  const direct = changes.filter((c) => c.cause === 'rule').length;
  return {
    without: [...options.without],
    commands,
    changes,
    direct,
    consequences: changes.length - direct,
    elapsedMs: Math.round(performance.now() - started),
  };
}
