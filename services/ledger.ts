// The embedded ledger: one command end to end (ARCHITECTURE.md "One command, end to end").
//
//   parse (zod) → idempotency (first outcome again) → load the domain (checkpoint + tail, LRU) → decide with the
//   host view → driver.perform → append with the loaded revision (optimistic concurrency, retried) → outcome
//
// Storage layout, all in one event store:
//   domain-<host>-<name>   a domain's facts (machines/events.ts), data = the fact without `type`, hash-chained
//   refusals-<host>        one `CommandRefused` fact per refused command: the audit trail of refusals
//   docs 'outcomes'        key = command id: the first outcome of every command (idempotent retries, refusals too);
//                          an outcome without its doc (a crash in between, or outcomeDocs 'unrecorded') is rebuilt
//                          from the facts that carry the command id
//   docs 'checkpoints'     key = stream: a state checkpoint every `checkpointEvery` facts (disposable, verified)
//   docs 'indexes'         key 'host-view': the UUID → name index and the global position it reflects (disposable)
//
// Several processes on one store: every append is checked against the revision its decision was made on, so two
// writers never both win; the loser reloads and decides again (up to MAX_ATTEMPTS). The host view (which UUIDs
// exist on a host, for DEF-NAME) is an in-memory index folded from the global log; before any decision that
// claims a UUID (define, create, migrate-incoming) the ledger follows the global log from where it last read
// (store.readAll), so it sees what other processes appended. With `follow: true` it also keeps a store.subscribe()
// subscription open so a long-running service (e.g. `serve`) stays current between commands.
// Within one process, commands on one domain are serialised, and UUID claims on one host are serialised.
import { createHash } from 'node:crypto';

import { z } from 'zod';

import { CommandSchema, commandDomainName, type Command } from '../machines/commands';
import { decide } from '../machines/decide';
import { ERROR_CODES, refusal as makeRefusal, type ErrorCodeName, type Refusal } from '../machines/errors';
import { evolve } from '../machines/evolve';
import type { HostView } from '../machines/guards';
import { DomainStateSchema, domainStream, initialDomainState, type DomainState } from '../machines/model';
import { bookkeepingDriver, type HypervisorDriver } from './drivers/types';
import { openEventStore } from './eventstore/index';
import {
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
} from './eventstore/types';
import { canonicalJson, factFromEvent, factHash, factToEventData } from './factHash';
import type { CommandOutcome, Ledger, LoadedDomain } from './ledger-types';
import { runMigration, type MigrationOptions, type MigrationPort } from './migration';

export const OUTCOMES_COLLECTION = 'outcomes';
export const CHECKPOINTS_COLLECTION = 'checkpoints';
export const INDEX_COLLECTION = 'indexes';
export const HOST_INDEX_KEY = 'host-view';
export const DEFAULT_CHECKPOINT_EVERY = 100;
export const DEFAULT_CACHE_SIZE = 1000;
/** Appends tried per command before giving up on a domain that keeps changing under us. */
export const MAX_ATTEMPTS = 5;
export const COMMAND_REFUSED = 'CommandRefused';
/** Rule id of a refusal caused by the caller's meta.expectedRevision (or by losing every retry). */
export const CONCURRENCY_RULE = 'CONCURRENCY';
/** Rule id of a command that does not parse. */
export const VALIDATION_RULE = 'VALIDATION';

export function refusalStream(host: string): string {
  return `refusals-${host}`;
}

export interface LedgerOptions {
  /** Performs accepted decisions; default: `bookkeepingDriver` (records the decided facts). */
  driver?: HypervisorDriver;
  /** Save a state checkpoint after this many facts on a stream (default 100). */
  checkpointEvery?: number;
  /** Replaces the ledger's own host index for decisions (tests, what-if). */
  hostView?: HostView;
  /** Domain states kept in memory (LRU), default 1000. */
  cacheSize?: number;
  /** Fault injection and hooks for the migration saga (services/migration.ts). */
  migration?: MigrationOptions;
  /** Keep a store.subscribe() subscription so the host index follows other processes between commands. */
  follow?: boolean;
  /** Called when the ledger ignored a disposable doc (a bad checkpoint, index or outcome). For logs and tests. */
  onDiscard?: (what: string, key: string, reason: string) => void;
  /**
   * Which outcomes get a doc in 'outcomes'. 'all' (default): every outcome, so a retry is one key lookup.
   * 'unrecorded': only outcomes no fact records (accepted no-ops, migrations); the others are rebuilt from the
   * facts their command id appended (the domain's facts, or the `CommandRefused` audit fact). Same answers,
   * one fsync per command instead of two (see bench/ledger.ts).
   */
  outcomeDocs?: 'all' | 'unrecorded';
}

