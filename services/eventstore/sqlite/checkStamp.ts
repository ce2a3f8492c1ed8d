// Remembering a clean integrity check of a SQLite store file, so that a one-shot command on a big store does not
// pay `PRAGMA quick_check` (it reads every page: 2.7–4.0 s per million facts) when the file has not changed since
// a check found it clean. The stamp is the file's device, inode, size, mtime and ctime (ns; ctime cannot be set
// back by hand), kept beside the store in `<file>-checked`. It only counts while no WAL frames are pending: a
// store with a non-empty `-wal` (another process writing, or a crash) is checked as before. Any write reaches the
// main file at the checkpoint and changes its mtime, so the next open checks again; a session that only reads
// leaves the file as it was. The stamp is no proof of anything: at worst a stale or forged one skips a check that
// someone able to write the sidecar could have defeated by writing the store itself.
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';

export interface FileStamp {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

type Check = 'quick' | 'full';

interface StampDoc extends FileStamp {
  /** The check that found the file clean: a 'full' stamp also stands for 'quick', not the other way round. */
  check: Check;
}

export function stampPath(file: string): string {
  return `${file}-checked`;
}

/** The main file's stamp, or undefined when WAL frames are pending (the file alone does not say what the store holds). */
export function fileStamp(file: string): FileStamp | undefined {
  try {
    const wal = `${file}-wal`;
    if (existsSync(wal) && statSync(wal).size > 0) return undefined;
    const s = statSync(file, { bigint: true });
    return { dev: String(s.dev), ino: String(s.ino), size: String(s.size), mtimeNs: String(s.mtimeNs), ctimeNs: String(s.ctimeNs) };
  } catch {
    return undefined;
  }
}

export function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** Whether a check of this kind (or a stricter one) found the file clean as it is now (`stamp`). */
export function checkedClean(file: string, stamp: FileStamp, check: Check): boolean {
  let doc: Partial<StampDoc>;
  try {
    doc = JSON.parse(readFileSync(stampPath(file), 'utf8')) as Partial<StampDoc>;
  } catch {
    return false; // none, or unreadable: check
  }
  if (doc.check !== 'full' && doc.check !== check) return false;
  return sameStamp(stamp, doc as FileStamp);
}

/** After a clean check: remember the file as it was checked. A folder we cannot write to only costs the next check. */
export function rememberClean(file: string, stamp: FileStamp, check: Check): void {
  const doc: StampDoc = { ...stamp, check };
  const temp = `${stampPath(file)}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, JSON.stringify(doc));
    renameSync(temp, stampPath(file));
  } catch {
    // not remembered: the next open checks again
  }
}
