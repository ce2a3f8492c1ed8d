// The states of the domain machine (docs/rules.md §1) and how a domain state maps onto them. The edges between
// them are in verbs.ts; domainMachine.ts builds the XState machine from both.
import type { StateValue } from 'xstate';
import { runState, topState, type DomainState } from './model';

/** The diagram draws the states of one `group` inside one box: here, the states a job holds. */
export const JOB_GROUP = 'job states: a job holds the domain';

export interface StateRow {
  description: string;
  /** Sub-states (`running` and `paused`): the domain is active, and paused or not. The first is the initial one. */
  states?: readonly string[];
  group?: string;
  final?: boolean;
}

export const STATES = {
  undefined: { description: 'no such domain yet (the name is free)' },
  inactive: { description: 'persistent, shut off' },
  running: { description: 'persistent, active', states: ['running', 'paused'] },
  transient: { description: 'active, not persistent', states: ['running', 'paused'] },
  migrating: { description: 'an outgoing migration job holds the domain', group: JOB_GROUP },
  mirroring: { description: 'a mirrored snapshot or a block copy is active on at least one disk', group: JOB_GROUP },
  // `gone` is final: a later define/create under the same name is a new domain, a new run from `undefined`.
  gone: { description: 'undefined, or a transient domain that quit (its name is free again)', final: true },
} as const satisfies Record<string, StateRow>;

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

/** A state edges leave from: a leaf, or a compound state (its edges apply to all its sub-states). */
export type StatePath = LeafState | 'running' | 'transient';

/** Where an accepted command leads: a leaf state, or `same` (no target: the state stays, the context may change). */
export type Target = LeafState | 'same';

/** The active leaf for a domain that is (or will be) persistent or not, paused or not. */
export function activeLeaf(persistent: boolean, paused: boolean): LeafState {
  return `${persistent ? 'running' : 'transient'}.${paused ? 'paused' : 'running'}`;
}

/**
 * The leaf state a domain state is in, for reviving a machine snapshot from a stored state (a checkpoint, or a
 * fold of the stream): `topState`, and `runState` inside `running` and `transient`. A test proves that the state
 * the machine reaches by its own edges is always this one.
 */
export function leafStateOf(s: DomainState): LeafState {
  const top = topState(s);
  if (top === 'running' || top === 'transient') return `${top}.${runState(s) ?? 'running'}`;
  return top;
}

/** The XState state value for a leaf (`{ running: 'paused' }` for running.paused). */
export function stateValueOfLeaf(leaf: LeafState): StateValue {
  const [top, sub] = leaf.split('.') as [string, string | undefined];
  return sub === undefined ? top : { [top]: sub };
}

export function stateValueOf(s: DomainState): StateValue {
  return stateValueOfLeaf(leafStateOf(s));
}
