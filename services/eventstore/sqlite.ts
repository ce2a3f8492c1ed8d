// The embedded default event store: one SQLite file through better-sqlite3, no server.
//
// Durability: WAL journal with synchronous = FULL, so an append is on disk (WAL fsynced) before it resolves.
// Concurrency: writes are made in IMMEDIATE transactions, which take SQLite's write lock before reading the
// stream's revision, so appenders in other processes on the same file are serialised and positions stay gap-free.
// Group commit: appends (and putDoc) are queued and written as soon as the work in progress yields (see enqueue),
// all of them in one transaction, so appends made concurrently (different commands in flight) share one fsync.
// Each append runs inside its own SAVEPOINT, so one append's conflict or failure undoes only that append; every
// promise resolves or rejects after the COMMIT (an acknowledged append is on disk, as before), and subscribers
// are woken after it. A failure of the transaction itself (disk full, I/O error) fails every write of the batch,
// and nothing of it is stored. A batch is bounded (256 writes, 4 MiB by default); a longer queue takes several.
// Safety: a file that is not a vmledger store is inspected read-only and refused, never modified.

import { closeSync, existsSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

import {
  LogFollower,
  NO_STREAM_REVISION,
  READ_PAGE_SIZE,
  assertAppendOptions,
  assertLimit,
  assertPosition,
  assertRevision,
  assertStreamName,
  checkExpectedRevision,
  decodeEvent,
  encodeEvents,
  prepareDocs,
  resolveDocs,
  toJson,
  type EncodedDoc,
  type EncodedEvent,
  type PreparedDocs,
  type StoredEventRow,
} from './shared';
import {
  StoreCorruptError,
  StoreFullError,
  type AppendOptions,
  type AppendResult,
  type EventStore,
  type NewEvent,
  type OpenStoreOptions,
  type RecordedEvent,
  type Subscription,
} from './types';

/** File name used when the configuration names no store: `sqlite:vmledger.sqlite` in the working directory. */
export const DEFAULT_STORE_FILE = 'vmledger.sqlite';

/** Opens the store of a spec `sqlite:PATH` (registry.ts); relative paths resolve against the working directory. */
export function openSqliteSpec(spec: string, options?: OpenStoreOptions): SqliteEventStore {
  const path = spec.slice('sqlite:'.length);
  if (path.trim() === '') {
    throw new Error(`bad store spec '${spec}': the path is missing; write sqlite:PATH, e.g. sqlite:${DEFAULT_STORE_FILE}`);
  }
  if (path.startsWith('//')) {
    throw new Error(
      `bad store spec '${spec}': write sqlite:PATH with a plain path, e.g. sqlite:./${DEFAULT_STORE_FILE} ` +
        `or sqlite:/var/lib/vmledger/${DEFAULT_STORE_FILE} (no '//')`,
    );
  }
  return openSqliteEventStore(resolve(path), options?.purpose === 'read' ? { whenDamaged: 'read-only' } : {});
}

/** Value of `PRAGMA application_id` in every vmledger store: ASCII "VMLG". */
export const VMLEDGER_APPLICATION_ID = 0x564d4c47;
/** Format marker kept in the `meta` table; bump the suffix when the schema changes incompatibly. */
export const SQLITE_STORE_FORMAT = 'vmledger-eventstore/1';

export interface SqliteEventStoreOptions {
  /**
   * How often (ms) a waiting subscription looks for facts appended by other processes on the same file.
   * Appends made through this store object wake subscriptions at once. Default 50.
   */
  pollIntervalMs?: number;
  /**
   * Check done on open. 'header' checks the SQLite header and reads the schema, which catches a file that is not
   * SQLite and a damaged header. 'quick' (default) also runs `PRAGMA quick_check`, which reads every page and
   * catches a damaged page (4 KiB of junk mid-file) before anything is written. 'full' runs `PRAGMA
   * integrity_check`, which also checks every index against its table (README: the time each takes on a
   * million facts). Neither sees bytes changed inside a record's JSON: the hash chains do (services/replay.ts).
   */
  integrityCheck?: 'header' | 'quick' | 'full';
  /**
   * What a failed integrity check does: 'refuse' (default) throws StoreCorruptError; 'read-only' opens the store
   * for reading (audit, replay), with `damage` saying what the check found, and every write refused.
   */
  whenDamaged?: 'refuse' | 'read-only';
  /** How long (ms) an append waits for another process's write lock before failing. Default 5000. */
  busyTimeoutMs?: number;
  /** Caps the file size in pages (`PRAGMA max_page_count`); lets tests take the disk-full path. */
  maxPageCount?: number;
  /**
   * Bounds of one group commit: at most this many writes (appends and putDoc) per transaction (default 256) and
   * about this many bytes of encoded facts and docs (default 4 MiB); a longer queue is written in several.
   */
  maxBatchWrites?: number;
  maxBatchBytes?: number;
}

export const DEFAULT_MAX_BATCH_WRITES = 256;
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024;

const SQLITE_MAGIC = Buffer.from('SQLite format 3\u0000', 'latin1');
const SQLITE_HEADER_SIZE = 100;

const SCHEMA = `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE events (
    position INTEGER PRIMARY KEY,   -- global position, 1-based, gap-free
    stream   TEXT    NOT NULL,
    revision INTEGER NOT NULL,      -- 0-based within the stream
    type     TEXT    NOT NULL,
    data     TEXT    NOT NULL,      -- JSON
    metadata TEXT    NOT NULL,      -- JSON
    UNIQUE (stream, revision)
  ) STRICT;
  CREATE TABLE commands (
    command_id TEXT PRIMARY KEY,    -- idempotency key: the first result of a command, forever
    stream     TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    position   INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE docs (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,       -- JSON
    PRIMARY KEY (collection, key)
  ) STRICT, WITHOUT ROWID;
`;
const STORE_TABLES = ['commands', 'docs', 'events', 'meta'];

const EVENT_COLUMNS = 'position, stream, revision, type, data, metadata';

/** Counters of the group commit since the store was opened (for benchmarks and tests). */
export interface GroupCommitStats {
  /** Transactions committed (each one fsync). */
  transactions: number;
  /** Writes (appends and putDoc) they carried, refused ones included. */
  writes: number;
  largestBatch: number;
  /** Milliseconds the event loop spent inside write transactions (SQL and the fsync of each COMMIT). */
  commitMs: number;
}

export interface SqliteEventStore extends EventStore {
  readonly groupCommitStats: Readonly<GroupCommitStats>;
}

export function openSqliteEventStore(path: string, options: SqliteEventStoreOptions = {}): SqliteEventStore {
  const file = resolve(path);
  const pollIntervalMs = options.pollIntervalMs ?? 50;
  if (!(pollIntervalMs > 0)) throw new TypeError(`pollIntervalMs must be > 0, got ${pollIntervalMs}`);

  refuseUnusablePath(file);
  const hasContent = existsSync(file) && statSync(file).size > 0;
  if (hasContent) {
    refuseNonSqliteFile(file);
    refuseForeignDatabase(file);
  }

  const db = explainCorruption(file, () => new Database(file, { timeout: options.busyTimeoutMs ?? 5000 }));
  try {
    explainCorruption(file, () => {
      initialise(file, db);
      const journalMode = db.pragma('journal_mode = WAL', { simple: true });
      if (journalMode !== 'wal') {
        throw new Error(`cannot use '${file}' as an event store: SQLite refused WAL mode (journal_mode is ${String(journalMode)})`);
      }
      db.pragma('synchronous = FULL');
      if (options.maxPageCount !== undefined) db.pragma(`max_page_count = ${Math.floor(options.maxPageCount)}`);
    });
  } catch (error) {
    db.close();
    throw error;
  }
  let damage: string | undefined;
  const check = options.integrityCheck ?? 'quick';
  if (check !== 'header') {
    damage = integrityProblems(file, db, check);
    if (damage !== undefined && (options.whenDamaged ?? 'refuse') === 'refuse') {
      db.close();
      throw new StoreCorruptError(`${damage}; it was not opened, so nothing was written to it (read it with 'vmledger replay')`);
    }
  }
  const store = new SqliteStore(file, db, pollIntervalMs, {
    maxWrites: Math.max(1, Math.floor(options.maxBatchWrites ?? DEFAULT_MAX_BATCH_WRITES)),
    maxBytes: Math.max(1, Math.floor(options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES)),
  });
  if (damage !== undefined) store.damage = damage;
  return store;
}

/** The folder must exist (we do not guess where a ledger should live) and the path must not be a folder. */
function refuseUnusablePath(file: string): void {
  const folder = dirname(file);
  if (!existsSync(folder)) {
    throw new Error(`cannot open event store '${file}': folder '${folder}' does not exist (create it first)`);
  }
  if (!statSync(folder).isDirectory()) {
    throw new Error(`cannot open event store '${file}': '${folder}' is not a folder`);
  }
  if (existsSync(file) && !statSync(file).isFile()) {
    throw new Error(`cannot open event store '${file}': it is not a regular file`);
  }
}

/** Reads the 100-byte header ourselves, so a text file or random bytes are refused without SQLite touching them. */
function refuseNonSqliteFile(file: string): void {
  const header = Buffer.alloc(SQLITE_HEADER_SIZE);
  const fd = openSync(file, 'r');
  let length: number;
  try {
    length = readSync(fd, header, 0, SQLITE_HEADER_SIZE, 0);
  } finally {
    closeSync(fd);
  }
  if (length < SQLITE_HEADER_SIZE || !header.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    throw new StoreCorruptError(
      `'${file}' is not a vmledger store: it is not a SQLite database (no SQLite header: ` +
        `some other kind of file, or a store whose header is damaged); the file was left as it is`,
    );
  }
}

/**
 * Classifies the file through a read-only connection, so a foreign database never gets a write or a WAL
 * checkpoint from us. A read-only connection to a WAL-mode file creates `-wal`/`-shm` side files; when we
 * refuse the file we remove the ones that were not there before, leaving the folder as we found it.
 */
function refuseForeignDatabase(file: string): void {
  const sideFilesWeMayCreate = [`${file}-wal`, `${file}-shm`].filter((side) => !existsSync(side));
  try {
    const inspector = explainCorruption(file, () => new Database(file, { readonly: true, fileMustExist: true }));
    try {
      const verdict = explainCorruption(file, () => classify(inspector));
      if (verdict.kind === 'foreign') {
        throw new StoreCorruptError(`'${file}' is not a vmledger store: ${verdict.reason}; the file was left as it is`);
      }
    } finally {
      inspector.close();
    }
  } catch (error) {
    // Only side files we just created and nobody wrote into (an empty WAL) are ours to remove.
    const walIsEmpty = !existsSync(`${file}-wal`) || statSync(`${file}-wal`).size === 0;
    if (error instanceof StoreCorruptError && walIsEmpty) {
      for (const side of sideFilesWeMayCreate) rmSync(side, { force: true });
    }
    throw error;
  }
}

type Classification = { kind: 'empty' } | { kind: 'vmledger' } | { kind: 'foreign'; reason: string };

function classify(db: Database.Database): Classification {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const tables = db
    .prepare<[], string>(
      "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .pluck()
    .all();
  const format = tables.includes('meta') ? readFormat(db) : undefined;

  if (applicationId === 0 && tables.length === 0) return { kind: 'empty' };
  if (applicationId !== VMLEDGER_APPLICATION_ID && applicationId !== 0) {
    const hex = `0x${(applicationId >>> 0).toString(16).padStart(8, '0')}`;
    return { kind: 'foreign', reason: `it is a SQLite database of another application (application_id ${hex})` };
  }
  if (format === undefined) {
    return applicationId === VMLEDGER_APPLICATION_ID
      ? { kind: 'foreign', reason: 'it carries the vmledger application id but has no format marker (damaged store)' }
      : { kind: 'foreign', reason: `it is a SQLite database with other tables (${tables.join(', ')})` };
  }
  if (format !== SQLITE_STORE_FORMAT) {
    return {
      kind: 'foreign',
      reason: `its format is '${format}' and this vmledger reads only '${SQLITE_STORE_FORMAT}'`,
    };
  }
  const missing = STORE_TABLES.filter((table) => !tables.includes(table));
  if (missing.length > 0) {
    return { kind: 'foreign', reason: `it is a damaged vmledger store: table(s) ${missing.join(', ')} are missing` };
  }
  return { kind: 'vmledger' };
}

function readFormat(db: Database.Database): string | undefined {
  try {
    return db.prepare<[], string>("SELECT value FROM meta WHERE key = 'format'").pluck().get();
  } catch {
    return undefined; // a foreign table that happens to be called `meta`
  }
}

/** Creates the schema in an empty file; re-classifies inside the write lock in case another process raced us. */
function initialise(file: string, db: Database.Database): void {
  const run = db.transaction(() => {
    const verdict = classify(db);
    if (verdict.kind === 'foreign') {
      throw new StoreCorruptError(`'${file}' is not a vmledger store: ${verdict.reason}; the file was left as it is`);
    }
    if (verdict.kind === 'vmledger') return;
    db.exec(SCHEMA);
    db.prepare("INSERT INTO meta (key, value) VALUES ('format', ?)").run(SQLITE_STORE_FORMAT);
    db.pragma(`application_id = ${VMLEDGER_APPLICATION_ID}`);
  });
  run.immediate();
}

/** What SQLite's own check finds wrong with the file (naming the pages), or undefined when it says ok. */
function integrityProblems(file: string, db: Database.Database, check: 'quick' | 'full'): string | undefined {
  const pragma = check === 'quick' ? 'quick_check' : 'integrity_check';
  let problems: string[];
  try {
    problems = db.prepare<[], string>(`PRAGMA ${pragma}(5)`).pluck().all();
  } catch (error) {
    if (!corruptionFor(file, error)) throw error;
    problems = [(error as Error).message];
  }
  if (problems.length === 1 && problems[0] === 'ok') return undefined;
  return `'${file}' is a damaged vmledger store: ${pragma} found ${problems.join('; ')}`;
}

function sqliteCode(error: unknown): string | undefined {
  return error instanceof Database.SqliteError ? error.code : undefined;
}

function corruptionFor(file: string, error: unknown): StoreCorruptError | undefined {
  const code = sqliteCode(error) ?? '';
  const detail = (error as Error).message;
  if (code === 'SQLITE_NOTADB') {
    return new StoreCorruptError(
      `'${file}' is not a vmledger store: SQLite says "${detail}" (the header is damaged or it is another kind of file)`,
    );
  }
  if (code.startsWith('SQLITE_CORRUPT')) {
    return new StoreCorruptError(`'${file}' is a damaged SQLite database: ${detail}`);
  }
  return undefined;
}

function explainCorruption<T>(file: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw corruptionFor(file, error) ?? error;
  }
}

interface CommandRow {
  revision: number;
  position: number;
}

/** One queued write: an append, or a putDoc. Settled after the COMMIT of the transaction that carried it. */
type QueuedWrite = (
  | { kind: 'append'; stream: string; events: EncodedEvent[]; options: AppendOptions; docs: PreparedDocs }
  | { kind: 'doc'; doc: EncodedDoc }
) & {
  /** Encoded size, for the batch bound. */
  bytes: number;
  resolve: (value: AppendResult | undefined) => void;
  reject: (error: unknown) => void;
};

type WriteOutcome = { ok: true; value: AppendResult | undefined } | { ok: false; error: unknown };

/**
 * SQLite errors after which the transaction cannot go on (or SQLite has already rolled it back): the whole batch
 * fails. Anything else raised by one write (our own WrongExpectedRevisionError, a docs function that throws, a
 * constraint or size error of one row) is undone by that write's savepoint and fails that write alone.
 */
function failsTheBatch(error: unknown, db: Database.Database): boolean {
  if (!db.inTransaction) return true;
  const code = sqliteCode(error);
  if (code === undefined) return false;
  return !(code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_TOOBIG' || code === 'SQLITE_MISMATCH' || code === 'SQLITE_RANGE');
}

class SqliteStore implements SqliteEventStore {
  private readonly followers = new Set<LogFollower>();
  private pollTimer: NodeJS.Timeout | undefined;
  private headSeenByPoller = -1;
  private closed = false;

  // Prepared once: statement compilation costs more than the query itself for these point lookups.
  private readonly statements;
  /** The batch in one IMMEDIATE transaction; each write of a batch of several inside a nested one (a SAVEPOINT). */
  private readonly batchTransaction;
  private readonly savepoint;

  // Group commit: writes wait in `queue` for the flush that enqueue() schedules.
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  /** Figures of the group commit, for benchmarks and tests. */
  readonly groupCommitStats: GroupCommitStats = { transactions: 0, writes: 0, largestBatch: 0, commitMs: 0 };
  /** Set when the store was opened read-only because its integrity check failed: what it found. */
  damage: string | undefined;

  constructor(
    private readonly file: string,
    private readonly db: Database.Database,
    private readonly pollIntervalMs: number,
    private readonly batchBounds: { maxWrites: number; maxBytes: number },
  ) {
    this.statements = {
      commandResult: db.prepare<[string], CommandRow>('SELECT revision, position FROM commands WHERE command_id = ?'),
      streamHead: db.prepare<[string], CommandRow>(
        'SELECT revision, position FROM events WHERE stream = ? ORDER BY revision DESC LIMIT 1',
      ),
      headPosition: db.prepare<[], number>('SELECT COALESCE(MAX(position), 0) FROM events').pluck(),
      insertEvent: db.prepare<[number, string, number, string, string, string]>(
        `INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      insertCommand: db.prepare<[string, string, number, number]>(
        'INSERT INTO commands (command_id, stream, revision, position) VALUES (?, ?, ?, ?)',
      ),
      streamPage: db.prepare<[string, number, number], StoredEventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?`,
      ),
      logPage: db.prepare<[number, number], StoredEventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?`,
      ),
      getDoc: db.prepare<[string, string], string>('SELECT value FROM docs WHERE collection = ? AND key = ?').pluck(),
      putDoc: db.prepare<[string, string, string]>(
        'INSERT INTO docs (collection, key, value) VALUES (?, ?, ?) ' +
          'ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value',
      ),
    };
    this.savepoint = db.transaction((write: QueuedWrite) => this.writeInLock(write));
    this.batchTransaction = db.transaction((batch: QueuedWrite[], outcomes: WriteOutcome[]) => {
      if (batch.length === 1) {
        // Alone in its transaction: an error rolls back the transaction, which is exactly this write.
        outcomes.push({ ok: true, value: this.writeInLock(batch[0]!) });
        return;
      }
      for (const write of batch) {
        try {
          outcomes.push({ ok: true, value: this.savepoint(write) });
        } catch (error) {
          if (failsTheBatch(error, db)) throw error;
          outcomes.push({ ok: false, error });
        }
      }
    });
  }

  async append(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.assertOpen();
    this.assertWritable();
    assertStreamName(stream);
    assertAppendOptions(options);
    // Encoded now: a fact or doc JSON cannot carry is this caller's TypeError, before anything is queued.
    const encoded = encodeEvents(stream, events);
    const docs = prepareDocs(options);
    let bytes = stream.length;
    for (const event of encoded) bytes += event.type.length + event.data.length + event.metadata.length;
    if (Array.isArray(docs)) for (const doc of docs) bytes += doc.collection.length + doc.key.length + doc.value.length;
    return new Promise<AppendResult | undefined>((resolve, reject) => {
      this.enqueue({ kind: 'append', stream, events: encoded, options, docs, bytes, resolve, reject });
    }) as Promise<AppendResult>;
  }

  /** Runs inside the IMMEDIATE transaction: the reads below cannot be invalidated before the inserts commit. */
  private writeInLock(write: QueuedWrite): AppendResult | undefined {
    if (write.kind === 'doc') {
      this.statements.putDoc.run(write.doc.collection, write.doc.key, write.doc.value);
      return undefined;
    }
    const result = this.appendInLock(write.stream, write.events, write.options);
    if (!result.duplicate && write.docs !== undefined) {
      for (const doc of resolveDocs(write.docs, result)) this.statements.putDoc.run(doc.collection, doc.key, doc.value);
    }
    return result;
  }

  private appendInLock(stream: string, events: EncodedEvent[], options: AppendOptions): AppendResult {
    const { commandId } = options;
    if (commandId !== undefined) {
      const first = this.statements.commandResult.get(commandId);
      if (first) return { revision: first.revision, position: first.position, duplicate: true };
    }

    const head = this.statements.streamHead.get(stream);
    checkExpectedRevision(stream, options.expectedRevision, head ? head.revision : 'no-stream');
    if (events.length === 0) {
      return { revision: head?.revision ?? NO_STREAM_REVISION, position: head?.position ?? 0, duplicate: false };
    }

    let revision = head ? head.revision : NO_STREAM_REVISION;
    let position = this.statements.headPosition.get() ?? 0;
    for (const event of events) {
      revision += 1;
      position += 1;
      this.statements.insertEvent.run(position, stream, revision, event.type, event.data, event.metadata);
    }
    if (commandId !== undefined) this.statements.insertCommand.run(commandId, stream, revision, position);
    return { revision, position, duplicate: false };
  }

  /**
   * The flush runs on process.nextTick: after the promise jobs already under way have run as far as they can
   * without I/O. So every append issued by the work one I/O event started (say, 64 NATS requests read in one
   * socket chunk, each running through the ledger to its append) rides on one transaction and one fsync, while a
   * lone appender pays well under a microsecond on top of its fsync (no slower than writing at once: bench/run.ts
   * section a). setImmediate would also gather appends from other I/O events of the same loop turn; measured on
   * the NATS bench it made batches no bigger, and it costs a few microseconds more per flush.
   */
  private enqueue(write: QueuedWrite): void {
    this.queue.push(write);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes everything queued, in batches within the bounds, one transaction (one fsync) per batch. */
  private flush(): void {
    while (this.queue.length > 0) {
      const { maxWrites, maxBytes } = this.batchBounds;
      let count = 0;
      let bytes = 0;
      // At least one write per batch, however big it is.
      while (count < this.queue.length && count < maxWrites && (count === 0 || bytes + this.queue[count]!.bytes <= maxBytes)) {
        bytes += this.queue[count]!.bytes;
        count++;
      }
      const batch = this.queue.length === count ? this.queue : this.queue.slice(0, count);
      this.queue = this.queue.length === count ? [] : this.queue.slice(count);
      this.commitBatch(batch);
    }
  }

  private commitBatch(batch: QueuedWrite[]): void {
    const outcomes: WriteOutcome[] = [];
    const started = performance.now();
    try {
      if (this.closed) throw new Error(`event store '${this.file}' is closed`);
      this.batchTransaction.immediate(batch, outcomes);
    } catch (error) {
      // Rolled back as a whole: nothing of this batch is stored.
      for (const write of batch) write.reject(this.explainWriteFailure(error, this.nothingWritten(write)));
      return;
    }
    this.groupCommitStats.commitMs += performance.now() - started;
    this.groupCommitStats.transactions += 1;
    this.groupCommitStats.writes += batch.length;
    if (batch.length > this.groupCommitStats.largestBatch) this.groupCommitStats.largestBatch = batch.length;
    // The facts this batch appended, in position order (one IMMEDIATE transaction: contiguous), for followers.
    const rows: StoredEventRow[] = [];
    for (let i = 0; i < batch.length; i++) {
      const write = batch[i]!;
      const outcome = outcomes[i]!;
      if (!outcome.ok) {
        write.reject(this.explainWriteFailure(outcome.error, this.nothingWritten(write)));
        continue;
      }
      const result = outcome.value!;
      if (write.kind === 'append' && !result.duplicate && write.events.length > 0 && this.followers.size > 0) {
        // The result names the last fact of the append; the others come right before it.
        const last = write.events.length - 1;
        write.events.forEach((e, j) =>
          rows.push({ ...e, stream: write.stream, revision: result.revision - last + j, position: result.position - last + j }),
        );
      }
      write.resolve(result);
    }
    // After the COMMIT: subscribers never see a fact that could still be rolled back.
    if (rows.length > 0) for (const follower of this.followers) follower.offer(rows.map(decodeEvent));
  }

  private nothingWritten(write: QueuedWrite): string {
    return write.kind === 'append'
      ? `nothing was appended to stream '${write.stream}'`
      : `doc '${write.doc.collection}/${write.doc.key}' was not written`;
  }

  async *readStream(stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
    assertStreamName(stream);
    assertRevision(fromRevision);
    let next = fromRevision;
    for (;;) {
      this.assertOpen();
      const page = this.statements.streamPage.all(stream, next, READ_PAGE_SIZE);
      for (const row of page) yield decodeEvent(row);
      if (page.length < READ_PAGE_SIZE) return;
      next = page.at(-1)!.revision + 1;
    }
  }

  async streamRevision(stream: string): Promise<number | 'no-stream'> {
    this.assertOpen();
    assertStreamName(stream);
    return this.statements.streamHead.get(stream)?.revision ?? 'no-stream';
  }

  async *readAll(after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
    assertPosition(after);
    assertLimit(limit);
    let last = after;
    let remaining = limit;
    while (remaining > 0) {
      this.assertOpen();
      // Decoded one by one, so a damaged record is met (DamagedRecordError) after every fact before it was read.
      const page = this.statements.logPage.all(last, Math.min(READ_PAGE_SIZE, remaining));
      for (const row of page) yield decodeEvent(row);
      if (page.length < Math.min(READ_PAGE_SIZE, remaining)) return;
      last = page.at(-1)!.position;
      remaining -= page.length;
    }
  }

  async headPosition(): Promise<number> {
    this.assertOpen();
    return this.statements.headPosition.get() ?? 0;
  }

  subscribe(after: number, onEvent: (event: RecordedEvent) => void | Promise<void>): Subscription {
    this.assertOpen();
    const follower = new LogFollower(
      after,
      (from, limit) => this.readLogPage(from, limit),
      onEvent,
      (stopped) => {
        this.followers.delete(stopped);
        if (this.followers.size === 0) this.stopPolling();
      },
    );
    this.followers.add(follower);
    this.startPolling();
    return follower;
  }

  async commandResult(commandId: string): Promise<AppendResult | undefined> {
    this.assertOpen();
    const first = this.statements.commandResult.get(commandId);
    return first && { revision: first.revision, position: first.position, duplicate: true };
  }

  async getDoc(collection: string, key: string): Promise<unknown | undefined> {
    this.assertOpen();
    const text = this.statements.getDoc.get(collection, key);
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  }

  async putDoc(collection: string, key: string, value: unknown): Promise<void> {
    this.assertOpen();
    this.assertWritable();
    const doc: EncodedDoc = { collection, key, value: toJson(value, `doc '${collection}/${key}'`) };
    // Queued like an append: durable when it resolves, and it shares the fsync of writes in flight.
    await new Promise<AppendResult | undefined>((resolve, reject) => {
      this.enqueue({ kind: 'doc', doc, bytes: collection.length + key.length + doc.value.length, resolve, reject });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.followers].map((follower) => follower.close()));
    this.stopPolling();
    // Writes accepted before close() are written, not dropped.
    this.flush();
    this.closed = true;
    this.db.close();
  }

  private readLogPage(after: number, limit: number): RecordedEvent[] {
    this.assertOpen();
    return this.statements.logPage.all(after, limit).map(decodeEvent);
  }

  private wakeFollowers(): void {
    for (const follower of this.followers) follower.wake();
  }

  /**
   * Appends from other processes (or other store objects on the same file) do not reach our followers
   * directly, so while anyone is subscribed we watch the head position. The timer keeps the process alive
   * for as long as a subscription is open, like a socket would.
   */
  private startPolling(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      if (this.closed) return;
      let head: number;
      try {
        head = this.statements.headPosition.get() ?? 0;
      } catch (error) {
        console.error(`vmledger: polling '${this.file}' for new facts failed (will retry):`, error);
        return;
      }
      if (head !== this.headSeenByPoller) {
        this.headSeenByPoller = head;
        this.wakeFollowers();
      }
    }, this.pollIntervalMs);
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.headSeenByPoller = -1;
  }

  private explainWriteFailure(error: unknown, nothingWritten: string): unknown {
    const code = sqliteCode(error);
    if (code === 'SQLITE_FULL') {
      return new StoreFullError(`disk is full: ${nothingWritten} ('${this.file}' is unchanged and still readable)`, {
        cause: error,
      });
    }
    return corruptionFor(this.file, error) ?? error;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`event store '${this.file}' is closed`);
  }

  private assertWritable(): void {
    if (this.damage !== undefined) throw new StoreCorruptError(`${this.damage}; opened for reading only, nothing is written to it`);
  }
}
