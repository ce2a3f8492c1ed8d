// Time travel: the domain list and snapshot trees as of a global position or a time.
import { domainRows, foldDomainEvent, type StreamFold } from '../../projections/domainList';
import { timeMs, type LogPoint } from '../../projections/log';
import type { DomainView } from '../../projections/queries';
import { buildSnapshotTree } from '../../projections/snapshotTree';
import type { EventStore, RecordedEvent } from '../eventstore/types';


export interface StateAt {
  /** Last global position folded, and its time. */
  position: number;
  time: string | null;
  /** Domains that existed then, with their state and snapshot tree. */
  domains: DomainView[];
}

/**
 * The ledger as of a global position, or as of a time: every fact up to the last one stamped at or before it
 * (facts are stamped with their command's time; one stamped later is held back, and dropped unless a later
 * fact is stamped in time, so the result is always a prefix of the log).
 */
export async function stateAt(store: EventStore, at: LogPoint, options: { includeGone?: boolean } = {}): Promise<StateAt> {
  const streams: Record<string, StreamFold> = {};
  let position = 0;
  let time: string | null = null;
  if ('position' in at) {
    for await (const event of store.readAll(0, at.position)) {
      foldDomainEvent(streams, event);
      position = event.position;
      time = typeof event.metadata.time === 'string' ? event.metadata.time : time;
    }
  } else {
    const limit = timeMs(at.time);
    if (Number.isNaN(limit)) throw new Error(`'${at.time}' is not an ISO-8601 time`);
    let held: RecordedEvent[] = [];
    for await (const event of store.readAll(0)) {
      if (timeMs(event.metadata.time) <= limit) {
        for (const e of held) foldDomainEvent(streams, e);
        held = [];
        foldDomainEvent(streams, event);
        position = event.position;
        time = String(event.metadata.time);
      } else {
        held.push(event);
      }
    }
  }
  const rows = domainRows(streams, { includeGone: options.includeGone ?? false });
  return {
    position,
    time,
    domains: rows.map((row) => {
      const state = streams[row.stream]!.state;
      return { ...row, detail: state, tree: buildSnapshotTree(state) };
    }),
  };
}
