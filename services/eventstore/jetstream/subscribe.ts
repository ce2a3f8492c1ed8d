// The live source behind subscribe(): facts after a position, then new ones, read from the stream leader
// (read.ts `messages`) each time something may have been appended. follow.ts reopens it after a failure.
//
// Not from a consumer: the server may place one on any replica, and a replica that fell behind (issue 20: a healed
// node's copy stopped at the sequence of the cut while the leader called it current) would hold this follower back
// with it, leaving the host index of this instance stale for as long. A consumer's messages would only have told
// us *that* something was appended; a plain subscription on the log's subjects tells us the same (every append is
// published on its domain's subject), and a poll catches what it misses (a reconnect, a subject we may not read).
// Its payloads are never used as facts: subscribers also receive a publish the stream then refuses (a conflict).

import type { RecordedEvent } from '../types';
import type { JetStreamLog } from './log';
import { readAll } from './read';

/** How often the log is read when no append was heard (a missed wake-up costs at most this much delay). */
export const LIVE_POLL_MS = 1_000;

export async function* liveFacts(log: JetStreamLog, after: number, signal: AbortSignal): AsyncIterable<RecordedEvent> {
  let appended = true; // read what is there first
  let wake: (() => void) | undefined;
  const nudge = () => {
    appended = true;
    wake?.();
  };
  const heard = log.nc.subscribe(`${log.prefix}.>`, { callback: nudge });
  const poll = setInterval(nudge, LIVE_POLL_MS);
  signal.addEventListener('abort', nudge);
  try {
    let position = after;
    while (!signal.aborted) {
      if (!appended) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      appended = false;
      for await (const event of readAll(log, position)) {
        if (signal.aborted) return;
        yield event;
        position = event.position;
      }
    }
  } finally {
    signal.removeEventListener('abort', nudge);
    clearInterval(poll);
    heard.unsubscribe();
  }
}
