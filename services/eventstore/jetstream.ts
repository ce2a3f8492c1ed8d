// The event store on NATS JetStream, for teams that outgrow one machine: `jetstream://HOST:PORT`.
//
// Layout on the server
//   stream VMLEDGER            subjects `vmledger.log.>` only. Never `vmledger.cmd.>`, `vmledger.query.>`,
//                              `vmledger.schema` or `vmledger.evt.>`: a stream capturing a request subject answers
//                              requests with a PubAck, not a reply; open refuses a prefix that would overlap.
//     vmledger.log.meta        seq 1: the format marker (`vmledger-jetstream/1`), written once on an empty stream.
//     vmledger.log.s.<token>   one subject per domain stream; <token> is the stream name with every byte outside
//                              [A-Za-z0-9-] written `_XX` (so it is one subject token and reversible), or `=<sha256>`
//                              for names whose token would exceed 200 bytes.
//   KV vmledger-commands       idempotency records, one per command id, kept forever (see below).
//   KV vmledger-docs           getDoc/putDoc, key `<collection token>.<key token>`.
//
// One message per append. Its payload carries the stream name, the append's id, the command id and every fact
// (type, data, metadata); its headers carry where the facts sit:
//   Vmledger-Position  global position of the first fact        Vmledger-Count     number of facts (>= 1)
//   Vmledger-Revision  stream revision of the first fact        Vmledger-Previous  sequence of the stream's
//                                                                                  previous message (0: none)
// So an append is atomic (one message is stored or not), a stream's revision is read from its last message
// (never counted), and readStream walks back along Vmledger-Previous instead of scanning the subject.
//
// Global positions (gap-free, one per fact) and the cost of that choice
//   A message's first position is the previous message's first position + count. That is only right if no other
//   message slipped in between, so every append is published with TWO expectations, checked by the server
//   atomically: `Nats-Expected-Last-Sequence` = the stream's last sequence (the global head) and
//   `Nats-Expected-Last-Subject-Sequence` = the domain stream's last message (0 when it has none). A
//   `wrong last sequence` answer means someone appended somewhere: we re-read both heads, re-check the caller's
//   expected revision (a move of *this* stream surfaces as WrongExpectedRevisionError, a move of another stream
//   is retried internally) and publish again. The cost: appends are serialised store-wide, like SQLite's write
//   lock, but optimistically. One writer pays one round trip per append on a stream it wrote last (both heads
//   are cached from its own acks; the server re-checks them, and a conflict seen on cached data is confirmed by
//   a fresh read before it is reported), two otherwise. Writers in several processes retry each other's
//   conflicts: each costs a head read and a second publish. Appends made through one store object are queued
//   in-process so they never conflict with each other. Measured on loopback (nats-server 2.9, 1-fact appends):
//   see the report in the issue; a single writer is well above the embedded SQLite store, N competing processes
//   share roughly one writer's throughput. Gap-free positions across concurrent writers are not achievable on
//   JetStream without such a global check (no multi-subject atomic publish before 2.12), hence this choice.
//
// Idempotency that outlives the 120 s dedup window
//   Before publishing, an append with a command id *reserves* it: `create` of a KV record {pending, subject,
//   afterSeq} (create fails if the key exists, so one appender wins). After the PubAck the record becomes
//   {done, revision, position}; a refused append deletes its reservation, leaving the id free. The message
//   also carries the command id (payload) and `Nats-Msg-Id` = `c-<sha256(command id)>`.
//   The crash window (facts stored, record still pending: the process died, or the KV update failed) is closed
//   on the next look-up of that id: a pending record is resolved by scanning the recorded subject after
//   `afterSeq` for a message carrying the command id; found → the record is completed and the retry gets the
//   first result; not found → the facts were never stored and the retry takes the reservation over. Two
//   live appenders of one id cannot both store it: the server drops the second message as a duplicate of the
//   Nats-Msg-Id within the window, and a message arriving later than that carries a stale expected last sequence
//   and is refused.
//   Transport failures (timeout, server restart) are retried inside append, re-publishing the same message
//   with the same Nats-Msg-Id for at most half the duplicate window; before re-checking revisions it looks for
//   its own append id on the subject, so a write whose ack was lost is never reported as a conflict.
//
// Durability: the stream is file-backed; nats-server 2.9 fsyncs its store every 2 minutes by default (a process
// crash loses nothing, a power cut can lose the last seconds: set `sync_interval: always` on 2.10+ for SQLite's
// guarantee).
//
// On a cluster: `replicas` (1 by default; 3 on three nodes) applies to the stream and both buckets when created;
// an existing log opened with another count is refused. The buckets are then read from their leader (a follower
// may lag). A write is acknowledged only once a majority of replicas holds it; without a leader or quorum each
// operation retries for `retryBudgetMs`, then fails with StoreUnavailableError (the service answers
// STORE-UNAVAILABLE), so a caller gets an answer before its own timeout when the budget is set below it.

import { createHash, randomUUID } from 'node:crypto';

import {
  connect,
  headers as makeHeaders,
  nanos,
  type ConnectionOptions,
  type JetStreamClient,
  type JetStreamManager,
  type KV,
  type KvEntry,
  type MsgHdrs,
  type NatsConnection,
  type NatsError,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
} from 'nats';

import { subjectsCollide } from '../nats/protocol';
import { AsyncLogFollower, followLog } from './follow';
import {
  NO_STREAM_REVISION,
  appendThenWriteDocs,
  assertLimit,
  assertPosition,
  assertRevision,
  assertStreamName,
  checkExpectedRevision,
  encodeEvents,
  Queue,
  sleep,
  toJson,
  type EncodedEvent,
} from './shared';
import {
  StoreCorruptError,
  StoreUnavailableError,
  WrongExpectedRevisionError,
  type AppendOptions,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
} from './types';

/** Format marker kept in the stream's first message; bump the suffix when the layout changes incompatibly. */
export const JETSTREAM_STORE_FORMAT = 'vmledger-jetstream/1';
export const DEFAULT_STREAM_NAME = 'VMLEDGER';
export const DEFAULT_SUBJECT_PREFIX = 'vmledger.log';
export const DEFAULT_COMMANDS_BUCKET = 'vmledger-commands';
export const DEFAULT_DOCS_BUCKET = 'vmledger-docs';

/**
 * Subjects the command service (services/nats) answers or publishes on, plus NATS's service discovery. The log
 * stream must capture none of them: a stream on a request subject swallows the request.
 */
