// The embedded ledger: one command end to end, and the public surface (`vmledger/ledger`).
//
//   parse (zod) → idempotency (first outcome again) → load the domain (checkpoint + tail, LRU) → decide with the
//   host view → driver.perform → append with the loaded revision (optimistic concurrency, retried) → outcome
//   (a driver whose effects land outside the ledger instead: intent appended at the loaded revision → perform
//   once → result appended after the intent; services/intents.ts, which also settles intents left open)
//
// What lives where in this folder:
//   index.ts              createLedger / openLedger, the Ledger's methods (execute, load, list, query, domainHosts, recall, close)
//   layout.ts             the storage layout: which stream and which doc collection holds what
//   options.ts            LedgerOptions and the defaults
//   commandHandler.ts     load → decide → perform → append, retried when another writer got in first
//   decider.ts            the one place the domain machine is asked (decide, evolve)
//   streamCache.ts        loading a stream (checkpoint + tail, hash chain checked), the LRU, checkpoints
//   encoding.ts           facts → store events (metadata, the command, the hash chain)
//   outcomes.ts           the CommandOutcome of each kind (accepted, refused, VALIDATION, COORDINATOR-ONLY)
//   outcomeDocs.ts        idempotency: outcome docs, recalling a first outcome, rebuilding one from its records
//   auditRecords.ts       refusals-<host> and noops-<host>, hash-chained
//   hypervisorReports.ts  what the driver reports on its own, run as commands after an accepted one
//   migrationPort.ts      the ledger as the migration saga (services/migration.ts) uses it, and `migrate`
//   logFollow.ts          the host index and open intents kept current with the global log, and their doc
//   keyedMutex.ts         one job at a time per key
//
// Several processes on one store: every append is checked against the revision its decision was made on, so two
// writers never both win; the loser reloads and decides again (up to MAX_ATTEMPTS). The host view (which UUIDs
// exist on a host, for DEF-NAME) is an in-memory index folded from the global log; before any decision that
// claims a UUID (define, create, migrate-incoming) the ledger follows the global log from where it last read
// (store.readAll), so it sees what other processes appended. With `follow: true` it also keeps a store.subscribe()
// subscription open so a long-running service (e.g. `serve`) stays current between commands.
// Within one process, commands on one domain are serialised, and UUID claims on one host are serialised.
import { ClientCommandSchema, CommandSchema, commandDomainName, isCoordinatorVerb, type Command, type CommandOf } from '../../machines/commands';
import type { Refusal } from '../../machines/errors';
import type { HostView } from '../../machines/guards';
import { domainStream, type DomainState } from '../../machines/model';
import { selectPage, type DomainPage, type DomainQuery } from '../domainQuery';
import { bookkeepingDriver, type HypervisorDriver } from '../drivers/types';
import { openEventStore } from '../eventstore/index';
import type { EventStore } from '../eventstore/types';
import { hypervisorReportsOnly } from '../identity/rules';
import { IntentProtocol, type IntentPort } from '../intents';
import type { CommandOutcome, ExecuteOptions, Ledger, LoadedDomain, LocalLedger } from '../ledger-types';
import type { MigrationPort } from '../migration';
import { AuditRecords } from './auditRecords';
import { CommandHandler } from './commandHandler';
import { baseMeta, encode, recorded } from './encoding';
import { runHypervisorReports, type HypervisorReportParts } from './hypervisorReports';
import { KeyedMutex } from './keyedMutex';
import { LogFollower } from './logFollow';
import { executeMigrate, sagaSteps, type SagaSteps } from './migrationPort';
import { DEFAULT_CACHE_SIZE, DEFAULT_CHECKPOINT_EVERY, type LedgerOptions } from './options';
import { OutcomeDocs } from './outcomeDocs';
import { accepted, coordinatorOnlyOutcome, refusedOutcome, validationOutcome } from './outcomes';
import { StreamCache } from './streamCache';

export { OldStreamLayoutError } from '../hostIndex';
export { MAX_ATTEMPTS } from './commandHandler';
export * from './layout';
export { DEFAULT_CACHE_SIZE, DEFAULT_CHECKPOINT_EVERY, type LedgerOptions } from './options';
export { CONCURRENCY_RULE, COORDINATOR_ONLY_RULE, coordinatorOnlyOutcome, VALIDATION_RULE, validationOutcome } from './outcomes';

