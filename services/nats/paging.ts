// Paged query replies that always fit the server's max_payload: rows are serialized one by one and the page is
// cut where the next row would not fit, its `next` cursor pointing after the last row sent. The client asks again
// with that cursor (services/client.ts pages through transparently, with pageThrough). Every paged query uses
// these two: domains (services/domainQuery.ts), the audit (services/auditQuery.ts), snapshots (snapshotQuery.ts).

/** A query naming something wrong (a cursor that is not one, a filter value that does not exist): a validation error. */
export class QueryValueError extends Error {}

/** An opaque cursor: the key of the last row sent, as base64url JSON. */
export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** The key in a cursor, if it is one of this query's (`isKey`); else a QueryValueError naming the cursor. */
export function decodeCursor<K>(cursor: string, isKey: (key: unknown) => key is K): K {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (!isKey(key)) throw new QueryValueError(`cursor: ${JSON.stringify(cursor.slice(0, 80))} is not a cursor of this query (pass the previous page's next)`);
  return key;
}

/** nats-server's default max_payload, when the connection has no server info yet. */
export const DEFAULT_SERVER_MAX_PAYLOAD = 1024 * 1024;

/** The smallest serialized row of any paged query is above this many bytes. */
const MIN_ROW_BYTES = 64;

/** How many rows a reply of `maxBytes` can hold at most: asking the read model for more is wasted work. */
export function rowsPerReply(maxBytes: number): number {
  return Math.max(1, Math.ceil(maxBytes / MIN_ROW_BYTES));
}

export interface Page<T> {
  rows: readonly T[];
  next: string | null;
}

/**
 * `{"ok":true,"<field>":[rows…],"next":…,…extra}` as JSON of at most `maxBytes` bytes. When the rows do not all
 * fit, the page ends early and `next` is `cursorOf(last row sent)`. The first row is always sent (a page must
 * make progress; no single row comes near a max_payload).
 */
export function pagedJson<T>(
  field: string,
  page: Page<T>,
  cursorOf: (row: T) => string,
  maxBytes: number,
  extra: Record<string, unknown> = {},
): string {
  const head = `{"ok":true,${JSON.stringify(field)}:[`;
  const extraJson = Object.entries(extra)
    .map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}`)
    .join('');
  const tail = (next: string | null) => `],"next":${JSON.stringify(next)}${extraJson}}`;
  // A page that likely fits (rows twice the first one's size) is serialized in one call and measured once: one
  // string instead of one per row plus their join, garbage whose scavenges made the tail of a page (issue 19).
  const first = page.rows.length > 0 ? JSON.stringify(page.rows[0]) : '';
  if (2 * first.length * page.rows.length < maxBytes) {
    const whole = `${head.slice(0, -1)}${JSON.stringify(page.rows)}${tail(page.next).slice(1)}`;
    if (Buffer.byteLength(whole) <= maxBytes) return whole;
  }
  const parts: string[] = [];
  let used = Buffer.byteLength(head);
  const bareTail = Buffer.byteLength(tail(null));
  for (let i = 0; i < page.rows.length; i++) {
    const row = page.rows[i]!;
    const json = JSON.stringify(row);
    const size = Buffer.byteLength(json) + (parts.length > 0 ? 1 : 0);
    // The tail if this row ends the page, measured exactly only near the limit (a cursor per row costs): its
    // cursor is the base64 of a key (host and name) shorter than the row's own JSON.
    const near = used + size + bareTail + Math.ceil((size * 4) / 3) + 32 > maxBytes;
    const end = near ? Buffer.byteLength(tail(i === page.rows.length - 1 ? page.next : cursorOf(row))) : 0;
    if (parts.length > 0 && near && used + size + end > maxBytes) {
      return head + parts.join(',') + tail(cursorOf(page.rows[i - 1]!));
    }
    parts.push(json);
    used += size;
  }
  return head + parts.join(',') + tail(page.next);
}

/**
 * Every row of a paged query, page after page from `cursor` (a remote ledger's pages are cut to fit max_payload).
 * Rows are copied one by one: push(...rows) of 100,000 arguments is more than a call takes.
 */
export async function pageThrough<T>(fetch: (cursor: string | undefined) => Promise<Page<T>>, cursor?: string): Promise<T[]> {
  const all: T[] = [];
  for (;;) {
    const page = await fetch(cursor);
    for (const row of page.rows) all.push(row);
    if (page.next === null || page.rows.length === 0) return all;
    cursor = page.next;
  }
}
