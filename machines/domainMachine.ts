// The domain machine of docs/rules.md §1 as an XState v5 statechart: one actor per domain.
//
// It holds no rule of its own. Every edge is guarded by the verb's guards from `verbs.ts`, in their order,
// each referenced by its docs/rules.md id and implemented by calling GUARDS[id] (guards.ts). The one action,
// `applyDecision`, folds the facts that `decide` produces through `evolve`. The state the machine is in is
// therefore always `topState`/`runState` of its context (model.ts); test/machine/xstate-consistency.test.ts
// checks this against the pure decide/evolve fold over random command sequences.
//
// Where one verb leads to different states depending on the context (destroy: running → inactive but
// transient → gone), the alternatives are separate edges, each with an *outcome guard* (`willBeGone`, …)
// after the rule guards. Outcome guards are not rules: they run decide + evolve and compare the resulting
// state, so they only choose which of the verb's edges is drawn; whether the command is accepted is decided
// by the rule guards alone. Targetless edges (snapshot-create while running) are edges too.
//
// The edges are written out one by one so that a reviewer sees each of them; `machineEdges()` reads them
// back from the machine definition for the diagram (services/diagram.ts).
import { and, assign, setup, type AnyStateNode, type SnapshotFrom, type StateValue } from 'xstate';
import type { Command, CommandOf, Verb } from './commands';
import { decide } from './decide';
import { evolveAll } from './evolve';
import { emptyHostView, GUARDS, type GuardId, type HostView } from './guards';
import { initialDomainState, runState, topState, type DomainState } from './model';
import { GUARDS_BY_VERB } from './verbs';

/** A command sent to the machine: the event type is the command's verb. */
export type DomainMachineEvent = {
  [V in Verb]: {
    type: V;
    command: CommandOf<V>;
    /** What the decision may know about other domains on the host (DEF-NAME). */
    host?: HostView;
  };
}[Verb];

export function commandEvent(command: Command, host?: HostView): DomainMachineEvent {
  return { type: command.verb, command, host } as DomainMachineEvent;
}

export interface DomainMachineInput {
  host: string;
  name: string;
}

/** The machine's leaf states, as dotted paths. */
export const LEAF_STATES = [
  'undefined',
  'inactive',
  'running.running',
  'running.paused',
  'transient.running',
  'transient.paused',
  'migrating',
  'mirroring',
  'gone',
] as const;
export type LeafState = (typeof LEAF_STATES)[number];

/** The leaf state a domain state is in: `topState`, and `runState` inside `running` and `transient`. */
export function leafStateOf(s: DomainState): LeafState {
  const top = topState(s);
  if (top === 'running' || top === 'transient') return `${top}.${runState(s) ?? 'running'}`;
  return top;
}

/** The XState state value for a domain state (`{ running: 'paused' }` for running + paused). */
export function stateValueOf(s: DomainState): StateValue {
  const [top, sub] = leafStateOf(s).split('.') as [string, string | undefined];
  return sub === undefined ? top : { [top]: sub };
}

/**
 * Outcome guards: which state an accepted command leads to. `willStay` means the state does not change
 * (the edge is targetless); the others name the leaf state reached.
 */
export const OUTCOME_GUARDS = {
  willStay: 'same',
  willBeInactive: 'inactive',
  willBeRunning: 'running.running',
  willBePaused: 'running.paused',
  willBeTransientRunning: 'transient.running',
  willBeTransientPaused: 'transient.paused',
  willBeMigrating: 'migrating',
  willBeMirroring: 'mirroring',
  willBeGone: 'gone',
} as const satisfies Record<string, LeafState | 'same'>;
export type OutcomeGuardId = keyof typeof OUTCOME_GUARDS;

type GuardArgs = { context: DomainState; event: DomainMachineEvent };

/** The state after the command, or undefined if `decide` refuses it. */
function decidedState({ context, event }: GuardArgs): DomainState | undefined {
  const decision = decide(context, event.command, { host: event.host ?? emptyHostView });
  return decision.ok ? evolveAll(context, decision.facts) : undefined;
}

