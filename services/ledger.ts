// The embedded ledger: one command end to end.
//
//   parse (zod) → idempotency (first outcome again) → load the domain (checkpoint + tail, LRU) → decide with the
//   host view → driver.perform → append with the loaded revision (optimistic concurrency, retried) → outcome
//   (a driver whose effects land outside the ledger instead: intent appended at the loaded revision → perform
//   once → result appended after the intent; services/intents.ts, which also settles intents left open)
//
// Storage layout, all in one event store:
//   domain-<host>-<name>   a domain's facts (machines/events.ts), data = the fact without `type`, hash-chained
//                          (the first fact of each decision carries the whole command, and the hash covers it);
//                          and the EffectIntended / EffectSettled records of exactly-once effects (no facts)
//   refusals-<host>        one `CommandRefused` fact per refused command: the audit trail of refusals
//   noops-<host>           one `CommandAccepted` per accepted command that changed nothing (suspend of a paused
//                          domain, managedsave-remove without an image, a guest event with nothing to report):
//                          the domain's stream and revision stay as they were; the record names the revision (and
//                          hash) it was decided on, so the audit sees it and the replay re-checks it there
//   docs 'outcomes'        key = command id: the first outcome of every command (idempotent retries, refusals too),
//                          written with the command's facts (AppendOptions.docs: one transaction on SQLite, so one
//                          durable write per command); an outcome without its doc (a backend without transactions
//                          that crashed in between, or outcomeDocs 'unrecorded') is rebuilt from the facts that carry
//                          the command id
//   docs 'checkpoints'     key = stream: a state checkpoint every `checkpointEvery` facts (disposable, verified),
//                          written with the fact that makes it due
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

import { ClientCommandSchema, CommandSchema, commandDomainName, isCoordinatorVerb, type Command } from '../machines/commands';
import { decide } from '../machines/decide';
import { ERROR_CODES, refusal as makeRefusal, type ErrorCodeName, type Refusal } from '../machines/errors';
import type { Fact } from '../machines/events';
import { evolve } from '../machines/evolve';
import type { HostView } from '../machines/guards';
import { DomainStateSchema, domainStream, initialDomainState, type DomainState } from '../machines/model';
import { selectPage, type DomainPage, type DomainQuery } from './domainQuery';
import { bookkeepingDriver, type HypervisorDriver } from './drivers/types';
import { HostIndex } from './hostIndex';
import { readIndexDoc } from './hostIndexDoc';
import { openEventStore } from './eventstore/index';
import {
  StoreCorruptError,
  WrongExpectedRevisionError,
  type AppendResult,
  type DocWrite,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
} from './eventstore/types';
import { canonicalJson, eventHash, factFromEvent, factHash, factToEventData } from './factHash';
import type { CommandOutcome, ExecuteOptions, Ledger, LoadedDomain } from './ledger-types';
export { OldStreamLayoutError } from './hostIndex';
import { IntentProtocol, JOB_BUSY_RULE, OpenIntentSchema, type IntentHead, type IntentOptions, type IntentPort } from './intents';
import { runMigration, type MigrationOptions, type MigrationPort } from './migration';
import { EFFECT_INTENDED, isEffectRecord } from '../projections/log';

export const OUTCOMES_COLLECTION = 'outcomes';
export const CHECKPOINTS_COLLECTION = 'checkpoints';
export const INDEX_COLLECTION = 'indexes';
export const HOST_INDEX_KEY = 'host-view';
export const DEFAULT_CHECKPOINT_EVERY = 100;
export const DEFAULT_CACHE_SIZE = 1000;
/** Appends tried per command before giving up on a domain that keeps changing under us. */
export const MAX_ATTEMPTS = 5;
export const COMMAND_REFUSED = 'CommandRefused';
/** The record of an accepted command that changed nothing, in `noops-<host>`. */
export const COMMAND_ACCEPTED = 'CommandAccepted';
/** Rule id of a refusal caused by the caller's meta.expectedRevision (or by losing every retry). */
export const CONCURRENCY_RULE = 'CONCURRENCY';
/** Rule id of a command that does not parse. */
export const VALIDATION_RULE = 'VALIDATION';
/** Rule id of a coordinator verb (machines/commands.ts COORDINATOR_VERBS) sent by a client. */
export const COORDINATOR_ONLY_RULE = 'COORDINATOR-ONLY';

