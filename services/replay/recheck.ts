// replayCheck: one pass over the log in position order re-decides every recorded decision with today's rules (on
// the state before it, with the host as it was then) and follows every stream's hash chain; the streams it flags
// are looked at again afterwards (chains.ts), as are no-ops and refusals decided on a revision the pass had
// already gone past.
import { FactSchema } from '../../machines/events';
import type { HostView } from '../../machines/guards';
import { domainStream, initialDomainState, type DomainState } from '../../machines/model';
import { evolveKnown, foldDomainEvent, newStreamFold, type StreamFold } from '../../projections/domainList';
import {
  acceptedNoopOf,
  commandOf,
  factOf,
  EFFECT_INTENDED,
  isDomainStream,
  isEffectRecord,
  isNoopStream,
  isRefusalStream,
  type RecordedNoop,
  type RecordedRefusal,
  refusalOf,
} from '../../projections/log';
import { eventHash } from '../factHash';
import { isIdentityRule } from '../identity/rules';
import { DamagedRecordError } from '../eventstore/shared';
import { StoreCorruptError, type EventStore, type RecordedEvent } from '../eventstore/types';
import {
  ANCHOR_COLLECTION,
  ANCHOR_KEY,
  checkStream,
  lastStream,
  metadataMismatch,
  readAnchor,
  signatureProblem,
  type ChainCursor,
  type TamperFinding,
} from './chains';
import { HostIndex } from './hosts';
import { guestEventFor, outcomeOf, safeDecide, safeTarget, type Outcome } from './outcome';
import { progressOf, type ReplayProgress } from './progress';

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


/** Read from the schema, so a fact type added to machines/events.ts is known here at once. */
function knownFactTypes(): Set<string> {
  return new Set(FactSchema.options.map((o) => o.shape.type.value as string));
}

