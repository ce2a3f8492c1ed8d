// The domain machine of docs/rules.md §1 as an XState v5 statechart, built from the verb table (verbs.ts) and the
// states (states.ts): it holds no rule of its own and nothing is written here that the table says already.
//
// For each verb, every state that accepts it (and, as a fallback, the root for every verb) lists first one
// refusal edge per guard of the verb, in the table's order: `{ type: 'refuses', params: { rule } }`, true when
// that rule (GUARDS[rule], guards.ts) refuses the command; it emits the refusal and leaves state and context as
// they were. XState takes the first enabled edge, so the first failing rule in libvirt's order gives the refusal.
// After them come the accepting edges, to the table's targets; where a state has several, each is guarded by
// `{ type: 'leadsTo', params: { target } }` (the verb's `leadsTo`). The one action of an accepting edge, `apply`,
// emits the facts (EFFECTS[verb], effects.ts) and folds them into the context with `evolve`.
//
// `machineStep` sends a command through XState's pure `transition()`; the hot path (ledger, replay) calls
// `decide()`, the same table read directly, because `transition()` costs 50–140 µs a command (verbs.ts).
// machineGraph.ts reads the edges back for the diagram and the UI.
import { emit, enqueueActions, initialTransition, setup, transition, type SnapshotFrom } from 'xstate';
import type { Command, CommandOf, Verb } from './commands';
import { effectOf, type Decision } from './decide';
import type { Refusal } from './errors';
import type { Fact } from './events';
import { evolveAll } from './evolve';
import { firstRefusal, type DecideOptions, type GuardId, type HostView } from './guards';
import { type DomainState, initialDomainState } from './model';
import { STATES, stateValueOf, type StatePath, type StateRow, type Target } from './states';
import { VERB_TABLE, type VerbRow } from './verbs';

export { JOB_GROUP, LEAF_STATES, leafStateOf, stateValueOf, type LeafState, type Target } from './states';

/** A command sent to the machine: the event type is the command's verb, with what the decision may know. */
export type DomainMachineEvent = {
  [V in Verb]: {
    type: V;
    command: CommandOf<V>;
    /** Other domains on the host (DEF-NAME). */
    host?: HostView;
    /** What-if replay: rules switched off. */
    disabledRules?: ReadonlySet<string>;
  };
}[Verb];

export function commandEvent(command: Command, options: DecideOptions = {}): DomainMachineEvent {
  return { type: command.verb, command, host: options.host, disabledRules: options.disabledRules } as DomainMachineEvent;
}

/** What the machine emits for each command: the facts of an accepted one, or the refusal. */
export type DomainMachineEmitted = { type: 'accepted'; facts: Fact[] } | { type: 'refused'; refusal: Refusal };

export interface DomainMachineInput {
  host: string;
  name: string;
}

type Args = { context: DomainState; event: DomainMachineEvent };

function optionsOf(event: DomainMachineEvent): DecideOptions {
  return { host: event.host, disabledRules: event.disabledRules };
}

function refusalBy(rule: GuardId, { context, event }: Args): Refusal | undefined {
  return firstRefusal(context, event.command, [rule], optionsOf(event));
}

const domainSetup = setup({
  types: {
    context: {} as DomainState,
    events: {} as DomainMachineEvent,
    input: {} as DomainMachineInput,
    emitted: {} as DomainMachineEmitted,
  },
  guards: {
    /** This rule refuses the command (unless what-if replay switched it off). */
    refuses: (args: Args, params: { rule: GuardId }) => refusalBy(params.rule, args) !== undefined,
    /** The accepted command leads to this target (the verb's `leadsTo` in verbs.ts). */
    leadsTo: ({ context, event }: Args, params: { target: Target }) => {
      const leadsTo = (VERB_TABLE[event.type] as VerbRow).leadsTo!;
      return leadsTo(context, event.command, optionsOf(event)) === params.target;
    },
  },
  actions: {
    refuse: emit(({ context, event }: Args, params: { rule: GuardId }) => ({
      type: 'refused' as const,
      refusal: refusalBy(params.rule, { context, event })!,
    })),
    apply: enqueueActions(({ context, event, enqueue }) => {
      const facts = effectOf(context, event.command, optionsOf(event));
      enqueue.emit({ type: 'accepted', facts });
      enqueue.assign(() => evolveAll(context, facts));
    }),
  },
});

/** One transition of the generated config (typed loosely: XState checks the names against `domainSetup`). */
interface Edge {
  guard?: { type: 'refuses'; params: { rule: GuardId } } | { type: 'leadsTo'; params: { target: Target } };
  target?: string;
  actions: 'apply' | { type: 'refuse'; params: { rule: GuardId } };
}

const VERBS = Object.keys(VERB_TABLE) as Verb[];

