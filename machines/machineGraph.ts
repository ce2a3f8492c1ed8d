// The domain machine read back as data, for the diagram (services/diagram.ts), its views and the UI's edge
// highlighting: its states, and its accepting edges, each with the rules of the refusal edges before it (the
// verb's guards, in the order they are checked). Read from the machine object itself, so the picture a
// reviewer approves is the object that was built from verbs.ts.
import type { AnyStateNode } from 'xstate';
import type { Verb } from './commands';
import { domainMachine, type DomainMachineEvent, type DomainMachineSnapshot } from './domainMachine';
import type { Target } from './states';

export interface MachineEdge {
  /** Stable within one machine: source state, event, position among the source's accepting edges for the event. */
  id: string;
  /** Dotted path of the state the edge leaves (a compound state's edges apply to all its sub-states). */
  from: string;
  /** Dotted path of the target; equal to `from` for a targetless edge. */
  to: string;
  event: Verb;
  /** Rule ids guarding the edge, in the order they are checked. */
  rules: string[];
  /** Where the verb has several edges from `from`: the target `leadsTo` must name for this one (`same`: stays). */
  outcome?: Target;
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

/** A transition as the machine definition holds it. */
interface TransitionNode {
  guard?: unknown;
  target?: readonly AnyStateNode[];
  source: AnyStateNode;
}

type NamedGuard = { type: string; params?: { rule?: string; target?: Target } };

function namedGuard(t: TransitionNode): NamedGuard | undefined {
  const g = t.guard;
  if (g === undefined) return undefined;
  if (typeof g === 'object' && g !== null && typeof (g as NamedGuard).type === 'string') return g as NamedGuard;
  throw new Error(`${pathOf(t.source)}: an inline guard has no name; use a named guard`);
}

/** A refusal edge: `refuses` one rule. The others accept the command. */
function refusedRule(t: TransitionNode): string | undefined {
  const g = namedGuard(t);
  return g?.type === 'refuses' ? g.params?.rule : undefined;
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

/** The states of the machine, parents before children, in document order. */
export function machineStates(machine: typeof domainMachine = domainMachine): MachineStateInfo[] {
  const out: MachineStateInfo[] = [];
  walk(machine.root, (n) => {
    if (n.type !== 'atomic' && n.type !== 'compound' && n.type !== 'final') throw new Error(`unexpected ${n.type} state ${pathOf(n)}`);
    const group = (n.meta as { group?: unknown } | undefined)?.group;
    out.push({
      path: pathOf(n),
      key: n.key,
      parent: n.parent && n.parent !== machine.root ? pathOf(n.parent) : null,
      type: n.type,
      description: n.description,
      ...(typeof group === 'string' ? { group } : {}),
      children: (Object.values(n.states) as AnyStateNode[]).map(pathOf),
    });
  });
  return out;
}

/** Every accepting edge of the machine, read from its definition: source, target, event, rules and outcome. */
export function machineEdges(machine: typeof domainMachine = domainMachine): MachineEdge[] {
  const edges: MachineEdge[] = [];
  walk(machine.root, (node) => {
    for (const [event, transitions] of Object.entries(node.on) as [string, readonly TransitionNode[]][]) {
      const from = pathOf(node);
      const rules = transitions.map(refusedRule).filter((r): r is string => r !== undefined);
      transitions
        .filter((t) => refusedRule(t) === undefined)
        .forEach((t, i) => {
          const g = namedGuard(t);
          if (g !== undefined && g.type !== 'leadsTo') throw new Error(`edge ${from} on ${event}: unexpected guard ${g.type}`);
          const targets = t.target ?? [];
          if (targets.length > 1) throw new Error(`edge ${from} on ${event}: several targets`);
          edges.push({
            id: `${from}:${event}:${i}`,
            from,
            to: targets[0] ? pathOf(targets[0]) : from,
            event: event as Verb,
            rules,
            ...(g?.params?.target ? { outcome: g.params.target } : {}),
            targetless: targets.length === 0,
          });
        });
    }
  });
  return edges;
}

/** The accepting edge a snapshot takes on an event (undefined when the command is refused). */
export function edgeTaken(snapshot: DomainMachineSnapshot, event: DomainMachineEvent): string | undefined {
  const [t] = domainMachine.getTransitionData(snapshot, event) as unknown as TransitionNode[];
  if (!t || refusedRule(t) !== undefined) return undefined;
  const accepting = ((t.source.on[event.type] ?? []) as readonly TransitionNode[]).filter((x) => refusedRule(x) === undefined);
  return `${pathOf(t.source)}:${event.type}:${accepting.indexOf(t)}`;
}
