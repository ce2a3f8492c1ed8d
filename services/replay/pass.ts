// One record of the re-check's pass over the log: the state the pass keeps (folds, host index, hash chains, what
// it found so far) and what it does with each record, by stream kind: a domain's fact is re-decided (or, a
// hypervisor report, checked as its guest-event), an accepted no-op or a refusal re-decided on the revision it
// names. recheck.ts drives the pass and sums it up.
import type { Command } from '../../machines/commands';
import { FactSchema } from '../../machines/events';
import { domainStream, initialDomainState } from '../../machines/model';
import { foldDomainEvent, newStreamFold, type StreamFold } from '../../projections/domainList';
import {
  acceptedNoopOf,
  commandOf,
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
import type { RecordedEvent } from '../eventstore/types';
import { HostIndex } from '../hostIndex';
import { noopChecks, refusalDriftOf, refusedAt } from './auditRecords';
import { metadataMismatch, signatureProblem, type Anchor, type ChainCursor, type TamperFinding } from './chains';
import { guestEventFor, safeDecide, safeTarget } from './outcome';
import type { RefusalDrift, ReplayViolation, ViolationSink } from './types';

type Target = { host: string; name: string };

export interface Pass {
  /** The anchor of the last clean check (docs `replay/anchor`), and whether the pass met its position. */
  anchor: Anchor | undefined;
  anchorSeen: boolean;
  folds: Record<string, StreamFold>;
  hosts: HostIndex;
  chains: Map<string, ChainCursor>;
  /** Streams whose chain looked irregular: checkStream reads them again. */
  suspicious: Set<string>;
  /** Streams with a record that does not parse (named as damaged, not checked again). */
  damagedStreams: Set<string>;
  positionGaps: [number, number][];
  lastPosition: number;
  knownFacts: Set<string>;
  counts: { facts: number; decisions: number; refusals: number; noops: number; hypervisorReports: number; intents: number; domains: number };
  /** Per domain stream, the command id of its open intent (services/intents.ts): only its own result may follow. */
  openIntents: Map<string, string>;
  /** The decision whose facts are being read: later facts of the same command continue it. */
  open: { stream: string; commandId: unknown } | undefined;
  violations: ReplayViolation[];
  violation: ViolationSink;
  tampered: TamperFinding[];
  refusalDrift: RefusalDrift[];
  /** Facts whose metadata disagrees with their (hashed) command: reported unless the chain check names them. */
  mismatches: TamperFinding[];
  /** No-op records decided on a domain revision the pass had already gone past (a writer got in between). */
  laterNoops: { event: RecordedEvent; noop: RecordedNoop; target: Target }[];
  /** Refusals decided on a domain revision the pass had already gone past (a writer got in between). */
  laterRefusals: { event: RecordedEvent; refused: RecordedRefusal; target: Target; revision: number }[];
}

export function newPass(anchor: Anchor | undefined): Pass {
  const violations: ReplayViolation[] = [];
  return {
    anchor,
    anchorSeen: false,
    folds: {},
    hosts: new HostIndex(),
    chains: new Map(),
    suspicious: new Set(),
    damagedStreams: new Set(),
    positionGaps: [],
    lastPosition: 0,
    knownFacts: knownFactTypes(),
    counts: { facts: 0, decisions: 0, refusals: 0, noops: 0, hypervisorReports: 0, intents: 0, domains: 0 },
    openIntents: new Map(),
    open: undefined,
    violations,
    violation: (event, verb, host, domain, refusal) =>
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
      }),
    tampered: [],
    refusalDrift: [],
    mismatches: [],
    laterNoops: [],
    laterRefusals: [],
  };
}

/** Read from the schema, so a fact type added to machines/events.ts is known here at once. */
function knownFactTypes(): Set<string> {
  return new Set(FactSchema.options.map((o) => o.shape.type.value as string));
}

/** One record read from the log, of any stream. */
export function visit(pass: Pass, event: RecordedEvent): void {
  pass.counts.facts++;
  checkPosition(pass, event);
  followChain(pass, event);
  const carried = commandOf(event);
  const mismatch = carried !== undefined ? (metadataMismatch(event, carried) ?? signatureProblem(carried)) : undefined;
  if (mismatch) {
    pass.mismatches.push({ stream: event.stream, revision: event.revision, position: event.position, problem: 'changed', detail: mismatch });
  }
  if (isDomainStream(event.stream)) {
    visitDomainFact(pass, event, carried);
  } else if (isNoopStream(event.stream)) {
    pass.open = undefined;
    visitNoop(pass, event);
  } else if (isRefusalStream(event.stream)) {
    pass.open = undefined;
    visitRefusal(pass, event);
  } else {
    pass.open = undefined;
  }
}

/** Global positions are gap-free: a hole is a deleted fact (named by the stream's revision gap later). */
function checkPosition(pass: Pass, event: RecordedEvent): void {
  if (event.position !== pass.lastPosition + 1) pass.positionGaps.push([pass.lastPosition + 1, event.position - 1]);
  pass.lastPosition = event.position;
  const anchor = pass.anchor;
  if (!anchor || event.position !== anchor.position) return;
  pass.anchorSeen = true;
  if (event.stream !== anchor.stream || event.revision !== anchor.revision || event.metadata.hash !== anchor.hash) {
    pass.tampered.push({
      stream: event.stream,
      revision: event.revision,
      position: event.position,
      problem: 'changed',
      detail: `position ${anchor.position} held ${anchor.stream} revision ${anchor.revision} when the log was last verified; the fact there now is another`,
    });
  }
}

/**
 * Hash chain of the stream: each fact's hash chains to the hash recorded on the fact before it. Anything
 * irregular only flags the stream here; checkStream() reads it again in revision order and names the facts.
 */
