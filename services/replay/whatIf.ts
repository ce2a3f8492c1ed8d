// What-if: the recorded commands (accepted and refused) replayed with some rules switched off, and every decision
// that would come out differently.
import type { Command } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import { GUARDS } from '../../machines/guards';
import { domainStream, initialDomainState, type DomainState } from '../../machines/model';
import { RULES } from '../../machines/rules';
import { evolveKnown, newStreamFold } from '../../projections/domainList';
import { acceptedNoopOf, commandOf, factOf, isDomainStream, isNoopStream, isRefusalStream, refusalOf } from '../../projections/log';
import type { EventStore, RecordedEvent } from '../eventstore/types';
import { HostIndex } from '../hostIndex';
import {
  guestEventFor,
  outcomeOf,
  recordedOutcome,
  safeDecide,
  safeTarget,
  sameOutcome,
  withoutDisabledFailure,
  type Outcome,
} from './outcome';
import { progressOf, type ReplayProgress } from './progress';


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

type Target = { host: string; name: string };

/**
 * The two worlds folded side by side: the recorded one (the facts as stored) and the what-if one. Both start a
 * stream from the same object: a stream has diverged exactly when the two differ by reference.
 */
interface Worlds {
  disabled: ReadonlySet<string>;
  recorded: Map<string, DomainState>;
  whatIf: Map<string, DomainState>;
  recordedHosts: HostIndex;
  whatIfHosts: HostIndex;
  changes: WhatIfChange[];
  commands: number;
  /** The decision whose facts are being read, and whether the what-if world follows its recorded facts. */
  open: { stream: string; commandId: unknown; follow: boolean } | undefined;
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
  const total = await store.headPosition();
  const progressEvery = Math.max(1, options.progressEvery ?? 10_000);
  const worlds: Worlds = {
    disabled: new Set(options.without),
    recorded: new Map(),
    whatIf: new Map(),
    recordedHosts: new HostIndex(),
    whatIfHosts: new HostIndex(),
    changes: [],
    commands: 0,
    open: undefined,
  };
  let read = 0;
  for await (const event of store.readAll(0)) {
    read++;
    if (isDomainStream(event.stream)) {
      visitDomainFact(worlds, event);
    } else if (isNoopStream(event.stream)) {
      worlds.open = undefined;
      visitNoop(worlds, event);
    } else if (isRefusalStream(event.stream)) {
      worlds.open = undefined;
      visitRefusal(worlds, event);
    } else {
      worlds.open = undefined;
    }
    if (options.onProgress && read % progressEvery === 0) options.onProgress(progressOf(read, total, started));
  }
  if (options.onProgress) options.onProgress(progressOf(read, total, started));
  const { changes } = worlds;
  const direct = changes.filter((c) => c.cause === 'rule').length;
  return {
    without: [...options.without],
    commands: worlds.commands,
    changes,
    direct,
    consequences: changes.length - direct,
    elapsedMs: Math.round(performance.now() - started),
  };
}

function ensure(worlds: Worlds, stream: string, host: string, name: string): void {
  if (worlds.recorded.has(stream)) return;
  const initial = initialDomainState(host, name);
  worlds.recorded.set(stream, initial);
  worlds.whatIf.set(stream, initial);
}

/** The what-if state of a stream; its host index entry carries no revision (-1): it is no revision of the log. */
function setWhatIf(worlds: Worlds, stream: string, next: DomainState): void {
  worlds.whatIfHosts.trackState(stream, next, -1);
  worlds.whatIf.set(stream, next);
}

function applyWhatIf(worlds: Worlds, stream: string, facts: Fact[]): void {
  let next = worlds.whatIf.get(stream)!;
  for (const f of facts) next = evolveKnown(next, f);
  setWhatIf(worlds, stream, next);
}

