// A domain's history as the UI steps through it: one step per audit entry (one command, accepted or refused, or
// one hypervisor report), each with the machine state after it. Step 0 is the domain before its first command
// (`undefined`).
//
// The commands and outcomes come from the audit log projection (projections/auditLog.ts); the states come from
// folding the domain's own stream with the projections' reducer (foldDomainEvent, i.e. machines/evolve), so the
// UI can never show a state the ledger would not compute. The edge a command took is the machine's own answer
// (edgeTaken on the state before it), so the page highlights exactly the transition the machine drew.
import type { Command } from '../../machines/commands';
import { commandEvent, domainSnapshot, leafStateOf, type LeafState } from '../../machines/domainMachine';
import { edgeTaken, machineEdges, type MachineEdge } from '../../machines/machineGraph';
import { domainStream, initialDomainState, runState, snapshotCount, topState, type DomainState, type TopState } from '../../machines/model';
import { ruleById } from '../../machines/rules';
import type { AuditEntry } from '../../projections/auditLog';
import { foldDomainEvent, type StreamFold } from '../../projections/domainList';
import { commandOf, refusalOf } from '../../projections/log';
import type { EventStore, RecordedEvent } from '../eventstore/types';

export interface StatePoint {
  top: TopState;
  run: 'running' | 'paused' | null;
  /** The machine's leaf state (`running.paused`): the node the diagram highlights. */
  leaf: LeafState;
  persistent: boolean;
  managedSave: boolean;
  snapshots: number;
  currentSnapshot: string | null;
  /** Domain stream revision this state reflects (-1: no facts yet). */
  revision: number;
}

export interface HistoryFact {
  type: string;
  revision: number;
  position: number;
}

export interface HistoryStep {
  /** 0: before the first command; then one per audit entry, in log order. */
  index: number;
  /**
   * `libvirt`: what libvirt did on its own (an event, or a difference found by a resync, `reconcile` or `adopt`),
   * recorded with actor `libvirt`: shown apart from the commands sent to vmledger, with `source`.
   */
  kind: 'initial' | 'command' | 'hypervisor' | 'libvirt';
  /** For `libvirt` steps: how vmledger learnt it (event, resync, reconcile, adopt) and what libvirt said. */
  source?: { source: string; detail?: string };
  position: number | null;
  time: string | null;
  actor: string | null;
  commandId: string | null;
  verb: string | null;
  /** The command as a virsh-like line (`undefine test --snapshots-metadata`). */
  line: string;
  outcome: 'accepted' | 'refused' | null;
  rule?: string;
  ruleText?: string;
  code?: number;
  codeName?: string;
  message?: string;
  facts: HistoryFact[];
  before: StatePoint | null;
  after: StatePoint;
  /** Accepted: the machine edge the command took (when the current machine has one). */
  edge?: string;
  /** Refused: the edges from the state, for this verb, that the refusing rule guards. */
  refusedEdges: string[];
}

export interface DomainHistory {
  host: string;
  domain: string;
  stream: string;
  steps: HistoryStep[];
}

