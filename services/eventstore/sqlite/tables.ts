// The schema of a vmledger store, its format marker, and telling an empty, a vmledger and a foreign database apart.

import Database from 'better-sqlite3';

import { StoreCorruptError } from '../types';

/** Value of `PRAGMA application_id` in every vmledger store: ASCII "VMLG". */
export const VMLEDGER_APPLICATION_ID = 0x564d4c47;
/** Format marker kept in the `meta` table; bump the suffix when the schema changes incompatibly. */
export const SQLITE_STORE_FORMAT = 'vmledger-eventstore/1';

export const SCHEMA = `
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
export const STORE_TABLES = ['commands', 'docs', 'events', 'meta'];

export const EVENT_COLUMNS = 'position, stream, revision, type, data, metadata';

export type Classification = { kind: 'empty' } | { kind: 'vmledger' } | { kind: 'foreign'; reason: string };

export function classify(db: Database.Database): Classification {
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

export function readFormat(db: Database.Database): string | undefined {
  try {
    return db.prepare<[], string>("SELECT value FROM meta WHERE key = 'format'").pluck().get();
  } catch {
    return undefined; // a foreign table that happens to be called `meta`
  }
}

/** Creates the schema in an empty file; re-classifies inside the write lock in case another process raced us. */
export function initialise(file: string, db: Database.Database): void {
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
