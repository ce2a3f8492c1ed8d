// What a command's caller is answered (CommandOutcome), built in one place: accepted, refused by a rule, input
// that does not parse (VALIDATION), a coordinator verb from a client (COORDINATOR-ONLY). Pure: no store.
import type { z } from 'zod';

import { commandDomainName, type Command } from '../../machines/commands';
import { ERROR_CODES, refusal as makeRefusal, type Refusal } from '../../machines/errors';
import type { RecordedEvent } from '../eventstore/types';
import type { CommandOutcome } from '../ledger-types';

/** Rule id of a refusal caused by the caller's meta.expectedRevision (or by losing every retry). */
export const CONCURRENCY_RULE = 'CONCURRENCY';
/** Rule id of a command that does not parse. */
export const VALIDATION_RULE = 'VALIDATION';
/** Rule id of a coordinator verb (machines/commands.ts COORDINATOR_VERBS) sent by a client. */
export const COORDINATOR_ONLY_RULE = 'COORDINATOR-ONLY';

export function accepted(c: Command, events: RecordedEvent[], revision: number): CommandOutcome {
  return {
    ok: true,
    command: c.verb,
    host: c.host,
    domain: commandDomainName(c),
    commandId: c.meta.commandId,
    events,
    revision,
  };
}

export function refusedOutcome(c: Command, r: Refusal, revision: number): CommandOutcome {
  return {
    ok: false,
    command: c.verb,
    host: c.host,
    domain: commandDomainName(c),
    commandId: c.meta.commandId,
    events: [],
    revision,
    rule: r.rule,
    code: r.code,
    codeName: r.codeName,
    message: r.message,
  };
}

/** A value for a message: as JSON when it has one (a bigint, say, has none, and JSON.stringify would throw). */
function quoteValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return typeof value === 'bigint' ? `${value}n` : `a ${typeof value} that is not JSON`;
  }
}

/**
 * One zod issue as a message names it: `domain: Required`, `meta.time: Invalid ISO datetime` (a field the input
 * lacks is `Required`, whatever zod calls it); `emptyPath` names the whole input.
 */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown, emptyPath?: string): string {
  const path = issue.path.map(String).join('.') || emptyPath;
  const missing = issue.code === 'invalid_type' && valueAt(input, issue.path) === undefined;
  const text = missing ? 'Required' : issue.message;
  return path ? `${path}: ${text}` : text;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** The outcome of input that does not parse: VIR_ERR_INVALID_ARG, rule VALIDATION, naming each bad field. */
export function validationOutcome(input: unknown, error: z.ZodError): CommandOutcome {
  const raw = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const problems = error.issues.map((issue) => {
    if (issue.path.length === 1 && issue.path[0] === 'verb') {
      return `verb: ${raw.verb === undefined ? 'Required' : `unknown verb ${quoteValue(raw.verb)}`}`;
    }
    return describeIssue(issue, raw, 'command');
  });
  return {
    ...outcomeShell(raw),
    rule: VALIDATION_RULE,
    code: ERROR_CODES.VIR_ERR_INVALID_ARG,
    codeName: 'VIR_ERR_INVALID_ARG',
    message: `invalid command: ${problems.join('; ')}`,
  };
}

/**
 * What an outcome can say of input that was not (or not yet) parsed: verb, host, domain, command id, as far as they
 * are strings. The ledger's refusals of such input start from it, and so do the NATS service's error replies to a
 * request that never reached the ledger (`verb`: the one its subject names).
 */
export function outcomeShell(input: unknown, verb?: string): Omit<CommandOutcome, 'rule' | 'code' | 'codeName' | 'message'> {
  const raw = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const meta = (raw.meta && typeof raw.meta === 'object' ? raw.meta : {}) as Record<string, unknown>;
  const config = (raw.config && typeof raw.config === 'object' ? raw.config : {}) as Record<string, unknown>;
  return {
    ok: false,
    command: verb ?? str(raw.verb),
    host: str(raw.host) || 'local',
    domain: str(raw.domain) || str(config.name),
    commandId: str(meta.commandId),
    events: [],
    revision: -1,
  };
}

/** A coordinator verb from a client: refused as libvirt refuses what a connection may not do (code 29), not recorded. */
export function coordinatorOnlyOutcome(input: { verb: string } & Record<string, unknown>): CommandOutcome {
  const denied = makeRefusal(
    COORDINATOR_ONLY_RULE,
    'VIR_ERR_OPERATION_DENIED',
    `'${input.verb}' is a step of a migration and only the ledger's migration coordinator issues it; send 'migrate'`,
  );
  return { ...outcomeShell(input), ...denied };
}
