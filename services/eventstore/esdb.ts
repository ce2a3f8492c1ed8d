// The event store on EventStoreDB (the design card's store), for teams that outgrow one machine:
// `esdb://HOST:PORT?tls=false` or `esdb+discover://HOST:PORT` (any @eventstore/db-client connection string).
//
// Layout
//   vmledger-<stream>                  the facts of one domain stream, one ESDB event per fact (type, JSON data,
//                                      JSON metadata exactly as given). Revisions are ESDB's stream revisions.
//   vmledger.positions-<stream>        sidecar: which global positions the stream's appends got (see below).
//   vmledger.checkpoints               sparse index: {ordinal, commit, prepare} every 1000 facts.
//   vmledger.commands-<command id>     idempotency record: Reserved → Completed (or Released).
//   vmledger.docs-<collection>/<key>   getDoc/putDoc, last event wins (stream $maxCount 1), parts URI-encoded.
// Only fact streams start with `vmledger-`; the bookkeeping streams start with `vmledger.` so that the global
// log ($all filtered by the prefix `vmledger-`) holds facts and nothing else.
//
// Global positions. ESDB's commit positions are not gap-free (they are byte offsets in the transaction log), and
// ESDB cannot append to two streams atomically, so a per-store counter stream cannot be kept in step with the
// facts without a window where a crash leaves a gap. We define the position of a fact as its ordinal among the
// fact events of $all, in $all order: gap-free, strictly increasing, and fixed once written (nothing is ever
// inserted before a committed event, and we never delete fact streams: do not delete or truncate `vmledger-`
// streams, or scavenge after doing so, or positions shift).
//   - Counting: an in-process cursor reads $all forward (client-side filter on the prefix: readAll of client 6.2
//     has no server-side filter) from the last checkpoint and counts facts. After an append, the appender
//     advances the cursor until it sees its own last event id: in steady state a read of the few events written
//     since its previous append.
//   - Seeking: `vmledger.checkpoints` maps every 1000th ordinal to its $all position, so readAll(after) starts at
//     most 1000 facts before `after`; subscribe uses a server-filtered catch-up subscription from there.
//   - Stream reads: each append records {revision, position, count} in the stream's sidecar, so readStream
//     knows its facts' positions without touching $all. A sidecar entry missing after a crash is recomputed
//     from the fact's $all position (a scan from the nearest checkpoint) and written then.
//   Cost per append: the append, one short $all read, one sidecar append (plus the command record, below).
//   A process starting cold reads $all from the last checkpoint (< 1000 facts plus other events).
//
// Idempotency: `vmledger.commands-<id>` holds Reserved {stream, afterRevision, count} (appended with NO_STREAM,
// or the stream's last revision when re-reserving a released or abandoned id), then Completed {revision,
// position}, or Released after a refused append (the id is free again). Fact event ids of a command are derived
// from the command id, so a Reserved record whose appender crashed is resolved by looking for its first event id
// after `afterRevision`: found → completed from it; not found → taken over once the reservation is older than the
// lease (30 s; a live appender gives up publishing when its lease has run out).

import { createHash, randomUUID } from 'node:crypto';

import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  StreamNotFoundError,
  WrongExpectedVersionError,
  jsonEvent,
  streamNameFilter,
  type AllStreamRecordedEvent,
  type AppendExpectedRevision,
  type JSONEventType,
  type Position,
  type ResolvedEvent,
} from '@eventstore/db-client';

import { AsyncLogFollower, followLog } from './follow';
import {
  NO_STREAM_REVISION,
  appendThenWriteDocs,
  assertLimit,
  assertPosition,
  assertRevision,
  assertStreamName,
  checkExpectedRevision,
  encodeEvents,
  Queue,
  sleep,
  toJson,
} from './shared';
import {
  StoreCorruptError,
  WrongExpectedRevisionError,
  type AppendOptions,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
} from './types';

export const DEFAULT_NAMESPACE = 'vmledger';
const CHECKPOINT_EVERY = 1000;
const PAGE = 500;

