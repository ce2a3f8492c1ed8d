// decide(state, command) → facts | refusal: the fast reading of the verb table (verbs.ts) that the ledger, replay
// and the service call on every command. The verb's guards run in order and the first refusal wins (UND-ATOMIC:
// nothing is decided until every check has passed); then EFFECTS[verb] (effects.ts) gives the facts. The XState
// machine (domainMachine.ts) is built from the same table, so both decide alike by construction.
import type { Command } from './commands';
import { EFFECTS } from './effects';
import type { Refusal } from './errors';
import type { Fact } from './events';
import { firstRefusal, type DecideOptions } from './guards';
import type { DomainState } from './model';
import { VERB_TABLE } from './verbs';

export { firstRefusal, type DecideOptions } from './guards';

export type Decision = { ok: true; facts: Fact[] } | { ok: false; refusal: Refusal };

export function decide(s: DomainState, c: Command, options: DecideOptions = {}): Decision {
  const refused = firstRefusal(s, c, VERB_TABLE[c.verb].guards, options);
  if (refused) return { ok: false, refusal: refused };
  return { ok: true, facts: effectOf(s, c, options) };
}

/** The facts of a command every guard has let through. */
export function effectOf(s: DomainState, c: Command, options: DecideOptions = {}): Fact[] {
  const effect = EFFECTS[c.verb] as (s: DomainState, c: Command, o: DecideOptions) => Fact[];
  return effect(s, c, options);
}
