// Opening a SQLite store: the path and file are checked before SQLite touches them, then the schema, WAL and
// synchronous = FULL; `sqlite:PATH` store specs.

import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';

import { StoreCorruptError, type OpenStoreOptions } from '../types';
import { checkedClean, fileStamp, rememberClean, sameStamp } from './checkStamp';
import { explainCorruption, integrityProblems, refuseForeignDatabase, refuseNonSqliteFile, refuseUnusablePath } from './checks';
import { SqliteStore, type SqliteEventStore } from './store';
import { initialise } from './tables';

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
  // A clean check is remembered until the file changes: one-shot commands on a big store do not re-read every page.
  return openSqliteEventStore(resolve(path), { rememberCleanCheck: true, ...(options?.purpose === 'read' ? { whenDamaged: 'read-only' as const } : {}) });
}

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
   * million facts). Neither sees bytes changed inside a record's JSON: the hash chains do (services/replay/).
   */
  integrityCheck?: 'header' | 'quick' | 'full';
  /**
   * What a failed integrity check does: 'refuse' (default) throws StoreCorruptError; 'read-only' opens the store
   * for reading (audit, replay), with `damage` saying what the check found, and every write refused.
   */
  whenDamaged?: 'refuse' | 'read-only';
  /**
   * Skip the 'quick' or 'full' check when the file is exactly as it was when that check last found it clean (its
   * inode, size, mtime and ctime, kept in `<file>-checked`; checkStamp.ts), and remember each clean check. A
   * write changes the file, so the open after it checks again. Default false; `sqlite:PATH` specs (the CLI,
   * serve) turn it on, so read-only one-shot commands on a big store do not read every page each time.
   */
  rememberCleanCheck?: boolean;
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

export function openSqliteEventStore(path: string, options: SqliteEventStoreOptions = {}): SqliteEventStore {
  const file = resolve(path);
  const pollIntervalMs = options.pollIntervalMs ?? 50;
  if (!(pollIntervalMs > 0)) throw new TypeError(`pollIntervalMs must be > 0, got ${pollIntervalMs}`);

  refuseUnusablePath(file);
  const hasContent = existsSync(file) && statSync(file).size > 0;
  // Taken before SQLite opens the file (opening creates an empty WAL): what a remembered clean check must match.
  const stampBefore = options.rememberCleanCheck && hasContent ? fileStamp(file) : undefined;
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
  if (check !== 'header' && !(stampBefore && checkedClean(file, stampBefore, check))) {
    damage = integrityProblems(file, db, check);
    // Remembered only if nothing changed the file while it was checked.
    if (damage === undefined && stampBefore && sameStamp(stampBefore, fileStamp(file))) rememberClean(file, stampBefore, check);
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
