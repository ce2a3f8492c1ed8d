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
//
// What lives where (this folder)
//   index.ts    this description; the public names
//   open.ts     opening a file (checks first, then the schema and pragmas), the options, `sqlite:PATH` specs
//   checks.ts   refusing what is not a vmledger store before writing a byte; integrity checks; SQLite's
//               corruption errors in words
//   checkStamp.ts  a clean integrity check remembered until the file changes (`<file>-checked`)
//   tables.ts   the schema, the format marker and telling an empty, a vmledger and a foreign database apart
//   store.ts    the EventStore on an open database: group commit, reads, following the log, docs

export {
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_BATCH_WRITES,
  DEFAULT_STORE_FILE,
  openSqliteEventStore,
  openSqliteSpec,
  type SqliteEventStoreOptions,
} from './open';
export type { GroupCommitStats, SqliteEventStore } from './store';
export { SQLITE_STORE_FORMAT, VMLEDGER_APPLICATION_ID } from './tables';