export const COMMAND_SERVICE_SUBJECTS = ['vmledger.cmd.>', 'vmledger.query.>', 'vmledger.schema', 'vmledger.evt.>', '$SRV.>'];

const HEADER_POSITION = 'Vmledger-Position';
const HEADER_REVISION = 'Vmledger-Revision';
const HEADER_COUNT = 'Vmledger-Count';
const HEADER_PREVIOUS = 'Vmledger-Previous';

/** JetStream's error code for a failed expected-last-sequence (stream or subject) check. */
const JS_WRONG_LAST_SEQUENCE = 10071;
const JS_NO_MESSAGE_FOUND = 10037;
const JS_STREAM_NOT_FOUND = 10059;

/** Below this many messages a range is read by direct gets; above, through an ordered consumer. */
const SMALL_RANGE = 32;
/** How many messages readStream fetches walking back along Vmledger-Previous before it reads the subject whole. */
const MAX_WALK_BACK = 64;
const MAX_TOKEN_BYTES = 200;

export interface JetStreamEventStoreOptions {
  /** Server URL(s), e.g. `nats://127.0.0.1:4222`. Either this or `nc`. */
  servers?: string | string[];
  /** An open connection to use; the store does not close it. */
  nc?: NatsConnection;
  /** Extra connection options when the store connects itself (user, pass, token, tls...). */
  connectionOptions?: Partial<ConnectionOptions>;
  streamName?: string;
  subjectPrefix?: string;
  commandsBucket?: string;
  docsBucket?: string;
  /** Duplicate window of the stream when this store creates it. Default 120 s (JetStream's default). */
  duplicateWindowMs?: number;
  /** Replicas of the stream and buckets when this store creates them. Default 1. */
  replicas?: number;
  /** Timeout of each JetStream request. Default 5 s. */
  requestTimeoutMs?: number;
  /**
   * How long an operation keeps retrying transport failures (timeouts, no responders while the server
   * restarts). Capped at half the stream's duplicate window, so a re-published append is always deduplicated.
   * Default 30 s.
   */
  retryBudgetMs?: number;
  /** Test hooks that simulate a crash at the two points of the idempotency protocol. Not for production. */
  testHooks?: JetStreamTestHooks;
}

export interface JetStreamTestHooks {
  /** Called after the command id was reserved, before the facts are published. Throwing simulates a crash. */
  afterReserve?: (commandId: string) => void | Promise<void>;
  /** Called after the facts were stored, before the command record is completed. Throwing simulates a crash. */
  afterPublish?: (commandId: string) => void | Promise<void>;
  /** Called with each PubAck; returning true drops it as if the connection had failed (the message is stored). */
  loseAck?: () => boolean;
}

// ------------------------------------------------------------------------------------------------------------
// Names and subjects.

/**
 * One subject token (or KV key token) for any string: bytes outside [A-Za-z0-9-] become `_XX` (upper-case hex of
 * the UTF-8 byte), the empty string becomes `_`, and a token longer than 200 bytes becomes `=` + sha256 hex.
 * Escaped tokens never contain `=` and a lone `_` is never an escape, so the forms cannot collide.
 */
export function encodeToken(name: string): string {
  if (name === '') return '_';
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out.length > MAX_TOKEN_BYTES) return `=${createHash('sha256').update(name, 'utf8').digest('hex')}`;
  return out;
}

/** JetStream keeps 1 to 5 copies of a stream; a cluster needs a majority of them to accept a write. */
function assertReplicas(replicas: number | undefined): void {
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 5)) {
    throw new TypeError(`replicas must be an integer from 1 to 5 (3 on a three-node cluster), got ${String(replicas)}`);
  }
}

function assertSubjectPrefix(prefix: string): void {
  const tokens = prefix.split('.');
  if (prefix === '' || tokens.some((t) => t === '' || /[\s*>]/.test(t)) || prefix.startsWith('$')) {
    throw new TypeError(
      `subjectPrefix must be dot-separated literal tokens without wildcards, spaces or a leading '$', got '${prefix}'`,
    );
  }
  const captured = `${prefix}.>`;
  const clash = COMMAND_SERVICE_SUBJECTS.find((reserved) => subjectsCollide(captured, reserved));
  if (clash) {
    throw new TypeError(
      `subjectPrefix '${prefix}' would make the log stream capture '${captured}', which overlaps the command ` +
        `service's '${clash}' (a stream on a request subject swallows the requests); use e.g. '${DEFAULT_SUBJECT_PREFIX}'`,
    );
  }
}

// ------------------------------------------------------------------------------------------------------------
// Errors.

function jsErrorCode(error: unknown): number | undefined {
  return (error as NatsError | undefined)?.api_error?.err_code;
}

function isWrongLastSequence(error: unknown): boolean {
  return jsErrorCode(error) === JS_WRONG_LAST_SEQUENCE;
}

function isNoMessage(error: unknown): boolean {
  return jsErrorCode(error) === JS_NO_MESSAGE_FOUND || (error as NatsError | undefined)?.code === '404';
}

/** Failures after which the same request may succeed: timeouts, no responders, a dropped or restarting server. */
function isTransient(error: unknown): boolean {
  const e = error as NatsError | undefined;
  if (!e) return false;
  if (e.api_error) return e.api_error.code === 503 || e.api_error.code === 408;
  return ['TIMEOUT', '503', 'DISCONNECT', 'CONNECTION_REFUSED', 'CONNECTION_TIMEOUT', 'REQUEST_ERROR'].includes(e.code);
}

/** A transient failure in words: JetStream's "no responders"/503 means no leader (or no quorum) answered. */
function describeTransient(error: unknown): string {
  const e = error as NatsError | undefined;
  const message = e?.api_error?.description ?? (error as Error | undefined)?.message ?? String(error);
  if (e?.code === '503' || e?.api_error?.code === 503) {
    return `no JetStream leader or quorum answered: ${message === '503' ? '503 no responders' : message}`;
  }
  if (e?.code === 'TIMEOUT' || e?.api_error?.code === 408) return `request timed out: ${message}`;
  return message;
}

/**
 * Runs `work` (which must be safe to repeat), retrying transient failures with a backoff of up to 1 s until
 * `budgetMs` has passed; then the last one is handed to `giveUp` to explain. `check` runs before each attempt
 * and after each failure (e.g. to stop at once when the store was closed meanwhile).
 */