/** The part of the client this store uses (so tests can hand in a double of it). */
export type EsdbClient = Pick<
  EventStoreDBClient,
  'appendToStream' | 'readStream' | 'readAll' | 'subscribeToAll' | 'setStreamMetadata' | 'dispose'
>;

export interface EsdbEventStoreOptions {
  /** An open client to use instead of a connection string; the store disposes it on close only if `ownClient`. */
  client?: EsdbClient;
  ownClient?: boolean;
  /** How long a command reservation protects an appender before another may take it over. Default 30 s. */
  leaseMs?: number;
  /** How long an appender waits to see its own events in $all before failing. Default 10 s. */
  visibilityTimeoutMs?: number;
  /**
   * First part of every stream name: facts in `<namespace>-<stream>`, bookkeeping in `<namespace>.…`. Default
   * `vmledger`. Lets several ledgers (or test runs) share one server; must not contain '-' or '.'.
   */
  namespace?: string;
}

/** Stream names of one ledger on the server. */
class Names {
  readonly factPrefix: string;
  readonly positionsPrefix: string;
  readonly checkpoints: string;
  readonly commandsPrefix: string;
  readonly docsPrefix: string;
  constructor(namespace: string) {
    if (!/^[A-Za-z0-9_]+$/.test(namespace)) {
      throw new TypeError(`namespace must be letters, digits or '_' (no '-' or '.'), got '${namespace}'`);
    }
    this.factPrefix = `${namespace}-`;
    this.positionsPrefix = `${namespace}.positions-`;
    this.checkpoints = `${namespace}.checkpoints`;
    this.commandsPrefix = `${namespace}.commands-`;
    this.docsPrefix = `${namespace}.docs-`;
  }
  fact(stream: string): string {
    return `${this.factPrefix}${stream}`;
  }
  command(commandId: string): string {
    return `${this.commandsPrefix}${commandId}`;
  }
  positions(stream: string): string {
    return `${this.positionsPrefix}${stream}`;
  }
  doc(collection: string, key: string): string {
    return `${this.docsPrefix}${encodeURIComponent(collection)}/${encodeURIComponent(key)}`;
  }
}

// ------------------------------------------------------------------------------------------------------------
// Conversions.

/** A bigint from ESDB (revision, count) as a number, refusing values a JS number cannot hold exactly. */
export function toSafeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(
      `${what} ${value.toString()} from EventStoreDB is beyond Number.MAX_SAFE_INTEGER: vmledger cannot represent it exactly`,
    );
  }
  return Number(value);
}

/** Our expected revision as the client wants it: numbers become bigints, 'no-stream' NO_STREAM, 'any' ANY. */
export function toEsdbExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  if (expected === 'any') return ANY;
  if (expected === 'no-stream') return NO_STREAM;
  return BigInt(expected);
}

/** The actual revision an ESDB WrongExpectedVersionError reports, as our WrongExpectedRevisionError wants it. */
export function fromEsdbCurrentRevision(current: bigint | string | undefined): number | 'no-stream' {
  if (typeof current === 'bigint') return current < 0n ? 'no-stream' : toSafeNumber(current, 'stream revision');
  return 'no-stream';
}

function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

/** A UUID derived from the command id and the fact's index, so a command's facts can be found again. */
export function commandEventId(commandId: string, index: number): string {
  const hex = createHash('sha256').update(`vmledger\u0000${commandId}\u0000${index}`, 'utf8').digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}


/** A point of $all: every fact with a position at or before `pos` is counted in `ordinal` (pos null: the start). */
interface Point {
  ordinal: number;
  pos: Position | null;
}

interface PositionsEntry {
  revision: number;
  position: number;
  count: number;
}

type EsdbEvent = NonNullable<ResolvedEvent['event']>;

interface CommandState {
  /** Revision of the record's last event in its stream, or undefined when there is no record. */
  recordRevision: bigint | undefined;
  kind: 'none' | 'reserved' | 'completed' | 'released';
  data: Record<string, unknown>;
}

// ------------------------------------------------------------------------------------------------------------

