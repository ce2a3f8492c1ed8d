// domainList: every domain stream folded with machines/evolve (the machine's own reducer, so the list can
// never disagree with what decide sees), and the rows `vmledger list` shows.
import { z } from 'zod';

import type { Fact } from '../machines/events';
import { evolve } from '../machines/evolve';
import {
  DomainStateSchema,
  initialDomainState,
  runState,
  snapshotCount,
  topState,
  type DomainState,
  type TopState,
} from '../machines/model';
import type { RecordedEvent } from '../services/eventstore/types';
import { factOf, isDomainStream, streamIdentityFrom, streamIdentityGuess } from './log';
import type { Projection } from './projection';

/** One domain stream as folded so far. */
export interface StreamFold {
  state: DomainState;
  /** Revision and global position of the last fact folded. */
  revision: number;
  position: number;
  /** Time (from the command metadata) of the last fact folded. */
  time: string;
}

export const StreamFoldSchema = z.object({
  state: DomainStateSchema,
  revision: z.number().int(),
  position: z.number().int(),
  time: z.string(),
});

/** `evolve` is total over known facts; a fact type it does not know (a damaged log) leaves the state as it was. */
export function evolveKnown(state: DomainState, fact: Fact): DomainState {
  return evolve(state, fact) ?? state;
}

/** A fresh fold for a stream whose first event this is. */
export function newStreamFold(event: RecordedEvent): StreamFold {
  const id = streamIdentityFrom(event) ?? streamIdentityGuess(event.stream);
  return { state: initialDomainState(id.host, id.name), revision: -1, position: 0, time: '' };
}

/** Folds one domain event into `streams` (in place); returns the stream's new fold, or undefined for other streams. */
export function foldDomainEvent(streams: Record<string, StreamFold>, event: RecordedEvent): StreamFold | undefined {
  if (!isDomainStream(event.stream)) return undefined;
  const before = streams[event.stream] ?? newStreamFold(event);
  const after: StreamFold = {
    state: evolveKnown(before.state, factOf(event)),
    revision: event.revision,
    position: event.position,
    time: typeof event.metadata.time === 'string' ? event.metadata.time : before.time,
  };
  streams[event.stream] = after;
  return after;
}

export interface DomainListState {
  streams: Record<string, StreamFold>;
}

/**
 * The fold as the list keeps it: without the domain's config (name, uuid, disks…), which no row shows and no
 * other field of the state depends on (evolve only replaces or edits it). `domainAt` folds the domain's own
 * stream for the whole state. With 100 000 domains the configs were a good part of the projections' memory.
 */
function withoutConfig(fold: StreamFold): StreamFold {
  if (fold.state.config !== null) fold.state = { ...fold.state, config: null };
  return fold;
}

export const domainList: Projection<DomainListState> = {
  name: 'domainList',
  version: 1,
  initial: () => ({ streams: {} }),
  apply(state, event) {
    const fold = foldDomainEvent(state.streams, event);
    if (fold) withoutConfig(fold);
    return state;
  },
  revive(saved) {
    const state = z.object({ streams: z.record(z.string(), StreamFoldSchema) }).parse(saved);
    for (const fold of Object.values(state.streams)) withoutConfig(fold);
    return state;
  },
};

/** An async job holding the domain (docs/rules.md §8): the migration, or a block job on one disk. */
export interface DomainJob {
  kind: 'migration' | 'copy' | 'snapshot-mirror' | 'pull' | 'commit';
  phase: string;
  disk?: string;
  /** Migration: the destination host; block job: where the copy goes. */
  destination?: string;
  snapshot?: string;
}

export interface DomainRow {
  host: string;
  name: string;
  uuid: string | null;
  /** Top-level machine state (docs/rules.md §1). */
  state: TopState;
  /** `running` / `paused` for an active domain, null when shut off. */
  runState: 'running' | 'paused' | null;
  persistent: boolean;
  managedSave: boolean;
  snapshots: number;
  currentSnapshot: string | null;
  jobs: DomainJob[];
  stream: string;
  /** Stream revision and global position of the domain's last fact. */
  revision: number;
  position: number;
  /** Time of the domain's last fact. */
  updated: string;
}

export function domainRow(stream: string, fold: StreamFold): DomainRow {
  const s = fold.state;
  const jobs: DomainJob[] = [];
  if (s.migration) jobs.push({ kind: 'migration', phase: s.migration.phase, destination: s.migration.destination });
  for (const job of Object.values(s.blockJobs)) {
    jobs.push({
      kind: job.kind,
      phase: job.phase,
      disk: job.disk,
      ...(job.destination !== undefined ? { destination: job.destination } : {}),
      ...(job.snapshot !== undefined ? { snapshot: job.snapshot } : {}),
    });
  }
  return {
    host: s.host,
    name: s.name,
    uuid: s.uuid,
    state: topState(s),
    runState: runState(s),
    persistent: s.persistent,
    managedSave: s.hasManagedSave,
    snapshots: snapshotCount(s),
    currentSnapshot: s.current,
    jobs,
    stream,
    revision: fold.revision,
    position: fold.position,
    updated: fold.time,
  };
}

export interface DomainFilter {
  host?: string;
  /** Also list streams whose domain was undefined or quit (state `gone`). Default false. */
  includeGone?: boolean;
}

/** Rows sorted by host, then name. */
export function domainRows(streams: Record<string, StreamFold>, filter: DomainFilter = {}): DomainRow[] {
  const rows: DomainRow[] = [];
  for (const [stream, fold] of Object.entries(streams)) {
    if (filter.host !== undefined && fold.state.host !== filter.host) continue;
    if (fold.state.life !== 'exists' && !filter.includeGone) continue;
    rows.push(domainRow(stream, fold));
  }
  return rows.sort((a, b) => (a.host === b.host ? compare(a.name, b.name) : compare(a.host, b.host)));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
