// The host index as a saved doc: one array per domain instead of one object (a third of the bytes, and no zod
// pass over 100,000 objects on every CLI start); each row is checked by hand on the way back in, and a doc that
// does not check is rebuilt from the log (it is disposable).
import type { DomainSummarySource } from './domainQuery';

/** What the host index keeps per domain stream (see services/ledger.ts HostIndex). */
export interface IndexEntry extends DomainSummarySource {
  snapshots: string[];
  revision: number;
}

export interface IndexDoc {
  /** 3: entries as rows; an older doc is rebuilt from the log. */
  version: 3;
  position: number;
  /** [stream, host, name, life, uuid, active, paused, persistent, hasManagedSave, snapshots, revision] */
  rows: unknown[][];
}

const LIVES = new Set(['none', 'exists', 'gone']);

export function indexDoc(position: number, entries: Iterable<[string, IndexEntry]>): IndexDoc {
  const rows: unknown[][] = [];
  for (const [stream, e] of entries) {
    rows.push([stream, e.host, e.name, e.life, e.uuid, e.active, e.paused, e.persistent, e.hasManagedSave, e.snapshots, e.revision]);
  }
  return { version: 3, position, rows };
}

/** The entries of a saved doc, or a sentence saying what is wrong with it. */
export function readIndexDoc(doc: unknown): { position: number; entries: [string, IndexEntry][] } | string {
  if (typeof doc !== 'object' || doc === null) return 'not an object';
  const { version, position, rows } = doc as Partial<IndexDoc>;
  if (version !== 3) return `version ${JSON.stringify(version)}, expected 3`;
  if (typeof position !== 'number' || !Number.isInteger(position) || position < 0) return 'position: not a non-negative integer';
  if (!Array.isArray(rows)) return 'rows: not an array';
  const entries: [string, IndexEntry][] = [];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const ok =
      Array.isArray(r) &&
      r.length === 11 &&
      typeof r[0] === 'string' &&
      typeof r[1] === 'string' &&
      typeof r[2] === 'string' &&
      LIVES.has(r[3] as string) &&
      (r[4] === null || typeof r[4] === 'string') &&
      typeof r[5] === 'boolean' &&
      typeof r[6] === 'boolean' &&
      typeof r[7] === 'boolean' &&
      typeof r[8] === 'boolean' &&
      Array.isArray(r[9]) &&
      (r[9] as unknown[]).every((s) => typeof s === 'string') &&
      Number.isInteger(r[10]);
    if (!ok) return `rows.${i}: not an index row`;
    const [stream, host, name, life, uuid, active, paused, persistent, hasManagedSave, snapshots, revision] = r as [
      string, string, string, IndexEntry['life'], string | null, boolean, boolean, boolean, boolean, string[], number,
    ];
    entries.push([stream, { host, name, life, uuid, active, paused, persistent, hasManagedSave, snapshots, revision }]);
  }
  return { position, entries };
}