export function refusalStream(host: string): string {
  return `refusals-${host}`;
}

export function noopStream(host: string): string {
  return `noops-${host}`;
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
  /**
   * Run what the driver reports on its own (HypervisorDriver.pendingReports, e.g. a mirror that became ready) as
   * commands after each accepted command (default true). False: the caller reports them (flushGuestEvents).
   */
  hypervisorReports?: boolean;
  /**
   * Called when the ledger ignored a disposable doc (a bad checkpoint, index or outcome), or a hypervisor report
   * that could not be run (what = 'report'; it is reported again after the next command). For logs and tests.
   */
  onDiscard?: (what: string, key: string, reason: string) => void;
  /**
   * Which outcomes get a doc in 'outcomes'. 'all' (default): every outcome, so a retry is one key lookup.
   * 'unrecorded': only outcomes no fact records (migrations); the others are rebuilt from the facts their command
   * id appended (the domain's facts, or the `CommandAccepted` / `CommandRefused` audit record). Same answers;
   * both write one durable transaction per command on SQLite (the doc rides with the facts), 'unrecorded' a
   * smaller one (see bench/ledger.ts).
   */
  outcomeDocs?: 'all' | 'unrecorded';
  /** Exactly-once effects (services/intents.ts): how long to wait for another process's job, its lease, hooks. */
  intents?: IntentOptions;
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

/** Domain streams whose last record was an open intent when the index doc was saved (services/intents.ts). */
const OpenIntentsDocSchema = z.array(OpenIntentSchema).optional();

/** Marks an outcome doc whose `events` are references (stream, revision, position, type) to facts in the log. */
const FACTS_BY_REFERENCE = 'factsByReference';

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

/** A loaded domain stream (defined beside the exactly-once protocol, which reads and writes it too). */
type Head = IntentHead;

/** `state`: the domain's state after an accepted append (for the driver's reports). */
type Attempt = { outcome: CommandOutcome; save: boolean; state?: DomainState };

/** Rounds of hypervisor reports run after one command (each round may report what the last one made possible). */
const MAX_REPORT_ROUNDS = 8;

/** A value for a message: as JSON when it has one (a bigint, say, has none, and JSON.stringify would throw). */
function quoteValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return typeof value === 'bigint' ? `${value}n` : `a ${typeof value} that is not JSON`;
  }
}

/** The outcome of input that does not parse: VIR_ERR_INVALID_ARG, rule VALIDATION, naming each bad field. */
export function validationOutcome(input: unknown, error: z.ZodError): CommandOutcome {
  const raw = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const at = (path: readonly PropertyKey[]) =>
    path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), raw);
  const problems = error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || 'command';
    if (issue.path.length === 1 && issue.path[0] === 'verb') {
      return `verb: ${raw.verb === undefined ? 'Required' : `unknown verb ${quoteValue(raw.verb)}`}`;
    }
    const missing = issue.code === 'invalid_type' && at(issue.path) === undefined;
    return `${path}: ${missing ? 'Required' : issue.message}`;
  });
  return {
    ...unparsedRefusal(raw),
    rule: VALIDATION_RULE,
    code: ERROR_CODES.VIR_ERR_INVALID_ARG,
    codeName: 'VIR_ERR_INVALID_ARG',
    message: `invalid command: ${problems.join('; ')}`,
  };
}

/** What a refusal of input that was not (or not yet) parsed can say about it: verb, host, domain, command id. */
function unparsedRefusal(raw: Record<string, unknown>): Omit<CommandOutcome, 'rule' | 'code' | 'codeName' | 'message'> {
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
  };
}

