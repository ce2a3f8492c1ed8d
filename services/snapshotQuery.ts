// The snapshot list over NATS (`vmledger.query.snapshots`) a page at a time: a domain's snapshots in name order,
// each with whether it is the current one, and a keyset cursor (the last name sent), so a domain with thousands
// of snapshots never needs a reply larger than the server's max_payload. A reply that holds every snapshot also
// carries the tree (`roots`), as the query always did.
import { z } from 'zod';

import { DEFAULT_HOST, initialDomainState, type DomainState, type Snapshot } from '../machines/model';
import { buildSnapshotTree } from '../projections/snapshotTree';
import { MAX_PAGE_LIMIT } from './domainQuery';
import { decodeCursor, encodeCursor, type Page } from './nats/paging';
import { cmp } from './domainQuery';

export const SnapshotsQuerySchema = z.object({
  host: z.string().min(1).default(DEFAULT_HOST),
  domain: z.string().min(1),
  /** Where the previous page ended (its `next`). */
  cursor: z.string().min(1).max(4096).optional(),
  /** At most this many snapshots in the page (the reply may hold fewer, to fit the server's max_payload). */
  limit: z.number().int().min(1).max(MAX_PAGE_LIMIT).optional(),
});

export type SnapshotRow = Snapshot & { current: boolean };

export function snapshotCursor(row: { name: string }): string {
  return encodeCursor([row.name]);
}

const isSnapshotKey = (k: unknown): k is [string] => Array.isArray(k) && k.length === 1 && typeof k[0] === 'string';

/** One page of a domain's snapshots, in name order, after the cursor. */
export function snapshotPage(state: DomainState, q: { cursor?: string | undefined; limit?: number | undefined }, maxRows: number): Page<SnapshotRow> {
  const after = q.cursor !== undefined ? decodeCursor(q.cursor, isSnapshotKey)[0] : undefined;
  const names = Object.keys(state.snapshots).sort(cmp).filter((name) => after === undefined || cmp(name, after) > 0);
  const size = Math.min(q.limit ?? MAX_PAGE_LIMIT, maxRows);
  const rows = names.slice(0, size).map((name) => ({ ...state.snapshots[name]!, current: state.current === name }));
  return { rows, next: names.length > size ? snapshotCursor(rows[rows.length - 1]!) : null };
}

/** What the client pages together: the domain's snapshots as a state `selectSnapshots` and the tree can take. */
export function snapshotState(host: string, domain: string, current: string | null, rows: readonly SnapshotRow[]): DomainState {
  const snapshots: DomainState['snapshots'] = {};
  for (const { current: _current, ...snapshot } of rows) snapshots[snapshot.name] = snapshot;
  return { ...initialDomainState(host, domain), life: 'exists', current, snapshots };
}

/** The tree of paged-together snapshots, as `vmledger.query.snapshots` gives it when it fits one reply. */
export function treeOfRows(host: string, domain: string, current: string | null, rows: readonly SnapshotRow[]) {
  return buildSnapshotTree(snapshotState(host, domain, current, rows)).roots;
}
