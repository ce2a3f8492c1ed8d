// Domain queries answered from the ledger's host index (one small summary per domain, kept current from the log)
// instead of loading every domain: virsh's `list` filters, a name search for the UI, and keyset paging (a cursor
// and a limit) so a NATS reply never has to hold a whole fleet.
import { z } from 'zod';

import { decodeCursor, encodeCursor, pageThrough } from './nats/paging';

/** Names in byte order, as virsh sorts them (not locale order). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What the host index keeps of each domain: enough for `list`, its filters and DEF-NAME's uuid lookup. */
export interface DomainSummarySource {
  host: string;
  name: string;
  life: 'none' | 'exists' | 'gone';
  uuid: string | null;
  active: boolean;
  paused: boolean;
  persistent: boolean;
  hasManagedSave: boolean;
  /** Names of the domain's snapshots with metadata. */
  snapshots: readonly string[];
}

/** One row of a domain query, as `vmledger list` and `vmledger.query.domains` give it. */
export interface DomainSummary {
  host: string;
  name: string;
  uuid: string | null;
  /** virsh's Id: the active domains of a host numbered 1, 2, … in name order; null when shut off. */
  id: number | null;
  state: 'running' | 'paused' | 'shut off';
  persistent: boolean;
  snapshots: number;
  managedSave: boolean;
}

export const LIST_STATES = ['running', 'paused', 'shutoff', 'other'] as const;
export type ListState = (typeof LIST_STATES)[number];

/** The largest page a caller may ask for. */
export const MAX_PAGE_LIMIT = 100_000;

const strictBoolean = z.boolean();

/**
 * The filters of `vmledger.query.domains` (virsh's flags as fields) plus paging. Unknown fields and unknown state
 * values are refused by name, so a typo never silently widens a query.
 */
export const DomainQuerySchema = z
  .object({
    host: z.string().min(1).optional(),
    /** Active and inactive domains (`--all`). Default: active ones only, unless `state` is given (as virsh). */
    all: strictBoolean.optional(),
    /** Inactive domains only (`--inactive`). */
    inactive: strictBoolean.optional(),
    /** Any of these states (`--state-running`, `--state-paused`, `--state-shutoff`, `--state-other`). */
    state: z
      .array(
        z.string().refine((s): s is ListState => (LIST_STATES as readonly string[]).includes(s), {
          error: (issue) => `unknown state ${JSON.stringify(issue.input)} (expected one of ${LIST_STATES.join(', ')})`,
        }),
      )
      .optional(),
    /** true: persistent domains only (`--persistent`); false: transient ones only (`--transient`). */
    persistent: strictBoolean.optional(),
    /** true: with at least one snapshot (`--with-snapshot`); false: without (`--without-snapshot`). */
    snapshot: strictBoolean.optional(),
    /** true: with a managed-save image (`--with-managed-save`); false: without. */
    managedSave: strictBoolean.optional(),
    /** Names containing this text, case-insensitively (the UI's search). */
    match: z.string().max(200).optional(),
    /** The domain with this UUID. */
    uuid: z.string().min(1).max(200).optional(),
    /** Where the previous page ended (its `next`). */
    cursor: z.string().min(1).max(4096).optional(),
    /** At most this many domains in the page (the reply may hold fewer, to fit the server's max_payload). */
    limit: z.number().int().min(1).max(MAX_PAGE_LIMIT).optional(),
  })
  .strict();

export type DomainQuery = z.input<typeof DomainQuerySchema> & { state?: ListState[] };

export interface DomainPage {
  domains: DomainSummary[];
  /** Cursor of the next page; null on the last one. */
  next: string | null;
}

/** virsh's `list` flags, as the session reads them. */
export interface ListFlags {
  all?: boolean;
  inactive?: boolean;
  transient?: boolean;
  persistent?: boolean;
  withSnapshot?: boolean;
  withoutSnapshot?: boolean;
  stateRunning?: boolean;
  statePaused?: boolean;
  stateShutoff?: boolean;
  stateOther?: boolean;
  withManagedSave?: boolean;
  withoutManagedSave?: boolean;
}

/** A pair of opposite flags: one alone filters, both or neither do not (as virsh). */
function either(yes: boolean | undefined, no: boolean | undefined): boolean | undefined {
  if (yes && !no) return true;
  if (no && !yes) return false;
  return undefined;
}

/** virsh's flags → a query. */
export function queryOfFlags(host: string | undefined, f: ListFlags): DomainQuery {
  const state = LIST_STATES.filter((s) => f[`state${s[0]!.toUpperCase()}${s.slice(1)}` as keyof ListFlags]);
  const q: DomainQuery = { ...(host !== undefined ? { host } : {}) };
  if (f.all) q.all = true;
  else if (f.inactive) q.inactive = true;
  if (state.length > 0) q.state = state;
  const persistent = either(f.persistent, f.transient);
  if (persistent !== undefined) q.persistent = persistent;
  const snapshot = either(f.withSnapshot, f.withoutSnapshot);
  if (snapshot !== undefined) q.snapshot = snapshot;
  const managedSave = either(f.withManagedSave, f.withoutManagedSave);
  if (managedSave !== undefined) q.managedSave = managedSave;
  return q;
}

