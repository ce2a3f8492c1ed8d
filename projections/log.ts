// How the ledger's storage conventions look from the reading side: which stream holds what, how a stored
// event turns back into a machine Fact, and where a decision's command and a refusal live. Every projection,
// the replay check and the audit CLI read the log through these helpers only, so a change of encoding in
// services/ledger/ (layout.ts, encoding.ts) is mirrored here and nowhere else.
import type { Command } from '../machines/commands';
import { commandDomainName } from '../machines/commands';
import type { Fact } from '../machines/events';
import type { ErrorCodeName } from '../machines/errors';
import { DOMAIN_STREAM_PREFIX, domainStream, parseDomainStream } from '../machines/names';
import type { RecordedEvent } from '../services/eventstore/types';

export { DOMAIN_STREAM_PREFIX } from '../machines/names';
export const REFUSAL_STREAM_PREFIX = 'refusals-';
/** `noops-<host>`: one `CommandAccepted` per accepted command that changed nothing (the domain stream did not move). */
export const NOOP_STREAM_PREFIX = 'noops-';
/** The one fact type of a `refusals-<host>` stream. */
export const COMMAND_REFUSED = 'CommandRefused';
/** The one record type of a `noops-<host>` stream. */
export const COMMAND_ACCEPTED = 'CommandAccepted';

export function refusalStream(host: string): string {
  return `${REFUSAL_STREAM_PREFIX}${host}`;
}

export function isDomainStream(stream: string): boolean {
  return stream.startsWith(DOMAIN_STREAM_PREFIX);
}

export function isRefusalStream(stream: string): boolean {
  return stream.startsWith(REFUSAL_STREAM_PREFIX);
}

export function noopStream(host: string): string {
  return `${NOOP_STREAM_PREFIX}${host}`;
}

export function isNoopStream(stream: string): boolean {
  return stream.startsWith(NOOP_STREAM_PREFIX);
}

/**
 * The machine Fact a stored domain event carries: `{type, ...data}`. The ledger stores the fact without its
 * `type` in `data`; a `type` left inside data is ignored in favour of the event's own, so either encoding reads.
 */
export function factOf(event: RecordedEvent): Fact {
  return { ...(event.data as object), type: event.type } as Fact;
}

/** The whole parsed command, carried by the first fact of each decision (and by every refusal and no-op record). */
export function commandOf(event: RecordedEvent): Command | undefined {
  if (event.type === COMMAND_REFUSED) return refusalOf(event)?.command;
  if (event.type === COMMAND_ACCEPTED) return acceptedNoopOf(event)?.command;
  const command = event.metadata.command;
  return command && typeof command === 'object' ? (command as Command) : undefined;
}

/** Payload of a `CommandRefused` fact in `refusals-<host>`. */
export interface RecordedRefusal {
  command: Command;
  rule: string;
  code: number;
  codeName: ErrorCodeName | string;
  message: string;
}

export function refusalOf(event: RecordedEvent): RecordedRefusal | undefined {
  if (event.type !== COMMAND_REFUSED) return undefined;
  const data = event.data as Partial<RecordedRefusal> | null;
  if (!data || typeof data !== 'object' || !data.command || typeof data.command !== 'object') return undefined;
  return data as RecordedRefusal;
}

/** Payload of a `CommandAccepted` record in `noops-<host>`: the command, and the domain revision (and its hash) it was decided on. */
export interface RecordedNoop {
  command: Command;
  /** -1: the domain stream did not exist. */
  domainRevision: number;
  /** metadata.hash of the domain's fact at `domainRevision` (absent for -1). */
  domainHash?: string;
}

export function acceptedNoopOf(event: RecordedEvent): RecordedNoop | undefined {
  if (event.type !== COMMAND_ACCEPTED) return undefined;
  const data = event.data as Partial<RecordedNoop> | null;
  if (!data || typeof data !== 'object' || !data.command || typeof data.command !== 'object' || typeof data.domainRevision !== 'number') return undefined;
  return data as RecordedNoop;
}

/** Host and domain name a command acts on. */
export function commandTarget(command: Command): { host: string; name: string } {
  return { host: command.host, name: commandDomainName(command) };
}

/**
 * Host and name of a domain stream, from what the stream says about itself: the host/domain metadata the ledger
 * stamps on every fact, else the command of a decision, else the config every new life starts with (DomainDefined,
 * DomainCreated, DomainMigratedIn), checked against the stream's name (machines/names.ts). Returns undefined when
 * this event does not tell.
 */
export function streamIdentityFrom(event: RecordedEvent): { host: string; name: string } | undefined {
  // The ledger stamps every fact with the host and domain it belongs to.
  const { host, domain } = event.metadata;
  if (typeof host === 'string' && typeof domain === 'string' && event.stream === domainStream(host, domain)) {
    return { host, name: domain };
  }
  const command = commandOf(event);
  if (command && typeof command.host === 'string') {
    const name = safeDomainName(command);
    if (name !== undefined) return { host: command.host, name };
  }
  const config = (event.data as { config?: { name?: unknown } } | null)?.config;
  if (config && typeof config.name === 'string') {
    const parsed = parseDomainStream(event.stream);
    if (parsed && parsed.name === config.name) return parsed;
  }
  return undefined;
}

function safeDomainName(command: Command): string | undefined {
  try {
    const name = commandDomainName(command);
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined; // a damaged command: the replay check reports it, identity comes from elsewhere
  }
}

/** When nothing in the stream named its host: read it from the stream's name (the host part has no '-'). */
export function streamIdentityGuess(stream: string): { host: string; name: string } {
  return parseDomainStream(stream) ?? { host: '', name: stream.slice(DOMAIN_STREAM_PREFIX.length) };
}

/** Parses `--since`/`--at` values: a global position (digits) or an ISO-8601 time. */
export type LogPoint = { position: number } | { time: string };

export function parseLogPoint(text: string): LogPoint {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const position = Number(trimmed);
    if (!Number.isSafeInteger(position)) throw new Error(`position '${text}' is too large`);
    return { position };
  }
  const ms = Date.parse(trimmed);
  if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}/.test(trimmed)) {
    throw new Error(`'${text}' is neither a global position (a whole number) nor an ISO-8601 time (e.g. 2024-05-01T12:00:00Z)`);
  }
  return { time: new Date(ms).toISOString() };
}

/** Milliseconds of an ISO time, or NaN. Times are compared as instants, never as strings (offsets differ). */
export function timeMs(time: unknown): number {
  return typeof time === 'string' ? Date.parse(time) : Number.NaN;
}

// Exactly-once effects (services/intents.ts): before a command with an effect on the hypervisor is performed, an
// `EffectIntended` record is appended to the domain stream at the revision it was decided on; its result follows
// (the decision's facts, as always), or an `EffectSettled` record where there are none to close it. Neither record
// is a machine fact: both leave the domain's state as it was, and neither carries `metadata.command` (the intent
// keeps its command in `data`, so the decision stays where it always was, on the result's first fact).

/** The record of a command's effect about to be performed (an open job until its result follows). */
export const EFFECT_INTENDED = 'EffectIntended';
/** Closes an intent that no fact closes: nothing performed, the hypervisor refused, or settled on recovery. */
export const EFFECT_SETTLED = 'EffectSettled';

export function isEffectRecord(type: string): boolean {
  return type === EFFECT_INTENDED || type === EFFECT_SETTLED;
}