async function withTransientRetries<T>(
  budgetMs: number,
  work: () => Promise<T>,
  giveUp: (error: unknown) => Error,
  check: () => void = () => {},
): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 0; ; attempt++) {
    check();
    try {
      return await work();
    } catch (error) {
      check();
      if (!isTransient(error)) throw error;
      if (Date.now() >= deadline) throw giveUp(error);
      await sleep(backoff(attempt, deadline));
    }
  }
}

/** The pause before attempt `attempt + 1`: 50 ms doubling up to 1 s, never past the deadline (so the caller hears
 * back within budget + one request timeout). */
function backoff(attempt: number, deadline: number): number {
  return Math.max(0, Math.min(1_000, 50 * 2 ** Math.min(attempt, 5), deadline - Date.now()));
}

// ------------------------------------------------------------------------------------------------------------
// Messages.

/** A message of the log stream as read by get or by a consumer. */
interface RawMsg {
  seq: number;
  subject: string;
  header: MsgHdrs | undefined;
  data: Uint8Array;
}

/** What the headers of one append message say. */
interface AppendMessage extends RawMsg {
  firstPosition: number;
  firstRevision: number;
  count: number;
  previous: number;
}

interface Payload {
  v: 1;
  stream: string;
  appendId: string;
  commandId?: string;
  facts: Array<{ type: string; data: unknown; metadata: RecordedEvent['metadata'] }>;
}

interface Head {
  seq: number;
  lastPosition: number;
}

/** A stream's last message: sequence 0 and revision -1 when the stream has none. */
interface SubjectHead {
  seq: number;
  lastRevision: number;
  lastPosition: number;
}

const NO_SUBJECT_HEAD: SubjectHead = { seq: 0, lastRevision: NO_STREAM_REVISION, lastPosition: 0 };

interface CommandRecord {
  state: 'pending' | 'done';
  commandId: string;
  stream: string;
  subject: string;
  /** pending: every message of this command has a sequence above this. */
  afterSeq: number;
  /** done: the first result. */
  revision?: number;
  position?: number;
}

const decoder = new TextDecoder();

function headerInt(msg: RawMsg, name: string): number {
  const text = msg.header?.get(name);
  const value = text === undefined || text === '' ? Number.NaN : Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new StoreCorruptError(
      `message ${msg.seq} on '${msg.subject}' is not a vmledger append: header ${name} is ${JSON.stringify(text ?? null)}`,
    );
  }
  return value;
}

function parseAppend(msg: RawMsg): AppendMessage {
  return {
    ...msg,
    firstPosition: headerInt(msg, HEADER_POSITION),
    firstRevision: headerInt(msg, HEADER_REVISION),
    count: headerInt(msg, HEADER_COUNT),
    previous: headerInt(msg, HEADER_PREVIOUS),
  };
}

function lastPositionOf(msg: AppendMessage): number {
  return msg.firstPosition + msg.count - 1;
}

function lastRevisionOf(msg: AppendMessage): number {
  return msg.firstRevision + msg.count - 1;
}

function parsePayload(msg: RawMsg): Payload {
  let payload: Payload;
  try {
    payload = JSON.parse(decoder.decode(msg.data)) as Payload;
  } catch (error) {
    throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' is not JSON: ${(error as Error).message}`);
  }
  if (payload?.v !== 1 || typeof payload.stream !== 'string' || !Array.isArray(payload.facts)) {
    throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' is not a vmledger append`);
  }
  return payload;
}

function toRawFromStored(m: StoredMsg): RawMsg {
  return { seq: m.seq, subject: m.subject, header: m.header, data: m.data };
}

function commandKey(commandId: string): string {
  return /^[A-Za-z0-9_-]{1,200}$/.test(commandId)
    ? `id.${commandId}`
    : `h.${createHash('sha256').update(commandId, 'utf8').digest('hex')}`;
}

function commandMsgId(commandId: string): string {
  return `c-${createHash('sha256').update(commandId, 'utf8').digest('hex')}`;
}

// ------------------------------------------------------------------------------------------------------------
// Opening.