/** A coordinator verb from a client: refused as libvirt refuses what a connection may not do (code 29), not recorded. */
export function coordinatorOnlyOutcome(input: { verb: string } & Record<string, unknown>): CommandOutcome {
  const denied = makeRefusal(
    COORDINATOR_ONLY_RULE,
    'VIR_ERR_OPERATION_DENIED',
    `'${input.verb}' is a step of a migration and only the ledger's migration coordinator issues it; send 'migrate'`,
  );
  return { ...unparsedRefusal(input), ...denied };
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
  /** One append at a time per audit stream (refusals, no-ops) in this process, so each chains to the hash before it. */
  private readonly auditLocks = new KeyedMutex();
  private readonly auditHeads = new Map<string, { revision: number; hash: string | undefined }>();
  private readonly ready: Promise<void>;
  private catchingUp: Promise<void> | undefined;
  private subscription: Subscription | undefined;
  private indexSavedAt = -1;
  private closed = false;
  private readonly intents: IntentProtocol;

  constructor(
    store: EventStore,
    private readonly options: LedgerOptions,
  ) {
    this.store = store;
    this.driver = options.driver ?? bookkeepingDriver;
    this.checkpointEvery = Math.max(1, Math.floor(options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY));
    this.cache = new Lru(Math.max(1, options.cacheSize ?? DEFAULT_CACHE_SIZE));
    this.hostView = options.hostView ?? this.index;
    this.intents = new IntentProtocol(this.intentPort(), options.intents);
    this.ready = this.start();
    this.ready.catch(() => undefined); // reported by the first call that awaits it
  }

  private discard(what: string, key: string, reason: string): void {
    this.options.onDiscard?.(what, key, reason);
  }

  private async start(): Promise<void> {
    const doc = await this.store.getDoc(INDEX_COLLECTION, HOST_INDEX_KEY);
    if (doc !== undefined) {
      const parsed = readIndexDoc(doc);
      const intents = OpenIntentsDocSchema.safeParse((doc as { openIntents?: unknown } | null)?.openIntents);
      if (typeof parsed !== 'string' && intents.success && parsed.position <= (await this.store.headPosition())) {
        this.index.load(parsed);
        this.intents.open.load(intents.data ?? []);
        this.indexSavedAt = parsed.position;
      } else {
        const reason = typeof parsed === 'string' ? parsed : !intents.success ? `openIntents: ${intents.error.message}` : 'position beyond the log head';
        this.discard('index', HOST_INDEX_KEY, reason);
      }
    }
    await this.followLog();
    // As libvirt recovers its jobs on restart: intents whose recorder is gone are settled before any command.
    await this.intents.recover(
      (host, name) => this.loadHead(host, name),
      (stream, fn) => this.streamLocks.run(stream, fn),
    );
    if (this.options.follow) {
      this.subscription = this.store.subscribe(this.index.position, (e) => {
        this.index.applyRecorded(e);
        this.intents.open.observe(e);
      });
    }
  }

  /** Reads the global log from where the index last read (other processes' appends, and ours). */
  private followLog(): Promise<void> {
    this.catchingUp ??= (async () => {
      try {
        const from = this.index.position;
        for await (const e of this.store.readAll(this.index.position)) {
          this.index.applyRecorded(e);
          this.intents.open.observe(e);
        }
        if (this.index.position - from >= 1000) await this.saveIndex();
      } finally {
        this.catchingUp = undefined;
      }
    })();
    return this.catchingUp;
  }

  private async saveIndex(): Promise<void> {
    const doc = { ...this.index.toDoc(), openIntents: this.intents.open.list() };
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
    let { state, revision, hash, intent } = head;
    let first = verifyHash !== undefined;
    for await (const e of this.store.readStream(head.stream, fromRevision)) {
      if (first) {
        first = false;
        if (e.revision !== fromRevision || e.metadata.hash !== verifyHash) return undefined;
        continue;
      }
      if (isEffectRecord(e.type)) {
        // An intent (open until its result follows) or its settlement: no fact, the state stays.
        intent = e.type === EFFECT_INTENDED ? e : undefined;
        hash = typeof e.metadata.hash === 'string' ? e.metadata.hash : eventHash(hash, e);
        revision = e.revision;
        continue;
      }
      intent = undefined;
      let fact;
      try {
        fact = factFromEvent(e);
      } catch (error) {
        throw new Error(
          `stream '${e.stream}' revision ${e.revision} (position ${e.position}) holds a '${e.type}' that is not a valid fact: ` +
            `${(error as Error).message.split('\n')[0]}`,
        );
      }
      // The hash chain is checked before anything is appended after it: a changed fact is not built upon.
      const expected = eventHash(hash, e);
      if (typeof e.metadata.hash === 'string' && e.metadata.hash !== expected) {
        throw new StoreCorruptError(
          `stream '${e.stream}' revision ${e.revision} (position ${e.position}) does not match its hash chain: the fact was changed; ` +
            `nothing is written to this domain (run 'vmledger replay' to see what changed)`,
        );
      }
      state = evolve(state, fact);
      hash = typeof e.metadata.hash === 'string' ? e.metadata.hash : expected;
      revision = e.revision;
    }
    if (first) return undefined; // the checkpointed fact is gone
    return { ...head, state, revision, hash, intent };
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

  /** The state checkpoint of `head` when one is due (`checkpointEvery` facts after the last), else undefined. */
  private checkpointDue(head: Head): DocWrite | undefined {
    // Never at an open intent: a load from the checkpoint would not see it.
    if (head.hash === undefined || head.intent || head.revision - head.checkpointRevision < this.checkpointEvery) return undefined;
    const state = jsonClone(head.state);
    return {
      collection: CHECKPOINTS_COLLECTION,
      key: head.stream,
      value: { version: 1, stream: head.stream, revision: head.revision, hash: head.hash, stateHash: stateHash(state), state },
    };
  }

  private async maybeCheckpoint(head: Head): Promise<Head> {
    const checkpoint = this.checkpointDue(head);
    if (!checkpoint) return head;
    try {
      await this.store.putDoc(checkpoint.collection, checkpoint.key, checkpoint.value);
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

  async queryDomains(query: DomainQuery = {}): Promise<DomainPage> {
    await this.ready;
    await this.followLog();
    return selectPage(this.index.sorted(), query);
  }

  async execute(input: unknown, options?: ExecuteOptions): Promise<CommandOutcome> {
    await this.ready;
    if (this.closed) throw new Error('ledger is closed');
    // Clients: no coordinator verb, no command id in the ledger's own namespace (machines/names.ts).
    if (isCoordinatorVerb((input as { verb?: unknown } | null)?.verb)) return coordinatorOnlyOutcome(input as { verb: string });
    const parsed = ClientCommandSchema.safeParse(input);
    if (!parsed.success) return validationOutcome(input, parsed.error);
    const command = parsed.data;
    if (command.verb === 'migrate') {
      // Only the saga's own outcome doc ends it here: facts without one mean it was interrupted, so run it again
      // (each step is idempotent by its own command id and the saga continues where it stopped).
      const done = await this.recallDoc(command.meta.commandId);
      if (done) return done;
      const denied = await this.notAdmitted(command, options);
      if (denied) return denied;
      const outcome = await runMigration(this, command, { ...this.options.migration, driver: this.driver });
      // A saga's outcome spans several command ids: only its doc can tell it whole.
      const refusedAtBegin = !outcome.outcome.ok && outcome.outcome.events.length === 0 && outcome.outcome.audit !== undefined;
      if (!outcome.transient) await this.saveOutcome(outcome.outcome, refusedAtBegin);
      if (outcome.outcome.ok) {
        await this.hypervisorReports(command.host, command.domain);
        await this.hypervisorReports(command.desthost, command.domain);
      }
      return outcome.outcome;
    }
    const prior = await this.recall(command.meta.commandId);
    if (prior) {
      // A retry is also when reports lost to a crash right after the first attempt get made.
      if (prior.ok) await this.hypervisorReports(command.host, commandDomainName(command));
      return prior;
    }
    const denied = await this.notAdmitted(command, options);
    if (denied) return denied;
    const attempt = await this.decideAndAppend(command);
    if (attempt.save) await this.saveOutcome(attempt.outcome);
    if (attempt.outcome.ok) await this.hypervisorReports(command.host, commandDomainName(command), attempt.state);
    return attempt.outcome;
  }

  /** The recorded refusal of a command its caller does not admit (ExecuteOptions.admit), or undefined. */
  private async notAdmitted(command: Command, options: ExecuteOptions | undefined): Promise<CommandOutcome | undefined> {
    const refusal = options?.admit?.(command);
    if (!refusal) return undefined;
    const head = await this.loadHead(command.host, commandDomainName(command));
    const attempt = await this.refuse(command, refusal, head.revision);
    if (attempt.save) await this.saveOutcome(attempt.outcome);
    return attempt.outcome;
  }

  /**
   * What the hypervisor reports on its own after an accepted command (driver.pendingReports): each report is run
   * as a command of its own (its id is the driver's, deterministic, so a report made twice is an idempotent retry),
   * then the driver is asked again, until it has nothing new to say about the domain. The command that was
   * accepted stays accepted whatever happens here: a report that cannot be run is left for the next command.
   */
  private async hypervisorReports(host: string, name: string, after?: DomainState): Promise<void> {
    const driver = this.driver;
    if (!driver.pendingReports || this.options.hypervisorReports === false) return;
    const seen = new Set<string>();
    let state = after;
    try {
      for (let round = 0; round < MAX_REPORT_ROUNDS; round++) {
        state ??= (await this.loadDomain(host, name)).state;
        const reports = (await driver.pendingReports(state)).filter((r) => !seen.has(r.meta.commandId));
        if (reports.length === 0) return;
        for (const input of reports) {
          seen.add(input.meta.commandId);
          const parsed = CommandSchema.safeParse(input);
          if (!parsed.success) {
            this.discard('report', input.meta.commandId, parsed.error.message);
            continue;
          }
          if (await this.recall(parsed.data.meta.commandId)) continue;
          const attempt = await this.decideAndAppend(parsed.data);
          if (attempt.save) await this.saveOutcome(attempt.outcome);
        }
        state = undefined;
      }
    } catch (error) {
      this.discard('report', `${host}/${name}`, error instanceof Error ? error.message : String(error));
    }
  }

  /** MigrationPort: one command of the saga, idempotent by its own command id. */
  async step(command: Command, options: { save: boolean }): Promise<CommandOutcome> {
    const prior = await this.recallOutcome(command.meta.commandId, options.save);
    if (prior) return prior;
    const attempt = await this.decideAndAppend(command, options.save);
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
    this.intents.close();
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

  /**
   * Decides and appends under the domain's lock: commands on one domain queue here (in this process) instead of
   * racing each other into WrongExpectedRevision retries; commands on other domains run concurrently, so the
   * SQLite store commits their appends together (group commit). `saveDoc`: write the outcome doc with the facts
   * (then the attempt comes back with `save: false`: nothing left for the caller to write).
   */
  private async decideAndAppend(c: Command, saveDoc = true): Promise<Attempt> {
    const stream = domainStream(c.host, commandDomainName(c));
    const work = () => this.streamLocks.run(stream, () => this.attempts(c, stream, saveDoc));
    return isClaim(c) ? this.claimLocks.run(c.host, work) : work();
  }

  private async attempts(c: Command, stream: string, saveDoc: boolean): Promise<Attempt> {
    const name = commandDomainName(c);
    let head: Head | undefined;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (isClaim(c)) await this.followLog();
      head = await this.loadHead(c.host, name);
      if (head.intent && c.meta.observed) {
        // What libvirt did while a command's job holds the domain is most likely that job's own effect: not
        // recorded now; the observer looks again once the job's result is in.
        return { outcome: this.refusedOutcome(c, makeRefusal(JOB_BUSY_RULE, 'VIR_ERR_OPERATION_INVALID', `domain ${name} has a job in progress`), head.revision), save: false };
      }
      if (head.intent) {
        // Another command's job holds the domain (or this command's own, recorded before a crash or by another process).
        const unblocked = await this.intents.unblock(head, c);
        if (unblocked !== 'reload') return unblocked;
        continue;
      }
      const expected = c.meta.expectedRevision;
      if (expected !== undefined && expected !== head.revision) {
        const conflict = makeRefusal(
          CONCURRENCY_RULE,
          'VIR_ERR_OPERATION_FAILED',
          `domain ${name} changed: expected revision ${expected}, actual ${head.revision}`,
        );
        // An observation made on an older state is not recorded: the observer compares again.
        if (c.meta.observed) return { outcome: this.refusedOutcome(c, conflict, head.revision), save: false };
        return this.refuse(c, conflict, head.revision, saveDoc);
      }
      const decision = decide(head.state, c, { host: this.hostView });
      if (!decision.ok) return this.refuse(c, decision.refusal, head.revision, saveDoc);
      if (!c.meta.observed && this.intents.applies(c, decision.facts)) {
        // An effect outside the ledger: intent first, performed once, then the result (services/intents.ts).
        const done = await this.intents.performOnce(head, c, decision.facts, saveDoc);
        if (done !== 'lost') return done;
        this.cache.delete(stream);
        continue;
      }
      // What libvirt did on its own already happened: recorded as decided, never performed.
      const effect = c.meta.observed ? { facts: decision.facts } : await this.driver.perform(head.state, c, decision.facts);
      if (effect.refusal) return this.refuse(c, effect.refusal, head.revision, saveDoc);
      // Accepted, changing nothing: the domain's stream and revision stay as they are; the audit record goes to
      // noops-<host> (as a refusal's to refusals-<host>).
      if (effect.facts.length === 0) return this.recordNoop(c, head, saveDoc);
      const facts: Fact[] = effect.facts;

      const events = this.encode(c, facts, head.hash);
      let state = head.state;
      for (const f of facts) state = evolve(state, f);
      const after: Head = { ...head, state, revision: head.revision + events.length, hash: events.at(-1)!.metadata.hash };
      const checkpoint = this.checkpointDue(after);
      const outcomeOf = (r: AppendResult): CommandOutcome => this.accepted(c, this.recorded(stream, events, r), r.revision);
      // One durable write per command: the outcome doc (which quotes the positions the store assigns, hence a
      // function of the result) and a due checkpoint go with the facts, in the same transaction on SQLite.
      let outcome: CommandOutcome | undefined;
      let result: AppendResult;
      try {
        result = await this.store.append(stream, events, {
          expectedRevision: head.revision < 0 ? 'no-stream' : head.revision,
          commandId: c.meta.commandId,
          docs: (r) => {
            outcome = outcomeOf(r);
            const doc = saveDoc ? this.outcomeDoc(outcome) : undefined;
            return [...(doc ? [doc] : []), ...(checkpoint ? [checkpoint] : [])];
          },
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
      const docsWritten = outcome !== undefined;
      outcome ??= outcomeOf(result);
      const next: Head = {
        ...after,
        revision: result.revision,
        checkpointRevision: docsWritten && checkpoint ? after.revision : head.checkpointRevision,
      };
      this.cache.set(stream, next);
      this.index.applyState(stream, state, result.revision);
      return { outcome, save: !docsWritten, state };
    }
    const gaveUp = makeRefusal(
      CONCURRENCY_RULE,
      'VIR_ERR_OPERATION_FAILED',
      `domain ${name} kept changing while the command was decided: gave up after ${MAX_ATTEMPTS} attempts; retry the command`,
    );
    // Not recorded and not remembered: a retry with the same command id may well succeed.
    return { outcome: this.refusedOutcome(c, gaveUp, head?.revision ?? -1), save: false };
  }

  /** What the exactly-once protocol (services/intents.ts) uses of this ledger. */
  private intentPort(): IntentPort {
    return {
      store: this.store,
      driver: this.driver,
      encode: (c, facts, previousHash) => this.encode(c, facts, previousHash),
      baseMeta: (c) => this.baseMeta(c),
      recorded: (stream, events, result) => this.recorded(stream, events, result),
      accepted: (c, events, revision) => this.accepted(c, events, revision),
      refusedOutcome: (c, r, revision) => this.refusedOutcome(c, r, revision),
      outcomeDoc: (outcome) => this.outcomeDoc(outcome),
      checkpointDue: (head) => this.checkpointDue(head),
      recallOutcome: (commandId) => this.recallOutcome(commandId, false),
      appended: (head) => {
        this.cache.set(head.stream, head);
        this.index.applyState(head.stream, head.state, head.revision);
      },
      forget: (stream) => this.cache.delete(stream),
      discard: (what, key, reason) => this.discard(what, key, reason),
    };
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

  /** Store events for a decision's facts: metadata, the whole command on the first, and the hash chain (which covers that command). */
  private encode(c: Command, facts: readonly Fact[], previousHash: string | undefined): NewEvent[] {
    const base = this.baseMeta(c);
    const command = jsonClone(c);
    let hash = previousHash;
    return facts.map((fact, i) => {
      const data = factToEventData(fact);
      hash = factHash(hash, fact.type, data, i === 0 ? command : undefined);
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
  private refuse(c: Command, r: Refusal, revision: number, saveDoc = true): Promise<Attempt> {
    // The domain's revision it was refused at goes into the hashed data: the replay re-decides it on that state.
    const data = jsonClone({ command: c, rule: r.rule, code: r.code, codeName: r.codeName, message: r.message, domainRevision: revision });
    return this.appendRecord(refusalStream(c.host), COMMAND_REFUSED, c, data, this.refusedOutcome(c, r, revision), revision, saveDoc);
  }

  /**
   * An accepted command that changed nothing appends nothing to the domain stream (its revision stays: nobody's
   * expected revision is spoilt, no writer contends for the domain); one `CommandAccepted` goes to `noops-<host>`,
   * naming the domain revision it was decided on and that fact's hash (covered by the record's own hash), so the
   * replay re-checks it on exactly that state and notices a domain stream rewritten under it.
   */
  private async recordNoop(c: Command, head: Head, saveDoc: boolean): Promise<Attempt> {
    const data = jsonClone({ command: c, domainRevision: head.revision, ...(head.hash !== undefined ? { domainHash: head.hash } : {}) });
    const attempt = await this.appendRecord(noopStream(c.host), COMMAND_ACCEPTED, c, data, this.accepted(c, [], head.revision), head.revision, saveDoc);
    return { ...attempt, state: head.state };
  }

  /**
   * Appends one audit record (CommandRefused, CommandAccepted) to a host's audit stream, hash-chained, the hash
   * covering the command in its metadata too. Appended at the exact revision its hash chains to (never 'any', which
   * could put it after a record it does not chain to: a break the replay would report as tampering); serialised
   * per audit stream in this process, and retried on a fresh head when another process got in first.
   */
  private appendRecord(
    stream: string,
    type: string,
    c: Command,
    data: Record<string, unknown>,
    outcome: CommandOutcome,
    revision: number,
    saveDoc: boolean,
  ): Promise<Attempt> {
    return this.auditLocks.run(stream, () => this.appendRecordLocked(stream, type, c, data, outcome, revision, saveDoc));
  }

  private async appendRecordLocked(
    stream: string,
    type: string,
    c: Command,
    data: Record<string, unknown>,
    outcome: CommandOutcome,
    revision: number,
    saveDoc: boolean,
  ): Promise<Attempt> {
    // The domain stream's revision when decided: what the first outcome said (and what an audit wants to know).
    const base = { ...this.baseMeta(c), command: jsonClone(c), domainRevision: revision };
    let docWritten = false;
    for (;;) {
      const head = this.auditHeads.get(stream) ?? (await this.lastOf(stream));
      const hash = factHash(head.hash, type, data, base.command);
      const event: NewEvent = { type, data, metadata: { ...base, hash } };
      const expectedRevision = head.revision < 0 ? 'no-stream' : head.revision;
      let result: AppendResult;
      try {
        // The outcome doc goes with the record (one durable write), quoting where the store put it.
        const docs = saveDoc
          ? (at: AppendResult): DocWrite[] => {
              docWritten = true;
              const doc = this.outcomeDoc({ ...outcome, audit: { stream, revision: at.revision, position: at.position } });
              return doc ? [doc] : [];
            }
          : undefined;
        result = await this.store.append(stream, [event], { expectedRevision, commandId: c.meta.commandId, docs });
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
      return { outcome, save: !docWritten };
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

  /** The outcome doc of a first outcome, or undefined when `outcomeDocs: 'unrecorded'` leaves it to its facts. */
  private outcomeDoc(outcome: CommandOutcome, recordedByFacts = outcome.events.length > 0 || outcome.audit !== undefined): DocWrite | undefined {
    if (this.options.outcomeDocs === 'unrecorded' && recordedByFacts) return undefined;
    const { duplicate: _duplicate, ...first } = outcome;
    // The facts by reference: they are in the log already, and copying them (each carries its whole command)
    // doubled what every command writes (about a fifth of the NATS command rate, bench/run.ts section c).
    // recallDoc reads them back.
    const events = first.events.map(({ stream, revision, position, type }) => ({ stream, revision, position, type }));
    return { collection: OUTCOMES_COLLECTION, key: outcome.commandId, value: { ...first, events, [FACTS_BY_REFERENCE]: true } };
  }

  /** The facts an outcome doc names by reference, read back from the log; undefined if one is not (or no longer) there. */
  private async factsByReference(refs: readonly { stream: string; revision: number; position: number; type: string }[]): Promise<RecordedEvent[] | undefined> {
    const facts: RecordedEvent[] = [];
    let i = 0;
    while (i < refs.length) {
      // A run of consecutive revisions of one stream (a command's facts): one read.
      let end = i + 1;
      while (end < refs.length && refs[end]!.stream === refs[i]!.stream && refs[end]!.revision === refs[end - 1]!.revision + 1) end++;
      for await (const e of this.store.readStream(refs[i]!.stream, refs[i]!.revision)) {
        const ref = refs[i]!;
        if (e.revision !== ref.revision || e.position !== ref.position || e.type !== ref.type) return undefined;
        facts.push(e);
        if (++i === end) break;
      }
      if (i !== end) return undefined;
    }
    return facts;
  }

  /** Writes an outcome doc on its own: for outcomes no append carried (a saga's, a rebuilt one). */
  private async saveOutcome(outcome: CommandOutcome, recordedByFacts = outcome.events.length > 0 || outcome.audit !== undefined): Promise<void> {
    const doc = this.outcomeDoc(outcome, recordedByFacts);
    if (doc) await this.store.putDoc(doc.collection, doc.key, doc.value);
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
    if (!parsed.success) {
      this.discard('outcome', commandId, parsed.error.message);
      return undefined;
    }
    const { [FACTS_BY_REFERENCE]: byReference, ...first } = parsed.data;
    if (byReference !== true) return { ...(first as unknown as CommandOutcome), duplicate: true };
    const events = await this.factsByReference(first.events);
    if (!events) {
      this.discard('outcome', commandId, 'a fact it names is not in the log');
      return undefined;
    }
    return { ...(first as unknown as CommandOutcome), events, duplicate: true };
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
    if (last.type === EFFECT_INTENDED) return this.intents.outcomeAfter(last);
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
    if (last.type === COMMAND_ACCEPTED) {
      // An accepted no-op: as first answered, no facts, the domain's revision then, and the record's place.
      const d = last.data as { domainRevision?: unknown };
      const domainRevision = typeof d.domainRevision === 'number' ? d.domainRevision : last.metadata.domainRevision;
      return {
        ok: true,
        ...base,
        events: [],
        revision: typeof domainRevision === 'number' ? domainRevision : -1,
        audit: { stream: last.stream, revision: last.revision, position: last.position },
      };
    }
    return { ok: true, ...base, events: facts, revision: last.revision };
  }
}

/**
 * Runs a report of the in-process hypervisor (a `guest-event` from HypervisorDriver.pendingGuestEvents) on an
 * embedded ledger: its command id is in the ledger's own namespace, which `execute` refuses from clients.
 */
export async function reportFromHypervisor(ledger: Ledger, input: unknown): Promise<CommandOutcome> {
  if (!(ledger instanceof EmbeddedLedger)) throw new TypeError('hypervisor reports run on an embedded ledger only');
  const parsed = CommandSchema.safeParse(input);
  if (!parsed.success) return validationOutcome(input, parsed.error);
  if (parsed.data.verb !== 'guest-event') throw new TypeError(`a hypervisor report is a guest-event, not '${parsed.data.verb}'`);
  return ledger.step(parsed.data, { save: true });
}

/**
 * Records what libvirt did on its own (a command with `meta.observed`, from services/reconcile.ts): decided by the
 * rules like any command, recorded with its facts (or its refusal: the model disagrees with libvirt), never
 * performed. Idempotent by its command id. Not recorded when its `expectedRevision` is stale or a job holds the
 * domain (rule CONCURRENCY / JOB-BUSY, outcome not saved): the observer compares again.
 */
export async function recordObserved(ledger: Ledger, input: unknown): Promise<CommandOutcome> {
  if (!(ledger instanceof EmbeddedLedger)) throw new TypeError('observations are recorded on an embedded ledger only');
  const parsed = CommandSchema.safeParse(input);
  if (!parsed.success) return validationOutcome(input, parsed.error);
  if (!parsed.data.meta.observed) throw new TypeError('an observation needs meta.observed');
  return ledger.step(parsed.data, { save: true });
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
