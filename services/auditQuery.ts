// The audit query over NATS (`vmledger.query.audit`): the filters of `vmledger audit` (domain, host, since,
// outcome, correlation id, and `count`, its --limit) answered from the audit log projection, in log order, a
// page at a time with a keyset cursor (the position of the last entry sent), so a reply never has to hold the
// whole log. A domain or host the audit log has never seen is a validation error naming it, not an empty answer.
import { z } from 'zod';

import type { AuditEntry, AuditQuery } from '../projections/auditLog';
import { parseLogPoint, type LogPoint } from '../projections/log';
import { MAX_PAGE_LIMIT } from './domainQuery';
import { decodeCursor, encodeCursor, QueryValueError, type Page } from './nats/paging';

export const AuditQuerySchema = z
  .object({
    /** Domain name; with `host`, only that host's domain of that name. */
    domain: z.string().min(1).max(1000).optional(),
    host: z.string().min(1).max(1000).optional(),
    /** Entries at or after this global position (a number, or its digits) or ISO-8601 time. */
    since: z.union([z.number().int().min(0), z.string().min(1).max(100)]).optional(),
    outcome: z.enum(['accepted', 'refused']).optional(),
    correlationId: z.string().min(1).max(200).optional(),
    /** At most this many entries in all (`vmledger audit --limit`): the earliest after `since`, else the latest. */
    count: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Where the previous page ended (its `next`). */
    cursor: z.string().min(1).max(200).optional(),
    /** At most this many entries in the page (the reply may hold fewer, to fit the server's max_payload). */
    limit: z.number().int().min(1).max(MAX_PAGE_LIMIT).optional(),
  })
  .strict();

export type AuditRequest = z.input<typeof AuditQuerySchema>;

/** Where a page ends: after this position; for a `count` query also the last position and how many are left. */
interface AuditCursor {
  after: number;
  until: number | null;
  left: number | null;
}

function encodeAuditCursor(c: AuditCursor): string {
  return encodeCursor([c.after, c.until, c.left]);
}

const whole = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isAuditKey = (k: unknown): k is [number, number | null, number | null] =>
  Array.isArray(k) && k.length === 3 && whole(k[0]) && (k[1] === null || whole(k[1])) && (k[2] === null || whole(k[2]));

function parseAuditCursor(cursor: string): AuditCursor {
  const [after, until, left] = decodeCursor(cursor, isAuditKey);
  return { after, until, left };
}

function sinceOf(since: number | string | undefined): LogPoint | undefined {
  if (since === undefined) return undefined;
  try {
    return parseLogPoint(String(since));
  } catch (error) {
    throw new QueryValueError(`since: ${(error as Error).message}`);
  }
}

/** Selects audit entries (the audit log projection's select, kept current). */
export type AuditSelect = (query: AuditQuery) => Promise<AuditEntry[]>;

/**
 * One page of the audit query: at most `maxRows` entries (the reply is cut further to fit max_payload, by
 * pagedJson with `cursorOf`). The first page of a `count` query without `since` finds where the latest `count`
 * entries start, and the cursor carries that range on.
 */
export async function auditPage(select: AuditSelect, q: z.output<typeof AuditQuerySchema>, maxRows: number): Promise<Page<AuditEntry> & { cursorOf: (e: AuditEntry) => string }> {
  const since = sinceOf(q.since);
  const filters: AuditQuery = {
    ...(q.domain !== undefined ? { domain: q.domain } : {}),
    ...(q.host !== undefined ? { host: q.host } : {}),
    ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
    ...(q.correlationId !== undefined ? { correlationId: q.correlationId } : {}),
    ...(since ? { since } : {}),
  };
  let at: AuditCursor = { after: 0, until: null, left: q.count ?? null };
  if (q.cursor !== undefined) {
    at = parseAuditCursor(q.cursor);
  } else if (q.count !== undefined && !since) {
    const latest = await select({ ...filters, limit: q.count });
    if (latest.length > 0) at = { after: latest[0]!.position - 1, until: latest.at(-1)!.position, left: latest.length };
  }
  const size = Math.min(q.limit ?? MAX_PAGE_LIMIT, maxRows, at.left ?? Number.POSITIVE_INFINITY);
  // `after` (0 on the first page) makes `limit` the earliest entries, not the latest.
  const found = size <= 0 ? [] : await select({ ...filters, after: at.after, limit: size + 1 });
  const inRange = at.until === null ? found : found.filter((e) => e.position <= at.until!);
  const rows = inRange.slice(0, size);
  if (q.cursor === undefined && rows.length === 0) await assertKnown(select, q);
  const index = new Map(rows.map((e, i) => [e, i]));
  const cursorOf = (e: AuditEntry) =>
    encodeAuditCursor({ after: e.position, until: at.until, left: at.left === null ? null : at.left - (index.get(e)! + 1) });
  const more = inRange.length > size && (at.left === null || at.left > size);
  return { rows, next: more ? cursorOf(rows[rows.length - 1]!) : null, cursorOf };
}

/** An empty first page for a domain or host the audit log has never seen: say so, naming it. */
async function assertKnown(select: AuditSelect, q: z.output<typeof AuditQuerySchema>): Promise<void> {
  if (q.domain === undefined && q.host === undefined) return;
  const any = await select({ ...(q.domain !== undefined ? { domain: q.domain } : {}), ...(q.host !== undefined ? { host: q.host } : {}), limit: 1 });
  if (any.length > 0) return;
  if (q.domain === undefined) throw new QueryValueError(`host: no host '${q.host}' in the audit log`);
  throw new QueryValueError(`domain: no domain '${q.domain}'${q.host !== undefined ? ` on host '${q.host}'` : ''} in the audit log`);
}
