// The event-store interface every backend (SQLite, JetStream, EventStoreDB, memory) implements.
// Kept small on purpose: append with optimistic concurrency, read a stream, read and follow the global log.

/** A fact as the caller hands it to the store: a type, a JSON-serialisable payload and metadata. */
export interface NewEvent {
  type: string;
  data: unknown;
  metadata: EventMetadata;
}

export interface EventMetadata {
  /** Id of the command that produced this fact (the idempotency key). */
  commandId: string;
  actor: string;
  /** ISO-8601 time taken from the command, never from the store's clock. */
  time: string;
  correlationId?: string;
  /** Hash of this fact chained to the previous fact of the same stream (tamper evidence). */
  hash?: string;
  [key: string]: unknown;
}

/** A fact as stored: with its stream revision (0-based) and its global position (1-based, gap-free per store). */
export interface RecordedEvent extends NewEvent {
  stream: string;
  revision: number;
  position: number;
}

/** Expected revision of a stream before an append: a number (the last revision), 'no-stream', or 'any'. */
export type ExpectedRevision = number | 'no-stream' | 'any';

export interface AppendResult {
  /**
   * Revision of the last appended fact. For an empty append: the stream's last revision, or -1 when the
   * stream has no facts.
   */
  revision: number;
  /** Global position of the last appended fact. For an empty append: that of the stream's last fact, or 0. */
  position: number;
  /** True when the command id had been appended before: nothing was written, the first result is returned. */
  duplicate: boolean;
}

export interface AppendOptions {
  expectedRevision: ExpectedRevision;
  /**
   * Idempotency key, kept forever: a later append with the same id (whatever its stream, facts or expected
   * revision) returns the first result with `duplicate: true` and writes nothing. Only an append that wrote
   * facts records its id; a refused (conflicting) or empty append leaves the id free.
   */
  commandId?: string;
  /**
   * Side documents written with the facts (e.g. the command's outcome, a state checkpoint): in the same
   * transaction where the backend has one (SQLite, memory), so one durable write covers both; right after
   * the append elsewhere (docs are rebuildable from facts). Not written when the append is refused or a duplicate;
   * written by an empty append that passes its revision check (a doc write conditional on the stream's revision).
   *
   * A function instead of a list is called once with the append's result, when the docs are about to be written
   * (never for a refused or duplicate append): for docs that quote the positions the store assigns. Where the
   * backend has transactions it runs inside the write transaction, so keep it quick and synchronous; if it throws,
   * that append fails with its error and nothing of it is written. Elsewhere (JetStream, EventStoreDB) a doc that
   * cannot be written after a stored append is reported on stderr, not thrown.
   */
  docs?: DocWrite[] | ((result: AppendResult) => DocWrite[]);
}

export interface DocWrite {
  collection: string;
  key: string;
  value: unknown;
}

/** Thrown when expectedRevision does not match the stream's actual revision. */
export class WrongExpectedRevisionError extends Error {
  readonly stream: string;
  readonly expected: ExpectedRevision;
  readonly actual: number | 'no-stream';
  constructor(stream: string, expected: ExpectedRevision, actual: number | 'no-stream') {
    super(`wrong expected revision on stream '${stream}': expected ${String(expected)}, actual ${String(actual)}`);
    this.name = 'WrongExpectedRevisionError';
    this.stream = stream;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * Thrown by an append or doc write that the store had no room for (SQLite: disk full, or the file at its
 * max_page_count). The message says what was not written; nothing acknowledged before is affected, and a retry
 * with the same command id once there is room applies the command at most once.
 */
export class StoreFullError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreFullError';
  }
}

/**
 * Thrown when the store could not be reached within its retry budget (JetStream: no leader or no quorum, e.g.
 * while a cluster elects a new leader or this node is cut off from the majority). The message says what could
 * not be done. A retry with the same command id is safe: the command is applied at most once, and a retry after
 * a write whose acknowledgement was lost gets that write's result.
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** Thrown when the store file or server is not a vmledger store, or is damaged. */
export class StoreCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreCorruptError';
  }
}

export interface Subscription {
  /** Stop delivering; resolves when the subscription is fully closed. */
  close(): Promise<void>;
}

/** How a store is opened: 'read' (audit, replay) opens a damaged store read-only instead of refusing it. */
export interface OpenStoreOptions {
  purpose?: 'write' | 'read';
}

/** Opens a store from a spec whose scheme the opener was registered for; receives the whole spec. */
export type StoreOpener = (spec: string, options?: OpenStoreOptions) => EventStore | Promise<EventStore>;

export interface EventStore {
  /**
   * Append facts atomically (all or none) to one stream. Order of checks: a known command id returns the first
   * result; then the expected revision (WrongExpectedRevisionError, nothing written); then the facts are written.
   * An empty list still checks the expected revision but appends nothing. Data and metadata must be
   * JSON-serialisable (a TypeError otherwise, before anything is written); they are read back as JSON.
   */
  append(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult>;
  /** Facts of one stream, from a revision (inclusive), in order. */
  readStream(stream: string, fromRevision?: number): AsyncIterable<RecordedEvent>;
  /** Last revision of a stream, or 'no-stream'. */
  streamRevision(stream: string): Promise<number | 'no-stream'>;
  /** The global log from a position (exclusive: facts with position > after), in order. */
  readAll(after?: number, limit?: number): AsyncIterable<RecordedEvent>;
  /** The highest global position, 0 when empty. */
  headPosition(): Promise<number>;
  /**
   * Follow the global log: existing facts after `after`, then new ones as they are appended (SQLite: also
   * those appended by other processes, seen by polling). Each callback is awaited before the next fact is
   * delivered. A callback that throws stops this subscription (logged to stderr, with the fact's position);
   * resume from your own checkpoint. Do not await close() from inside the callback.
   */
  subscribe(after: number, onEvent: (event: RecordedEvent) => void | Promise<void>): Subscription;
  /** Result recorded for a command id (with `duplicate: true`, as a retry would get), if an append carried it. */
  commandResult(commandId: string): Promise<AppendResult | undefined>;
  /** Key/value side storage for disposable data: state checkpoints, projection checkpoints, audit records. */
  getDoc(collection: string, key: string): Promise<unknown | undefined>;
  putDoc(collection: string, key: string, value: unknown): Promise<void>;
  close(): Promise<void>;
  /**
   * Set when the store was opened for reading although its integrity check failed (SQLite `whenDamaged:
   * 'read-only'`): what the check found. Every write is then refused.
   */
  readonly damage?: string | undefined;
}