function ruleGuard(id: GuardId) {
  return ({ context, event }: GuardArgs): boolean => GUARDS[id](context, event.command, event.host ?? emptyHostView) === undefined;
}

function outcomeGuard(outcome: LeafState | 'same') {
  return (args: GuardArgs): boolean => {
    const next = decidedState(args);
    if (next === undefined) return false;
    return leafStateOf(next) === (outcome === 'same' ? leafStateOf(args.context) : outcome);
  };
}

const ruleGuards = Object.fromEntries(
  (Object.keys(GUARDS) as GuardId[]).map((id) => [id, ruleGuard(id)]),
) as Record<GuardId, ReturnType<typeof ruleGuard>>;

const outcomeGuards = Object.fromEntries(
  (Object.entries(OUTCOME_GUARDS) as [OutcomeGuardId, LeafState | 'same'][]).map(([id, leaf]) => [id, outcomeGuard(leaf)]),
) as Record<OutcomeGuardId, ReturnType<typeof outcomeGuard>>;

const domainSetup = setup({
  types: {
    context: {} as DomainState,
    events: {} as DomainMachineEvent,
    input: {} as DomainMachineInput,
  },
  guards: { ...ruleGuards, ...outcomeGuards },
  actions: {
    /** Apply the decided facts. The guards have accepted the command, so `decide` must too. */
    applyDecision: assign(({ context, event }) => {
      const next = decidedState({ context, event });
      if (next === undefined) throw new Error(`${event.type}: the machine accepted what decide refuses (verbs.ts and the machine disagree)`);
      return next;
    }),
  },
});

/**
 * An accepted command: the verb's rule guards in docs/rules.md order (verbs.ts), then, where the verb has
 * several edges from this state, the outcome guard that picks this one. No target: the state stays.
 */
function accept(verb: Verb, target?: LeafState, outcome?: OutcomeGuardId) {
  const guards: string[] = [...GUARDS_BY_VERB[verb], ...(outcome ? [outcome] : [])];
  const guard = and(guards as (GuardId | OutcomeGuardId)[]);
  // `and(...)` is a function, which JSON.stringify drops: give it a JSON form so that
  // `domainMachine.toJSON()` keeps the guard names.
  Object.defineProperty(guard, 'toJSON', { value: () => ({ type: 'xstate.and', guards }), enumerable: false });
  return { guard, actions: 'applyDecision' as const, ...(target ? { target: `#domain.${target}` } : {}) };
}

/** Each of `outcomes` becomes one edge of `verb`, to the state the outcome names. */
function oneOf(verb: Verb, ...outcomes: OutcomeGuardId[]) {
  return outcomes.map((o) => {
    const leaf = OUTCOME_GUARDS[o];
    return accept(verb, leaf === 'same' ? undefined : leaf, o);
  });
}

// The target states an accepted command can reach from an active domain that may be persistent or not.
const ACTIVE_OUTCOMES = ['willBeRunning', 'willBePaused', 'willBeTransientRunning', 'willBeTransientPaused'] as const;
// An inactive domain is persistent (MIG-PERSIST keeps a non-persistent one from arriving shut off).
const PERSISTENT_ACTIVE_OUTCOMES = ['willBeRunning', 'willBePaused'] as const;

/** The diagram draws the states of one `meta.group` inside one box: here, the states a job holds. */
export const JOB_GROUP = 'job states: a job holds the domain';