/**
 * Opens the store on a connection string (`esdb://HOST:PORT?tls=false`, any @eventstore/db-client form) with
 * optional settings, or on an open client (`{ client }`).
 */
export async function openEsdbEventStore(
  connection: string | EsdbEventStoreOptions,
  settings: Omit<EsdbEventStoreOptions, 'client' | 'ownClient'> = {},
): Promise<EventStore> {
  const options: EsdbEventStoreOptions = typeof connection === 'string' ? { ...settings } : { ...settings, ...connection };
  let client = options.client;
  let label = 'EventStoreDB';
  let own = options.ownClient ?? false;
  if (typeof connection === 'string') {
    try {
      client = EventStoreDBClient.connectionString(connection);
    } catch (error) {
      throw new Error(`bad EventStoreDB connection string '${connection}': ${(error as Error).message}`, { cause: error });
    }
    label = `EventStoreDB at ${connection.replace(/\/\/[^@/]*@/, '//***@')}`;
    own = true;
  }
  if (!client) throw new TypeError('openEsdbEventStore needs a connection string or a client');
  const store = new EsdbEventStore(client, own, label, options);
  try {
    await store.ping();
  } catch (error) {
    if (own) await client.dispose().catch(() => {});
    throw new Error(`cannot use ${label}: ${(error as Error).message}`, { cause: error });
  }
  return store;
}

class EsdbEventStore implements EventStore {
  private closed = false;
  private readonly followers = new Set<AsyncLogFollower>();
  private readonly scanQueue = new Queue();
  /** Every fact at or before the cursor is counted. */
  private cursor: Point = { ordinal: 0, pos: null };
  private loaded = false;
  /** Known points (from the checkpoints stream and our own scans), ordered by ordinal. */
  private checkpoints: Point[] = [{ ordinal: 0, pos: null }];
  private persistedCheckpoint = 0;
  /** Ordinals of recently counted facts, by event id. */
  private readonly ordinalsById = new Map<string, number>();
  private readonly sidecars = new Map<string, PositionsEntry[]>();
  private readonly leaseMs: number;
  private readonly visibilityTimeoutMs: number;
  private readonly names: Names;

