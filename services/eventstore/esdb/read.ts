// Reads: one fact stream (positions from its sidecar), the global log from a position, heads.

import { assertLimit, assertPosition, assertRevision, assertStreamName } from '../common';
import type { RecordedEvent } from '../types';
import { toRecorded, toSafeNumber, type EsdbEvent } from './convert';
import type { EsdbLog } from './log';
import { PAGE, advance, factsFrom, loadCheckpoints, pointAtOrBefore } from './ordinals';
import { positionsOf } from './sidecar';

export async function* readStream(log: EsdbLog, stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
  log.assertOpen();
  assertStreamName(stream);
  assertRevision(fromRevision);
  let page: EsdbEvent[] = [];
  const flush = async function* (): AsyncIterable<RecordedEvent> {
    const positions = await positionsOf(log, stream, page);
    for (let i = 0; i < page.length; i++) yield toRecorded(stream, page[i]!, positions[i]!);
    page = [];
  };
  for await (const event of log.readFactStream(stream, fromRevision)) {
    page.push(event);
    if (page.length === PAGE) yield* flush();
  }
  yield* flush();
}

export async function streamRevision(log: EsdbLog, stream: string): Promise<number | 'no-stream'> {
  log.assertOpen();
  assertStreamName(stream);
  const last = await log.lastEvent(log.names.fact(stream));
  return last ? toSafeNumber(last.revision, 'stream revision') : 'no-stream';
}

export async function* readAll(log: EsdbLog, after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
  log.assertOpen();
  assertPosition(after);
  assertLimit(limit);
  if (limit === 0) return;
  await loadCheckpoints(log);
  let remaining = limit;
  for await (const { point, event } of factsFrom(log, pointAtOrBefore(log, after))) {
    if (point.ordinal <= after) continue;
    yield toRecorded(log.domainStreamOf(event.streamId), event, point.ordinal);
    if (--remaining === 0) return;
  }
}

export async function headPosition(log: EsdbLog): Promise<number> {
  log.assertOpen();
  await advance(log, () => false);
  return log.cursor.ordinal;
}
