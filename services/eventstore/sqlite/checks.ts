// What is refused before a byte is written (a missing folder, a file that is not SQLite, a foreign database),
// SQLite's own integrity checks, and its corruption errors explained.

import { closeSync, existsSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

import { StoreCorruptError } from '../types';
import { classify } from './tables';

export const SQLITE_MAGIC = Buffer.from('SQLite format 3\u0000', 'latin1');
export const SQLITE_HEADER_SIZE = 100;

/** The folder must exist (we do not guess where a ledger should live) and the path must not be a folder. */
export function refuseUnusablePath(file: string): void {
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
export function refuseNonSqliteFile(file: string): void {
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
export function refuseForeignDatabase(file: string): void {
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

/** What SQLite's own check finds wrong with the file (naming the pages), or undefined when it says ok. */
export function integrityProblems(file: string, db: Database.Database, check: 'quick' | 'full'): string | undefined {
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

export function sqliteCode(error: unknown): string | undefined {
  return error instanceof Database.SqliteError ? error.code : undefined;
}

export function corruptionFor(file: string, error: unknown): StoreCorruptError | undefined {
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

export function explainCorruption<T>(file: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw corruptionFor(file, error) ?? error;
  }
}