  constructor(
    private readonly client: EsdbClient,
    private readonly ownClient: boolean,
    private readonly label: string,
    options: EsdbEventStoreOptions,
  ) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? 10_000;
    this.names = new Names(options.namespace ?? DEFAULT_NAMESPACE);
  }

  private isFact(streamId: string): boolean {
    return streamId.startsWith(this.names.factPrefix);
  }

  private domainStreamOf(streamId: string): string {
    return streamId.slice(this.names.factPrefix.length);
  }

  async ping(): Promise<void> {
    await this.loadCheckpoints();
  }

  // ---------------------------------------------------------------------------------------------- append

  async append(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.assertOpen();
    // No transaction spans facts and docs here: the docs follow a stored (not refused, not duplicate) append.
    return appendThenWriteDocs(this, stream, events, options, (s, e, o) => this.appendWithoutDocs(s, e, o));
  }

  private async appendWithoutDocs(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    const encoded = encodeEvents(stream, events);
    const { commandId } = options;

    if (commandId !== undefined) {
      const known = await this.resolveCommand(commandId);
      if (known.result) return known.result;
      if (encoded.length === 0) return this.emptyAppend(stream, options.expectedRevision);
      const reservation = await this.reserve(commandId, stream, encoded.length, known.state);
      if ('result' in reservation) return reservation.result;
      let result: AppendResult;
      try {
        // Publish only with time to spare on the lease: past it, another writer may take the id over.
        const margin = Math.min(1_000, this.leaseMs / 5);
        if (Date.now() - reservation.at > this.leaseMs - margin) {
          throw new Error(`the reservation of command '${commandId}' ran out before its facts were appended; retry the command`);
        }
        result = await this.appendFacts(stream, encoded, options.expectedRevision, (i) => commandEventId(commandId, i), {
          deadline: Math.max(1_000, this.leaseMs - (Date.now() - reservation.at) - margin),
        });
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError) {
          await this.writeCommand(commandId, 'CommandReleased', {}, reservation.revision).catch(() => {});
        }
        throw error;
      }
      await this.writeCommand(commandId, 'CommandCompleted', { stream, revision: result.revision, position: result.position }, reservation.revision)
        .catch(() => {}); // completed by the next look-up, which finds the facts by their ids
      return result;
    }

    if (encoded.length === 0) return this.emptyAppend(stream, options.expectedRevision);
    return this.appendFacts(stream, encoded, options.expectedRevision, () => randomUUID(), {});
  }

  private async emptyAppend(stream: string, expected: ExpectedRevision): Promise<AppendResult> {
    const last = await this.lastEvent(this.names.fact(stream));
    const actual = last ? toSafeNumber(last.revision, 'stream revision') : 'no-stream';
    checkExpectedRevision(stream, expected, actual);
    if (!last) return { revision: NO_STREAM_REVISION, position: 0, duplicate: false };
    const [position] = await this.positionsOf(stream, [last]);
    return { revision: actual as number, position: position!, duplicate: false };
  }

  private async appendFacts(
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
      appended = await this.client.appendToStream(this.names.fact(stream), esEvents, {
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
    const position = await this.ordinalOfId(ids.at(-1)!);
    const entry = { revision: revision - encoded.length + 1, position: position - encoded.length + 1, count: encoded.length };
    await this.recordPositions(stream, [entry]).catch(() => {}); // recomputed from $all when missing
    return { revision, position, duplicate: false };
  }

  // ---------------------------------------------------------------------------------------------- commands

  private async commandState(commandId: string): Promise<CommandState> {
    const last = await this.lastEvent(this.names.command(commandId));
    if (!last) return { recordRevision: undefined, kind: 'none', data: {} };
    const kind =
      last.type === 'CommandReserved' ? 'reserved' : last.type === 'CommandCompleted' ? 'completed' : last.type === 'CommandReleased' ? 'released' : undefined;
    if (!kind) throw new StoreCorruptError(`command record of '${commandId}' ends with an unknown event '${last.type}'`);
    return { recordRevision: last.revision, kind, data: (last.data ?? {}) as Record<string, unknown> };
  }

  /** The first result of a command id, completing a reservation whose facts are stored. */
  private async resolveCommand(commandId: string): Promise<{ result?: AppendResult; state: CommandState }> {
    const state = await this.commandState(commandId);
    if (state.kind === 'completed') {
      return {
        result: { revision: Number(state.data.revision), position: Number(state.data.position), duplicate: true },
        state,
      };
    }
    if (state.kind !== 'reserved') return { state };
    const stream = String(state.data.stream);
    const count = Number(state.data.count);
    const firstId = commandEventId(commandId, 0);
    const afterRevision = Number(state.data.afterRevision);
    for await (const event of this.readFactStream(stream, afterRevision + 1)) {
      if (event.id !== firstId) continue;
      const revision = toSafeNumber(event.revision, 'stream revision') + count - 1;
      const lastEvents = [];
      for await (const e of this.readFactStream(stream, revision)) {
        lastEvents.push(e);
        break;
      }
      const [position] = await this.positionsOf(stream, lastEvents);
      const result = { revision, position: position!, duplicate: true };
      await this.writeCommand(commandId, 'CommandCompleted', { stream, revision, position }, state.recordRevision!).catch(() => {});
      return { result, state };
    }
    return { state };
  }

  private async reserve(
    commandId: string,
    stream: string,
    count: number,
    state: CommandState,
  ): Promise<{ revision: bigint; at: number } | { result: AppendResult }> {
    for (let attempt = 0; ; attempt++) {
      if (state.kind === 'reserved') {
        const age = Date.now() - Date.parse(String(state.data.at));
        if (!(age >= this.leaseMs)) {
          throw new Error(
            `command '${commandId}' is being appended by another writer (reserved ${Math.round(age / 1000)} s ago); ` +
              `retry after ${Math.ceil((this.leaseMs - age) / 1000)} s`,
          );
        }
      }
      const last = await this.lastEvent(this.names.fact(stream));
      const at = Date.now();
      const data = {
        stream,
        count,
        afterRevision: last ? toSafeNumber(last.revision, 'stream revision') : -1,
        at: new Date(at).toISOString(),
      };
      try {
        const revision = await this.writeCommand(commandId, 'CommandReserved', data, state.recordRevision ?? 'no-stream');
        return { revision, at };
      } catch (error) {
        if (!(error instanceof WrongExpectedVersionError) || attempt > 20) throw error;
        const again = await this.resolveCommand(commandId);
        if (again.result) return { result: again.result };
        state = again.state;
      }
    }
  }

  private async writeCommand(
    commandId: string,
    type: string,
    data: Record<string, unknown>,
    expected: bigint | 'no-stream',
  ): Promise<bigint> {
    const result = await this.client.appendToStream(this.names.command(commandId), jsonEvent({ type, data: data as JSONEventType['data'] }), {
      expectedRevision: expected === 'no-stream' ? NO_STREAM : expected,
    });
    if (!result.success) {
      throw new WrongExpectedVersionError(undefined, {
        streamName: this.names.command(commandId),
        expected: expected === 'no-stream' ? NO_STREAM : expected,
        current: result.nextExpectedRevision,
      });
    }
    return result.nextExpectedRevision;
  }

  async commandResult(commandId: string): Promise<AppendResult | undefined> {
    this.assertOpen();
    if (typeof commandId !== 'string' || commandId === '') return undefined;
    return (await this.resolveCommand(commandId)).result;
  }

  // ---------------------------------------------------------------------------------------------- reads

  async *readStream(stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
    this.assertOpen();
    assertStreamName(stream);
    assertRevision(fromRevision);
    let page: EsdbEvent[] = [];
    const flush = async function* (this: EsdbEventStore): AsyncIterable<RecordedEvent> {
      const positions = await this.positionsOf(stream, page);
      for (let i = 0; i < page.length; i++) yield this.toRecorded(stream, page[i]!, positions[i]!);
      page = [];
    };
    for await (const event of this.readFactStream(stream, fromRevision)) {
      page.push(event);
      if (page.length === PAGE) yield* flush.call(this);
    }
    yield* flush.call(this);
  }

  async streamRevision(stream: string): Promise<number | 'no-stream'> {
    this.assertOpen();
    assertStreamName(stream);
    const last = await this.lastEvent(this.names.fact(stream));
    return last ? toSafeNumber(last.revision, 'stream revision') : 'no-stream';
  }

  async *readAll(after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
    this.assertOpen();
    assertPosition(after);
    assertLimit(limit);
    if (limit === 0) return;
    await this.loadCheckpoints();
    let remaining = limit;
    for await (const { point, event } of this.factsFrom(this.pointAtOrBefore(after))) {
      if (point.ordinal <= after) continue;
      yield this.toRecorded(this.domainStreamOf(event.streamId), event, point.ordinal);
      if (--remaining === 0) return;
    }
  }

  async headPosition(): Promise<number> {
    this.assertOpen();
    await this.advance(() => false);
    return this.cursor.ordinal;
  }

  subscribe(after: number, onEvent: (event: RecordedEvent) => void | Promise<void>): Subscription {
    this.assertOpen();
    return followLog(this.followers, after, (from, signal) => this.liveFacts(from, signal), onEvent, this.label);
  }

  /** Facts after `after`, then live ones: a catch-up subscription to $all filtered on the fact prefix. */
  private async *liveFacts(after: number, signal: AbortSignal): AsyncIterable<RecordedEvent> {
    await this.loadCheckpoints();
    let point = this.pointAtOrBefore(after);
    const subscription = this.client.subscribeToAll({
      fromPosition: point.pos ?? START,
      filter: streamNameFilter({ prefixes: [this.names.factPrefix] }),
    });
    const stop = () => void subscription.unsubscribe().catch(() => {});
    signal.addEventListener('abort', stop);
    try {
      for await (const resolved of subscription) {
        if (signal.aborted) return;
        const event = resolved.event as AllStreamRecordedEvent | undefined;
        if (!event || !this.isFact(event.streamId)) continue;
        if (point.pos && comparePositions(event.position, point.pos) <= 0) continue;
        point = { ordinal: point.ordinal + 1, pos: event.position };
        this.notePoint(point, event.id);
        if (point.ordinal > after) yield this.toRecorded(this.domainStreamOf(event.streamId), event, point.ordinal);
      }
    } finally {
      signal.removeEventListener('abort', stop);
      await subscription.unsubscribe().catch(() => {});
    }
  }

  private toRecorded(stream: string, event: EsdbEvent, position: number): RecordedEvent {
    // The client parsed the JSON; a JSON round trip gives every reader its own copy.
    return {
      stream,
      revision: toSafeNumber(event.revision, 'stream revision'),
      position,
      type: event.type,
      data: JSON.parse(JSON.stringify(event.data ?? null)) as unknown,
      metadata: JSON.parse(JSON.stringify(event.metadata ?? {})) as RecordedEvent['metadata'],
    };
  }

  // ---------------------------------------------------------------------------------------------- positions

  /** Global positions of events of one fact stream: from its sidecar, else counted in $all (and recorded). */
  private async positionsOf(stream: string, events: EsdbEvent[]): Promise<number[]> {
    if (events.length === 0) return [];
    const lookup = (entries: PositionsEntry[], revision: number): number | undefined => {
      for (const e of entries) if (revision >= e.revision && revision < e.revision + e.count) return e.position + revision - e.revision;
      return undefined;
    };
    let entries = this.sidecars.get(stream);
    const revisions = events.map((e) => toSafeNumber(e.revision, 'stream revision'));
    if (!entries || revisions.some((r) => lookup(entries!, r) === undefined)) {
      entries = await this.readSidecar(stream);
      this.sidecars.set(stream, entries);
    }
    const positions: number[] = [];
    const missing: PositionsEntry[] = [];
    for (let i = 0; i < events.length; i++) {
      let position = lookup(entries, revisions[i]!) ?? this.ordinalsById.get(events[i]!.id);
      if (position === undefined) {
        position = await this.ordinalAt(events[i]!);
        missing.push({ revision: revisions[i]!, position, count: 1 });
      }
      positions.push(position);
    }
    if (missing.length > 0) await this.recordPositions(stream, missing).catch(() => {});
    return positions;
  }

  private async readSidecar(stream: string): Promise<PositionsEntry[]> {
    const entries: PositionsEntry[] = [];
    for await (const event of this.readEvents(this.names.positions(stream), 0n, FORWARDS)) {
      const d = event.data as Partial<PositionsEntry>;
      if (Number.isSafeInteger(d.revision) && Number.isSafeInteger(d.position) && Number.isSafeInteger(d.count)) {
        entries.push({ revision: d.revision!, position: d.position!, count: d.count! });
      }
    }
    return entries;
  }

  private async recordPositions(stream: string, entries: PositionsEntry[]): Promise<void> {
    const merged: PositionsEntry[] = [];
    for (const e of entries) {
      const last = merged.at(-1);
      if (last && last.revision + last.count === e.revision && last.position + last.count === e.position) last.count += e.count;
      else merged.push({ ...e });
    }
    await this.client.appendToStream(
      this.names.positions(stream),
      merged.map((data) => jsonEvent({ type: 'PositionsAssigned', data: { ...data } })),
      { expectedRevision: ANY },
    );
    const cached = this.sidecars.get(stream);
    if (cached) cached.push(...merged);
  }

  /** The ordinal of the fact with this id, advancing the cursor until it has been seen. */
  private async ordinalOfId(id: string): Promise<number> {
    const deadline = Date.now() + this.visibilityTimeoutMs;
    for (;;) {
      const known = this.ordinalsById.get(id);
      if (known !== undefined) return known;
      await this.advance((eventId) => eventId === id);
      const found = this.ordinalsById.get(id);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(`${this.label}: an appended event (${id}) did not show up in $all within ${this.visibilityTimeoutMs} ms`);
      }
      await sleep(20);
    }
  }

  /** The ordinal of a fact event read from its stream: counted from the nearest point before its $all position. */
  private async ordinalAt(event: EsdbEvent): Promise<number> {
    const target = event.position;
    if (!target) {
      // No position on a stream read (very old servers): find it by id from the start of $all.
      await this.advance(() => false);
      const known = this.ordinalsById.get(event.id);
      if (known !== undefined) return known;
      return this.countUntil({ ordinal: 0, pos: null }, (e) => e.id === event.id);
    }
    await this.loadCheckpoints();
    if (!this.cursor.pos || comparePositions(target, this.cursor.pos) > 0) await this.advance(() => false);
    let start: Point = { ordinal: 0, pos: null };
    for (const point of [...this.checkpoints, this.cursor]) {
      if (point.pos && comparePositions(point.pos, target) < 0 && point.ordinal >= start.ordinal) start = point;
    }
    return this.countUntil(start, (e) => comparePositions(e.position, target) === 0);
  }

  private async countUntil(start: Point, found: (event: AllStreamRecordedEvent) => boolean): Promise<number> {
    for await (const { point, event } of this.factsFrom(start)) {
      if (found(event)) return point.ordinal;
    }
    throw new StoreCorruptError(`${this.label}: a fact event was not found in $all while counting positions`);
  }

  /**
   * The fact events of $all after `start`, each with its point (noted as a checkpoint), page by page until the
   * end of $all.
   */
  private async *factsFrom(start: Point): AsyncIterable<{ point: Point; event: AllStreamRecordedEvent }> {
    let point = start;
    for (;;) {
      const page = await this.readAllPage(point.pos);
      let progressed = false;
      for (const event of page) {
        if (point.pos && comparePositions(event.position, point.pos) <= 0) continue;
        progressed = true;
        if (!this.isFact(event.streamId)) {
          point = { ordinal: point.ordinal, pos: event.position };
          continue;
        }
        point = { ordinal: point.ordinal + 1, pos: event.position };
        this.notePoint(point, event.id);
        yield { point, event };
      }
      if (page.length < PAGE || !progressed) return;
    }
  }

  /** Moves the cursor forward through $all (to its end, or until `stop` says so), counting facts. */
  private advance(stop: (eventId: string) => boolean): Promise<void> {
    return this.scanQueue.run(async () => {
      await this.loadCheckpoints();
      for (;;) {
        const page = await this.readAllPage(this.cursor.pos);
        let progressed = false;
        for (const event of page) {
          if (this.cursor.pos && comparePositions(event.position, this.cursor.pos) <= 0) continue;
          progressed = true;
          if (!this.isFact(event.streamId)) {
            this.cursor = { ordinal: this.cursor.ordinal, pos: event.position };
            continue;
          }
          this.cursor = { ordinal: this.cursor.ordinal + 1, pos: event.position };
          this.notePoint(this.cursor, event.id);
          if (stop(event.id)) {
            await this.persistCheckpoints();
            return;
          }
        }
        if (page.length < PAGE || !progressed) break;
      }
      await this.persistCheckpoints();
    });
  }

  private async readAllPage(from: Position | null): Promise<AllStreamRecordedEvent[]> {
    this.assertOpen();
    const events: AllStreamRecordedEvent[] = [];
    for await (const resolved of this.client.readAll({ fromPosition: from ?? START, maxCount: PAGE, direction: FORWARDS })) {
      if (resolved.event) events.push(resolved.event);
    }
    return events;
  }

  /** Remembers the ordinal of a fact (by id, bounded) and every 1000th ordinal as a checkpoint. */
  private notePoint(point: Point, eventId: string): void {
    if (this.ordinalsById.size >= 50_000) this.ordinalsById.delete(this.ordinalsById.keys().next().value!);
    this.ordinalsById.set(eventId, point.ordinal);
    if (point.ordinal % CHECKPOINT_EVERY === 0 && !this.checkpoints.some((c) => c.ordinal === point.ordinal)) {
      this.checkpoints.push({ ...point });
      this.checkpoints.sort((a, b) => a.ordinal - b.ordinal);
    }
  }

  private pointAtOrBefore(ordinal: number): Point {
    let best: Point = { ordinal: 0, pos: null };
    for (const point of [...this.checkpoints, this.cursor]) {
      if (point.ordinal <= ordinal && point.ordinal >= best.ordinal) best = point;
    }
    return best;
  }

  private async loadCheckpoints(): Promise<void> {
    if (this.loaded) return;
    for await (const event of this.readEvents(this.names.checkpoints, 0n, FORWARDS)) {
      const d = event.data as { ordinal?: number; commit?: string; prepare?: string };
      if (!Number.isSafeInteger(d.ordinal) || typeof d.commit !== 'string' || typeof d.prepare !== 'string') continue;
      const point = { ordinal: d.ordinal!, pos: { commit: BigInt(d.commit), prepare: BigInt(d.prepare) } };
      if (!this.checkpoints.some((c) => c.ordinal === point.ordinal)) this.checkpoints.push(point);
      this.persistedCheckpoint = Math.max(this.persistedCheckpoint, point.ordinal);
    }
    this.checkpoints.sort((a, b) => a.ordinal - b.ordinal);
    const last = this.checkpoints.at(-1)!;
    if (last.ordinal > this.cursor.ordinal) this.cursor = { ...last };
    this.loaded = true;
  }

  private async persistCheckpoints(): Promise<void> {
    const fresh = this.checkpoints.filter((c) => c.ordinal > this.persistedCheckpoint && c.pos);
    if (fresh.length === 0) return;
    try {
      await this.client.appendToStream(
        this.names.checkpoints,
        fresh.map((c) =>
          jsonEvent({ type: 'PositionCheckpoint', data: { ordinal: c.ordinal, commit: c.pos!.commit.toString(), prepare: c.pos!.prepare.toString() } }),
        ),
        { expectedRevision: ANY },
      );
      this.persistedCheckpoint = fresh.at(-1)!.ordinal;
    } catch {
      // a cache: written again after the next scan
    }
  }

  // ---------------------------------------------------------------------------------------------- ESDB reads

  private async *readEvents(name: string, from: bigint, direction: typeof FORWARDS | typeof BACKWARDS, maxCount?: number): AsyncIterable<EsdbEvent> {
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

  private readFactStream(stream: string, fromRevision: number): AsyncIterable<EsdbEvent> {
    return this.readEvents(this.names.fact(stream), BigInt(fromRevision), FORWARDS);
  }

  private async lastEvent(name: string): Promise<EsdbEvent | undefined> {
    for await (const event of this.readEvents(name, -1n, BACKWARDS, 1)) return event;
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------- docs

  async getDoc(collection: string, key: string): Promise<unknown | undefined> {
    this.assertOpen();
    const last = await this.lastEvent(this.names.doc(collection, key));
    if (!last) return undefined;
    return JSON.parse(JSON.stringify((last.data as { value?: unknown }).value ?? null)) as unknown;
  }

  async putDoc(collection: string, key: string, value: unknown): Promise<void> {
    this.assertOpen();
    const text = toJson(value, `doc '${collection}/${key}'`);
    const name = this.names.doc(collection, key);
    const result = await this.client.appendToStream(name, jsonEvent({ type: 'DocPut', data: { value: JSON.parse(text) as unknown } }), {
      expectedRevision: ANY,
    });
    // Only the last version matters: let ESDB drop the older ones.
    if (result.nextExpectedRevision === 0n) await this.client.setStreamMetadata(name, { maxCount: 1 }).catch(() => {});
  }

  // ---------------------------------------------------------------------------------------------- lifecycle

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.followers].map((follower) => follower.close()));
    this.closed = true;
    if (this.ownClient) await this.client.dispose().catch(() => {});
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`event store ${this.label} is closed`);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Store specs.

/** Opens the store of a spec `esdb://HOST:PORT?tls=false` or `esdb+discover://…` (registry.ts). */
export function openEsdbSpec(spec: string): Promise<EventStore> {
  return openEsdbEventStore(spec);
}