// ---------------------------------------------------------------------------------------------------
// Persisted docs: validated with zod on the way back in; anything that does not validate is rebuilt.

const CheckpointSchema = z.object({
  version: z.literal(1),
  stream: z.string(),
  revision: z.number().int().min(0),
  /** metadata.hash of the fact at `revision`: ties the checkpoint to this stream's history. */
  hash: z.string(),
  /** sha256 of the canonical JSON of `state`: catches an edited checkpoint. */
  stateHash: z.string(),
  state: DomainStateSchema,
});

const IndexEntrySchema = z.object({
  host: z.string(),
  name: z.string(),
  life: z.enum(['none', 'exists', 'gone']),
  uuid: z.string().nullable(),
  active: z.boolean(),
  persistent: z.boolean(),
  revision: z.number().int(),
});
type IndexEntry = z.infer<typeof IndexEntrySchema>;

const IndexDocSchema = z.object({
  version: z.literal(1),
  position: z.number().int().min(0),
  entries: z.record(z.string(), IndexEntrySchema),
});

const OutcomeDocSchema = z.looseObject({
  ok: z.boolean(),
  command: z.string(),
  host: z.string(),
  domain: z.string(),
  commandId: z.string(),
  events: z.array(z.looseObject({ stream: z.string(), revision: z.number(), position: z.number(), type: z.string() })),
  revision: z.number(),
});

function stateHash(state: unknown): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex');
}

// ---------------------------------------------------------------------------------------------------
// Small helpers: a keyed mutex and an LRU map.

class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }
  delete(key: K): void {
    this.map.delete(key);
  }
}

// ---------------------------------------------------------------------------------------------------
// The host index: which domains exist on which host, and under which UUID (the HostView of DEF-NAME).
// Each entry is the part of a DomainState that existence depends on (life, uuid, active, persistent), which
// `evolve` maps onto itself, so folding a fact through `evolve` keeps the entry exact without the whole state.

function indexKey(host: string, uuid: string): string {
  return `${host}\u0000${uuid}`;
}

function entryOf(state: DomainState, revision: number): IndexEntry {
  return {
    host: state.host,
    name: state.name,
    life: state.life,
    uuid: state.uuid,
    active: state.active,
    persistent: state.persistent,
    revision,
  };
}

class HostIndex implements HostView {
  private readonly entries = new Map<string, IndexEntry>();
  private readonly byUuid = new Map<string, string>();
  /** Highest global position read from the log (local appends update entries, not this). */
  position = 0;

  domainNameByUuid(host: string, uuid: string): string | undefined {
    return this.byUuid.get(indexKey(host, uuid));
  }

  existing(host?: string): IndexEntry[] {
    return [...this.entries.values()].filter((e) => e.life === 'exists' && (host === undefined || e.host === host));
  }

  set(stream: string, entry: IndexEntry): void {
    const old = this.entries.get(stream);
    if (old?.life === 'exists' && old.uuid && this.byUuid.get(indexKey(old.host, old.uuid)) === old.name) {
      this.byUuid.delete(indexKey(old.host, old.uuid));
    }
    this.entries.set(stream, entry);
    if (entry.life === 'exists' && entry.uuid) this.byUuid.set(indexKey(entry.host, entry.uuid), entry.name);
  }

  /** After a local append: the state we just computed is the stream's state at `revision`. */
  applyState(stream: string, state: DomainState, revision: number): void {
    const old = this.entries.get(stream);
    if (old && old.revision >= revision) return;
    this.set(stream, entryOf(state, revision));
  }