export const domainMachine = domainSetup.createMachine({
  id: 'domain',
  context: ({ input }) => initialDomainState(input.host, input.name),
  initial: 'undefined',
  states: {
    undefined: {
      description: 'no such domain yet (the name is free)',
      on: {
        define: accept('define', 'inactive'),
        create: oneOf('create', 'willBeTransientRunning', 'willBeTransientPaused'),
        'migrate-incoming': oneOf('migrate-incoming', 'willBeInactive', ...ACTIVE_OUTCOMES),
      },
    },

    inactive: {
      description: 'persistent, shut off',
      on: {
        define: accept('define'),
        // CRE-ACTIVE: an inactive persistent domain is started with the given XML and stays persistent.
        create: oneOf('create', ...PERSISTENT_ACTIVE_OUTCOMES),
        start: oneOf('start', ...PERSISTENT_ACTIVE_OUTCOMES),
        'managedsave-remove': accept('managedsave-remove'),
        undefine: accept('undefine', 'gone'),
        'snapshot-create': accept('snapshot-create'),
        'snapshot-delete': accept('snapshot-delete'),
        'snapshot-revert': oneOf('snapshot-revert', 'willStay', ...PERSISTENT_ACTIVE_OUTCOMES),
        migrate: accept('migrate', 'migrating'),
        'migrate-incoming': oneOf('migrate-incoming', 'willStay', ...PERSISTENT_ACTIVE_OUTCOMES),
      },
    },

    running: {
      description: 'persistent, active',
      initial: 'running',
      // Edges of both sub-states.
      on: {
        define: accept('define'),
        'managedsave-remove': accept('managedsave-remove'),
        destroy: accept('destroy', 'inactive'),
        managedsave: accept('managedsave', 'inactive'),
        save: accept('save', 'inactive'),
        // SC-HALT leaves the domain inactive; a mirrored snapshot (MIR-CREATE) enters mirroring.
        'snapshot-create': oneOf('snapshot-create', 'willStay', 'willBeInactive', 'willBeMirroring'),
        'snapshot-delete': accept('snapshot-delete'),
        'snapshot-revert': oneOf('snapshot-revert', 'willBeInactive', 'willBeRunning', 'willBePaused'),
        blockcopy: accept('blockcopy', 'mirroring'),
        migrate: accept('migrate', 'migrating'),
        // A pull completes within the command: the state stays.
        blockpull: accept('blockpull'),
      },
      states: {
        running: {
          on: {
            shutdown: accept('shutdown', 'inactive'),
            suspend: accept('suspend', 'running.paused'),
            reboot: accept('reboot'),
            // UND-ACTIVE: an active persistent domain becomes transient and keeps running.
            undefine: accept('undefine', 'transient.running'),
            'guest-event': oneOf('guest-event', 'willBeInactive', 'willStay'),
          },
        },
        paused: {
          on: {
            // ACT-REQ: suspend of a paused domain is a successful no-op.
            suspend: accept('suspend'),
            resume: accept('resume', 'running.running'),
            reboot: accept('reboot', 'running.running'),
            undefine: accept('undefine', 'transient.paused'),
            'guest-event': oneOf('guest-event', 'willBeInactive', 'willBeRunning', 'willStay'),
          },
        },
      },
    },

    transient: {
      description: 'active, not persistent',
      initial: 'running',
      on: {
        'managedsave-remove': accept('managedsave-remove'),
        // TRANSIENT-QUIT: a transient domain that stops is gone.
        destroy: accept('destroy', 'gone'),
        save: accept('save', 'gone'),
        'snapshot-create': oneOf('snapshot-create', 'willStay', 'willBeMirroring'),
        'snapshot-delete': accept('snapshot-delete'),
        'snapshot-revert': oneOf('snapshot-revert', 'willBeTransientRunning', 'willBeTransientPaused'),
        blockcopy: accept('blockcopy', 'mirroring'),
        migrate: accept('migrate', 'migrating'),
        // A pull completes within the command: the state stays.
        blockpull: accept('blockpull'),
      },
      states: {
        running: {
          on: {
            // DEF-UPDATE: a running transient domain becomes persistent.
            define: accept('define', 'running.running'),
            shutdown: accept('shutdown', 'gone'),
            suspend: accept('suspend', 'transient.paused'),
            reboot: accept('reboot'),
            'guest-event': oneOf('guest-event', 'willBeGone', 'willStay'),
          },
        },
        paused: {
          on: {
            define: accept('define', 'running.paused'),
            suspend: accept('suspend'),
            resume: accept('resume', 'transient.running'),
            reboot: accept('reboot', 'transient.running'),
            'guest-event': oneOf('guest-event', 'willBeGone', 'willBeTransientRunning', 'willStay'),
          },
        },
      },
    },

    migrating: {
      description: 'an outgoing migration job holds the domain',
      meta: { group: JOB_GROUP },
      on: {
        // JOB-BUSY: the migration holds the domain; only destroy and its own phases pass.
        // A live migration fails when the guest stops (MIG-PHASES); an offline one goes on.
        destroy: oneOf('destroy', 'willStay', 'willBeInactive', 'willBeGone'),
        'guest-event': oneOf('guest-event', 'willStay', 'willBeInactive', 'willBeGone'),
        // MIG-PHASES: the next phase, a failure (back to where it was), or Confirm (MIG-PERSIST).
        'migrate-phase': oneOf('migrate-phase', 'willStay', 'willBeInactive', 'willBeGone', ...ACTIVE_OUTCOMES),
      },
    },

    mirroring: {
      description: 'a mirrored snapshot or a block copy is active on at least one disk',
      meta: { group: JOB_GROUP },
      on: {
        define: accept('define'),
        suspend: accept('suspend'),
        resume: accept('resume'),
        reboot: accept('reboot'),
        'managedsave-remove': accept('managedsave-remove'),
        // MIR-END: the end of the domain's process ends the job (the copy is lost): a persistent domain is then
        // inactive on its original disks, a transient one is gone.
        destroy: oneOf('destroy', 'willBeInactive', 'willBeGone'),
        shutdown: oneOf('shutdown', 'willBeInactive', 'willBeGone'),
        // UND-ACTIVE: a persistent mirroring domain becomes transient and goes on mirroring.
        undefine: accept('undefine'),
        'snapshot-create': accept('snapshot-create'),
        blockcopy: accept('blockcopy'),
        blockpull: accept('blockpull'),
        // MIR-END: the ways out.
        'snapshot-delete': oneOf('snapshot-delete', 'willStay', ...ACTIVE_OUTCOMES),
        blockjob: oneOf('blockjob', 'willStay', ...ACTIVE_OUTCOMES),
        'guest-event': oneOf('guest-event', 'willStay', 'willBeInactive', 'willBeGone'),
      },
    },

    gone: {
      description: 'undefined, or a transient domain that quit (its name is free again)',
      type: 'final',
    },
  },
});