class EmbeddedLedger implements LocalLedger, MigrationPort {
  readonly store: EventStore;
  readonly hostView: HostView;
  private readonly driver: HypervisorDriver;
  private readonly streams: StreamCache;
  private readonly docs: OutcomeDocs;
  private readonly audit: AuditRecords;
  private readonly intents: IntentProtocol;
  private readonly log: LogFollower;
  private readonly handler: CommandHandler;
  private readonly reports: HypervisorReportParts;
  private readonly saga: SagaSteps;
  private readonly streamLocks = new KeyedMutex();
  private readonly claimLocks = new KeyedMutex();
  private readonly ready: Promise<void>;
  private closed = false;

  constructor(
    store: EventStore,
    private readonly options: LedgerOptions,
  ) {
    const discard = (what: string, key: string, reason: string) => options.onDiscard?.(what, key, reason);
    this.store = store;
    this.driver = options.driver ?? bookkeepingDriver;
    this.streams = new StreamCache(store, {
      checkpointEvery: Math.max(1, Math.floor(options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY)),
      cacheSize: Math.max(1, options.cacheSize ?? DEFAULT_CACHE_SIZE),
      discard,
    });
    this.docs = new OutcomeDocs({ store, mode: options.outcomeDocs, discard, outcomeAfterIntent: (e) => this.intents.outcomeAfter(e) });
    this.audit = new AuditRecords(store, this.docs);
    this.intents = new IntentProtocol(this.intentPort(discard), options.intents);
    this.log = new LogFollower(store, this.intents.open, discard);
    this.hostView = options.hostView ?? this.log.index;
    this.handler = new CommandHandler({
      store,
      driver: this.driver,
      hostView: this.hostView,
      streams: this.streams,
      audit: this.audit,
      docs: this.docs,
      intents: this.intents,
      streamLocks: this.streamLocks,
      claimLocks: this.claimLocks,
      followLog: () => this.log.follow(),
      applied: (stream, state, revision) => this.log.index.applyState(stream, state, revision),
    });
    this.reports = {
      driver: this.driver,
      enabled: options.hypervisorReports !== false,
      loadState: async (host, name) => (await this.loadDomain(host, name)).state,
      recall: (commandId) => this.recall(commandId),
      handle: (c) => this.handler.handle(c),
      saveOutcome: (outcome) => this.docs.saveOutcome(outcome),
      discard,
    };
    this.saga = sagaSteps({
      handler: this.handler,
      docs: this.docs,
      hostView: this.hostView,
      load: (host, name) => this.loadDomain(host, name),
      followLog: () => this.log.follow(),
    });
    this.ready = this.start();
    this.ready.catch(() => undefined); // reported by the first call that awaits it
  }

  private async start(): Promise<void> {
    await this.log.loadDoc();
    await this.log.follow();
    // As libvirt recovers its jobs on restart: intents whose recorder is gone are settled before any command.
    await this.intents.recover(
      (host, name) => this.streams.load(host, name),
      (stream, fn) => this.streamLocks.run(stream, fn),
    );
    if (this.options.follow) this.log.subscribe();
  }

  async loadDomain(host: string, name: string): Promise<LoadedDomain> {
    await this.ready;
    return this.streamLocks.run(domainStream(host, name), async () => {
      const head = await this.streams.load(host, name);
      return { state: head.state, revision: head.revision };
    });
  }

  async load(host: string, name: string): Promise<LoadedDomain> {
    return this.loadDomain(host, name);
  }

  async listDomains(host?: string): Promise<DomainState[]> {
    await this.ready;
    await this.log.follow();
    const states: DomainState[] = [];
    for (const entry of this.log.index.existing(host)) {
      const { state } = await this.loadDomain(entry.host, entry.name);
      if (state.life === 'exists') states.push(state);
    }
    return states.sort((a, b) => (a.host === b.host ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.host < b.host ? -1 : 1));
  }

  async queryDomains(query: DomainQuery = {}): Promise<DomainPage> {
    await this.ready;
    await this.log.follow();
    return selectPage(this.log.index.sorted(), query);
  }

