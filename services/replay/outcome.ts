// Re-deciding a recorded command and what a decision came to: decide() made safe for damaged records, the
// outcome of a decision as the audit log and the what-if report show it, and the guest-event a hypervisor report
// stands for.
import type { Command } from '../../machines/commands';
import { decide, type Decision } from '../../machines/decide';
import type { HostView } from '../../machines/guards';
import type { DomainState } from '../../machines/model';
import { commandTarget, factOf } from '../../projections/log';
import type { RecordedEvent } from '../eventstore/types';

/**
 * What a decision came to, as the audit log and the what-if report show it. A migration phase that failed by a
 * rule (its MigrationFailed names one: a Prepare check on the destination, a Perform re-check, a Finish refusal)
 * counts as refused by that rule: the fact is recorded, but the migration did not get past that rule.
 */
export type Outcome = { outcome: 'accepted' } | { outcome: 'refused'; rule: string; message: string };

export function outcomeOf(decision: Decision, command?: Command): Outcome {
  if (!decision.ok) return { outcome: 'refused', rule: decision.refusal.rule, message: decision.refusal.message };
  if (command?.verb === 'migrate-phase') {
    const failed = decision.facts.find((f) => f.type === 'MigrationFailed' && f.rule !== undefined);
    if (failed?.type === 'MigrationFailed') return { outcome: 'refused', rule: failed.rule!, message: failed.message };
  }
  return { outcome: 'accepted' };
}

/** How a recorded decision came out, from its first fact: accepted, or a migration phase failed by a rule. */
export function recordedOutcome(event: RecordedEvent, command: Command): Outcome {
  if (command.verb !== 'migrate-phase' || event.type !== 'MigrationFailed') return { outcome: 'accepted' };
  const data = event.data as { rule?: unknown; message?: unknown };
  return typeof data.rule === 'string' ? { outcome: 'refused', rule: data.rule, message: String(data.message ?? '') } : { outcome: 'accepted' };
}

/**
 * A migration phase recorded as failed by a rule that is switched off (`migrate-phase … failed` with that rule):
 * what-if decides the phase as if the check had passed. (Only that rule is known to have failed it: another
 * check of the destination might still have, which the log cannot tell.)
 */
export function withoutDisabledFailure(command: Command, disabled: ReadonlySet<string>): Command {
  if (command.verb !== 'migrate-phase' || command.failed === undefined || command.rule === undefined || !disabled.has(command.rule)) return command;
  const { failed: _failed, rule: _rule, code: _code, ...passed } = command;
  return passed;
}

export function sameOutcome(a: Outcome, b: Outcome): boolean {
  return a.outcome === b.outcome && (a.outcome === 'accepted' || a.rule === (b as { rule: string }).rule);
}

/** decide() on a recorded command, which may be damaged: an exception becomes a refusal under REPLAY-ERROR. */
export function safeDecide(state: DomainState, command: Command, host: HostView, disabledRules?: ReadonlySet<string>): Decision {
  try {
    return decide(state, command, { host, ...(disabledRules ? { disabledRules } : {}) });
  } catch (error) {
    return {
      ok: false,
      refusal: {
        rule: 'REPLAY-ERROR',
        code: 1,
        codeName: 'VIR_ERR_INTERNAL_ERROR',
        message: `the recorded command cannot be decided: ${error instanceof Error ? error.message : String(error)}`,
      },
    };
  }
}

export function safeTarget(command: Command): { host: string; name: string } | undefined {
  try {
    const target = commandTarget(command);
    return typeof target.host === 'string' && typeof target.name === 'string' ? target : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A fact the hypervisor reported without a command is checked as the guest-event it stands for (docs/rules.md §1:
 * accepted in any active state); facts with no guest-event counterpart just evolve.
 */
export function guestEventFor(event: RecordedEvent, state: DomainState): Command | undefined {
  const fact = factOf(event);
  let body: { event: 'poweroff' | 'reboot' | 'crash' | 'blockjob-ready'; disk?: string } | undefined;
  if (fact.type === 'DomainStopped' && fact.reason === 'shutdown') body = { event: 'poweroff' };
  else if (fact.type === 'DomainStopped' && fact.reason === 'crashed') body = { event: 'crash' };
  else if (fact.type === 'DomainRebooted') body = { event: 'reboot' };
  else if (fact.type === 'BlockJobReady') body = { event: 'blockjob-ready', disk: fact.disk };
  if (!body) return undefined;
  const m = event.metadata;
  return {
    verb: 'guest-event',
    host: state.host,
    domain: state.name,
    meta: { commandId: String(m.commandId ?? ''), actor: String(m.actor ?? 'hypervisor'), time: String(m.time ?? '') },
    ...body,
  } as Command;
}