export async function openJetStreamEventStore(options: JetStreamEventStoreOptions): Promise<EventStore> {
  const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  assertSubjectPrefix(prefix);
  if (!/^[A-Za-z0-9_-]+$/.test(streamName)) {
    throw new TypeError(`streamName must be letters, digits, '-' or '_', got '${streamName}'`);
  }
  const timeout = options.requestTimeoutMs ?? 5_000;
  assertReplicas(options.replicas);

  let nc = options.nc;
  const ownConnection = nc === undefined;
  if (!nc) {
    if (!options.servers) throw new TypeError('openJetStreamEventStore needs `servers` or an open connection `nc`');
    try {
      nc = await connect({
        name: 'vmledger-eventstore',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        ...options.connectionOptions,
        servers: options.servers,
      });
    } catch (error) {
      throw new Error(`cannot connect to NATS at ${String(options.servers)}: ${(error as Error).message}`, { cause: error });
    }
  }
  try {
    // Each step is idempotent, so a JetStream request that timed out (a busy or restarting server) is repeated.
    const setUp = <T>(what: string, work: () => Promise<T>) =>
      withTransientRetries(
        options.retryBudgetMs ?? 30_000,
        work,
        (error) =>
          new Error(`cannot open the JetStream store '${streamName}': could not ${what}: ${(error as Error).message}`, {
            cause: error,
          }),
      );
    const jsm = await setUp('reach the JetStream API', () =>
      nc!.jetstreamManager({ timeout }).catch((error: unknown) => {
        // No responders on $JS.API: the server runs without JetStream. Not worth retrying. A 503 that JetStream
        // answered itself ("temporarily unavailable": a cluster without a meta leader yet) is retried.
        if ((error as NatsError | undefined)?.code !== '503' || (error as NatsError).api_error) throw error;
        throw new Error(
          `NATS at ${nc!.getServer()} has no JetStream (start nats-server with -js): ${(error as Error).message}`,
          { cause: error },
        );
      }),
    );
    const js = nc.jetstream({ timeout });
    const info = await setUp('read or create the stream', () => ensureStream(jsm, streamName, prefix, options));
    await setUp('check the format marker', () => ensureFormatMarker(js, jsm, streamName, prefix));
    // Buckets get the log's replicas. On a cluster their reads go to the leader (no direct get from a follower,
    // which may lag): an idempotency record read stale could let a retry look new.
    const replicas = options.replicas ?? info.config.num_replicas ?? 1;
    const bucketOptions = replicas > 1 ? { history: 1, replicas, allow_direct: false } : { history: 1, replicas };
    const bucket = (name: string) => setUp(`open the bucket '${name}'`, () => js.views.kv(name, bucketOptions));
    const commands = await bucket(options.commandsBucket ?? DEFAULT_COMMANDS_BUCKET);
    const docs = await bucket(options.docsBucket ?? DEFAULT_DOCS_BUCKET);
    const duplicateWindowMs = Math.floor((info.config.duplicate_window ?? nanos(120_000)) / 1_000_000);
    const retryBudgetMs = Math.max(0, Math.min(options.retryBudgetMs ?? 30_000, duplicateWindowMs / 2));
    return new JetStreamEventStore(nc, ownConnection, js, jsm, commands, docs, {
      streamName,
      prefix,
      retryBudgetMs,
      hooks: options.testHooks ?? {},
    });
  } catch (error) {
    if (ownConnection) await nc.close().catch(() => {});
    throw error;
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  prefix: string,
  options: JetStreamEventStoreOptions,
): Promise<StreamInfo> {
  const captured = `${prefix}.>`;
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(name);
  } catch (error) {
    if (jsErrorCode(error) !== JS_STREAM_NOT_FOUND && (error as Error).message !== 'stream not found') throw error;
  }
  if (!info) {
    const config: Partial<StreamConfig> = {
      name,
      subjects: [captured],
      description: `vmledger event log (${JETSTREAM_STORE_FORMAT}); one subject per domain stream`,
      duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
      num_replicas: options.replicas ?? 1,
      allow_direct: true,
      // Positions are derived from the message order: nothing may be removed from the middle of the log.
      deny_delete: true,
      deny_purge: true,
    };
    try {
      info = await jsm.streams.add(config);
    } catch (error) {
      // Another process created it first: use theirs (checked below). Anything else is explained.
      try {
        info = await jsm.streams.info(name);
      } catch {
        throw new Error(
          `cannot create JetStream stream '${name}' on '${captured}': ${(error as Error).message} ` +
            `(another stream may already capture these subjects)`,
          { cause: error },
        );
      }
    }
  }
  const subjects = info.config.subjects ?? [];
  if (subjects.length !== 1 || subjects[0] !== captured) {
    throw new StoreCorruptError(
      `JetStream stream '${name}' is not a vmledger log: it captures ${JSON.stringify(subjects)}, not ['${captured}']; ` +
        `it was left as it is`,
    );
  }
  const has = info.config.num_replicas ?? 1;
  if (options.replicas !== undefined && options.replicas !== has) {
    // Changing replicas moves data between servers: an operator's decision, not a side effect of opening.
    throw new Error(
      `JetStream stream '${name}' has ${has} replica(s), the store spec asks for ${options.replicas}: open it without ` +
        `'replicas' (or with replicas=${has}), or change the stream first (nats stream edit ${name} --replicas ${options.replicas})`,
    );
  }
  return info;
}

async function ensureFormatMarker(js: JetStreamClient, jsm: JetStreamManager, name: string, prefix: string): Promise<void> {
  const metaSubject = `${prefix}.meta`;
  const check = (msg: StoredMsg): void => {
    let format: unknown;
    try {
      format = (JSON.parse(decoder.decode(msg.data)) as { format?: unknown }).format;
    } catch {
      format = undefined;
    }
    if (msg.seq !== 1 || format !== JETSTREAM_STORE_FORMAT) {
      throw new StoreCorruptError(
        `JetStream stream '${name}' is not a vmledger log this version reads: its marker (message ${msg.seq} on ` +
          `'${metaSubject}') says ${JSON.stringify(format ?? null)}, expected '${JETSTREAM_STORE_FORMAT}' at sequence 1`,
      );
    }
  };
  try {
    check(await jsm.streams.getMessage(name, { last_by_subj: metaSubject }));
    return;
  } catch (error) {
    if (!isNoMessage(error)) throw error;
  }
  const hdrs = makeHeaders();
  hdrs.set(HEADER_POSITION, '1');
  hdrs.set(HEADER_REVISION, '0');
  hdrs.set(HEADER_COUNT, '0');
  hdrs.set(HEADER_PREVIOUS, '0');
  try {
    // Only on an empty stream: a stream with messages but no marker is not ours.
    await js.publish(metaSubject, JSON.stringify({ format: JETSTREAM_STORE_FORMAT }), {
      headers: hdrs,
      msgID: 'vmledger-format-marker',
      expect: { lastSequence: 0, streamName: name },
    });
  } catch (error) {
    if (!isWrongLastSequence(error)) throw error;
  }
  try {
    check(await jsm.streams.getMessage(name, { last_by_subj: metaSubject }));
  } catch (error) {
    if (!isNoMessage(error)) throw error;
    throw new StoreCorruptError(
      `JetStream stream '${name}' has messages but no vmledger format marker on '${metaSubject}': not a vmledger log; ` +
        `it was left as it is`,
    );
  }
}

// ------------------------------------------------------------------------------------------------------------
// The store.

interface StoreSettings {
  streamName: string;
  prefix: string;
  retryBudgetMs: number;
  hooks: JetStreamTestHooks;
}

class JetStreamEventStore implements EventStore {
  private closed = false;
  private readonly followers = new Set<AsyncLogFollower>();
  private readonly appendQueue = new Queue();
  /** The global head as of our last read or ack; a stale value only costs a refused publish. */
  private head: Head | undefined;
  /**
   * Last message of each stream this process wrote or read (bounded LRU). Safe to publish against even when
   * stale: the server re-checks it (expected last subject sequence), and a conflict found on cached data is
   * confirmed by a fresh read before it is reported.
   */
  private readonly subjectHeads = new Map<string, SubjectHead>();
  /** First position and count of messages seen, by sequence (bounded), for seeking positions. */
  private readonly seen = new Map<number, { firstPosition: number; count: number }>();
  private readonly streamName: string;
  private readonly prefix: string;
  private readonly metaSubject: string;
  private readonly label: string;

  constructor(
    private readonly nc: NatsConnection,
    private readonly ownConnection: boolean,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly commands: KV,
    private readonly docs: KV,
    private readonly settings: StoreSettings,
  ) {
    this.streamName = settings.streamName;
    this.prefix = settings.prefix;
    this.metaSubject = `${settings.prefix}.meta`;
    this.label = `JetStream stream '${settings.streamName}' at ${nc.getServer()}`;
  }

  subjectFor(stream: string): string {
    return `${this.prefix}.s.${encodeToken(stream)}`;
  }

