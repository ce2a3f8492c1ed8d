// The host index as a saved doc, compact: per host, one short array per domain (name, uuid, the flags as bits,
// revision, then its snapshot names and its stream name only when they are not the usual), instead of one object
// per domain: a quarter of the bytes, and no zod pass over 100,000 objects on every CLI start. Each row is checked
// by hand on the way back in; a doc that does not check is rebuilt from the log (it is disposable).
import { domainStream } from '../machines/model';
import type { DomainSummarySource } from './domainQuery';

/** What the host index keeps per domain stream (see services/hostIndex.ts HostIndex). */
export interface IndexEntry extends DomainSummarySource {
  snapshots: string[];
  revision: number;
}

/** [name, uuid, flags, revision, snapshots?, stream?] */
type Row = [string, string | null, number, number, string[]?, string?];

export interface IndexDoc {
  /** 3: rows per host; an older doc is rebuilt from the log. */
  version: 3;
  position: number;
  hosts: Record<string, Row[]>;
}

const LIFE = ['none', 'exists', 'gone'] as const;
const ACTIVE = 4;
const PAUSED = 8;
const PERSISTENT = 16;
const MANAGED_SAVE = 32;

function flagsOf(e: IndexEntry): number {
  return LIFE.indexOf(e.life) | (e.active ? ACTIVE : 0) | (e.paused ? PAUSED : 0) | (e.persistent ? PERSISTENT : 0) | (e.hasManagedSave ? MANAGED_SAVE : 0);
}

/** The doc of these entries, in the order given (the index saves them sorted, so the next start need not sort). */
export function indexDoc(position: number, entries: Iterable<[string, IndexEntry]>): IndexDoc {
  const hosts: Record<string, Row[]> = Object.create(null) as Record<string, Row[]>;
  for (const [stream, e] of entries) {
    const row: Row = [e.name, e.uuid, flagsOf(e), e.revision];
    const usual = stream === domainStream(e.host, e.name);
    if (e.snapshots.length > 0 || !usual) row.push(e.snapshots);
    if (!usual) row.push(stream);
    (hosts[e.host] ??= []).push(row);
  }
  return { version: 3, position, hosts };
}

function isRow(r: unknown): r is Row {
  if (!Array.isArray(r) || r.length < 4 || r.length > 6) return false;
  const [name, uuid, flags, revision, snapshots, stream] = r as unknown[];
  return (
    typeof name === 'string' &&
    (uuid === null || typeof uuid === 'string') &&
    Number.isInteger(flags) &&
    ((flags as number) & 3) < 3 &&
    (flags as number) >= 0 &&
    (flags as number) < 64 &&
    Number.isInteger(revision) &&
    (snapshots === undefined || (Array.isArray(snapshots) && snapshots.every((s) => typeof s === 'string'))) &&
    (stream === undefined || typeof stream === 'string')
  );
}

/** The entries of a saved doc, or a sentence saying what is wrong with it. */
export function readIndexDoc(doc: unknown): { position: number; entries: [string, IndexEntry][] } | string {
  if (typeof doc !== 'object' || doc === null) return 'not an object';
  const { version, position, hosts } = doc as Partial<IndexDoc>;
  if (version !== 3) return `version ${JSON.stringify(version)}, expected 3`;
  if (typeof position !== 'number' || !Number.isInteger(position) || position < 0) return 'position: not a non-negative integer';
  if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) return 'hosts: not an object';
  const entries: [string, IndexEntry][] = [];
  for (const host of Object.keys(hosts)) {
    const rows = hosts[host];
    if (!Array.isArray(rows)) return `hosts.${host}: not an array`;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (!isRow(r)) return `hosts.${host}.${i}: not an index row`;
      const [name, uuid, flags, revision, snapshots = [], stream = domainStream(host, name)] = r;
      entries.push([
        stream,
        {
          host,
          name,
          life: LIFE[flags & 3]!,
          uuid,
          active: (flags & ACTIVE) !== 0,
          paused: (flags & PAUSED) !== 0,
          persistent: (flags & PERSISTENT) !== 0,
          hasManagedSave: (flags & MANAGED_SAVE) !== 0,
          snapshots,
          revision,
        },
      ]);
    }
  }
  return { position, entries };
}