/** One refusal edge per guard of the verb, in the table's order. */
function refusalEdges(verb: Verb): Edge[] {
  return VERB_TABLE[verb].guards.map((rule) => ({
    guard: { type: 'refuses' as const, params: { rule } },
    actions: { type: 'refuse' as const, params: { rule } },
  }));
}

/** The accepting edges from one state: to its one target, or to each of its targets that `leadsTo` may pick. */
function acceptingEdges(verb: Verb, targets: Target | readonly Target[]): Edge[] {
  const several = typeof targets !== 'string';
  if (several && !VERB_TABLE[verb].leadsTo) throw new Error(`verbs.ts: ${verb} has several targets from a state but no leadsTo`);
  return (several ? targets : [targets]).map((target) => ({
    ...(several ? { guard: { type: 'leadsTo' as const, params: { target } } } : {}),
    ...(target === 'same' ? {} : { target: `#domain.${target}` }),
    actions: 'apply' as const,
  }));
}

/** The edges leaving one state, verb by verb: its refusals, then its accepting edges. */
function edgesFrom(path: StatePath): Record<string, Edge[]> {
  const on: Record<string, Edge[]> = {};
  for (const verb of VERBS) {
    const targets = (VERB_TABLE[verb] as VerbRow).edges[path];
    if (targets !== undefined) on[verb] = [...refusalEdges(verb), ...acceptingEdges(verb, targets)];
  }
  return on;
}

function stateNode(key: string, row: StateRow) {
  const on = edgesFrom(key as StatePath);
  return {
    description: row.description,
    ...(row.group ? { meta: { group: row.group } } : {}),
    ...(row.final ? { type: 'final' as const } : {}),
    ...(Object.keys(on).length > 0 ? { on } : {}),
    ...(row.states
      ? {
          initial: row.states[0],
          states: Object.fromEntries(row.states.map((sub) => [sub, { on: edgesFrom(`${key}.${sub}` as StatePath) }])),
        }
      : {}),
  };
}

export const domainMachine = domainSetup.createMachine({
  id: 'domain',
  context: ({ input }: { input: DomainMachineInput }) => initialDomainState(input.host, input.name),
  initial: 'undefined',
  // A verb no state accepts here still gets its refusal: the first of its rules that refuses.
  on: Object.fromEntries(VERBS.map((verb) => [verb, refusalEdges(verb)])),
  states: Object.fromEntries(Object.entries(STATES).map(([key, row]) => [key, stateNode(key, row)])),
} as unknown as Parameters<typeof domainSetup.createMachine>[0]);

export type DomainMachineSnapshot = SnapshotFrom<typeof domainMachine>;

/** A new domain's machine snapshot (state `undefined`). */
export function initialDomainSnapshot(host: string, name: string): DomainMachineSnapshot {
  return initialTransition(domainMachine, { host, name })[0];
}

/**
 * The machine snapshot for a stored domain state (a checkpoint, or a fold of its stream). `gone` is final: a
 * later define/create under the same name is a new domain, i.e. a new run from `undefined`.
 */
export function domainSnapshot(s: DomainState): DomainMachineSnapshot {
  return domainMachine.resolveState({ value: stateValueOf(s) as never, context: s });
}

/** The snapshot a command meets: a `gone` domain's name starts a new run from `undefined` (a new domain). */
export function runnable(snapshot: DomainMachineSnapshot): DomainMachineSnapshot {
  return snapshot.status === 'done' ? domainMachine.resolveState({ value: 'undefined' as never, context: snapshot.context }) : snapshot;
}

/**
 * Sends one command through the machine (XState's pure `transition()`): the next snapshot and the decision the
 * machine emitted. A command refused on a `gone` domain leaves it gone.
 */
export function machineStep(
  snapshot: DomainMachineSnapshot,
  command: Command,
  options: DecideOptions = {},
): { snapshot: DomainMachineSnapshot; decision: Decision } {
  const from = runnable(snapshot);
  const [next, actions] = transition(domainMachine, from, commandEvent(command, options));
  const emitted = (actions as { type: string; params?: unknown }[]).find((a) => a.type === 'xstate.emit')?.params as
    | { event: DomainMachineEmitted }
    | undefined;
  if (!emitted) {
    const off = options.disabledRules?.size ? ` with ${[...options.disabledRules].join(', ')} switched off` : '';
    throw new Error(`the machine has no edge for ${command.verb} in ${JSON.stringify(from.value)}: every guard passes${off}, but verbs.ts lists no edge there`);
  }
  if (emitted.event.type === 'refused') return { snapshot: from === snapshot ? next : snapshot, decision: { ok: false, refusal: emitted.event.refusal } };
  return { snapshot: next, decision: { ok: true, facts: emitted.event.facts } };
}
