// The audit records a pass re-decides besides the domains' facts: accepted no-ops (on the domain revision each
// names, whose hash it quotes) and refusals (on the revision they were refused at), and the domain state at a
// revision the pass had already gone past when a writer got in between.
import type { HostView } from '../../machines/guards';
import { domainStream, initialDomainState, type DomainState } from '../../machines/model';
import { evolveKnown } from '../../projections/domainList';
import { factOf, type RecordedNoop, type RecordedRefusal } from '../../projections/log';
import { isIdentityRule } from '../identity/rules';
import type { EventStore, RecordedEvent } from '../eventstore/types';
import { isCorruption, type TamperFinding } from './chains';
import { outcomeOf, safeDecide, type Outcome } from './outcome';
import type { RefusalDrift, ViolationSink } from './types';

/**
 * Checks an accepted no-op against the domain state it was decided on: today's rules must still accept it (else a
 * violation), and the domain's fact at that revision must still carry the hash the record quotes (else the
 * domain stream was rewritten under it: returned as a finding on the record).
 */
export function noopChecks(
  event: RecordedEvent,
  noop: RecordedNoop,
  target: { host: string; name: string },
  state: DomainState,
  domainHash: string | undefined,
  hosts: HostView,
  violation: ViolationSink,
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
export function refusedAt(event: RecordedEvent): number | undefined {
  const inData = (event.data as { domainRevision?: unknown } | null)?.domainRevision;
  const at = typeof inData === 'number' ? inData : event.metadata.domainRevision;
  return typeof at === 'number' && Number.isSafeInteger(at) && at >= -1 ? at : undefined;
}

/**
 * A recorded refusal decided again on the domain state it was refused at (`revision`: that state's revision): the
 * caller's expected revision first (CONCURRENCY), then the rules. Returns the drift when it comes out differently.
 */
export function refusalDriftOf(
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
export async function domainAt(store: EventStore, stream: string, target: { host: string; name: string }, revision: number) {
  try {
    return await domainAtUnchecked(store, stream, target, revision);
  } catch (error) {
    if (isCorruption(error)) return undefined; // reported where the pass met the damage
    throw error;
  }
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