  async domainHosts(name: string): Promise<string[]> {
    const hosts = new Set<string>();
    for (const [host, destination] of await this.holders(name)) {
      hosts.add(host);
      if (destination !== undefined) hosts.add(destination);
    }
    return [...hosts].sort();
  }

  async migratingTo(name: string, host: string): Promise<boolean> {
    for (const [source, destination] of await this.holders(name)) if (source !== host && destination === host) return true;
    return false;
  }

  /**
   * The hosts holding a domain of this name (the host index) or defining one (an open intent), each with the
   * destination of its migration in flight: the guest arrives there before the saga records it. Read without the
   * stream lock: a command in flight holds it while libvirt performs it (a define, the migration's Perform).
   */
  private async holders(name: string): Promise<Map<string, string | undefined>> {
    await this.ready;
    await this.log.follow();
    const hosts = new Set(this.log.index.existing().filter((e) => e.name === name).map((e) => e.host));
    for (const open of this.intents.open.list()) if (open.name === name) hosts.add(open.host);
    const holders = new Map<string, string | undefined>();
    for (const host of hosts) holders.set(host, (await this.streams.peek(host, name)).state.migration?.destination);
    return holders;
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
      return executeMigrate(
        {
          port: this,
          docs: this.docs,
          driver: this.driver,
          options: this.options.migration,
          notAdmitted: (c) => this.notAdmitted(c, options),
          reports: (host, name) => runHypervisorReports(this.reports, host, name),
        },
        command,
      );
    }
    const prior = await this.recall(command.meta.commandId);
    if (prior) {
      // A retry is also when reports lost to a crash right after the first attempt get made.
      if (prior.ok) await runHypervisorReports(this.reports, command.host, commandDomainName(command));
      return prior;
    }
    const denied = await this.notAdmitted(command, options);
    if (denied) return denied;
    const attempt = await this.handler.handle(command);
    if (attempt.save) await this.docs.saveOutcome(attempt.outcome);
    if (attempt.outcome.ok) await runHypervisorReports(this.reports, command.host, commandDomainName(command), attempt.state);
    return attempt.outcome;
  }

  /**
   * The recorded refusal of a command its caller does not admit (ExecuteOptions.admit), or of a client's guest-event
   * in front of a hypervisor that reports them itself; undefined when admitted.
   */
  private async notAdmitted(command: Command, options: ExecuteOptions | undefined): Promise<CommandOutcome | undefined> {
    const refusal = options?.admit?.(command) ?? (this.driver.reportsGuestEvents ? hypervisorReportsOnly(command) : undefined);
    if (!refusal) return undefined;
    const head = await this.streams.load(command.host, commandDomainName(command));
    const attempt = await this.audit.refuse(command, refusal, head.revision);
    if (attempt.save) await this.docs.saveOutcome(attempt.outcome);
    return attempt.outcome;
  }

  async recall(commandId: string): Promise<CommandOutcome | undefined> {
    return this.docs.recallOutcome(commandId, true);
  }

  /** MigrationPort: one command of the saga, idempotent by its own command id (migrationPort.ts). */
  step(command: Command, options: { save: boolean }): Promise<CommandOutcome> {
    return this.saga.step(command, options);
  }

  /** MigrationPort: Prepare's check on the destination (migrationPort.ts). */
  checkIncoming(command: CommandOf<'migrate-incoming'>): Promise<Refusal | undefined> {
    return this.saga.checkIncoming(command);
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
    await this.log.close();
  }

  /** What the exactly-once protocol (services/intents.ts) uses of this ledger. */
  private intentPort(discard: IntentPort['discard']): IntentPort {
    return {
      store: this.store,
      driver: this.driver,
      encode,
      baseMeta,
      recorded,
      accepted,
      refusedOutcome,
      outcomeDoc: (outcome) => this.docs.outcomeDoc(outcome),
      checkpointDue: (head) => this.streams.checkpointDue(head),
      recallOutcome: (commandId) => this.docs.recallOutcome(commandId, false),
      appended: (head) => {
        this.streams.set(head.stream, head);
        this.log.index.applyState(head.stream, head.state, head.revision);
      },
      forget: (stream) => this.streams.forget(stream),
      discard,
    };
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
export function createLedger(store: EventStore, options: LedgerOptions = {}): LocalLedger {
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