export type DomainMachineSnapshot = SnapshotFrom<typeof domainMachine>;

/**
 * The machine snapshot for a domain state (a checkpoint, or a fold of its stream). `gone` is final: a
 * later define/create under the same name is a new domain, i.e. a new actor from `undefined`.
 */
export function domainSnapshot(s: DomainState): DomainMachineSnapshot {
  return domainMachine.resolveState({ value: stateValueOf(s) as never, context: s });
}

// ---------------------------------------------------------------------------------------------------
// The machine as data, for the diagram.

export interface MachineEdge {
  /** Stable within one machine: source state, event, position among the source's edges for the event. */
  id: string;
  /** Dotted path of the state the edge leaves (a compound state's edges apply to all its sub-states). */
  from: string;
  /** Dotted path of the target; equal to `from` for a targetless edge. */
  to: string;
  event: Verb;
  /** Rule ids guarding the edge, in the order they are checked. */
  rules: string[];
  /** The outcome guard choosing this edge among the verb's alternatives from `from`. */
  outcome?: OutcomeGuardId;
  /** No target: the state does not change (the context may). */
  targetless: boolean;
}

export interface MachineStateInfo {
  path: string;
  key: string;
  parent: string | null;
  type: 'atomic' | 'compound' | 'final';
  description?: string;
  /** `meta.group`: states drawn together in one box (they share a role, not a parent state). */
  group?: string;
  children: string[];
}