  // ---------------------------------------------------------------------------------------------- append

  async append(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.assertOpen();
    // No transaction spans facts and docs here: the docs follow a stored (not refused, not duplicate) append.
    return appendThenWriteDocs(this, stream, events, options, (s, e, o) => this.appendWithoutDocs(s, e, o));
  }

  private async appendWithoutDocs(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    const encoded = encodeEvents(stream, events);
    const { commandId } = options;
    const subject = this.subjectFor(stream);
    const appendId = randomUUID();
    const payload = encoded.length > 0 ? this.buildPayload(stream, appendId, commandId, encoded) : undefined;

    if (commandId === undefined) {
      if (!payload) return this.emptyAppend(stream, subject, options.expectedRevision);
      return this.appendQueue.run(() => this.publishAppend(stream, subject, payload, encoded.length, options.expectedRevision, appendId, undefined));
    }

    const key = commandKey(commandId);
    if (!payload) {
      const known = await this.lookupCommand(commandId, key);
      if (known.result) return known.result;
      return this.emptyAppend(stream, subject, options.expectedRevision);
    }

    const reservation = await this.reserveCommand(commandId, key, stream, subject);
    if ('result' in reservation) return reservation.result;
    await this.settings.hooks.afterReserve?.(commandId);

    let result: AppendResult;
    try {
      result = await this.appendQueue.run(() =>
        this.publishAppend(stream, subject, payload, encoded.length, options.expectedRevision, appendId, commandId),
      );
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError || error instanceof TypeError) {
        // Refused: nothing was written, the id stays free. If someone took the reservation over, it is theirs.
        await this.retry('release a command reservation', () =>
          this.commands.delete(key, { previousSeq: reservation.revision }),
        ).catch(() => {});
      }
      // Otherwise the outcome may be unknown: the pending record stays and the next look-up resolves it.
      throw error;
    }
    await this.settings.hooks.afterPublish?.(commandId);
    try {
      await this.retry('record the command result', () =>
        this.commands.update(key, this.encodeRecord({
          state: 'done',
          commandId,
          stream,
          subject,
          afterSeq: reservation.afterSeq,
          revision: result.revision,
          position: result.position,
        }), reservation.revision),
      );
    } catch (error) {
      // The facts are stored; the pending record is completed by the next look-up of this id.
      if (!isWrongLastSequence(error)) {
        console.warn(`vmledger: command '${commandId}' was appended but its record stays pending (${(error as Error).message}); the next look-up completes it`);
      }
    }
    return result;
  }

  private buildPayload(stream: string, appendId: string, commandId: string | undefined, events: EncodedEvent[]): Uint8Array {
    const facts = events.map((e) => `{"type":${JSON.stringify(e.type)},"data":${e.data},"metadata":${e.metadata}}`);
    const head = `{"v":1,"stream":${JSON.stringify(stream)},"appendId":${JSON.stringify(appendId)}` +
      (commandId === undefined ? '' : `,"commandId":${JSON.stringify(commandId)}`);
    const bytes = Buffer.from(`${head},"facts":[${facts.join(',')}]}`, 'utf8');
    const max = this.nc.info?.max_payload ?? 1024 * 1024;
    if (bytes.length + 1024 > max) {
      throw new RangeError(
        `append to stream '${stream}' is ${bytes.length} bytes, more than the NATS server's max_payload ` +
          `(${max} bytes, less 1 KiB for headers): nothing was appended; split the facts or raise max_payload`,
      );
    }
    return bytes;
  }

  private async emptyAppend(stream: string, subject: string, expected: ExpectedRevision): Promise<AppendResult> {
    const last = await this.lastOnSubject(subject);
    checkExpectedRevision(stream, expected, last ? lastRevisionOf(last) : 'no-stream');
    return last
      ? { revision: lastRevisionOf(last), position: lastPositionOf(last), duplicate: false }
      : { revision: NO_STREAM_REVISION, position: 0, duplicate: false };
  }

  /**
   * Publishes one append message under both expectations, retrying global conflicts and transport failures.
   * Runs inside appendQueue: one append of this process at a time.
   */
  private async publishAppend(
    stream: string,
    subject: string,
    payload: Uint8Array,
    count: number,
    expected: ExpectedRevision,
    appendId: string,
    commandId: string | undefined,
  ): Promise<AppendResult> {
    this.assertOpen();
    const msgID = commandId === undefined ? `a-${appendId}` : commandMsgId(commandId);
    const deadline = Date.now() + this.settings.retryBudgetMs;
    /** Set once a publish may have reached the server without us seeing the ack: the subject seq before it. */
    let uncertainAfter: number | undefined;
    for (let attempt = 0; ; attempt++) {
      let publishing = false;
      let last: SubjectHead | undefined;
      try {
        if (uncertainAfter !== undefined) {
          const mine = await this.findOnSubject(subject, uncertainAfter, (p) => p.appendId === appendId);
          if (mine) {
            this.forgetSubjectHead(subject);
            return this.resultOf(mine, false);
          }
        }
        last = this.subjectHeads.get(subject);
        const cached = last !== undefined;
        if (!last) last = await this.readSubjectHead(subject);
        try {
          checkExpectedRevision(stream, expected, last.seq === 0 ? 'no-stream' : last.lastRevision);
        } catch (conflict) {
          if (!cached) throw conflict;
          last = await this.readSubjectHead(subject);
          checkExpectedRevision(stream, expected, last.seq === 0 ? 'no-stream' : last.lastRevision);
        }
        let head = this.head;
        if (!head || last.seq > head.seq) head = await this.readHead();
        const firstPosition = head.lastPosition + 1;
        const firstRevision = last.lastRevision + 1;
        const hdrs = makeHeaders();
        hdrs.set(HEADER_POSITION, String(firstPosition));
        hdrs.set(HEADER_REVISION, String(firstRevision));
        hdrs.set(HEADER_COUNT, String(count));
        hdrs.set(HEADER_PREVIOUS, String(last.seq));
        publishing = true;
        const ack = await this.js.publish(subject, payload, {
          headers: hdrs,
          msgID,
          expect: { lastSequence: head.seq, lastSubjectSequence: last.seq, streamName: this.streamName },
        });
        if (this.settings.hooks.loseAck?.()) {
          throw Object.assign(new Error('TIMEOUT (simulated: the PubAck was lost)'), { code: 'TIMEOUT' });
        }
        if (ack.duplicate) {
          // The server already holds a message with this id: our own earlier attempt, or (for a command id) the
          // first append of this command. Either way its result is the answer.
          this.forgetSubjectHead(subject);
          const stored = parseAppend(toRawFromStored(await this.getBySeq(ack.seq)));
          const storedPayload = parsePayload(stored);
          return this.resultOf(stored, storedPayload.appendId !== appendId);
        }
        const lastPosition = firstPosition + count - 1;
        const lastRevision = firstRevision + count - 1;
        this.head = { seq: ack.seq, lastPosition };
        this.remember(ack.seq, firstPosition, count);
        this.rememberSubjectHead(subject, { seq: ack.seq, lastRevision, lastPosition });
        return { revision: lastRevision, position: lastPosition, duplicate: false };
      } catch (error) {
        if (this.closed) throw this.closedError();
        if (isWrongLastSequence(error)) {
          // Someone appended (to this stream or another): re-read the heads and try again.
          this.head = undefined;
          this.forgetSubjectHead(subject);
          if (attempt >= 3) await sleep(Math.min(50, attempt) * Math.random());
          continue;
        }
        if (isTransient(error) && Date.now() < deadline) {
          if (publishing && uncertainAfter === undefined) uncertainAfter = last?.seq ?? 0;
          this.head = undefined;
          this.forgetSubjectHead(subject);
          await sleep(backoff(attempt, deadline));
          continue;
        }
        if (isTransient(error)) {
          throw publishing || uncertainAfter !== undefined
            ? this.unavailable(
                `append to stream '${stream}' was not acknowledged`,
                error,
                'it may or may not have been stored (a retry with the same command id finds out and applies it at most once)',
              )
            : this.unavailable(`could not append to stream '${stream}'`, error);
        }
        throw error;
      }
    }
  }

  private resultOf(msg: AppendMessage, duplicate: boolean): AppendResult {
    return { revision: lastRevisionOf(msg), position: lastPositionOf(msg), duplicate };
  }

  // ---------------------------------------------------------------------------------------------- commands

  private encodeRecord(record: CommandRecord): string {
    return JSON.stringify(record);
  }

  private decodeRecord(entry: KvEntry, commandId: string): CommandRecord {
    let record: CommandRecord;
    try {
      record = JSON.parse(entry.string()) as CommandRecord;
    } catch {
      throw new StoreCorruptError(`command record '${entry.key}' in bucket '${entry.bucket}' is not JSON`);
    }
    if (record.commandId !== commandId) {
      throw new StoreCorruptError(`command record '${entry.key}' belongs to '${record.commandId}', not '${commandId}'`);
    }
    return record;
  }

  /**
   * The first result of a command id, completing a pending record whose facts are stored. `pending` is set when
   * a reservation exists whose facts were not found (a crashed appender, or one still publishing).
   */
  private async lookupCommand(
    commandId: string,
    key: string,
  ): Promise<{ result?: AppendResult; entry?: KvEntry; record?: CommandRecord }> {
    const entry = await this.retry('read a command record', () => this.commands.get(key));
    if (!entry || entry.operation !== 'PUT') return {};
    const record = this.decodeRecord(entry, commandId);
    if (record.state === 'done') {
      return { result: { revision: record.revision!, position: record.position!, duplicate: true }, entry, record };
    }
    const stored = await this.findOnSubject(record.subject, record.afterSeq, (p) => p.commandId === commandId);
    if (!stored) return { entry, record };
    const result = this.resultOf(stored, true);
    await this.retry('complete a command record', () =>
      this.commands.update(key, this.encodeRecord({ ...record, state: 'done', revision: result.revision, position: result.position }), entry.revision),
    ).catch(() => {}); // someone else completed it: same message, same result
    return { result, entry, record };
  }

  /** Reserves the id for this append, or returns the first result when the command was already appended. */
  private async reserveCommand(
    commandId: string,
    key: string,
    stream: string,
    subject: string,
  ): Promise<{ revision: number; afterSeq: number } | { result: AppendResult }> {
    for (let attempt = 0; ; attempt++) {
      // A new command id (the usual case) is reserved by `create` alone; a known one is looked up first.
      const known = attempt === 0 ? {} : await this.lookupCommand(commandId, key);
      if (known.result) return { result: known.result };
      const afterSeq = (this.head ?? (await this.readHead())).seq;
      const record = this.encodeRecord({ state: 'pending', commandId, stream, subject, afterSeq });
      try {
        const revision = known.entry && known.entry.operation === 'PUT'
          ? await this.retry('take over a command reservation', () => this.commands.update(key, record, known.entry!.revision))
          : await this.retry('reserve a command id', () => this.commands.create(key, record));
        return { revision, afterSeq };
      } catch (error) {
        if (!isWrongLastSequence(error) || attempt > 20) throw error;
        // Someone reserved or completed it between our read and write: look again.
      }
    }
  }

  async commandResult(commandId: string): Promise<AppendResult | undefined> {
    this.assertOpen();
    if (typeof commandId !== 'string' || commandId === '') return undefined;
    return (await this.lookupCommand(commandId, commandKey(commandId))).result;
  }

  // ---------------------------------------------------------------------------------------------- reads

  async *readStream(stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
    this.assertOpen();
    assertStreamName(stream);
    assertRevision(fromRevision);
    const subject = this.subjectFor(stream);
    const last = await this.lastOnSubject(subject);
    if (!last || fromRevision > lastRevisionOf(last)) return;

    // Walk back along Vmledger-Previous: a read near the end (the usual case: after a state checkpoint) costs a
    // few gets and never scans the subject.
    const chain: AppendMessage[] = [last];
    while (chain[0]!.firstRevision > fromRevision && chain.length < MAX_WALK_BACK) {
      const next = chain[0]!;
      if (next.previous === 0) {
        throw new StoreCorruptError(`message ${next.seq} of stream '${stream}' starts at revision ${next.firstRevision} but has no previous message`);
      }
      const previous = parseAppend(toRawFromStored(await this.getBySeq(next.previous)));
      if (previous.subject !== subject || previous.firstRevision + previous.count !== next.firstRevision) {
        throw new StoreCorruptError(`stream '${stream}': message ${previous.seq} does not precede message ${next.seq}`);
      }
      chain.unshift(previous);
    }
    if (chain[0]!.firstRevision <= fromRevision) {
      for (const msg of chain) yield* this.factsOf(msg, stream, fromRevision);
      return;
    }
    let expected = fromRevision;
    for await (const raw of this.messages(1, last.seq, subject)) {
      const msg = parseAppend(raw);
      for (const event of this.factsOf(msg, stream, fromRevision)) {
        if (event.revision !== expected) {
          throw new StoreCorruptError(`stream '${stream}' jumps from revision ${expected - 1} to ${event.revision}`);
        }
        expected++;
        yield event;
      }
    }
  }

  async streamRevision(stream: string): Promise<number | 'no-stream'> {
    this.assertOpen();
    assertStreamName(stream);
    const last = await this.lastOnSubject(this.subjectFor(stream));
    return last ? lastRevisionOf(last) : 'no-stream';
  }

  async *readAll(after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
    this.assertOpen();
    assertPosition(after);
    assertLimit(limit);
    if (limit === 0) return;
    const head = await this.readHead();
    if (after >= head.lastPosition) return;
    const startSeq = await this.seqOfPosition(after + 1, head);
    let expected = after + 1;
    let remaining = limit;
    for await (const raw of this.messages(startSeq, head.seq)) {
      if (raw.subject === this.metaSubject) continue;
      const msg = parseAppend(raw);
      for (const event of this.factsOf(msg)) {
        if (event.position < expected) continue;
        if (event.position !== expected) {
          throw new StoreCorruptError(`${this.label}: the log jumps from position ${expected - 1} to ${event.position}`);
        }
        expected++;
        yield event;
        if (--remaining === 0) return;
      }
    }
  }

  async headPosition(): Promise<number> {
    this.assertOpen();
    return (await this.readHead()).lastPosition;
  }

  subscribe(after: number, onEvent: (event: RecordedEvent) => void | Promise<void>): Subscription {
    this.assertOpen();
    return followLog(this.followers, after, (from, signal) => this.liveFacts(from, signal), onEvent, this.label);
  }

  /** Facts after `after`, then live ones, from an ordered consumer (which re-creates itself after a restart). */
  private async *liveFacts(after: number, signal: AbortSignal): AsyncIterable<RecordedEvent> {
    const head = await this.readHead();
    const startSeq = after >= head.lastPosition ? head.seq + 1 : await this.seqOfPosition(after + 1, head);
    if (signal.aborted) return;
    const consumer = await this.js.consumers.get(this.streamName, { opt_start_seq: startSeq });
    const messages = await consumer.consume({ max_messages: 128 });
    const stop = () => messages.stop();
    signal.addEventListener('abort', stop);
    try {
      for await (const m of messages) {
        if (signal.aborted) return;
        if (m.subject === this.metaSubject) continue;
        yield* this.factsOf(parseAppend({ seq: m.seq, subject: m.subject, header: m.headers, data: m.data }));
      }
    } finally {
      signal.removeEventListener('abort', stop);
      messages.stop();
      await consumer.delete().catch(() => {});
    }
  }

  private *factsOf(msg: AppendMessage, stream?: string, fromRevision = 0): Iterable<RecordedEvent> {
    const payload = parsePayload(msg);
    if (stream !== undefined && payload.stream !== stream) {
      throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' belongs to stream '${payload.stream}', not '${stream}'`);
    }
    if (payload.facts.length !== msg.count) {
      throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' holds ${payload.facts.length} facts, its header says ${msg.count}`);
    }
    for (let i = 0; i < payload.facts.length; i++) {
      const revision = msg.firstRevision + i;
      if (revision < fromRevision) continue;
      const fact = payload.facts[i]!;
      yield {
        stream: payload.stream,
        revision,
        position: msg.firstPosition + i,
        type: fact.type,
        data: fact.data,
        metadata: fact.metadata,
      };
    }
  }

  /** Messages with sequence in [from, to] (on `subject` only, when given), in order. */
  private async *messages(from: number, to: number, subject?: string): AsyncIterable<RawMsg> {
    if (from > to) return;
    if (to - from < SMALL_RANGE) {
      for (let seq = from; seq <= to; ) {
        let msg: StoredMsg;
        try {
          msg = await this.retry('read a message', () =>
            subject === undefined
              ? this.jsm.streams.getMessage(this.streamName, { seq })
              : this.jsm.streams.getMessage(this.streamName, { seq, next_by_subj: subject } as unknown as { seq: number }),
          );
        } catch (error) {
          if (isNoMessage(error) && subject !== undefined) return;
          throw error;
        }
        if (msg.seq > to) return;
        yield toRawFromStored(msg);
        seq = msg.seq + 1;
      }
      return;
    }
    const consumer = await this.retry('create a reader', () =>
      this.js.consumers.get(this.streamName, { opt_start_seq: from, ...(subject ? { filterSubjects: subject } : {}) }),
    );
    const iterator = await consumer.consume({ max_messages: 256 });
    try {
      for await (const m of iterator) {
        if (m.seq > to) return;
        yield { seq: m.seq, subject: m.subject, header: m.headers, data: m.data };
        if (m.seq >= to) return;
      }
    } finally {
      iterator.stop();
      await consumer.delete().catch(() => {});
    }
  }

  /** Sequence of the message holding global position `position` (1 <= position <= head), by binary search. */
  private async seqOfPosition(position: number, head: Head): Promise<number> {
    // Every message after the marker holds at least one fact, so the message of `position` is at or before
    // sequence position + 1.
    let lo = 2;
    let hi = Math.min(head.seq, position + 1);
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const first = await this.firstPositionAt(mid);
      if (first <= position) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async firstPositionAt(seq: number): Promise<number> {
    const known = this.seen.get(seq);
    if (known) return known.firstPosition;
    const msg = parseAppend(toRawFromStored(await this.getBySeq(seq)));
    this.remember(seq, msg.firstPosition, msg.count);
    return msg.firstPosition;
  }

  private remember(seq: number, firstPosition: number, count: number): void {
    if (this.seen.size >= 10_000) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(seq, { firstPosition, count });
  }

  /** The stream's last message (the global head), read fresh. */
  private async readHead(): Promise<Head> {
    this.assertOpen();
    const msg = parseAppend(
      toRawFromStored(
        await this.retry('read the head of the log', () =>
          this.jsm.streams.getMessage(this.streamName, { last_by_subj: '>' }),
        ),
      ),
    );
    const head = { seq: msg.seq, lastPosition: lastPositionOf(msg) };
    if (!this.head || head.seq >= this.head.seq) this.head = head;
    return head;
  }

  /** The stream's last message, read fresh (and cached for the next append). */
  private async readSubjectHead(subject: string): Promise<SubjectHead> {
    const last = await this.lastOnSubject(subject);
    const head = last ? { seq: last.seq, lastRevision: lastRevisionOf(last), lastPosition: lastPositionOf(last) } : NO_SUBJECT_HEAD;
    this.rememberSubjectHead(subject, head);
    return head;
  }

  private rememberSubjectHead(subject: string, head: SubjectHead): void {
    this.subjectHeads.delete(subject);
    if (this.subjectHeads.size >= 10_000) this.subjectHeads.delete(this.subjectHeads.keys().next().value!);
    this.subjectHeads.set(subject, head);
  }

  private forgetSubjectHead(subject: string): void {
    this.subjectHeads.delete(subject);
  }

  private async lastOnSubject(subject: string): Promise<AppendMessage | undefined> {
    this.assertOpen();
    try {
      const msg = await this.retry('read the head of a stream', () =>
        this.jsm.streams.getMessage(this.streamName, { last_by_subj: subject }),
      );
      return parseAppend(toRawFromStored(msg));
    } catch (error) {
      if (isNoMessage(error)) return undefined;
      throw error;
    }
  }

  private getBySeq(seq: number): Promise<StoredMsg> {
    return this.retry('read a message', () => this.jsm.streams.getMessage(this.streamName, { seq }));
  }

  /** The first message on `subject` after sequence `afterSeq` whose payload satisfies `match`. */
  private async findOnSubject(
    subject: string,
    afterSeq: number,
    match: (payload: Payload) => boolean,
  ): Promise<AppendMessage | undefined> {
    let seq = afterSeq + 1;
    for (;;) {
      let msg: StoredMsg;
      try {
        msg = await this.retry('search a stream', () =>
          this.jsm.streams.getMessage(this.streamName, { seq, next_by_subj: subject } as unknown as { seq: number }),
        );
      } catch (error) {
        if (isNoMessage(error)) return undefined;
        throw error;
      }
      const raw = toRawFromStored(msg);
      if (match(parsePayload(raw))) return parseAppend(raw);
      seq = msg.seq + 1;
    }
  }

  /** Runs a request, retrying transport failures within the retry budget. */
  private retry<T>(what: string, work: () => Promise<T>): Promise<T> {
    return withTransientRetries(
      this.settings.retryBudgetMs,
      work,
      (error) => this.unavailable(`could not ${what}`, error),
      () => this.assertOpen(),
    );
  }

  /** What a caller sees when the cluster did not answer within the retry budget (no leader, no quorum, no server). */
  private unavailable(what: string, error: unknown, outcome = 'no fact was appended by this attempt'): StoreUnavailableError {
    return new StoreUnavailableError(
      `event store unavailable: ${this.label}: ${what} within ${this.settings.retryBudgetMs} ms ` +
        `(${describeTransient(error)}); ${outcome}; retry with the same command id`,
      { cause: error },
    );
  }

  // ---------------------------------------------------------------------------------------------- docs

  private docKey(collection: string, key: string): string {
    return `${encodeToken(collection)}.${encodeToken(key)}`;
  }

  async getDoc(collection: string, key: string): Promise<unknown | undefined> {
    this.assertOpen();
    const entry = await this.retry('read a doc', () => this.docs.get(this.docKey(collection, key)));
    if (!entry || entry.operation !== 'PUT') return undefined;
    return JSON.parse(entry.string()) as unknown;
  }

  async putDoc(collection: string, key: string, value: unknown): Promise<void> {
    this.assertOpen();
    const text = toJson(value, `doc '${collection}/${key}'`);
    await this.retry('write a doc', () => this.docs.put(this.docKey(collection, key), text));
  }

  // ---------------------------------------------------------------------------------------------- lifecycle

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.followers].map((follower) => follower.close()));
    this.closed = true;
    if (this.ownConnection) await this.nc.close().catch(() => {});
  }

  private closedError(): Error {
    return new Error(`event store ${this.label} is closed`);
  }

  private assertOpen(): void {
    if (this.closed) throw this.closedError();
  }
}