  /** A fact read from the global log (ours or another process's); facts already folded are skipped by revision. */
  applyRecorded(e: RecordedEvent): void {
    if (e.position > this.position) this.position = e.position;
    if (!e.stream.startsWith('domain-')) return;
    const old = this.entries.get(e.stream);
    if (old && e.revision <= old.revision) return;
    const host = typeof e.metadata.host === 'string' ? e.metadata.host : old?.host;
    const name = typeof e.metadata.domain === 'string' ? e.metadata.domain : old?.name;
    if (host === undefined || name === undefined) return;
    let fact;
    try {
      fact = factFromEvent(e);
    } catch {
      return; // not a machine fact: nothing the index can learn from it
    }
    const base: DomainState = old
      ? { ...initialDomainState(old.host, old.name), life: old.life, uuid: old.uuid, active: old.active, persistent: old.persistent }
      : initialDomainState(host, name);
    this.set(e.stream, entryOf(evolve(base, fact), e.revision));
  }

  toDoc(): z.infer<typeof IndexDocSchema> {
    return { version: 1, position: this.position, entries: Object.fromEntries(this.entries) };
  }

  load(doc: z.infer<typeof IndexDocSchema>): void {
    for (const [stream, entry] of Object.entries(doc.entries)) this.set(stream, entry);
    this.position = doc.position;
  }
}

// ---------------------------------------------------------------------------------------------------

/** A loaded domain stream: the state, the revision it reflects, the hash of its last fact, the last checkpoint. */
interface Head {
  stream: string;
  state: DomainState;
  revision: number;
  hash: string | undefined;
  checkpointRevision: number;
}

type Attempt = { outcome: CommandOutcome; save: boolean };

/** The outcome of input that does not parse: VIR_ERR_INVALID_ARG, rule VALIDATION, naming each bad field. */
export function validationOutcome(input: unknown, error: z.ZodError): CommandOutcome {
  const raw = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const at = (path: readonly PropertyKey[]) =>
    path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), raw);
  const problems = error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || 'command';
    if (issue.path.length === 1 && issue.path[0] === 'verb') {
      return `verb: ${raw.verb === undefined ? 'Required' : `unknown verb ${JSON.stringify(raw.verb)}`}`;
    }
    const missing = issue.code === 'invalid_type' && at(issue.path) === undefined;
    return `${path}: ${missing ? 'Required' : issue.message}`;
  });
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const meta = (raw.meta && typeof raw.meta === 'object' ? raw.meta : {}) as Record<string, unknown>;
  const config = (raw.config && typeof raw.config === 'object' ? raw.config : {}) as Record<string, unknown>;
  return {
    ok: false,
    command: str(raw.verb),
    host: str(raw.host) || 'local',
    domain: str(raw.domain) || str(config.name),
    commandId: str(meta.commandId),
    events: [],
    revision: -1,
    rule: VALIDATION_RULE,
    code: ERROR_CODES.VIR_ERR_INVALID_ARG,
    codeName: 'VIR_ERR_INVALID_ARG',
    message: `invalid command: ${problems.join('; ')}`,
  };
}

function isClaim(c: Command): boolean {
  return c.verb === 'define' || c.verb === 'create' || c.verb === 'migrate-incoming';
}

function jsonClone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

class EmbeddedLedger implements Ledger, MigrationPort {
  readonly store: EventStore;
  private readonly driver: HypervisorDriver;
  private readonly checkpointEvery: number;
  private readonly cache: Lru<string, Head>;
  private readonly index = new HostIndex();
  readonly hostView: HostView;
  private readonly streamLocks = new KeyedMutex();
  private readonly claimLocks = new KeyedMutex();
  private readonly auditHeads = new Map<string, { revision: number; hash: string | undefined }>();
  private readonly ready: Promise<void>;
  private catchingUp: Promise<void> | undefined;
  private subscription: Subscription | undefined;
  private indexSavedAt = -1;
  private closed = false;

  constructor(
    store: EventStore,
    private readonly options: LedgerOptions,
  ) {
    this.store = store;
    this.driver = options.driver ?? bookkeepingDriver;
    this.checkpointEvery = Math.max(1, Math.floor(options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY));
    this.cache = new Lru(Math.max(1, options.cacheSize ?? DEFAULT_CACHE_SIZE));
    this.hostView = options.hostView ?? this.index;
    this.ready = this.start();
    this.ready.catch(() => undefined); // reported by the first call that awaits it
  }

