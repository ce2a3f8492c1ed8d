// In-memory event store: the same semantics as the SQLite store, nothing survives the process.
// Used by `--store memory` and by unit tests. Facts and docs are kept as JSON text, exactly as SQLite keeps
// them, so a value read back is a fresh copy with the same JSON round-trip (dates become strings, and so on).

import {
  LogFollower,
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
  type StoredEventRow,
} from './common';
import type { AppendOptions, AppendResult, EventStore, NewEvent, RecordedEvent, Subscription } from './types';

/** Opens the store of the spec `memory` (registry.ts). */
export function openMemorySpec(spec: string): EventStore {
  if (spec !== 'memory') throw new Error(`bad store spec '${spec}': the in-memory store is written just 'memory'`);
  return createMemoryEventStore();
}

export function createMemoryEventStore(): EventStore {
  /** rows[position - 1]: the global log. */
  const rows: StoredEventRow[] = [];
  /** Global positions of each stream's facts, indexed by revision. */
  const streams = new Map<string, number[]>();
  const commands = new Map<string, { revision: number; position: number }>();
  const docs = new Map<string, string>();
  const followers = new Set<LogFollower>();
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new Error('event store is closed (memory)');
  }

  function readAllPage(after: number, limit: number): RecordedEvent[] {
    assertOpen();
    return rows.slice(after, after + limit).map(decodeEvent);
  }

  const docKey = (collection: string, key: string) => `${collection}\u0000${key}`;

  return {
    async append(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
      assertOpen();
      assertStreamName(stream);
      assertAppendOptions(options);
      const encoded = encodeEvents(stream, events);
      const preparedDocs = prepareDocs(options);

      if (options.commandId !== undefined) {
        const first = commands.get(options.commandId);
        if (first) return { ...first, duplicate: true };
      }

      const positions = streams.get(stream) ?? [];
      const actual = positions.length === 0 ? 'no-stream' : positions.length - 1;
      checkExpectedRevision(stream, options.expectedRevision, actual);

      if (encoded.length === 0) {
        const empty = { revision: positions.length - 1, position: positions.at(-1) ?? 0, duplicate: false };
        for (const doc of resolveDocs(preparedDocs, empty)) docs.set(docKey(doc.collection, doc.key), doc.value);
        return empty;
      }

      // Resolved before anything is written, as if in one transaction: a docs function that throws writes nothing.
      const n = encoded.length;
      const outcome = { revision: positions.length - 1 + n, position: rows.length + n, duplicate: false };
      const docWrites = resolveDocs(preparedDocs, outcome);
      for (const event of encoded) {
        const position = rows.length + 1;
        rows.push({ position, stream, revision: positions.length, ...event });
        positions.push(position);
      }
      streams.set(stream, positions);
      const result = { revision: positions.length - 1, position: rows.length };
      if (options.commandId !== undefined) commands.set(options.commandId, result);
      for (const doc of docWrites) docs.set(docKey(doc.collection, doc.key), doc.value);
      for (const follower of followers) follower.wake();
      return { ...result, duplicate: false };
    },

    async *readStream(stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
      assertOpen();
      assertStreamName(stream);
      assertRevision(fromRevision);
      const positions = streams.get(stream);
      if (!positions) return;
      for (let revision = fromRevision; revision < positions.length; revision++) {
        assertOpen();
        yield decodeEvent(rows[positions[revision]! - 1]!);
      }
    },

    async streamRevision(stream: string): Promise<number | 'no-stream'> {
      assertOpen();
      assertStreamName(stream);
      const length = streams.get(stream)?.length ?? 0;
      return length === 0 ? 'no-stream' : length - 1;
    },

    async *readAll(after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
      assertOpen();
      assertPosition(after);
      assertLimit(limit);
      const end = Math.min(rows.length, after + limit);
      for (let index = after; index < end; index++) {
        assertOpen();
        yield decodeEvent(rows[index]!);
      }
    },

    async headPosition(): Promise<number> {
      assertOpen();
      return rows.length;
    },

    subscribe(after: number, onEvent): Subscription {
      assertOpen();
      const follower = new LogFollower(after, readAllPage, onEvent, (stopped) => followers.delete(stopped));
      followers.add(follower);
      return follower;
    },

    async commandResult(commandId: string): Promise<AppendResult | undefined> {
      assertOpen();
      const first = commands.get(commandId);
      return first && { ...first, duplicate: true };
    },

    async getDoc(collection: string, key: string): Promise<unknown | undefined> {
      assertOpen();
      const text = docs.get(docKey(collection, key));
      return text === undefined ? undefined : (JSON.parse(text) as unknown);
    },

    async putDoc(collection: string, key: string, value: unknown): Promise<void> {
      assertOpen();
      docs.set(docKey(collection, key), toJson(value, `doc '${collection}/${key}'`));
    },

    async close(): Promise<void> {
      if (closed) return;
      await Promise.all([...followers].map((follower) => follower.close()));
      closed = true;
    },
  };
}
