// The event stores behind one interface (`vmledger/stores`). What lives where:
//   types.ts       the EventStore interface, its errors and the opener types every backend implements
//   registry.ts    store specs → backend: `memory`, `sqlite:PATH`, `jetstream://HOST:PORT`, `esdb://HOST:PORT`
//                  (openEventStore, registerStoreScheme); the networked backends are imported on first use
//   common.ts      semantics written once for every backend: argument checks, the expected-revision rule, JSON
//                  encoding, docs after an append, following the log synchronously (LogFollower)
//   follow.ts      following the log of a networked store (JetStream, EventStoreDB), surviving server restarts
//   networked.ts   the EventStore of a networked backend, built from its functions: what JetStream and
//                  EventStoreDB do alike (docs after the facts, subscribe, close), written once
//   memory.ts      in-process store, nothing persists
//   sqlite/        the embedded default: one SQLite file (its index says what lives where)
//   jetstream/     NATS JetStream (its index says what lives where)
//   esdb/          EventStoreDB (its index says what lives where)

export * from './types';
export { openEventStore, registerStoreScheme } from './registry';
export { createMemoryEventStore } from './memory';
export {
  DEFAULT_STORE_FILE,
  openSqliteEventStore,
  type GroupCommitStats,
  type SqliteEventStore,
  type SqliteEventStoreOptions,
} from './sqlite';
