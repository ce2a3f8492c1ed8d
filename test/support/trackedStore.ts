// An EventStore seen from outside: what it is doing right now. trackStore(store) returns the same store behind a
// proxy that records each call in flight (and, for the reads that stream, how many facts came so far and the
// last position), so a test step that stalls can say which request was pending, not just that time ran out.
//
//   const tracked = trackStore(store);
//   await bounded(60_000, 'checkLog', () => checkLog(tracked.store, outcomes), tracked.pending);
import type { EventStore, RecordedEvent } from '../../services/eventstore/types';

interface InFlight {
  call: string;
  since: number;
  facts?: number;
  lastPosition?: number;
}

export interface TrackedStore {
  readonly store: EventStore;
  /** The calls in flight, oldest first, e.g. `readAll(0) for 61.2 s: 2210 facts so far, last position 2210`. */
  pending(): string;
  /** Calls made so far, by method. */
  readonly calls: Record<string, number>;
}

const STREAMING = new Set(['readAll', 'readStream']);

export function trackStore(store: EventStore): TrackedStore {
  const inFlight = new Set<InFlight>();
  const calls: Record<string, number> = {};
  const describeArgs = (args: unknown[]) => args.map((a) => JSON.stringify(a) ?? String(a)).join(', ');
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'close') return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        calls[property] = (calls[property] ?? 0) + 1;
        const entry: InFlight = { call: `${property}(${describeArgs(args)})`, since: Date.now() };
        if (STREAMING.has(property)) {
          const source = method.apply(target, args) as AsyncIterable<RecordedEvent>;
          return (async function* () {
            inFlight.add(entry);
            entry.facts = 0;
            try {
              for await (const event of source) {
                entry.facts++;
                entry.lastPosition = event.position;
                yield event;
              }
            } finally {
              inFlight.delete(entry);
            }
          })();
        }
        const result = method.apply(target, args);
        if (!(result instanceof Promise)) return result;
        inFlight.add(entry);
        return result.finally(() => inFlight.delete(entry));
      };
    },
  });
  return {
    store: proxy,
    calls,
    pending() {
      if (inFlight.size === 0) return 'no store call in flight';
      return [...inFlight]
        .map((e) => {
          const progress = e.facts === undefined ? '' : `: ${e.facts} facts so far, last position ${e.lastPosition ?? 'none'}`;
          return `${e.call} for ${((Date.now() - e.since) / 1000).toFixed(1)} s${progress}`;
        })
        .join('; ');
    },
  };
}

/**
 * Runs `work`, failing after `ms` with a message naming `what` and what `pending()` says was still waiting (the
 * work itself cannot be cancelled; the caller closes what it used).
 */
export async function bounded<T>(ms: number, what: string, work: () => Promise<T>, pending: () => string | Promise<string>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const started = Date.now();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void Promise.resolve()
        .then(pending)
        .catch((error: unknown) => `(could not say: ${String(error)})`)
        .then((said) => reject(new Error(`${what} did not finish within ${ms} ms (${((Date.now() - started) / 1000).toFixed(1)} s); pending: ${said}`)));
    }, ms);
  });
  try {
    return await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
