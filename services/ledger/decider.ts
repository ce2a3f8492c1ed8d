// The one place the ledger asks the domain machine anything: whether a command is accepted on a state (and with
// which facts), and the state after a fact. Everything else in the ledger goes through these two.
import type { Command } from '../../machines/commands';
import { decide, type Decision } from '../../machines/decide';
import type { Fact } from '../../machines/events';
import { evolve } from '../../machines/evolve';
import type { HostView } from '../../machines/guards';
import type { DomainState } from '../../machines/model';

export function decideOn(state: DomainState, command: Command, hostView: HostView): Decision {
  return decide(state, command, { host: hostView });
}

export function applyFact(state: DomainState, fact: Fact): DomainState {
  return evolve(state, fact);
}

export function applyFacts(state: DomainState, facts: readonly Fact[]): DomainState {
  let next = state;
  for (const fact of facts) next = applyFact(next, fact);
  return next;
}
