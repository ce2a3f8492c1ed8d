// An in-process stand-in for the part of @eventstore/db-client the EventStoreDB store uses (appendToStream,
// readStream, readAll, subscribeToAll, setStreamMetadata, dispose), with EventStoreDB's semantics as far as the
// store relies on them. It is NOT a server and proves nothing about the wire protocol; it lets the adapter's own
// logic (ordinal positions, sidecars, checkpoints, command reservations) run through the contract suite on
// machines where EventStoreDB cannot run. The real server is tested when EVENTSTORE_URL is set.
//
// Modelled on purpose, because real servers do it and the adapter must cope:
//   - $all positions with gaps (commit/prepare are byte offsets), one commit position per write;
//   - non-vmledger events interleaved in $all (system `$stats-…` events every few writes);
//   - readAll(fromPosition) includes the event at fromPosition; subscribeToAll(fromPosition) starts after it;
//   - reading a stream that does not exist fails with StreamNotFoundError;
//   - a wrong expected revision fails with WrongExpectedVersionError carrying the current revision.
import {
  ANY,
  BACKWARDS,
  END,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  type AppendExpectedRevision,
  type Position,
} from '@eventstore/db-client';

import type { EsdbClient } from '../../services/eventstore/esdb';

interface StoredEvent {
  streamId: string;
  id: string;
  revision: bigint;
  type: string;
  data: string;
  metadata: string | undefined;
  position: Position;
  created: Date;
}

interface ProposedEvent {
  id: string;
  type: string;
  data: unknown;
  metadata?: unknown;
}

interface Waiter {
  wake: () => void;
}

function after(a: Position, b: Position): boolean {
  return a.commit > b.commit || (a.commit === b.commit && a.prepare > b.prepare);
}

export class FakeEsdbClient {
  private readonly all: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  private readonly waiters = new Set<Waiter>();
  private offset = 1_000n;
  private writes = 0;
  disposed = false;

  /** This double typed as the client the store expects. */
  asClient(): EsdbClient {
    return this as unknown as EsdbClient;
  }

  /** Events in $all (including the system noise), for tests. */
  get allCount(): number {
    return this.all.length;
  }

  async appendToStream(
    name: string,
    events: ProposedEvent | ProposedEvent[],
    options: { expectedRevision?: AppendExpectedRevision } = {},
  ): Promise<{ success: boolean; nextExpectedRevision: bigint; position?: Position }> {
    await Promise.resolve(); // asynchronous, as over the wire; the check and the write below are atomic
    const list = Array.isArray(events) ? events : [events];
    const stream = this.streams.get(name) ?? [];
    const current = stream.length === 0 ? ('no_stream' as const) : BigInt(stream.length - 1);
    const expected = options.expectedRevision ?? ANY;
    const ok =
      expected === ANY ||
      (expected === NO_STREAM && current === 'no_stream') ||
      (expected === STREAM_EXISTS && current !== 'no_stream') ||
      (typeof expected === 'bigint' && current === expected);
    if (!ok) throw new WrongExpectedVersionError(undefined, { streamName: name, expected, current });
    this.write(name, list);
    this.writes++;
    if (this.writes % 3 === 0) this.write(`$stats-fake-${this.writes}`, [{ id: crypto.randomUUID(), type: '$statsCollected', data: {} }]);
    const written = this.streams.get(name)!;
    for (const waiter of this.waiters) waiter.wake();
    return { success: true, nextExpectedRevision: BigInt(written.length - 1), position: written.at(-1)!.position };
  }

  private write(name: string, list: ProposedEvent[]): void {
    const stream = this.streams.get(name) ?? [];
    // One commit position for the whole write, after every event's prepare position; gaps between events.
    const prepares = list.map(() => (this.offset += 97n + BigInt(Math.floor(Math.random() * 50))));
    const commit = (this.offset += 13n);
    list.forEach((event, i) => {
      const stored: StoredEvent = {
        streamId: name,
        id: event.id,
        revision: BigInt(stream.length),
        type: event.type,
        data: JSON.stringify(event.data),
        metadata: event.metadata === undefined ? undefined : JSON.stringify(event.metadata),
        position: { commit, prepare: prepares[i]! },
        created: new Date(),
      };
      stream.push(stored);
      this.all.push(stored);
    });
    this.streams.set(name, stream);
  }

  private resolved(event: StoredEvent) {
    return {
      event: {
        streamId: event.streamId,
        id: event.id,
        revision: event.revision,
        type: event.type,
        isJson: true,
        created: event.created,
        data: JSON.parse(event.data) as unknown,
        metadata: event.metadata === undefined ? undefined : (JSON.parse(event.metadata) as unknown),
        position: event.position,
      },
      commitPosition: event.position.commit,
    };
  }

  readStream(
    name: string,
    options: { fromRevision?: bigint | typeof START | typeof END; direction?: string; maxCount?: number | bigint } = {},
  ) {
    const self = this;
    return (async function* () {
      await Promise.resolve();
      const stream = self.streams.get(name);
      if (!stream) throw new StreamNotFoundError(undefined, name);
      const max = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
      const backwards = options.direction === BACKWARDS;
      const from = options.fromRevision ?? (backwards ? END : START);
      let index = from === START ? 0 : from === END ? stream.length - 1 : Number(from);
      let count = 0;
      while (count < max && index >= 0 && index < stream.length) {
        yield self.resolved(stream[index]!);
        index += backwards ? -1 : 1;
        count++;
      }
    })();
  }

  readAll(options: { fromPosition?: Position | typeof START | typeof END; maxCount?: number | bigint; direction?: string } = {}) {
    if (options.direction === BACKWARDS) throw new Error('FakeEsdbClient.readAll: backwards reads are not modelled');
    const self = this;
    return (async function* () {
      await Promise.resolve();
      const max = Number(options.maxCount ?? Number.MAX_SAFE_INTEGER);
      const from = options.fromPosition ?? START;
      let count = 0;
      for (const event of self.all.slice()) {
        if (count >= max) return;
        if (from === END) return;
        // Inclusive: the event at fromPosition itself is returned again.
        if (from !== START && after(from, event.position)) continue;
        yield self.resolved(event);
        count++;
      }
    })();
  }

  subscribeToAll(options: { fromPosition?: Position | typeof START | typeof END; filter?: { prefixes?: string[] } } = {}) {
    const self = this;
    let closed = false;
    let waiter: Waiter | undefined;
    const prefixes = options.filter?.prefixes;
    let index = 0;
    const from = options.fromPosition ?? START;
    if (from === END) index = self.all.length;
    else if (from !== START) while (index < self.all.length && !after(self.all[index]!.position, from)) index++;
    const iterator = (async function* () {
      while (!closed) {
        if (index < self.all.length) {
          const event = self.all[index++]!;
          if (prefixes && !prefixes.some((p) => event.streamId.startsWith(p))) continue;
          yield self.resolved(event);
          continue;
        }
        await new Promise<void>((resolve) => {
          waiter = { wake: resolve };
          self.waiters.add(waiter);
        });
        if (waiter) self.waiters.delete(waiter);
      }
    })();
    return {
      [Symbol.asyncIterator]: () => iterator,
      async unsubscribe() {
        closed = true;
        if (waiter) {
          self.waiters.delete(waiter);
          waiter.wake();
        }
      },
    };
  }

  async setStreamMetadata(): Promise<{ success: boolean; nextExpectedRevision: bigint }> {
    return { success: true, nextExpectedRevision: 0n };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}