  private discard(what: string, key: string, reason: string): void {
    this.options.onDiscard?.(what, key, reason);
  }

  private async start(): Promise<void> {
    const doc = await this.store.getDoc(INDEX_COLLECTION, HOST_INDEX_KEY);
    if (doc !== undefined) {
      const parsed = IndexDocSchema.safeParse(doc);
      if (parsed.success && parsed.data.position <= (await this.store.headPosition())) {
        this.index.load(parsed.data);
        this.indexSavedAt = parsed.data.position;
      } else {
        this.discard('index', HOST_INDEX_KEY, parsed.success ? 'position beyond the log head' : parsed.error.message);
      }
    }
    await this.followLog();
    if (this.options.follow) {
      this.subscription = this.store.subscribe(this.index.position, (e) => this.index.applyRecorded(e));
    }
  }

  /** Reads the global log from where the index last read (other processes' appends, and ours). */
  private followLog(): Promise<void> {
    this.catchingUp ??= (async () => {
      try {
        const from = this.index.position;
        for await (const e of this.store.readAll(this.index.position)) this.index.applyRecorded(e);
        if (this.index.position - from >= 1000) await this.saveIndex();
      } finally {
        this.catchingUp = undefined;
      }
    })();
    return this.catchingUp;
  }

  private async saveIndex(): Promise<void> {
    const doc = this.index.toDoc();
    await this.store.putDoc(INDEX_COLLECTION, HOST_INDEX_KEY, doc);
    this.indexSavedAt = doc.position;
  }

  // -------------------------------------------------------------------------------------------------
  // Loading: checkpoint + tail, with an LRU in front.

  private async loadHead(host: string, name: string): Promise<Head> {
    const stream = domainStream(host, name);
    const actual = await this.store.streamRevision(stream);
    const actualRevision = actual === 'no-stream' ? -1 : actual;
    let head = this.cache.get(stream);
    if (head && head.revision > actualRevision) head = undefined; // the store is not what we cached
    if (!head) head = await this.coldLoad(stream, host, name, actualRevision);
    else if (head.revision < actualRevision) head = await this.fold(head, head.revision + 1);
    head = await this.maybeCheckpoint(head);
    this.cache.set(stream, head);
    return head;
  }

  private async coldLoad(stream: string, host: string, name: string, actualRevision: number): Promise<Head> {
    const empty: Head = { stream, state: initialDomainState(host, name), revision: -1, hash: undefined, checkpointRevision: -1 };
    if (actualRevision < 0) return empty;
    const checkpoint = await this.readCheckpoint(stream, actualRevision);
    if (checkpoint) {
      // The checkpoint must match the fact it claims to follow; read from that fact to check it.
      const head: Head = {
        stream,
        state: checkpoint.state,
        revision: checkpoint.revision,
        hash: checkpoint.hash,
        checkpointRevision: checkpoint.revision,
      };
      const folded = await this.fold(head, checkpoint.revision, checkpoint.hash);
      if (folded) return folded;
      this.discard('checkpoint', stream, `the fact at revision ${checkpoint.revision} does not carry the checkpoint's hash`);
    }
    return (await this.fold(empty, 0))!;
  }

  /**
   * Applies the stream's facts from `fromRevision` to `head`. With `verifyHash`, the first fact read must be the one
   * at `fromRevision` carrying that hash (it is then skipped, being already in the state); otherwise returns undefined.
   */
  private async fold(head: Head, fromRevision: number): Promise<Head>;
  private async fold(head: Head, fromRevision: number, verifyHash: string): Promise<Head | undefined>;
  private async fold(head: Head, fromRevision: number, verifyHash?: string): Promise<Head | undefined> {
    let { state, revision, hash } = head;
    let first = verifyHash !== undefined;
    for await (const e of this.store.readStream(head.stream, fromRevision)) {
      if (first) {
        first = false;
        if (e.revision !== fromRevision || e.metadata.hash !== verifyHash) return undefined;
        continue;
      }
      let fact;
      try {
        fact = factFromEvent(e);
      } catch (error) {
        throw new Error(
          `stream '${e.stream}' revision ${e.revision} (position ${e.position}) holds a '${e.type}' that is not a valid fact: ` +
            `${(error as Error).message.split('\n')[0]}`,
        );
      }
      state = evolve(state, fact);
      hash = typeof e.metadata.hash === 'string' ? e.metadata.hash : factHash(hash, e.type, e.data);
      revision = e.revision;
    }
    if (first) return undefined; // the checkpointed fact is gone
    return { ...head, state, revision, hash };
  }