function pathOf(node: AnyStateNode): string {
  return node.path.join('.');
}

function walk(node: AnyStateNode, visit: (n: AnyStateNode) => void): void {
  for (const child of Object.values(node.states) as AnyStateNode[]) {
    visit(child);
    walk(child, visit);
  }
}

const RULE_GUARD_IDS = new Set<string>(Object.keys(GUARDS));

/** The states of the machine, parents before children, in document order. */
export function machineStates(machine: typeof domainMachine = domainMachine): MachineStateInfo[] {
  const out: MachineStateInfo[] = [];
  walk(machine.root, (n) => {
    const type = n.type === 'final' ? 'final' : n.type === 'compound' ? 'compound' : 'atomic';
    if (n.type !== 'atomic' && n.type !== 'compound' && n.type !== 'final') throw new Error(`unexpected ${n.type} state ${pathOf(n)}`);
    out.push({
      path: pathOf(n),
      key: n.key,
      parent: n.parent && n.parent !== machine.root ? pathOf(n.parent) : null,
      type,
      description: n.description,
      ...(typeof (n.meta as { group?: unknown } | undefined)?.group === 'string' ? { group: (n.meta as { group: string }).group } : {}),
      children: (Object.values(n.states) as AnyStateNode[]).map(pathOf),
    });
  });
  return out;
}

/** Every edge of the machine, read from its definition: source, target, event and guard names. */
export function machineEdges(machine: typeof domainMachine = domainMachine): MachineEdge[] {
  const edges: MachineEdge[] = [];
  walk(machine.root, (node) => {
    for (const [event, transitions] of Object.entries(node.on) as [string, readonly { guard?: unknown; target?: readonly AnyStateNode[] }[]][]) {
      transitions.forEach((t, i) => {
        const from = pathOf(node);
        const names = guardNames(t.guard, `${from} on ${event}`);
        const outcomes = names.filter((n): n is OutcomeGuardId => n in OUTCOME_GUARDS);
        const rules = names.filter((n) => RULE_GUARD_IDS.has(n));
        const unknown = names.filter((n) => !(n in OUTCOME_GUARDS) && !RULE_GUARD_IDS.has(n));
        if (unknown.length > 0 || outcomes.length > 1) throw new Error(`edge ${from} on ${event}: unexpected guards ${names.join(', ')}`);
        const targets = t.target ?? [];
        if (targets.length > 1) throw new Error(`edge ${from} on ${event}: several targets`);
        const to = targets[0] ? pathOf(targets[0]) : from;
        edges.push({
          id: `${from}:${event}:${i}`,
          from,
          to,
          event: event as Verb,
          rules,
          ...(outcomes[0] ? { outcome: outcomes[0] } : {}),
          targetless: targets.length === 0,
        });
      });
    }
  });
  return edges;
}

/** The names of a transition's guard: a named guard, or the names inside `and([...])`. */
function guardNames(guard: unknown, where: string): string[] {
  if (guard === undefined) return [];
  if (typeof guard === 'string') return [guard];
  if (typeof guard === 'object' && guard !== null && 'type' in guard && typeof guard.type === 'string') return [guard.type];
  if (typeof guard === 'function' && Array.isArray((guard as { guards?: unknown }).guards)) {
    return ((guard as unknown as { guards: unknown[] }).guards).flatMap((g) => guardNames(g, where));
  }
  throw new Error(`${where}: an inline guard has no name; use a named guard`);
}

/** The edge a snapshot takes on an event (undefined when the command is refused), for coverage tests. */
export function edgeTaken(snapshot: DomainMachineSnapshot, event: DomainMachineEvent): string | undefined {
  const [t] = domainMachine.getTransitionData(snapshot, event);
  if (!t) return undefined;
  const transitions: readonly unknown[] = t.source.on[event.type] ?? [];
  return `${pathOf(t.source)}:${event.type}:${transitions.indexOf(t)}`;
}
