// The state one EventStoreDB store object keeps (client, the $all cursor, known points, caches, its followers)
// and the stream reads every job uses.

import { BACKWARDS, END, FORWARDS, StreamNotFoundError } from '@eventstore/db-client';

import type { AsyncLogFollower } from '../follow';
import type { NetworkedLog } from '../networked';
import { Queue } from '../common';
import type { EsdbEvent, Point, PositionsEntry } from './convert';
import { DEFAULT_NAMESPACE, Names, type EsdbClient, type EsdbEventStoreOptions } from './options';

export class EsdbLog implements NetworkedLog {
  closed = false;
  readonly followers = new Set<AsyncLogFollower>();
  readonly scanQueue = new Queue();
  /** Every fact at or before the cursor is counted. */
  cursor: Point = { ordinal: 0, pos: null };
  loaded = false;
  /** Known points (from the checkpoints stream and our own scans), ordered by ordinal. */
  checkpoints: Point[] = [{ ordinal: 0, pos: null }];
  persistedCheckpoint = 0;
  /** Ordinals of recently counted facts, by event id. */
  readonly ordinalsById = new Map<string, number>();
  readonly sidecars = new Map<string, PositionsEntry[]>();
  readonly leaseMs: number;
  readonly visibilityTimeoutMs: number;
  readonly names: Names;

  constructor(
    readonly client: EsdbClient,
    readonly ownClient: boolean,
    readonly label: string,
    options: EsdbEventStoreOptions,
  ) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? 10_000;
    this.names = new Names(options.namespace ?? DEFAULT_NAMESPACE);
  }

  isFact(streamId: string): boolean {
    return streamId.startsWith(this.names.factPrefix);
  }

  domainStreamOf(streamId: string): string {
    return streamId.slice(this.names.factPrefix.length);
  }

  async *readEvents(name: string, from: bigint, direction: typeof FORWARDS | typeof BACKWARDS, maxCount?: number): AsyncIterable<EsdbEvent> {
    this.assertOpen();
    try {
      const read = this.client.readStream(name, {
        fromRevision: direction === BACKWARDS && from < 0n ? END : from,
        direction,
        ...(maxCount === undefined ? {} : { maxCount }),
      });
      for await (const resolved of read) if (resolved.event) yield resolved.event;
    } catch (error) {
      if (error instanceof StreamNotFoundError) return;
      throw error;
    }
  }

  readFactStream(stream: string, fromRevision: number): AsyncIterable<EsdbEvent> {
    return this.readEvents(this.names.fact(stream), BigInt(fromRevision), FORWARDS);
  }

  async lastEvent(name: string): Promise<EsdbEvent | undefined> {
    for await (const event of this.readEvents(name, -1n, BACKWARDS, 1)) return event;
    return undefined;
  }

  async release(): Promise<void> {
    if (this.ownClient) await this.client.dispose().catch(() => {});
  }

  assertOpen(): void {
    if (this.closed) throw new Error(`event store ${this.label} is closed`);
  }
}