function listState(e: DomainSummarySource): ListState {
  if (!e.active) return 'shutoff';
  return e.paused ? 'paused' : 'running';
}

/** Whether a domain passes the query's filters (not its paging). */
export function matches(e: DomainSummarySource, q: DomainQuery): boolean {
  if (e.life !== 'exists') return false;
  if (q.host !== undefined && e.host !== q.host) return false;
  if (q.state !== undefined && q.state.length > 0) {
    // A state filter replaces the active/inactive default (virsh: `list --state-shutoff` lists shut-off domains).
    if (!q.state.includes(listState(e))) return false;
    if (q.inactive && !q.all && e.active) return false;
  } else if (!q.all) {
    if (q.inactive ? e.active : !e.active) return false;
  }
  if (q.persistent !== undefined && e.persistent !== q.persistent) return false;
  if (q.snapshot !== undefined && e.snapshots.length > 0 !== q.snapshot) return false;
  if (q.managedSave !== undefined && e.hasManagedSave !== q.managedSave) return false;
  if (q.uuid !== undefined && e.uuid !== q.uuid) return false;
  if (q.match !== undefined && q.match !== '' && !e.name.toLowerCase().includes(q.match.toLowerCase())) return false;
  return true;
}

export function summaryOf(e: DomainSummarySource, id: number | null): DomainSummary {
  return {
    host: e.host,
    name: e.name,
    uuid: e.uuid,
    id: e.active ? id : null,
    state: !e.active ? 'shut off' : e.paused ? 'paused' : 'running',
    persistent: e.persistent,
    snapshots: e.snapshots.length,
    managedSave: e.hasManagedSave,
  };
}

/** Host, then name: the order of every page. */
export function compareSummaries(a: { host: string; name: string }, b: { host: string; name: string }): number {
  return a.host === b.host ? cmp(a.name, b.name) : cmp(a.host, b.host);
}

/** The opaque cursor after a domain: its host and name. */
export function cursorAfter(e: { host: string; name: string }): string {
  return encodeCursor([e.host, e.name]);
}

const isDomainKey = (k: unknown): k is [string, string] => Array.isArray(k) && k.length === 2 && typeof k[0] === 'string' && typeof k[1] === 'string';

export function parseCursor(cursor: string): { host: string; name: string } {
  const [host, name] = decodeCursor(cursor, isDomainKey);
  return { host, name };
}

/** First index in `sorted` whose key is after `key`. */
function indexAfter(sorted: readonly DomainSummarySource[], key: { host: string; name: string }): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareSummaries(sorted[mid]!, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const activeCounts = new WeakMap<readonly DomainSummarySource[], Int32Array>();

/**
 * For each place in `sorted`, how many active domains of its host come before it. Counted once per array (the
 * host index hands out a new one after a change): walking back from the cursor cost up to a whole host per page.
 */
function activeBefore(sorted: readonly DomainSummarySource[]): Int32Array {
  let counts = activeCounts.get(sorted);
  if (!counts) {
    counts = new Int32Array(sorted.length);
    let n = 0;
    for (let i = 0; i < sorted.length; i++) {
      const e = sorted[i]!;
      if (i > 0 && e.host !== sorted[i - 1]!.host) n = 0;
      counts[i] = n;
      if (e.life === 'exists' && e.active) n++;
    }
    activeCounts.set(sorted, counts);
  }
  return counts;
}

/**
 * One page of the query over `sorted` (every domain the index knows, in host/name order). `fits` decides whether
 * one more row may join the page (the NATS service measures the reply against max_payload with it).
 */
export function selectPage(
  sorted: readonly DomainSummarySource[],
  q: DomainQuery,
  fits: (row: DomainSummary, count: number) => boolean = () => true,
): DomainPage {
  const start = q.cursor !== undefined ? indexAfter(sorted, parseCursor(q.cursor)) : 0;
  const limit = q.limit ?? Number.POSITIVE_INFINITY;
  // Ids count the active domains of the host before the page, so every page numbers them as the whole list would.
  let id = start > 0 && start < sorted.length ? activeBefore(sorted)[start]! : 0;
  let host = sorted[start]?.host;
  const domains: DomainSummary[] = [];
  for (let i = start; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (e.host !== host) {
      host = e.host;
      id = 0;
    }
    const counted = e.life === 'exists' && e.active;
    if (counted) id++;
    if (!matches(e, q)) continue;
    const row = summaryOf(e, counted ? id : null);
    // The first row always goes in: a page must make progress (one summary is far below any max_payload).
    if (domains.length > 0 && (domains.length >= limit || !fits(row, domains.length))) {
      return { domains, next: cursorAfter(domains[domains.length - 1]!) };
    }
    domains.push(row);
  }
  return { domains, next: null };
}

/** Every domain a query selects, page after page (a remote ledger's pages are cut to fit max_payload). */
export function allDomains(
  source: { queryDomains(query?: DomainQuery): Promise<DomainPage> },
  query: DomainQuery = {},
): Promise<DomainSummary[]> {
  return pageThrough(async (cursor) => {
    const page = await source.queryDomains({ ...query, ...(cursor !== undefined ? { cursor } : {}) });
    return { rows: page.domains, next: page.next };
  }, query.cursor);
}