function followChain(pass: Pass, event: RecordedEvent): void {
  let chain = pass.chains.get(event.stream);
  if (!chain) pass.chains.set(event.stream, (chain = { revision: -1, position: 0, hash: '' }));
  const recordedHash = typeof event.metadata.hash === 'string' ? event.metadata.hash : undefined;
  if (event.revision !== chain.revision + 1 || recordedHash === undefined || eventHash(chain.hash, event) !== recordedHash) {
    pass.suspicious.add(event.stream);
  }
  chain.revision = event.revision;
  chain.position = event.position;
  chain.hash = recordedHash ?? '';
}

/** A domain's fact: its intent bookkeeping, then re-decided (a decision's first fact, or a hypervisor report), then folded. */
function visitDomainFact(pass: Pass, event: RecordedEvent, command: Command | undefined): void {
  const before = pass.folds[event.stream] ?? newStreamFold(event);
  const verb = command ? String(command.verb) : 'hypervisor';
  checkIntent(pass, event, verb, before);
  if (isEffectRecord(event.type)) {
    // An intent or its settlement: no fact; the decision is checked on the result's first fact as always.
    if (event.type === EFFECT_INTENDED) pass.counts.intents++;
    pass.open = { stream: event.stream, commandId: event.metadata.commandId };
  } else if (!pass.knownFacts.has(event.type)) {
    pass.violation(event, verb, before.state.host, before.state.name, {
      rule: 'FACT-UNKNOWN',
      code: 1,
      message: `the machine knows no fact of type '${event.type}'`,
    });
  } else if (command) {
    pass.counts.decisions++;
    pass.open = { stream: event.stream, commandId: event.metadata.commandId };
    checkDecision(pass, event, command, before);
  } else if (!(pass.open && pass.open.stream === event.stream && pass.open.commandId === event.metadata.commandId)) {
    pass.counts.hypervisorReports++;
    pass.open = { stream: event.stream, commandId: event.metadata.commandId };
    const guestEvent = guestEventFor(event, before.state);
    if (guestEvent) {
      const decision = safeDecide(before.state, guestEvent, pass.hosts);
      if (!decision.ok) pass.violation(event, 'guest-event', before.state.host, before.state.name, decision.refusal);
    }
  }
  if (before.revision < 0) pass.counts.domains++;
  pass.folds[event.stream] = before;
  const after = foldDomainEvent(pass.folds, event)!;
  pass.hosts.trackState(event.stream, after.state, event.revision);
}

/** While an effect is intended and not settled, only its own command's records may follow in the stream. */
function checkIntent(pass: Pass, event: RecordedEvent, verb: string, before: StreamFold): void {
  const commandId = String(event.metadata.commandId ?? '');
  const intentOf = pass.openIntents.get(event.stream);
  if (intentOf !== undefined && intentOf !== commandId) {
    pass.violation(event, verb, before.state.host, before.state.name, {
      rule: 'JOB-BUSY',
      code: 68,
      message: `recorded while the effect of command ${intentOf} was intended and not yet settled`,
    });
  }
  if (event.type === EFFECT_INTENDED) pass.openIntents.set(event.stream, commandId);
  else pass.openIntents.delete(event.stream);
}

/** A decision's first fact: its command must name this stream, and today's rules must accept it on the state before. */
function checkDecision(pass: Pass, event: RecordedEvent, command: Command, before: StreamFold): void {
  const target = safeTarget(command);
  const inOwnStream = target !== undefined && domainStream(target.host, target.name) === event.stream;
  if (!inOwnStream) {
    pass.violation(event, String(command.verb), before.state.host, before.state.name, {
      rule: 'REPLAY-ERROR',
      code: 1,
      message: `the recorded command names ${target ? domainStream(target.host, target.name) : 'no domain'}, not the stream it is stored in`,
    });
    return;
  }
  const decision = safeDecide(before.state, command, pass.hosts);
  if (!decision.ok) pass.violation(event, String(command.verb), target.host, target.name, decision.refusal);
}

/**
 * An accepted no-op: re-decided on the domain state it names (the revision it was decided on), whose hash it
 * quotes. Usually that is where the pass stands; if another writer got in between, checked afterwards.
 */
function visitNoop(pass: Pass, event: RecordedEvent): void {
  const noop = acceptedNoopOf(event);
  const target = noop && safeTarget(noop.command);
  if (!noop || !target) return;
  pass.counts.noops++;
  const fold = pass.folds[domainStream(target.host, target.name)];
  if ((fold?.revision ?? -1) !== noop.domainRevision) {
    pass.laterNoops.push({ event, noop, target });
    return;
  }
  const hash = pass.chains.get(domainStream(target.host, target.name))?.hash;
  const finding = noopChecks(event, noop, target, fold?.state ?? initialDomainState(target.host, target.name), hash, pass.hosts, pass.violation);
  if (finding) pass.mismatches.push(finding);
}

/**
 * A refusal: re-decided on the domain as it was when refused (the revision recorded with the refusal); under
 * racing writers the log may already hold later facts of that domain here, and it is checked afterwards.
 */
function visitRefusal(pass: Pass, event: RecordedEvent): void {
  const refused = refusalOf(event);
  const target = refused && safeTarget(refused.command);
  if (!refused || !target) return;
  pass.counts.refusals++;
  const fold = pass.folds[domainStream(target.host, target.name)];
  const at = refusedAt(event);
  if (at !== undefined && (fold?.revision ?? -1) !== at) {
    pass.laterRefusals.push({ event, refused, target, revision: at });
    return;
  }
  const state = fold?.state ?? initialDomainState(target.host, target.name);
  const drift = refusalDriftOf(event, refused, target, state, fold?.revision ?? -1, pass.hosts);
  if (drift) pass.refusalDrift.push(drift);
}
