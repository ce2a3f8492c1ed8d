// The live source behind subscribe(): a catch-up subscription to $all, filtered on the fact prefix, from the
// nearest known point. follow.ts reopens it after a failure.

import { START, streamNameFilter, type AllStreamRecordedEvent } from '@eventstore/db-client';

import type { RecordedEvent } from '../types';
import { comparePositions, toRecorded } from './convert';
import type { EsdbLog } from './log';
import { loadCheckpoints, notePoint, pointAtOrBefore } from './ordinals';

/** Facts after `after`, then live ones: a catch-up subscription to $all filtered on the fact prefix. */
export async function* liveFacts(log: EsdbLog, after: number, signal: AbortSignal): AsyncIterable<RecordedEvent> {
  await loadCheckpoints(log);
  let point = pointAtOrBefore(log, after);
  const subscription = log.client.subscribeToAll({
    fromPosition: point.pos ?? START,
    filter: streamNameFilter({ prefixes: [log.names.factPrefix] }),
  });
  const stop = () => void subscription.unsubscribe().catch(() => {});
  signal.addEventListener('abort', stop);
  try {
    for await (const resolved of subscription) {
      if (signal.aborted) return;
      const event = resolved.event as AllStreamRecordedEvent | undefined;
      if (!event || !log.isFact(event.streamId)) continue;
      if (point.pos && comparePositions(event.position, point.pos) <= 0) continue;
      point = { ordinal: point.ordinal + 1, pos: event.position };
      notePoint(log, point, event.id);
      if (point.ordinal > after) yield toRecorded(log.domainStreamOf(event.streamId), event, point.ordinal);
    }
  } finally {
    signal.removeEventListener('abort', stop);
    await subscription.unsubscribe().catch(() => {});
  }
}
