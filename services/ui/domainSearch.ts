// The UI's domain picker: a search over the domain-list projection by name, host and state, one page at a time,
// so the page never carries every domain of a large fleet. Streams are kept in host/name order between requests
// (re-sorted only when a stream is added); only the rows of the page are built.
import { runState, topState, type TopState } from '../../machines/model';
import { domainRow, type DomainRow, type StreamFold } from '../../projections/domainList';
import { compareSummaries } from '../domainQuery';

/** States the picker filters by: the machine's top-level states, and `paused` (a running domain's sub-state). */
export const SEARCH_STATES = ['inactive', 'running', 'paused', 'transient', 'migrating', 'mirroring', 'gone'] as const satisfies readonly (TopState | 'paused')[];
export const DEFAULT_SEARCH_LIMIT = 50;
export const MAX_SEARCH_LIMIT = 1000;

export interface DomainSearch {
  /** Names containing this text, case-insensitively. */
  text?: string;
  host?: string;
  state?: (typeof SEARCH_STATES)[number];
  limit?: number;
}

export interface DomainSearchResult {
  domains: DomainRow[];
  /** How many domains match in all (the page holds the first `limit`). */
  total: number;
  /** Every host with a domain stream, for the host filter. */
  hosts: string[];
}

export class SearchError extends Error {}

/** The search named by a request's query string; unknown states and bad limits are named. */
export function searchOfParams(params: URLSearchParams): DomainSearch {
  const search: DomainSearch = {};
  const text = params.get('q');
  if (text) search.text = text;
  const host = params.get('host');
  if (host) search.host = host;
  const state = params.get('state');
  if (state) {
    if (!(SEARCH_STATES as readonly string[]).includes(state)) {
      throw new SearchError(`unknown state '${state}' (expected one of ${SEARCH_STATES.join(', ')})`);
    }
    search.state = state as DomainSearch['state'];
  }
  const limit = params.get('limit');
  if (limit) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > MAX_SEARCH_LIMIT) throw new SearchError(`limit must be an integer from 1 to ${MAX_SEARCH_LIMIT}, got '${limit}'`);
    search.limit = n;
  }
  return search;
}

interface Order {
  /** The log position the projection had folded when this order was made. */
  position: number;
  count: number;
  keys: string[];
  hosts: string[];
}

const orders = new WeakMap<Record<string, StreamFold>, Order>();

/**
 * The streams in host/name order. The projection folds in place: nothing is new while its position stands still,
 * and a new stream shows as a larger count.
 */
function orderOf(streams: Record<string, StreamFold>, position: number): Order {
  let order = orders.get(streams);
  if (order?.position === position) return order;
  const keys = Object.keys(streams);
  if (!order || order.count !== keys.length) {
    keys.sort((a, b) => compareSummaries(streams[a]!.state, streams[b]!.state));
    order = { position, count: keys.length, keys, hosts: [...new Set(keys.map((k) => streams[k]!.state.host))] };
  } else order = { ...order, position };
  orders.set(streams, order);
  return order;
}

/** `position`: the log position the projection reflects (LedgerViews.position). */
export function searchDomains(streams: Record<string, StreamFold>, position: number, search: DomainSearch): DomainSearchResult {
  const order = orderOf(streams, position);
  const limit = search.limit ?? DEFAULT_SEARCH_LIMIT;
  const text = search.text?.toLowerCase();
  const domains: DomainRow[] = [];
  let total = 0;
  for (const key of order.keys) {
    const fold = streams[key]!;
    const s = fold.state;
    // A stream with no domain yet (topState 'undefined') is never shown: told by `life` alone, as topState does,
    // since topState makes an array per domain (its block jobs) and this loop runs over the whole fleet.
    if (s.life === 'none') continue;
    if (search.host !== undefined && s.host !== search.host) continue;
    if (text !== undefined && !s.name.toLowerCase().includes(text)) continue;
    if (search.state !== undefined && (search.state === 'paused' ? runState(s) !== 'paused' : topState(s) !== search.state)) continue;
    total++;
    if (domains.length < limit) domains.push(domainRow(key, fold));
  }
  return { domains, total, hosts: order.hosts };
}
