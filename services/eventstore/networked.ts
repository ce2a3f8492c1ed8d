// The EventStore of a networked backend (JetStream, EventStoreDB), built from the backend's functions of its own
// state: what both do the same way is written here once — the open check, docs after the facts (no transaction
// spans them), subscribe on a reopening live source (follow.ts), the command-id guard, and close (followers
// first, then the connection if the store owns it).

import { followLog, type AsyncLogFollower, type LiveSource } from './follow';
import { appendThenWriteDocs } from './common';
import type { AppendOptions, AppendResult, EventStore, NewEvent, RecordedEvent } from './types';

/** The state of one store object of a networked backend, as far as the shared parts need it. */
export interface NetworkedLog {
  closed: boolean;
  readonly followers: Set<AsyncLogFollower>;
  /** Which store this is, for messages: e.g. `JetStream stream 'VMLEDGER' at 127.0.0.1:4222`. */
  readonly label: string;
  /** Throws when the store is closed. */
  assertOpen(): void;
  /** Closes the connection or client if the store opened it itself. */
  release(): Promise<void>;
}

/** A backend's operations on its state `L`; each checks what it reads (stream names, positions) itself. */
export interface NetworkedBackend<L> {
  appendWithoutDocs(log: L, stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult>;
  readStream(log: L, stream: string, fromRevision: number): AsyncIterable<RecordedEvent>;
  streamRevision(log: L, stream: string): Promise<number | 'no-stream'>;
  readAll(log: L, after: number, limit: number): AsyncIterable<RecordedEvent>;
  headPosition(log: L): Promise<number>;
  liveFacts(log: L, ...source: Parameters<LiveSource>): ReturnType<LiveSource>;
  /** The first result of a (non-empty) command id, if an append carried it. */
  commandResult(log: L, commandId: string): Promise<AppendResult | undefined>;
  getDoc(log: L, collection: string, key: string): Promise<unknown | undefined>;
  putDoc(log: L, collection: string, key: string, value: unknown): Promise<void>;
}

export function networkedEventStore<L extends NetworkedLog>(log: L, backend: NetworkedBackend<L>): EventStore {
  const store: EventStore = {
    async append(stream, events, options) {
      log.assertOpen();
      return appendThenWriteDocs(store, stream, events, options, (s, e, o) => backend.appendWithoutDocs(log, s, e, o));
    },
    readStream: (stream, fromRevision = 0) => backend.readStream(log, stream, fromRevision),
    streamRevision: (stream) => backend.streamRevision(log, stream),
    readAll: (after = 0, limit = Number.POSITIVE_INFINITY) => backend.readAll(log, after, limit),
    headPosition: () => backend.headPosition(log),
    subscribe(after, onEvent) {
      log.assertOpen();
      return followLog(log.followers, after, (from, signal) => backend.liveFacts(log, from, signal), onEvent, log.label);
    },
    async commandResult(commandId) {
      log.assertOpen();
      if (typeof commandId !== 'string' || commandId === '') return undefined;
      return backend.commandResult(log, commandId);
    },
    getDoc: (collection, key) => backend.getDoc(log, collection, key),
    putDoc: (collection, key, value) => backend.putDoc(log, collection, key, value),
    async close() {
      if (log.closed) return;
      await Promise.all([...log.followers].map((follower) => follower.close()));
      log.closed = true;
      await log.release();
    },
  };
  return store;
}