// ------------------------------------------------------------------------------------------------------------
// Store specs.

/**
 * Options from a spec `jetstream://[USER:PASS@]HOST:PORT[,HOST:PORT...][?stream=NAME&prefix=SUBJECTS&replicas=N
 * &timeout=MS&retry=MS]`: `replicas` of the stream and buckets when created (1-5), `timeout` of each JetStream
 * request, `retry` how long an operation keeps retrying before it fails with StoreUnavailableError.
 */
export function parseJetStreamSpec(spec: string): JetStreamEventStoreOptions {
  const match = /^jetstream:\/\/(?:([^@/?]*)@)?([^/?]+)\/?(?:\?(.*))?$/.exec(spec);
  if (!match) {
    throw new Error(`bad store spec '${spec}': write jetstream://HOST:PORT, e.g. jetstream://127.0.0.1:4222`);
  }
  const [, userinfo, hosts, query] = match;
  const servers = hosts!.split(',').map((host) => {
    if (!/^[^:\s]+:\d+$/.test(host) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(host)) {
      throw new Error(`bad store spec '${spec}': '${host}' is not HOST:PORT`);
    }
    return `nats://${host}`;
  });
  const options: JetStreamEventStoreOptions = { servers };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    options.connectionOptions =
      colon === -1
        ? { token: decodeURIComponent(userinfo) }
        : { user: decodeURIComponent(userinfo.slice(0, colon)), pass: decodeURIComponent(userinfo.slice(colon + 1)) };
  }
  const params = new URLSearchParams(query ?? '');
  for (const [name, value] of params) {
    if (name === 'stream') options.streamName = value;
    else if (name === 'prefix') options.subjectPrefix = value;
    else if (name === 'replicas') options.replicas = specInteger(spec, name, value, 1, 5);
    else if (name === 'timeout') options.requestTimeoutMs = specInteger(spec, name, value, 100, 600_000);
    else if (name === 'retry') options.retryBudgetMs = specInteger(spec, name, value, 0, 3_600_000);
    else {
      throw new Error(`bad store spec '${spec}': unknown parameter '${name}' (known: stream, prefix, replicas, timeout, retry)`);
    }
  }
  return options;
}

function specInteger(spec: string, name: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new Error(`bad store spec '${spec}': ${name} must be an integer from ${min} to ${max}, got '${value}'`);
  }
  return n;
}

/** Opens the store of a spec `jetstream://HOST:PORT[?…]` (registry.ts). */
export function openJetStreamSpec(spec: string): Promise<EventStore> {
  return openJetStreamEventStore(parseJetStreamSpec(spec));
}