  private async readCheckpoint(stream: string, actualRevision: number) {
    const doc = await this.store.getDoc(CHECKPOINTS_COLLECTION, stream);
    if (doc === undefined) return undefined;
    const parsed = CheckpointSchema.safeParse(doc);
    if (!parsed.success) {
      this.discard('checkpoint', stream, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      return undefined;
    }
    const cp = parsed.data;
    const rawState = (doc as { state?: unknown }).state;
    if (cp.stream !== stream || cp.revision > actualRevision || stateHash(rawState) !== cp.stateHash) {
      this.discard('checkpoint', stream, 'stream, revision or state hash does not match');
      return undefined;
    }
    return cp;
  }

  private async maybeCheckpoint(head: Head): Promise<Head> {
    if (head.hash === undefined || head.revision - head.checkpointRevision < this.checkpointEvery) return head;
    const state = jsonClone(head.state);
    try {
      await this.store.putDoc(CHECKPOINTS_COLLECTION, head.stream, {
        version: 1,
        stream: head.stream,
        revision: head.revision,
        hash: head.hash,
        stateHash: stateHash(state),
        state,
      });
    } catch {
      return head; // a checkpoint is an optimisation: the next load replays a little more
    }
    return { ...head, checkpointRevision: head.revision };
  }

  // -------------------------------------------------------------------------------------------------
  // Public surface

  async loadDomain(host: string, name: string): Promise<LoadedDomain> {
    await this.ready;
    return this.streamLocks.run(domainStream(host, name), async () => {
      const head = await this.loadHead(host, name);
      return { state: head.state, revision: head.revision };
    });
  }

  async load(host: string, name: string): Promise<LoadedDomain> {
    return this.loadDomain(host, name);
  }

  async listDomains(host?: string): Promise<DomainState[]> {
    await this.ready;
    await this.followLog();
    const states: DomainState[] = [];
    for (const entry of this.index.existing(host)) {
      const { state } = await this.loadDomain(entry.host, entry.name);
      if (state.life === 'exists') states.push(state);
    }
    return states.sort((a, b) => (a.host === b.host ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.host < b.host ? -1 : 1));
  }

  async execute(input: unknown): Promise<CommandOutcome> {
    await this.ready;
    if (this.closed) throw new Error('ledger is closed');
    const parsed = CommandSchema.safeParse(input);
    if (!parsed.success) return validationOutcome(input, parsed.error);
    const command = parsed.data;
    if (command.verb === 'migrate') {
      // Only the saga's own outcome doc ends it here: facts without one mean it was interrupted, so run it again
      // (each step is idempotent by its own command id and the saga continues where it stopped).
      const done = await this.recallDoc(command.meta.commandId);
      if (done) return done;
      const outcome = await runMigration(this, command, { ...this.options.migration, driver: this.driver });
      // A saga's outcome spans several command ids: only its doc can tell it whole.
      const refusedAtBegin = !outcome.outcome.ok && outcome.outcome.events.length === 0 && outcome.outcome.audit !== undefined;
      if (!outcome.transient) await this.saveOutcome(outcome.outcome, refusedAtBegin);
      return outcome.outcome;
    }
    const prior = await this.recall(command.meta.commandId);
    if (prior) return prior;
    const attempt = await this.decideAndAppend(command);
    if (attempt.save) await this.saveOutcome(attempt.outcome);
    return attempt.outcome;
  }

  /** MigrationPort: one command of the saga, idempotent by its own command id. */
  async step(command: Command, options: { save: boolean }): Promise<CommandOutcome> {
    const prior = await this.recallOutcome(command.meta.commandId, options.save);
    if (prior) return prior;
    const attempt = await this.decideAndAppend(command);
    if (attempt.save && options.save) await this.saveOutcome(attempt.outcome);
    return attempt.outcome;
  }

  /** MigrationPort: Prepare's check on the destination, against a host view that has followed the log. */
  async checkIncoming(command: Extract<Command, { verb: 'migrate-incoming' }>): Promise<Refusal | undefined> {
    await this.followLog();
    const dest = await this.loadDomain(command.host, command.config.name);
    const decision = decide(dest.state, command, { host: this.hostView });
    return decision.ok ? undefined : decision.refusal;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.ready;
    } catch {
      return;
    }
    await this.subscription?.close();
    if (this.index.position !== this.indexSavedAt) {
      try {
        await this.saveIndex();
      } catch {
        // disposable; rebuilt from the log next time
      }
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Deciding and appending

  private async decideAndAppend(c: Command): Promise<Attempt> {
    const stream = domainStream(c.host, commandDomainName(c));
    const work = () => this.streamLocks.run(stream, () => this.attempts(c, stream));
    return isClaim(c) ? this.claimLocks.run(c.host, work) : work();
  }

  private async attempts(c: Command, stream: string): Promise<Attempt> {
    const name = commandDomainName(c);
    let head: Head | undefined;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (isClaim(c)) await this.followLog();
      head = await this.loadHead(c.host, name);
      const expected = c.meta.expectedRevision;
      if (expected !== undefined && expected !== head.revision) {
        const conflict = makeRefusal(
          CONCURRENCY_RULE,
          'VIR_ERR_OPERATION_FAILED',
          `domain ${name} changed: expected revision ${expected}, actual ${head.revision}`,
        );
        return this.refuse(c, conflict, head.revision);
      }
      const decision = decide(head.state, c, { host: this.hostView });
      if (!decision.ok) return this.refuse(c, decision.refusal, head.revision);
      const effect = await this.driver.perform(head.state, c, decision.facts);
      if (effect.refusal) return this.refuse(c, effect.refusal, head.revision);
      if (effect.facts.length === 0) return { outcome: this.accepted(c, [], head.revision), save: true };

      const events = this.encode(c, effect.facts, head.hash);
      let result: AppendResult;
      try {
        result = await this.store.append(stream, events, {
          expectedRevision: head.revision < 0 ? 'no-stream' : head.revision,
          commandId: c.meta.commandId,
        });
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError) {
          this.cache.delete(stream); // someone else appended: reload and decide again
          continue;
        }
        throw error;
      }
      if (result.duplicate) {
        // The same command id was appended by someone else meanwhile: theirs is the first outcome.
        const prior = await this.recallOutcome(c.meta.commandId, false);
        if (prior) return { outcome: prior, save: false };
      }
      const recorded = this.recorded(stream, events, result);
      let state = head.state;
      for (const f of effect.facts) state = evolve(state, f);
      let next: Head = { ...head, state, revision: result.revision, hash: events.at(-1)!.metadata.hash };
      next = await this.maybeCheckpoint(next);
      this.cache.set(stream, next);
      this.index.applyState(stream, state, result.revision);
      return { outcome: this.accepted(c, recorded, result.revision), save: true };
    }
    const gaveUp = makeRefusal(
      CONCURRENCY_RULE,
      'VIR_ERR_OPERATION_FAILED',
      `domain ${name} kept changing while the command was decided: gave up after ${MAX_ATTEMPTS} attempts; retry the command`,
    );
    // Not recorded and not remembered: a retry with the same command id may well succeed.
    return { outcome: this.refusedOutcome(c, gaveUp, head?.revision ?? -1), save: false };
  }