export function statePoint(s: DomainState, revision: number): StatePoint {
  return {
    top: topState(s),
    run: runState(s),
    leaf: leafStateOf(s),
    persistent: s.persistent,
    managedSave: s.hasManagedSave,
    snapshots: snapshotCount(s),
    currentSnapshot: s.current,
    revision,
  };
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** A virsh-like rendering of a recorded command, for display only (defaults and metadata left out). */
export function commandLine(command: Command | undefined, fallbackVerb: string, domain: string): string {
  if (!command || typeof command !== 'object') return `${fallbackVerb} ${domain}`.trim();
  const c = command as unknown as Record<string, unknown>;
  const verb = typeof c.verb === 'string' ? c.verb : fallbackVerb;
  const parts: string[] = [verb];
  const config = c.config as { name?: unknown } | undefined;
  const name = typeof c.domain === 'string' ? c.domain : typeof config?.name === 'string' ? config.name : domain;
  parts.push(name);
  for (const [key, value] of Object.entries(c)) {
    if (['verb', 'host', 'meta', 'domain', 'config'].includes(key)) continue;
    if (key === 'snapshot' && value && typeof value === 'object') {
      const snapName = (value as { name?: unknown }).name;
      if (typeof snapName === 'string') parts.push(snapName);
      continue;
    }
    if (key === 'snapshotname' && typeof value === 'string') {
      parts.push(value);
      continue;
    }
    if (value === true) parts.push(`--${kebab(key)}`);
    else if (typeof value === 'string' && value !== '') parts.push(`--${kebab(key)} ${value}`);
    else if (typeof value === 'number') parts.push(`--${kebab(key)} ${value}`);
    else if (Array.isArray(value) && value.length > 0) parts.push(`--${kebab(key)} ${value.join(',')}`);
  }
  return parts.join(' ');
}

/** The state path and its ancestors (`running.paused`, `running`): where the edges that apply to it leave from. */
function selfAndAncestors(leaf: string): string[] {
  const parts = leaf.split('.');
  return parts.map((_, i) => parts.slice(0, parts.length - i).join('.'));
}

/** The edge an accepted command took: the machine's own choice, else the one edge that fits from, event and to. */
export function edgeForAccepted(
  before: DomainState,
  after: DomainState,
  command: Command | undefined,
  verb: string,
  edges: readonly MachineEdge[],
): string | undefined {
  // A new life under a name whose domain is gone starts from `undefined` again (a new actor).
  const fromState = before.life === 'gone' ? initialDomainState(before.host, before.name) : before;
  if (command) {
    try {
      const id = edgeTaken(domainSnapshot(fromState), commandEvent(command));
      if (id !== undefined) return id;
    } catch {
      // a recorded command the current machine cannot evaluate: fall back to the shape of the edge
    }
  }
  const fromLeaf = leafStateOf(fromState);
  const toLeaf = leafStateOf(after);
  const sources = selfAndAncestors(fromLeaf);
  const fits = edges.filter(
    (e) => e.event === verb && sources.includes(e.from) && (e.targetless ? toLeaf === fromLeaf : e.to === toLeaf),
  );
  return fits.length === 1 ? fits[0]!.id : undefined;
}

/** Edges from a state, for a verb, that a rule guards: where a refused command would have gone. */
export function edgesGuardedBy(leaf: string, verb: string, rule: string | undefined, edges: readonly MachineEdge[]): string[] {
  if (!rule) return [];
  const sources = selfAndAncestors(leaf === 'gone' ? 'undefined' : leaf);
  return edges.filter((e) => e.event === verb && sources.includes(e.from) && e.rules.includes(rule)).map((e) => e.id);
}

/** The kind and source of an entry: `libvirt` when it records what libvirt did on its own. */
function origin(entry: AuditEntry, fallback: 'command' | 'hypervisor'): Pick<HistoryStep, 'kind' | 'source'> {
  return entry.observed ? { kind: 'libvirt', source: entry.observed } : { kind: fallback };
}

/** Reads the one event at a global position. */
async function eventAt(store: EventStore, position: number): Promise<RecordedEvent | undefined> {
  for await (const e of store.readAll(position - 1, 1)) return e.position === position ? e : undefined;
  return undefined;
}

/**
 * Builds a domain's history from its audit entries (already filtered to this host and domain, in log order)
 * and its stream.
 */
export async function buildHistory(
  store: EventStore,
  host: string,
  domain: string,
  entries: readonly AuditEntry[],
  edges: readonly MachineEdge[] = machineEdges(),
): Promise<DomainHistory> {
  const stream = domainStream(host, domain);
  const events: RecordedEvent[] = [];
  for await (const e of store.readStream(stream)) events.push(e);

  const folds: Record<string, StreamFold> = {};
  let state = initialDomainState(host, domain);
  let revision = -1;
  let next = 0;
  /** Folds the stream's facts up to a global position (inclusive). */
  const foldUpTo = (position: number): RecordedEvent[] => {
    const folded: RecordedEvent[] = [];
    while (next < events.length && events[next]!.position <= position) {
      const e = events[next++]!;
      const fold = foldDomainEvent(folds, e);
      if (fold) {
        state = fold.state;
        revision = fold.revision;
      }
      folded.push(e);
    }
    return folded;
  };

  const steps: HistoryStep[] = [
    {
      index: 0,
      kind: 'initial',
      position: null,
      time: null,
      actor: null,
      commandId: null,
      verb: null,
      line: '(before the first command)',
      outcome: null,
      facts: [],
      before: null,
      after: statePoint(state, revision),
      refusedEdges: [],
    },
  ];

  for (const entry of entries) {
    // Facts of this stream that no entry covers (none in a healthy log) belong to the state before this step.
    foldUpTo(entry.position - 1);
    const beforeState = state;
    const before = statePoint(state, revision);
    const base = {
      index: steps.length,
      position: entry.position,
      time: entry.time || null,
      actor: entry.actor || null,
      commandId: entry.commandId || null,
      verb: entry.verb,
    };
    if (entry.outcome === 'refused') {
      const event = await eventAt(store, entry.position);
      const command = event ? refusalOf(event)?.command : undefined;
      const rule = entry.rule;
      steps.push({
        ...base,
        ...origin(entry, 'command'),
        line: commandLine(command, entry.verb, domain),
        outcome: 'refused',
        ...(rule !== undefined ? { rule } : {}),
        ...(rule !== undefined && ruleById(rule) ? { ruleText: ruleById(rule)!.text } : {}),
        ...(entry.code !== undefined ? { code: entry.code } : {}),
        ...(entry.codeName !== undefined ? { codeName: entry.codeName } : {}),
        ...(entry.message !== undefined ? { message: entry.message } : {}),
        facts: [],
        before,
        after: before,
        refusedEdges: edgesGuardedBy(before.leaf, entry.verb, rule, edges),
      });
      continue;
    }
    const ownFacts = entry.facts.filter((f) => f.stream === stream);
    const lastPosition = ownFacts.reduce((max, f) => Math.max(max, f.position), entry.position);
    const folded = foldUpTo(lastPosition);
    const first = folded.find((e) => e.position === entry.position) ?? folded[0];
    const command = first ? commandOf(first) : undefined;
    // A hypervisor report is the guest-event it stands for (docs/rules.md §1).
    const edge = edgeForAccepted(beforeState, state, command, entry.verb === 'hypervisor' ? 'guest-event' : entry.verb, edges);
    steps.push({
      ...base,
      ...origin(entry, entry.verb === 'hypervisor' ? 'hypervisor' : 'command'),
      line: entry.verb === 'hypervisor' ? `(reported by the hypervisor: ${ownFacts.map((f) => f.type).join(', ')})` : commandLine(command, entry.verb, domain),
      outcome: 'accepted',
      ...(entry.rule !== undefined ? { rule: entry.rule } : {}),
      ...(entry.message !== undefined ? { message: entry.message } : {}),
      facts: ownFacts.map((f) => ({ type: f.type, revision: f.revision, position: f.position })),
      before,
      after: statePoint(state, revision),
      ...(edge !== undefined ? { edge } : {}),
      refusedEdges: [],
    });
  }
  return { host, domain, stream, steps };
}
