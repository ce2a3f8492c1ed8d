// Global positions as ordinals of fact events in $all: the in-process cursor that counts them, and the sparse
// checkpoints stream (every 1000th ordinal) that seeks a position without counting from the start.

import { ANY, FORWARDS, START, jsonEvent, type AllStreamRecordedEvent, type Position } from '@eventstore/db-client';

import { sleep } from '../common';
import { StoreCorruptError } from '../types';
import { comparePositions, type EsdbEvent, type Point } from './convert';
import type { EsdbLog } from './log';

export const CHECKPOINT_EVERY = 1000;
export const PAGE = 500;

/** The ordinal of the fact with this id, advancing the cursor until it has been seen. */
export async function ordinalOfId(log: EsdbLog, id: string): Promise<number> {
  const deadline = Date.now() + log.visibilityTimeoutMs;
  for (;;) {
    const known = log.ordinalsById.get(id);
    if (known !== undefined) return known;
    await advance(log, (eventId) => eventId === id);
    const found = log.ordinalsById.get(id);
    if (found !== undefined) return found;
    if (Date.now() > deadline) {
      throw new Error(`${log.label}: an appended event (${id}) did not show up in $all within ${log.visibilityTimeoutMs} ms`);
    }
    await sleep(20);
  }
}

/** The ordinal of a fact event read from its stream: counted from the nearest point before its $all position. */
export async function ordinalAt(log: EsdbLog, event: EsdbEvent): Promise<number> {
  const target = event.position;
  if (!target) {
    // No position on a stream read (very old servers): find it by id from the start of $all.
    await advance(log, () => false);
    const known = log.ordinalsById.get(event.id);
    if (known !== undefined) return known;
    return countUntil(log, { ordinal: 0, pos: null }, (e) => e.id === event.id);
  }
  await loadCheckpoints(log);
  if (!log.cursor.pos || comparePositions(target, log.cursor.pos) > 0) await advance(log, () => false);
  let start: Point = { ordinal: 0, pos: null };
  for (const point of [...log.checkpoints, log.cursor]) {
    if (point.pos && comparePositions(point.pos, target) < 0 && point.ordinal >= start.ordinal) start = point;
  }
  return countUntil(log, start, (e) => comparePositions(e.position, target) === 0);
}

export async function countUntil(log: EsdbLog, start: Point, found: (event: AllStreamRecordedEvent) => boolean): Promise<number> {
  for await (const { point, event } of factsFrom(log, start)) {
    if (found(event)) return point.ordinal;
  }
  throw new StoreCorruptError(`${log.label}: a fact event was not found in $all while counting positions`);
}

/**
 * The fact events of $all after `start`, each with its point (noted as a checkpoint), page by page until the
 * end of $all.
 */
export async function* factsFrom(log: EsdbLog, start: Point): AsyncIterable<{ point: Point; event: AllStreamRecordedEvent }> {
  let point = start;
  for (;;) {
    const page = await readAllPage(log, point.pos);
    let progressed = false;
    for (const event of page) {
      if (point.pos && comparePositions(event.position, point.pos) <= 0) continue;
      progressed = true;
      if (!log.isFact(event.streamId)) {
        point = { ordinal: point.ordinal, pos: event.position };
        continue;
      }
      point = { ordinal: point.ordinal + 1, pos: event.position };
      notePoint(log, point, event.id);
      yield { point, event };
    }
    if (page.length < PAGE || !progressed) return;
  }
}

/** Moves the cursor forward through $all (to its end, or until `stop` says so), counting facts. */
export function advance(log: EsdbLog, stop: (eventId: string) => boolean): Promise<void> {
  return log.scanQueue.run(async () => {
    await loadCheckpoints(log);
    for (;;) {
      const page = await readAllPage(log, log.cursor.pos);
      let progressed = false;
      for (const event of page) {
        if (log.cursor.pos && comparePositions(event.position, log.cursor.pos) <= 0) continue;
        progressed = true;
        if (!log.isFact(event.streamId)) {
          log.cursor = { ordinal: log.cursor.ordinal, pos: event.position };
          continue;
        }
        log.cursor = { ordinal: log.cursor.ordinal + 1, pos: event.position };
        notePoint(log, log.cursor, event.id);
        if (stop(event.id)) {
          await persistCheckpoints(log);
          return;
        }
      }
      if (page.length < PAGE || !progressed) break;
    }
    await persistCheckpoints(log);
  });
}

export async function readAllPage(log: EsdbLog, from: Position | null): Promise<AllStreamRecordedEvent[]> {
  log.assertOpen();
  const events: AllStreamRecordedEvent[] = [];
  for await (const resolved of log.client.readAll({ fromPosition: from ?? START, maxCount: PAGE, direction: FORWARDS })) {
    if (resolved.event) events.push(resolved.event);
  }
  return events;
}

/** Remembers the ordinal of a fact (by id, bounded) and every 1000th ordinal as a checkpoint. */
export function notePoint(log: EsdbLog, point: Point, eventId: string): void {
  if (log.ordinalsById.size >= 50_000) log.ordinalsById.delete(log.ordinalsById.keys().next().value!);
  log.ordinalsById.set(eventId, point.ordinal);
  if (point.ordinal % CHECKPOINT_EVERY === 0 && !log.checkpoints.some((c) => c.ordinal === point.ordinal)) {
    log.checkpoints.push({ ...point });
    log.checkpoints.sort((a, b) => a.ordinal - b.ordinal);
  }
}

export function pointAtOrBefore(log: EsdbLog, ordinal: number): Point {
  let best: Point = { ordinal: 0, pos: null };
  for (const point of [...log.checkpoints, log.cursor]) {
    if (point.ordinal <= ordinal && point.ordinal >= best.ordinal) best = point;
  }
  return best;
}

export async function loadCheckpoints(log: EsdbLog): Promise<void> {
  if (log.loaded) return;
  for await (const event of log.readEvents(log.names.checkpoints, 0n, FORWARDS)) {
    const d = event.data as { ordinal?: number; commit?: string; prepare?: string };
    if (!Number.isSafeInteger(d.ordinal) || typeof d.commit !== 'string' || typeof d.prepare !== 'string') continue;
    const point = { ordinal: d.ordinal!, pos: { commit: BigInt(d.commit), prepare: BigInt(d.prepare) } };
    if (!log.checkpoints.some((c) => c.ordinal === point.ordinal)) log.checkpoints.push(point);
    log.persistedCheckpoint = Math.max(log.persistedCheckpoint, point.ordinal);
  }
  log.checkpoints.sort((a, b) => a.ordinal - b.ordinal);
  const last = log.checkpoints.at(-1)!;
  if (last.ordinal > log.cursor.ordinal) log.cursor = { ...last };
  log.loaded = true;
}

export async function persistCheckpoints(log: EsdbLog): Promise<void> {
  const fresh = log.checkpoints.filter((c) => c.ordinal > log.persistedCheckpoint && c.pos);
  if (fresh.length === 0) return;
  try {
    await log.client.appendToStream(
      log.names.checkpoints,
      fresh.map((c) =>
        jsonEvent({ type: 'PositionCheckpoint', data: { ordinal: c.ordinal, commit: c.pos!.commit.toString(), prepare: c.pos!.prepare.toString() } }),
      ),
      { expectedRevision: ANY },
    );
    log.persistedCheckpoint = fresh.at(-1)!.ordinal;
  } catch {
    // a cache: written again after the next scan
  }
}
