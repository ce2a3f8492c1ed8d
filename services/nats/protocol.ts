// The wire protocol of the command service on NATS: subjects, how names become subject tokens, and the JSON
// shapes of requests and replies. Shared by the service (service.ts), the typed client (../client.ts) and the
// remote ledger (remoteLedger.ts), so the three cannot drift apart.
//
// Subjects (all under `vmledger.`):
//   vmledger.cmd.<verb>               request/reply: one command (JSON body: the command's fields; `verb` comes
//                                     from the subject and may be omitted or repeated; `meta` may be omitted)
//   vmledger.query.domains            request/reply: {host?} → {ok, domains}
//   vmledger.query.domain             request/reply: {host?, domain} → {ok, state, revision}
//   vmledger.query.snapshots          request/reply: {host?, domain, cursor?, limit?} → {ok, snapshots, next, host,
//                                     domain, current, revision, roots?} (a page in name order; `roots`, the tree,
//                                     when every snapshot fits the reply)
//   vmledger.query.audit              request/reply: {domain?, host?, since?, outcome?, correlationId?, count?,
//                                     cursor?, limit?} → {ok, entries, next} (the audit log in log order, a page)
//   vmledger.query.command            request/reply: {commandId} → {ok, outcome} (the first outcome, or null if unknown)
//   vmledger.schema                   request/reply: {verb?} → {ok, schemas} (JSON Schema of the request bodies)
//   vmledger.evt.<host>.<domain>      published: each fact, once it is durable (body: the RecordedEvent)
//
// Command and event subjects are disjoint (`cmd`/`query`/`schema` vs `evt`): a JetStream stream that captures the
// facts can never swallow a request (it would answer the request with a PubAck).
import type { Verb } from '../../machines/commands';
import type { DomainState } from '../../machines/model';
import { buildSnapshotTree, type SnapshotNode } from '../../projections/snapshotTree';
import type { RecordedEvent } from '../eventstore/types';
import type { CommandOutcome } from '../ledger-types';

export const SUBJECT_ROOT = 'vmledger';
export const COMMAND_SUBJECT_PREFIX = `${SUBJECT_ROOT}.cmd`;
export const EVENT_SUBJECT_PREFIX = `${SUBJECT_ROOT}.evt`;
export const QUERY_SUBJECTS = {
  domains: `${SUBJECT_ROOT}.query.domains`,
  domain: `${SUBJECT_ROOT}.query.domain`,
  snapshots: `${SUBJECT_ROOT}.query.snapshots`,
  command: `${SUBJECT_ROOT}.query.command`,
  audit: `${SUBJECT_ROOT}.query.audit`,
} as const;
export const SCHEMA_SUBJECT = `${SUBJECT_ROOT}.schema`;

/** Name of the NATS service (`$SRV.PING.vmledger` etc.) and its default queue group. */
export const SERVICE_NAME = 'vmledger';
export const DEFAULT_QUEUE = 'vmledger';
/** Largest request body the service accepts unless configured otherwise (the server's own limit is 1 MiB). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

export function commandSubject(verb: Verb): string {
  return `${COMMAND_SUBJECT_PREFIX}.${verb}`;
}

// ---------------------------------------------------------------------------------------------------
// Subject tokens.
//
// A NATS subject token may not contain `.` (the separator), `*` or `>` (wildcards) or whitespace, and must not be
// empty. Host and domain names may contain any of these (libvirt allows `web.example.com` or `my vm`), so each
// name is encoded into one token:
//
//   token = encodeURIComponent(name), then `.` → `%2E`, `*` → `%2A`, `!` `'` `(` `)` `~` → `%21` `%27` `%28` `%29` `%7E`
//
// That is, every byte outside [A-Za-z0-9_-] is written as `%XX` of its UTF-8 bytes (`%` itself becomes `%25`,
// so the encoding is reversible: decodeSubjectToken = decodeURIComponent). Typical names (`vm-1`, `local`,
// `web_01`) are unchanged; `web.example.com` is `web%2Eexample%2Ecom`; `my vm` is `my%20vm`. An empty name is
// written `%00`-free as the single token `%` + `` ... never: names are validated non-empty before they get here.

/**
 * Encodes a host or domain name as one NATS subject token (see above). A lone UTF-16 surrogate (possible in JSON,
 * not in UTF-8) is written as U+FFFD, the one case where decoding does not give the name back.
 */
