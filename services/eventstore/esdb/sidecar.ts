// The positions sidecar `vmledger.positions-<stream>`: which global positions a stream's appends got, so reading a
// stream does not touch $all; a missing entry is counted in $all (ordinals.ts) and written then.

import { ANY, FORWARDS, jsonEvent } from '@eventstore/db-client';

import { toSafeNumber, type EsdbEvent, type PositionsEntry } from './convert';
import type { EsdbLog } from './log';
import { ordinalAt } from './ordinals';

/** Global positions of events of one fact stream: from its sidecar, else counted in $all (and recorded). */
export async function positionsOf(log: EsdbLog, stream: string, events: EsdbEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  const lookup = (entries: PositionsEntry[], revision: number): number | undefined => {
    for (const e of entries) if (revision >= e.revision && revision < e.revision + e.count) return e.position + revision - e.revision;
    return undefined;
  };
  let entries = log.sidecars.get(stream);
  const revisions = events.map((e) => toSafeNumber(e.revision, 'stream revision'));
  if (!entries || revisions.some((r) => lookup(entries!, r) === undefined)) {
    entries = await readSidecar(log, stream);
    log.sidecars.set(stream, entries);
  }
  const positions: number[] = [];
  const missing: PositionsEntry[] = [];
  for (let i = 0; i < events.length; i++) {
    let position = lookup(entries, revisions[i]!) ?? log.ordinalsById.get(events[i]!.id);
    if (position === undefined) {
      position = await ordinalAt(log, events[i]!);
      missing.push({ revision: revisions[i]!, position, count: 1 });
    }
    positions.push(position);
  }
  if (missing.length > 0) await recordPositions(log, stream, missing).catch(() => {});
  return positions;
}

export async function readSidecar(log: EsdbLog, stream: string): Promise<PositionsEntry[]> {
  const entries: PositionsEntry[] = [];
  for await (const event of log.readEvents(log.names.positions(stream), 0n, FORWARDS)) {
    const d = event.data as Partial<PositionsEntry>;
    if (Number.isSafeInteger(d.revision) && Number.isSafeInteger(d.position) && Number.isSafeInteger(d.count)) {
      entries.push({ revision: d.revision!, position: d.position!, count: d.count! });
    }
  }
  return entries;
}

export async function recordPositions(log: EsdbLog, stream: string, entries: PositionsEntry[]): Promise<void> {
  const merged: PositionsEntry[] = [];
  for (const e of entries) {
    const last = merged.at(-1);
    if (last && last.revision + last.count === e.revision && last.position + last.count === e.position) last.count += e.count;
    else merged.push({ ...e });
  }
  await log.client.appendToStream(
    log.names.positions(stream),
    merged.map((data) => jsonEvent({ type: 'PositionsAssigned', data: { ...data } })),
    { expectedRevision: ANY },
  );
  const cached = log.sidecars.get(stream);
  if (cached) cached.push(...merged);
}