  private baseMeta(c: Command) {
    return {
      commandId: c.meta.commandId,
      actor: c.meta.actor,
      time: c.meta.time,
      ...(c.meta.correlationId !== undefined ? { correlationId: c.meta.correlationId } : {}),
      host: c.host,
      domain: commandDomainName(c),
    };
  }

  /** Store events for a decision's facts: metadata, the whole command on the first, and the hash chain. */
  private encode(c: Command, facts: readonly Parameters<typeof factToEventData>[0][], previousHash: string | undefined): NewEvent[] {
    const base = this.baseMeta(c);
    const command = jsonClone(c);
    let hash = previousHash;
    return facts.map((fact, i) => {
      const data = factToEventData(fact);
      hash = factHash(hash, fact.type, data);
      return { type: fact.type, data, metadata: { ...base, ...(i === 0 ? { command } : {}), hash } };
    });
  }

  private recorded(stream: string, events: NewEvent[], result: AppendResult): RecordedEvent[] {
    const n = events.length;
    return events.map((e, i) => ({
      ...e,
      stream,
      revision: result.revision - n + 1 + i,
      position: result.position - n + 1 + i,
    }));
  }

  private accepted(c: Command, events: RecordedEvent[], revision: number): CommandOutcome {
    return {
      ok: true,
      command: c.verb,
      host: c.host,
      domain: commandDomainName(c),
      commandId: c.meta.commandId,
      events,
      revision,
    };
  }

