// The EventStore on an open SQLite database (see index.ts): appends queued and written by group commit, each in
// its own savepoint; reads; following the log (this process's appends offered, other processes' polled); docs.

import { setImmediate as nextTurn } from 'node:timers/promises';

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
  revisionMatches,
  toJson,
  type EncodedDoc,
  type EncodedEvent,
  type PreparedDocs,
  type StoredEventRow,
} from '../common';
import {
  StoreCorruptError,
  StoreFullError,
  WrongExpectedRevisionError,
  type AppendOptions,
  type AppendResult,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
} from '../types';
import { corruptionFor, sqliteCode } from './checks';
import { EVENT_COLUMNS } from './tables';

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

export interface CommandRow {
  revision: number;
  position: number;
}

/** One queued write: an append, or a putDoc. Settled after the COMMIT of the transaction that carried it. */
export type QueuedWrite = (
  | { kind: 'append'; stream: string; events: EncodedEvent[]; options: AppendOptions; docs: PreparedDocs }
  | { kind: 'doc'; doc: EncodedDoc }
) & {
  /** Encoded size, for the batch bound. */
  bytes: number;
  resolve: (value: AppendResult | undefined) => void;
  reject: (error: unknown) => void;
};

export type WriteOutcome = { ok: true; value: AppendResult | undefined } | { ok: false; error: unknown };

/**
 * SQLite errors after which the transaction cannot go on (or SQLite has already rolled it back): the whole batch
 * fails. Anything else raised by one write (our own WrongExpectedRevisionError, a docs function that throws, a
 * constraint or size error of one row) is undone by that write's savepoint and fails that write alone.
 */
export function failsTheBatch(error: unknown, db: Database.Database): boolean {
  if (!db.inTransaction) return true;
  const code = sqliteCode(error);
  if (code === undefined) return false;
  return !(code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_TOOBIG' || code === 'SQLITE_MISMATCH' || code === 'SQLITE_RANGE');
}

/** A write of a batch failed after it had changed rows: the batch is written again, a savepoint per write. */
class WriteFailedMidway extends Error {
  constructor(cause: unknown) {
    super('a write failed midway', { cause });
  }
}

export class SqliteStore implements SqliteEventStore {
  private readonly followers = new Set<LogFollower>();
  private pollTimer: NodeJS.Timeout | undefined;
  private headSeenByPoller = -1;
  private closed = false;

  // Prepared once: statement compilation costs more than the query itself for these point lookups.
  private readonly statements;
  /** The batch in one IMMEDIATE transaction; each write of a batch of several inside a nested one (a SAVEPOINT). */
  private readonly batchTransaction;
  private readonly wholeBatch;
  private readonly savepoint;
  /** Inside a write transaction: the global position of the last fact written so far (read once a batch). */
  private lastPosition = 0;

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
      claimCommand: db.prepare<[string, string, number, number]>(
        'INSERT INTO commands (command_id, stream, revision, position) VALUES (?, ?, ?, ?) ON CONFLICT (command_id) DO NOTHING',
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
    this.wholeBatch = db.transaction((batch: QueuedWrite[], outcomes: WriteOutcome[]) => {
      for (const write of batch) {
        try {
          outcomes.push({ ok: true, value: this.writeInLock(write) });
        } catch (error) {
          // Refused before it changed a row: fails alone, as in a savepoint of its own.
          if (error instanceof WrongExpectedRevisionError) outcomes.push({ ok: false, error });
          else throw new WriteFailedMidway(error);
        }
      }
    });
    this.batchTransaction = db.transaction((batch: QueuedWrite[], outcomes: WriteOutcome[]) => {
      this.lastPosition = this.statements.headPosition.get() ?? 0;
      if (batch.length === 1) {
        // Alone in its transaction: an error rolls back the transaction, which is exactly this write.
        outcomes.push({ ok: true, value: this.writeInLock(batch[0]!) });
        return;
      }
      // One savepoint around the batch rather than one per write (two statements less per write). A write that
      // fails after changing rows is rare (a constraint, a docs function that throws); then the batch is rolled
      // back to that savepoint and written again with a savepoint per write, so that it fails alone.
      try {
        this.wholeBatch(batch, outcomes);
        return;
      } catch (error) {
        if (!(error instanceof WriteFailedMidway)) throw error;
        if (failsTheBatch(error.cause, db)) throw error.cause;
      }
      outcomes.length = 0;
      this.lastPosition = this.statements.headPosition.get() ?? 0;
      for (const write of batch) {
        const before = this.lastPosition;
        try {
          outcomes.push({ ok: true, value: this.savepoint(write) });
        } catch (error) {
          if (failsTheBatch(error, db)) throw error;
          this.lastPosition = before;
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
    const head = this.statements.streamHead.get(stream);
    const actual = head ? head.revision : 'no-stream';
    if (events.length === 0 || !revisionMatches(options.expectedRevision, actual)) {
      // A retry of a recorded command gets its first result, whatever the stream's revision is now.
      const first = commandId === undefined ? undefined : this.statements.commandResult.get(commandId);
      if (first) return { revision: first.revision, position: first.position, duplicate: true };
      checkExpectedRevision(stream, options.expectedRevision, actual);
      return { revision: head?.revision ?? NO_STREAM_REVISION, position: head?.position ?? 0, duplicate: false };
    }
    const revision = (head ? head.revision : NO_STREAM_REVISION) + events.length;
    const position = this.lastPosition + events.length;
    // The command's row first, claimed or found taken in one statement (not a lookup, then an insert): a command
    // id recorded before is a retry, and nothing of it is written again.
    if (commandId !== undefined && this.statements.claimCommand.run(commandId, stream, revision, position).changes === 0) {
      const first = this.statements.commandResult.get(commandId)!;
      return { revision: first.revision, position: first.position, duplicate: true };
    }
    const firstRevision = revision - events.length + 1;
    const firstPosition = position - events.length + 1;
    events.forEach((event, i) =>
      this.statements.insertEvent.run(firstPosition + i, stream, firstRevision + i, event.type, event.data, event.metadata),
    );
    this.lastPosition = position;
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
      await nextTurn(); // see readAll
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
      // The reads are synchronous: without a turn of the event loop between pages, a fold of a long log (the
      // UI's projections, the host index) would keep every socket of the process waiting until it ends.
      await nextTurn();
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
