// Following the global log of a networked store (JetStream, EventStoreDB), where reading is asynchronous and
// the server pushes new facts. Same delivery rules as LogFollower in common.ts (which reads synchronously):
// facts after the checkpoint, in order, each callback awaited before the next fact; a callback that throws
// stops this subscription with a line on stderr naming the fact's position.
//
// What differs: the backend hands us a *live source*, an async iterable of facts after a position that keeps
// going as facts are appended. When the source fails (server restart, network cut) the follower logs a warning
// and opens a new source after the last fact it delivered, so a subscription survives a server restart.

import { assertPosition, deliverFact, type EventCallback } from './common';
import { StoreCorruptError, type RecordedEvent, type Subscription } from './types';

/**
 * Facts with position > `after`, in order, first the existing ones and then new ones as they are appended.
 * It may yield facts at or before `after` (they are skipped) but must never skip one. It ends (or throws) only
 * on failure, or once `signal` is aborted.
 */
export type LiveSource = (after: number, signal: AbortSignal) => AsyncIterable<RecordedEvent>;

export type { EventCallback };

export interface AsyncLogFollowerOptions {
  /** Delay before reopening a failed source; doubled up to `maxRetryDelayMs`. Default 100 ms. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** For messages: which store this subscription reads, e.g. `jetstream stream 'VMLEDGER'`. */
  label?: string;
}

export class AsyncLogFollower implements Subscription {
  private lastDelivered: number;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly label: string;
  private wakeSleeper: (() => void) | undefined;

  constructor(
    after: number,
    private readonly source: LiveSource,
    private readonly onEvent: EventCallback,
    private readonly onStop: (follower: AsyncLogFollower) => void,
    options: AsyncLogFollowerOptions = {},
  ) {
    assertPosition(after);
    this.lastDelivered = after;
    this.retryDelayMs = options.retryDelayMs ?? 100;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 5_000;
    this.label = options.label ?? 'the log';
    // Start on a later tick so subscribe() returns before the first callback runs.
    this.done = Promise.resolve().then(() => this.run());
  }

  /** Position of the last fact delivered (or the starting point). */
  get position(): number {
    return this.lastDelivered;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wakeSleeper?.();
    await this.done;
  }

  private async run(): Promise<void> {
    let delay = this.retryDelayMs;
    try {
      while (!this.stopped) {
        try {
          for await (const event of this.source(this.lastDelivered, this.abort.signal)) {
            if (this.stopped) return;
            if (event.position <= this.lastDelivered) continue;
            if (event.position !== this.lastDelivered + 1) {
              console.error(
                `vmledger: subscription stopped: ${this.label} jumped from position ${this.lastDelivered} to ` +
                  `${event.position} (stream '${event.stream}' revision ${event.revision}); the store is damaged`,
              );
              return;
            }
            if (!(await deliverFact(this.onEvent, event))) return;
            this.lastDelivered = event.position;
            delay = this.retryDelayMs;
          }
          if (this.stopped) return;
          // A live source only ends on failure; treat an end like one.
          throw new Error('the live source ended');
        } catch (error) {
          if (this.stopped) return;
          if (error instanceof StoreCorruptError) {
            console.error(`vmledger: subscription stopped: reading ${this.label} after position ${this.lastDelivered} failed:`, error);
            return;
          }
          console.warn(
            `vmledger: subscription to ${this.label} interrupted after position ${this.lastDelivered} ` +
              `(resuming in ${delay} ms): ${(error as Error)?.message ?? String(error)}`,
          );
          await this.sleep(delay);
          delay = Math.min(delay * 2, this.maxRetryDelayMs);
        }
      }
    } finally {
      this.stopped = true;
      this.onStop(this);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleeper = done;
    }).finally(() => (this.wakeSleeper = undefined));
  }
}

/**
 * subscribe() of a networked store: an AsyncLogFollower on `source`, kept in `followers` (which close() stops)
 * until it stops.
 */
export function followLog(
  followers: Set<AsyncLogFollower>,
  after: number,
  source: LiveSource,
  onEvent: EventCallback,
  label: string,
): AsyncLogFollower {
  const follower = new AsyncLogFollower(after, source, onEvent, (stopped) => followers.delete(stopped), { label });
  followers.add(follower);
  return follower;
}