  private refusedOutcome(c: Command, r: Refusal, revision: number): CommandOutcome {
    return {
      ok: false,
      command: c.verb,
      host: c.host,
      domain: commandDomainName(c),
      commandId: c.meta.commandId,
      events: [],
      revision,
      rule: r.rule,
      code: r.code,
      codeName: r.codeName,
      message: r.message,
    };
  }

  /** A refusal appends nothing to the domain stream; one `CommandRefused` fact goes to `refusals-<host>`. */
  private async refuse(c: Command, r: Refusal, revision: number): Promise<Attempt> {
    const outcome = this.refusedOutcome(c, r, revision);
    const stream = refusalStream(c.host);
    const data = jsonClone({ command: c, rule: r.rule, code: r.code, codeName: r.codeName, message: r.message });
    // The domain stream's revision when refused: what the first outcome said (and what an audit wants to know).
    const base = { ...this.baseMeta(c), command: jsonClone(c), domainRevision: revision };
    for (let attempt = 1; ; attempt++) {
      const head = this.auditHeads.get(stream) ?? (await this.lastOf(stream));
      const hash = factHash(head.hash, COMMAND_REFUSED, data);
      const event: NewEvent = { type: COMMAND_REFUSED, data, metadata: { ...base, hash } };
      // A busy audit stream must not lose the record: after MAX_ATTEMPTS, append whatever the revision.
      const expectedRevision = attempt > MAX_ATTEMPTS ? 'any' : head.revision < 0 ? 'no-stream' : head.revision;
      let result: AppendResult;
      try {
        result = await this.store.append(stream, [event], { expectedRevision, commandId: c.meta.commandId });
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError) {
          this.auditHeads.delete(stream);
          continue;
        }
        throw error;
      }
      if (result.duplicate) {
        const prior = await this.recallOutcome(c.meta.commandId, false);
        if (prior) return { outcome: prior, save: false };
      }
      this.auditHeads.set(stream, { revision: result.revision, hash });
      outcome.audit = { stream, revision: result.revision, position: result.position };
      return { outcome, save: true };
    }
  }

  private async lastOf(stream: string): Promise<{ revision: number; hash: string | undefined }> {
    const revision = await this.store.streamRevision(stream);
    if (revision === 'no-stream') return { revision: -1, hash: undefined };
    for await (const e of this.store.readStream(stream, revision)) {
      return { revision, hash: typeof e.metadata.hash === 'string' ? e.metadata.hash : undefined };
    }
    return { revision: -1, hash: undefined };
  }

  // -------------------------------------------------------------------------------------------------
  // Idempotency

  private async saveOutcome(outcome: CommandOutcome, recordedByFacts = outcome.events.length > 0 || outcome.audit !== undefined): Promise<void> {
    if (this.options.outcomeDocs === 'unrecorded' && recordedByFacts) return;
    const { duplicate: _duplicate, ...first } = outcome;
    await this.store.putDoc(OUTCOMES_COLLECTION, outcome.commandId, first);
  }

  async recall(commandId: string): Promise<CommandOutcome | undefined> {
    return this.recallOutcome(commandId, true);
  }

  /** The outcome doc of a command id, if there is a valid one. */
  private async recallDoc(commandId: string): Promise<CommandOutcome | undefined> {
    if (!commandId) return undefined;
    const doc = await this.store.getDoc(OUTCOMES_COLLECTION, commandId);
    if (doc === undefined) return undefined;
    const parsed = OutcomeDocSchema.safeParse(doc);
    if (parsed.success) return { ...(parsed.data as unknown as CommandOutcome), duplicate: true };
    this.discard('outcome', commandId, parsed.error.message);
    return undefined;
  }

  /**
   * The first outcome of a command id: its doc, or else rebuilt from the facts it appended (a crash between the
   * append and the doc). `saveRebuilt` keeps a rebuilt outcome as the doc (not for a saga's Begin step, whose
   * command id is the whole saga's).
   */
  private async recallOutcome(commandId: string, saveRebuilt: boolean): Promise<CommandOutcome | undefined> {
    if (!commandId) return undefined;
    const doc = await this.recallDoc(commandId);
    if (doc) return doc;
    const result = await this.store.commandResult(commandId);
    if (!result) return undefined;
    const outcome = await this.rebuildOutcome(commandId, result);
    if (!outcome) return undefined;
    if (saveRebuilt) {
      try {
        await this.saveOutcome(outcome);
      } catch {
        // rebuilt again next time
      }
    }
    return { ...outcome, duplicate: true };
  }

  private async rebuildOutcome(commandId: string, result: AppendResult): Promise<CommandOutcome | undefined> {
    let last: RecordedEvent | undefined;
    for await (const e of this.store.readAll(result.position - 1, 1)) last = e;
    if (!last) return undefined;
    const facts: RecordedEvent[] = [last];
    let upTo = last.revision - 1;
    while (upTo >= 0) {
      const from = Math.max(0, upTo - 63);
      const window: RecordedEvent[] = [];
      for await (const e of this.store.readStream(last.stream, from)) {
        if (e.revision > upTo) break;
        window.push(e);
      }
      let stopped = false;
      for (let i = window.length - 1; i >= 0; i--) {
        if (window[i]!.metadata.commandId !== commandId) {
          stopped = true;
          break;
        }
        facts.unshift(window[i]!);
      }
      if (stopped) break;
      upTo = from - 1;
    }
    const meta = facts[0]!.metadata;
    const command = (meta.command ?? {}) as { verb?: string };
    const base = {
      command: typeof command.verb === 'string' ? command.verb : '',
      host: typeof meta.host === 'string' ? meta.host : '',
      domain: typeof meta.domain === 'string' ? meta.domain : '',
      commandId,
    };
    if (last.type === COMMAND_REFUSED) {
      const d = last.data as { rule?: string; code?: number; codeName?: string; message?: string };
      let domainRevision = last.metadata.domainRevision;
      if (typeof domainRevision !== 'number') {
        const now = await this.store.streamRevision(domainStream(base.host, base.domain));
        domainRevision = now === 'no-stream' ? -1 : now;
      }
      return {
        ok: false,
        ...base,
        events: [],
        revision: domainRevision as number,
        rule: d.rule,
        code: d.code,
        codeName: d.codeName as ErrorCodeName | undefined,
        message: d.message,
        audit: { stream: last.stream, revision: last.revision, position: last.position },
      };
    }
    return { ok: true, ...base, events: facts, revision: last.revision };
  }
}

/** The embedded ledger over an event store. The store stays the caller's: close it after `ledger.close()`. */
export function createLedger(store: EventStore, options: LedgerOptions = {}): Ledger {
  return new EmbeddedLedger(store, options);
}

/** Opens the store a spec names (`memory`, `sqlite:PATH`, …) and a ledger on it; closing the ledger closes both. */
export async function openLedger(spec: string, options: LedgerOptions = {}): Promise<Ledger> {
  const store = await openEventStore(spec);
  const ledger = createLedger(store, options);
  const close = ledger.close.bind(ledger);
  ledger.close = async () => {
    try {
      await close();
    } finally {
      await store.close();
    }
  };
  return ledger;
}
