// The read side as the CLI and the NATS service call it. A long-running service opens the views once and
// follows the log; a one-shot CLI call uses the free functions, which catch up from the checkpoints and answer.
import type { DomainState } from '../machines/model';
import { domainStream } from '../machines/model';
import type { EventStore } from '../services/eventstore/types';
import { auditLog, type AuditEntry, type AuditGroup, type AuditQuery } from './auditLog';
import { domainList, domainRow, domainRows, foldDomainEvent, type DomainFilter, type DomainRow, type StreamFold } from './domainList';
import { timeMs, type LogPoint } from './log';
import { ProjectionRunner, type RunnerOptions } from './runner';
import { buildSnapshotTree, snapshotTree, type SnapshotTreeView } from './snapshotTree';

export const PROJECTIONS = [domainList, snapshotTree, auditLog] as const;

/** A domain as of some point: its row, its whole machine state, and its snapshot tree. */
export interface DomainView extends DomainRow {
  detail: DomainState;
  tree: SnapshotTreeView;
}

export class LedgerViews {
  constructor(readonly runner: ProjectionRunner) {}

  get store(): EventStore {
    return this.runner.store;
  }

  /** Global position the views reflect. */
  get position(): number {
    return this.runner.position;
  }

  /** Existing domains (or also gone ones), sorted by host and name. */
  async listDomains(filter: DomainFilter = {}): Promise<DomainRow[]> {
    return domainRows(this.runner.stateOf(domainList).streams, filter);
  }

  /**
   * One domain: now (the row and tree from the projections, the whole machine state folded from its stream up
   * to the fact the projection last folded, as the list keeps no config), or as of a global position or time
   * (folded from its stream: every fact up to that position, or up to the last one stamped at or before that
   * time). Undefined when the stream has no facts by then.
   */
  async domainAt(host: string, name: string, at?: LogPoint): Promise<DomainView | undefined> {
    const stream = domainStream(host, name);
    if (at === undefined) {
      const fold = this.runner.stateOf(domainList).streams[stream];
      const slice = this.runner.stateOf(snapshotTree).streams[stream];
      if (!fold) return undefined;
      const detail = (await foldStreamUntil(this.store, stream, { position: fold.position }))?.state ?? fold.state;
      return { ...domainRow(stream, fold), detail, tree: buildSnapshotTree(slice ?? detail) };
    }
    return domainViewAt(this.store, host, name, at);
  }

  /** The domain's snapshot tree now; undefined when no such domain stream exists. */
  async snapshotTreeOf(host: string, name: string): Promise<SnapshotTreeView | undefined> {
    const slice = this.runner.stateOf(snapshotTree).streams[domainStream(host, name)];
    return slice && buildSnapshotTree(slice);
  }

  /** The audit entries the query selects; sealed chunks the query needs are read from the store's docs. */
  async auditEntries(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.runner.stateOf(auditLog).select(this.store, query);
  }

  /**
   * The audit grouped by correlation id (a migration's steps on both hosts in one group). The query picks the
   * entries first (e.g. by domain), then every entry of each group they belong to is included.
   */
  async auditGroups(query: AuditQuery = {}): Promise<AuditGroup[]> {
    return this.runner.stateOf(auditLog).groups(this.store, query);
  }

  /** Folds what was appended since (one-shot use). */
  refresh(): Promise<number> {
    return this.runner.catchUp();
  }

  /** Keeps the views current as facts are appended (service use). */
  follow(): void {
    this.runner.follow();
  }

  waitFor(position: number): Promise<void> {
    return this.runner.waitFor(position);
  }

  /** Stops following and checkpoints; the store stays open. */
  close(): Promise<void> {
    return this.runner.close();
  }
}

/** Opens the views at their checkpoints and catches up with the log (unless `catchUp: false`). */
export async function openViews(store: EventStore, options: RunnerOptions & { catchUp?: boolean } = {}): Promise<LedgerViews> {
  const runner = await ProjectionRunner.open(store, PROJECTIONS, options);
  if (options.catchUp ?? true) await runner.catchUp();
  return new LedgerViews(runner);
}

async function oneShot<T>(store: EventStore, work: (views: LedgerViews) => Promise<T>): Promise<T> {
  const views = await openViews(store);
  try {
    return await work(views);
  } finally {
    await views.close();
  }
}

export function listDomains(store: EventStore, filter: DomainFilter = {}): Promise<DomainRow[]> {
  return oneShot(store, (v) => v.listDomains(filter));
}

export function domainAt(store: EventStore, host: string, name: string, at?: LogPoint): Promise<DomainView | undefined> {
  if (at !== undefined) return domainViewAt(store, host, name, at);
  return oneShot(store, (v) => v.domainAt(host, name));
}

export function snapshotTreeOf(store: EventStore, host: string, name: string): Promise<SnapshotTreeView | undefined> {
  return oneShot(store, (v) => v.snapshotTreeOf(host, name));
}

export function auditEntries(store: EventStore, query: AuditQuery = {}): Promise<AuditEntry[]> {
  return oneShot(store, (v) => v.auditEntries(query));
}

export function auditGroups(store: EventStore, query: AuditQuery = {}): Promise<AuditGroup[]> {
  return oneShot(store, (v) => v.auditGroups(query));
}

/** One domain as of a point of the log, folded from its own stream (no projection needed). */
export async function domainViewAt(store: EventStore, host: string, name: string, at: LogPoint): Promise<DomainView | undefined> {
  const stream = domainStream(host, name);
  const fold = await foldStreamUntil(store, stream, at);
  return fold && { ...domainRow(stream, fold), detail: fold.state, tree: buildSnapshotTree(fold.state) };
}

/**
 * Folds one domain stream up to a point of the global log. With a time, facts stamped after it are held back
 * and dropped unless a later fact is stamped at or before it: the result is a prefix of the stream, never a
 * state with a hole in it.
 */
export async function foldStreamUntil(store: EventStore, stream: string, at: LogPoint): Promise<StreamFold | undefined> {
  const streams: Record<string, StreamFold> = {};
  const limitMs = 'time' in at ? timeMs(at.time) : Number.NaN;
  let held: Parameters<typeof foldDomainEvent>[1][] = [];
  for await (const event of store.readStream(stream)) {
    if ('position' in at) {
      if (event.position > at.position) break;
      foldDomainEvent(streams, event);
      continue;
    }
    if (timeMs(event.metadata.time) <= limitMs) {
      for (const e of held) foldDomainEvent(streams, e);
      held = [];
      foldDomainEvent(streams, event);
    } else {
      held.push(event);
    }
  }
  return streams[stream];
}