/** One decision point; returns whether the what-if world keeps following the record for this decision. */
function decidePoint(worlds: Worlds, event: RecordedEvent, command: Command, stream: string, target: Target, was: Outcome): boolean {
  worlds.commands++;
  ensure(worlds, stream, target.host, target.name);
  const rs = worlds.recorded.get(stream)!;
  const ws = worlds.whatIf.get(stream)!;
  const asIf = withoutDisabledFailure(command, worlds.disabled);
  const wouldDecision = safeDecide(ws, asIf, worlds.whatIfHosts, worlds.disabled);
  const wouldBe = outcomeOf(wouldDecision, asIf);
  const change = (cause: WhatIfChange['cause']) =>
    worlds.changes.push({
      position: event.position,
      commandId: String(event.metadata.commandId ?? command.meta?.commandId ?? ''),
      verb: String(command.verb),
      host: target.host,
      domain: target.name,
      cause,
      was,
      wouldBe,
    });
  if (rs === ws) {
    // Compare with today's rules on the same history, so rule drift and driver refusals are not "changes".
    const baseline = outcomeOf(safeDecide(rs, command, worlds.recordedHosts), command);
    if (sameOutcome(wouldBe, baseline)) return true;
    const direct = outcomeOf(safeDecide(rs, asIf, worlds.recordedHosts, worlds.disabled), asIf);
    change(sameOutcome(direct, baseline) ? 'consequence' : 'rule');
    // A migration phase that would pass: the saga's later steps (and the destination's) are not in the log, so
    // the what-if world keeps following the record rather than invent them (or strand the domain mid-migration).
    if (command.verb === 'migrate-phase' && was.outcome === 'refused' && wouldBe.outcome === 'accepted') return true;
  } else if (!sameOutcome(wouldBe, was)) {
    change('consequence');
  }
  // The what-if world goes its own way for this decision: decide's facts, or nothing when it would be refused
  // (the recorded facts then move only the recorded world, and the two part).
  if (wouldDecision.ok) applyWhatIf(worlds, stream, wouldDecision.facts);
  return false;
}

/** A domain's fact: a decision point on a decision's first fact, then folded into the recorded world (and followed). */
function visitDomainFact(worlds: Worlds, event: RecordedEvent): void {
  const known = worlds.recorded.get(event.stream) ?? newStreamFold(event).state;
  const identity = { host: known.host, name: known.name };
  ensure(worlds, event.stream, identity.host, identity.name);
  const command = commandOf(event);
  const open = worlds.open;
  const continues = !command && open && open.stream === event.stream && open.commandId === event.metadata.commandId;
  let follow: boolean;
  if (continues) {
    follow = open!.follow;
  } else if (command) {
    const target = safeTarget(command) ?? identity;
    follow = decidePoint(worlds, event, command, event.stream, target, recordedOutcome(event, command));
  } else {
    follow = followReport(worlds, event);
  }
  if (!continues) worlds.open = { stream: event.stream, commandId: event.metadata.commandId, follow };
  const rsBefore = worlds.recorded.get(event.stream)!;
  const wsBefore = worlds.whatIf.get(event.stream)!;
  const rsAfter = evolveKnown(rsBefore, factOf(event));
  worlds.recordedHosts.trackState(event.stream, rsAfter, event.revision);
  worlds.recorded.set(event.stream, rsAfter);
  if (follow && wsBefore === rsBefore) setWhatIf(worlds, event.stream, rsAfter);
}

/** A hypervisor report: followed while the domain is undiverged, else re-decided as its guest-event. */
function followReport(worlds: Worlds, event: RecordedEvent): boolean {
  const ws = worlds.whatIf.get(event.stream)!;
  if (worlds.recorded.get(event.stream) === ws) return true;
  const guestEvent = guestEventFor(event, ws);
  const decision = guestEvent ? safeDecide(ws, guestEvent, worlds.whatIfHosts, worlds.disabled) : undefined;
  if (decision?.ok) applyWhatIf(worlds, event.stream, decision.facts);
  return false;
}

/** An accepted no-op: nothing recorded to follow; where the what-if world differs it may do something now. */
function visitNoop(worlds: Worlds, event: RecordedEvent): void {
  const noop = acceptedNoopOf(event);
  const target = noop && safeTarget(noop.command);
  if (noop && target) decidePoint(worlds, event, noop.command, domainStream(target.host, target.name), target, { outcome: 'accepted' });
}

function visitRefusal(worlds: Worlds, event: RecordedEvent): void {
  const refused = refusalOf(event);
  const target = refused && safeTarget(refused.command);
  if (!refused || !target) return;
  decidePoint(worlds, event, refused.command, domainStream(target.host, target.name), target, {
    outcome: 'refused',
    rule: refused.rule,
    message: refused.message,
  });
}