export function encodeSubjectToken(name: string): string {
  if (name === '') throw new TypeError('cannot encode an empty name as a subject token');
  const wellFormed = name.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return encodeURIComponent(wellFormed).replace(/[.*!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Reverses encodeSubjectToken. */
export function decodeSubjectToken(token: string): string {
  return decodeURIComponent(token);
}

/** `vmledger.evt.<host>.<domain>`, both names encoded as subject tokens. */
export function eventSubject(host: string, domain: string): string {
  return `${EVENT_SUBJECT_PREFIX}.${encodeSubjectToken(host)}.${encodeSubjectToken(domain)}`;
}

/** The subscription subject for facts of one domain, one host, a domain name on every host, or everything. */
export function eventSubjectFilter(host?: string, domain?: string): string {
  const h = host === undefined ? '*' : encodeSubjectToken(host);
  const d = domain === undefined ? '*' : encodeSubjectToken(domain);
  return `${EVENT_SUBJECT_PREFIX}.${h}.${d}`;
}

/** Host and domain of an event subject, or undefined when the subject is not one. */
export function parseEventSubject(subject: string): { host: string; domain: string } | undefined {
  const tokens = subject.split('.');
  if (tokens.length !== 4 || `${tokens[0]}.${tokens[1]}` !== EVENT_SUBJECT_PREFIX) return undefined;
  try {
    return { host: decodeSubjectToken(tokens[2]!), domain: decodeSubjectToken(tokens[3]!) };
  } catch {
    return undefined;
  }
}

/**
 * Whether two subjects (either may hold wildcards) can match a common subject: used to refuse starting when a
 * JetStream stream captures a request subject.
 */
export function subjectsCollide(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === undefined || q === undefined) return p === q;
    if (p === '>' || q === '>') return true;
    if (p !== q && p !== '*' && q !== '*') return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Headers on published facts.

/** `<commandId>:<index of the fact within the command>`: lets JetStream (or any subscriber) drop a republished fact. */
export const HEADER_MSG_ID = 'Nats-Msg-Id';
export const HEADER_EVENT_TYPE = 'Vmledger-Event-Type';
export const HEADER_STREAM = 'Vmledger-Stream';
export const HEADER_REVISION = 'Vmledger-Revision';
export const HEADER_POSITION = 'Vmledger-Position';
export const HEADER_COMMAND_ID = 'Vmledger-Command-Id';

export function factMessageId(commandId: string, index: number): string {
  return `${commandId}:${index}`;
}

// ---------------------------------------------------------------------------------------------------
// Replies.

/** Rule ids the service uses for refusals that do not come from the domain machine. */
export const SERVICE_RULES = {
  /** The request body is not JSON, or not a valid command/query (code 8, VIR_ERR_INVALID_ARG). */
  validation: 'VALIDATION',
  /** The request body is larger than the service accepts (code 8, VIR_ERR_INVALID_ARG). */
  payloadSize: 'PAYLOAD-SIZE',
  /** The handler failed unexpectedly (code 1, VIR_ERR_INTERNAL_ERROR); the command may or may not have been applied. */
  internal: 'INTERNAL',
  /**
   * The store had no room for the command's record (code 38, VIR_ERR_SYSTEM_ERROR, as libvirt reports ENOSPC);
   * the message says what was not written. Retry with the same command id once there is room: it is applied
   * at most once (its first outcome comes back if its facts were stored).
   */
  storeFull: 'STORE-FULL',
  /**
   * The store did not answer within its retry budget (code 68, VIR_ERR_OPERATION_TIMEOUT, as libvirt reports a
   * lock it could not get in time): e.g. a JetStream cluster electing a leader, or this node cut off from the
   * majority. Retry with the same command id: it is applied at most once, and the retry gets its first outcome.
   */
  storeUnavailable: 'STORE-UNAVAILABLE',
} as const;

/** The reply to `vmledger.cmd.<verb>`: the ledger's CommandOutcome, as JSON. */
export type CommandReply = CommandOutcome;

export interface ErrorReply {
  ok: false;
  rule: string;
  code: number;
  codeName: string;
  message: string;
}

export type QueryReply<T> = ({ ok: true } & T) | ErrorReply;

export interface DomainsResult {
  domains: DomainState[];
}

export interface DomainResult {
  state: DomainState;
  /** Stream revision the state reflects (-1: no stream). */
  revision: number;
}

export type { SnapshotNode };

export interface SnapshotTreeResult {
  host: string;
  domain: string;
  current: string | null;
  revision: number;
  /** Snapshots without a parent (or whose parent metadata is gone), each with its descendants. */
  roots: SnapshotNode[];
}

export interface RecallResult {
  /** The first outcome of that command id (duplicate: true), or null when the ledger never saw it. */
  outcome: CommandOutcome | null;
}

export interface SchemaResult {
  schemas: Record<string, unknown>;
}

/** A fact as a subscriber receives it on `vmledger.evt.<host>.<domain>`. */
export interface PublishedFact {
  subject: string;
  host: string;
  domain: string;
  /** `commandId:index` (the Nats-Msg-Id header). */
  msgId: string;
  event: RecordedEvent;
}

/** The snapshot tree of a domain state (SC-TREE / SD-TREE as data), as the projection builds it (buildSnapshotTree). */
export function snapshotTree(state: DomainState, revision: number): SnapshotTreeResult {
  const { roots } = buildSnapshotTree(state);
  return { host: state.host, domain: state.name, current: state.current, revision, roots };
}
