// append() without its docs: the facts in one ESDB append, with event ids derived from the command id under a
// reservation (so a crashed appender's facts can be found again), then their global positions.

import { randomUUID } from 'node:crypto';

import { WrongExpectedVersionError, jsonEvent, type JSONEventType } from '@eventstore/db-client';

import { NO_STREAM_REVISION, checkExpectedRevision, encodeEvents } from '../common';
import { WrongExpectedRevisionError, type AppendOptions, type AppendResult, type ExpectedRevision, type NewEvent } from '../types';
import { resolveCommand, reserve, writeCommand } from './commands';
import { commandEventId, fromEsdbCurrentRevision, toEsdbExpectedRevision, toSafeNumber } from './convert';
import type { EsdbLog } from './log';
import { ordinalOfId } from './ordinals';
import { positionsOf, recordPositions } from './sidecar';

export async function appendWithoutDocs(log: EsdbLog, stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
  const encoded = encodeEvents(stream, events);
  const { commandId } = options;

  if (commandId !== undefined) {
    const known = await resolveCommand(log, commandId);
    if (known.result) return known.result;
    if (encoded.length === 0) return emptyAppend(log, stream, options.expectedRevision);
    const reservation = await reserve(log, commandId, stream, encoded.length, known.state);
    if ('result' in reservation) return reservation.result;
    let result: AppendResult;
    try {
      // Publish only with time to spare on the lease: past it, another writer may take the id over.
      const margin = Math.min(1_000, log.leaseMs / 5);
      if (Date.now() - reservation.at > log.leaseMs - margin) {
        throw new Error(`the reservation of command '${commandId}' ran out before its facts were appended; retry the command`);
      }
      result = await appendFacts(log, stream, encoded, options.expectedRevision, (i) => commandEventId(commandId, i), {
        deadline: Math.max(1_000, log.leaseMs - (Date.now() - reservation.at) - margin),
      });
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) {
        await writeCommand(log, commandId, 'CommandReleased', {}, reservation.revision).catch(() => {});
      }
      throw error;
    }
    await writeCommand(log, commandId, 'CommandCompleted', { stream, revision: result.revision, position: result.position }, reservation.revision)
      .catch(() => {}); // completed by the next look-up, which finds the facts by their ids
    return result;
  }

  if (encoded.length === 0) return emptyAppend(log, stream, options.expectedRevision);
  return appendFacts(log, stream, encoded, options.expectedRevision, () => randomUUID(), {});
}

export async function emptyAppend(log: EsdbLog, stream: string, expected: ExpectedRevision): Promise<AppendResult> {
  const last = await log.lastEvent(log.names.fact(stream));
  const actual = last ? toSafeNumber(last.revision, 'stream revision') : 'no-stream';
  checkExpectedRevision(stream, expected, actual);
  if (!last) return { revision: NO_STREAM_REVISION, position: 0, duplicate: false };
  const [position] = await positionsOf(log, stream, [last]);
  return { revision: actual as number, position: position!, duplicate: false };
}

export async function appendFacts(
  log: EsdbLog,
  stream: string,
  encoded: ReturnType<typeof encodeEvents>,
  expected: ExpectedRevision,
  idOf: (index: number) => string,
  callOptions: { deadline?: number },
): Promise<AppendResult> {
  const ids = encoded.map((_, i) => idOf(i));
  const esEvents = encoded.map((e, i) =>
    jsonEvent<JSONEventType>({
      id: ids[i]!,
      type: e.type,
      data: JSON.parse(e.data) as JSONEventType['data'],
      metadata: JSON.parse(e.metadata) as JSONEventType['data'],
    }),
  );
  let appended;
  try {
    appended = await log.client.appendToStream(log.names.fact(stream), esEvents, {
      expectedRevision: toEsdbExpectedRevision(expected),
      ...callOptions,
    });
  } catch (error) {
    if (error instanceof WrongExpectedVersionError) {
      throw new WrongExpectedRevisionError(stream, expected, fromEsdbCurrentRevision(error.actualVersion));
    }
    throw error;
  }
  if (!appended.success) {
    throw new WrongExpectedRevisionError(stream, expected, fromEsdbCurrentRevision(appended.nextExpectedRevision));
  }
  const revision = toSafeNumber(appended.nextExpectedRevision, 'stream revision');
  const position = await ordinalOfId(log, ids.at(-1)!);
  const entry = { revision: revision - encoded.length + 1, position: position - encoded.length + 1, count: encoded.length };
  await recordPositions(log, stream, [entry]).catch(() => {}); // recomputed from $all when missing
  return { revision, position, duplicate: false };
}
