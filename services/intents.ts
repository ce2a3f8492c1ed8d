// Exactly-once effects: intent → perform → result (issue 16).
//
// A command whose effect lands outside the ledger (HypervisorDriver.hasEffect) is not performed inside the append
// retry loop, where a lost race, a retry or a crash would perform it again. Instead:
//   1. intent   an `EffectIntended` record (the command, the decided facts, who performs it and until when) is
//               appended to the domain stream at the revision the command was decided on, under the command's
//               id: that append is what wins the race with another writer (the loser reloads and sees the
//               intent), and the store's command-id idempotency makes a second intent for the same id a duplicate;
//   2. perform  the driver performs it, once, by the process that recorded the intent;
//   3. result   the facts the driver reported (or an `EffectSettled` record when there are none) are appended at
//               the intent's revision: exactly one result follows an intent.
// While an intent is open (last on its stream) the domain is busy: other changes wait for it as libvirt waits
// for its job lock (30 s by default), then get libvirt's `cannot acquire state change lock` (rule JOB-BUSY).
// An intent whose recorder is gone (a dead process on this machine, this very ledger after perform threw, or a
// lease run out) is settled against the hypervisor (HypervisorDriver.settle) when a ledger opens the store or a
// command meets it: what the hypervisor really did is recorded, and nothing is performed again.
// Known limit: the lease is the recorder's promise to finish within it; a recorder on another machine that
// overruns it can find its intent settled by someone else (its late result is then refused, and reported).
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';

import { z } from 'zod';

import type { Command } from '../machines/commands';
import { refusal as makeRefusal, type Refusal } from '../machines/errors';
import type { Fact } from '../machines/events';
import { evolve } from '../machines/evolve';
import type { DomainState } from '../machines/model';
import { EFFECT_INTENDED, EFFECT_SETTLED, isDomainStream } from '../projections/log';
import type { EffectIntent, EffectResult, HypervisorDriver } from './drivers/types';
import { WrongExpectedRevisionError, type AppendResult, type DocWrite, type EventStore, type NewEvent, type RecordedEvent } from './eventstore/types';
import { factHash } from './factHash';
import type { CommandOutcome } from './ledger-types';

/** Rule id of the refusal a busy domain gives (docs/rules.md §8: one job at a time per domain, libvirt's job lock). */
export const JOB_BUSY_RULE = 'JOB-BUSY';
/** Rule id of a command whose intent was settled as not performed (its recorder stopped before performing it). */
export const JOB_INTERRUPTED_RULE = 'JOB-INTERRUPTED';
/** How long a command waits for another process's job on its domain: libvirt's job wait (QEMU_JOB_WAIT_TIME). */
export const DEFAULT_JOB_WAIT_MS = 30_000;
/** How long a recorder has to perform and record an effect before others may settle its intent. */
export const DEFAULT_LEASE_MS = 120_000;
/** The env var that pauses a ledger at a point of the protocol (for the crash tests): after-intent, after-effect. */
export const FAULT_ENV = 'VMLEDGER_FAULT_PAUSE';

const OwnerSchema = z.object({ machine: z.string(), pid: z.number().int(), instance: z.string() });
type Owner = z.infer<typeof OwnerSchema>;

const IntentDataSchema = z.object({
  command: z.looseObject({ verb: z.string(), host: z.string(), meta: z.looseObject({ commandId: z.string() }) }),
  decided: z.array(z.looseObject({ type: z.string() })),
  driver: z.string(),
  owner: OwnerSchema,
  recordedAt: z.string(),
  leaseUntil: z.string(),
});
export type IntentData = z.infer<typeof IntentDataSchema>;

const SettledDataSchema = z.object({
  verb: z.string(),
  performed: z.boolean(),
  settledBy: z.enum(['performer', 'recovery']),
  refusal: z.object({ rule: z.string(), code: z.number(), codeName: z.string(), message: z.string() }).optional(),
});

export function intentDataOf(event: RecordedEvent): IntentData | undefined {
  if (event.type !== EFFECT_INTENDED) return undefined;
  const parsed = IntentDataSchema.safeParse(event.data);
  return parsed.success ? parsed.data : undefined;
}

/**
 * A loaded domain stream (the ledger's head): the state, the revision it reflects, the hash of its last record,
 * the last checkpoint, and an open intent when there is one.
 */
export interface IntentHead {
  stream: string;
  state: DomainState;
  revision: number;
  hash: string | undefined;
  checkpointRevision: number;
  /** The stream's last record, when it is an open intent. */
  intent?: RecordedEvent;
}

export interface IntentAttempt {
  outcome: CommandOutcome;
  save: boolean;
  state?: DomainState;
}

/** What the protocol needs from the ledger (services/ledger/): its encoding, outcomes, docs and caches. */
export interface IntentPort {
  store: EventStore;
  driver: HypervisorDriver;
  /** Store events of a decision's facts (the command on the first, hash-chained after `previousHash`). */
  encode(c: Command, facts: readonly Fact[], previousHash: string | undefined): NewEvent[];
  baseMeta(c: Command): NewEvent['metadata'];
  recorded(stream: string, events: NewEvent[], result: AppendResult): RecordedEvent[];
  accepted(c: Command, events: RecordedEvent[], revision: number): CommandOutcome;
  refusedOutcome(c: Command, r: Refusal, revision: number): CommandOutcome;
  outcomeDoc(outcome: CommandOutcome): DocWrite | undefined;
  checkpointDue(head: IntentHead): DocWrite | undefined;
  /** The first outcome of a command id, if one is recorded (undefined while its intent is open). */
  recallOutcome(commandId: string): Promise<CommandOutcome | undefined>;
  /** After the protocol appended: the stream's new head (cache, host index). */
  appended(head: IntentHead): void;
  /** Forget a cached head (someone else appended). */
  forget(stream: string): void;
  discard(what: string, key: string, reason: string): void;
}

export interface IntentOptions {
  /** How long a command waits for another process's open intent on its domain (default 30 s, as libvirt). */
  jobWaitMs?: number;
  /** How long a recorder may take to perform and record (default 120 s). */
  leaseMs?: number;
  /** Called at each point of the protocol (after-intent, after-effect), e.g. to stop there in a test. */
  onPoint?: (point: 'after-intent' | 'after-effect', command: Command) => void | Promise<void>;
}

/** Ledgers alive in this process (several may share one store): their intents are not ours to settle. */
const liveInstances = new Set<string>();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** The crash tests' fault hook: stop here (the process stays alive until killed) when the env var names the point. */
async function envPause(point: string): Promise<void> {
  if (process.env[FAULT_ENV] !== point) return;
  process.stderr.write(`vmledger: paused at ${point} (${FAULT_ENV})\n`);
  await new Promise<never>(() => setInterval(() => undefined, 60_000));
}

export function jobBusyRefusal(intent: IntentData): Refusal {
  return makeRefusal(
    JOB_BUSY_RULE,
    'VIR_ERR_OPERATION_TIMEOUT',
    `cannot acquire state change lock (held by monitor=${intent.command.verb} ${intent.command.meta.commandId})`,
  );
}

function interruptedRefusal(verb: string): Refusal {
  return makeRefusal(
    JOB_INTERRUPTED_RULE,
    'VIR_ERR_OPERATION_FAILED',
    `job '${verb}' unexpectedly failed: its process stopped before the hypervisor performed it; nothing changed`,
  );
}

export const OpenIntentSchema = z.object({ stream: z.string(), host: z.string(), name: z.string() });
export type OpenIntent = z.infer<typeof OpenIntentSchema>;

/** Domain streams with an open intent, as far as the log read so far tells (kept in the ledger's index doc). */
export class OpenIntents {
  private readonly streams = new Map<string, OpenIntent>();

  observe(event: RecordedEvent): void {
    if (!isDomainStream(event.stream)) return;
    const { host, domain } = event.metadata;
    if (event.type === EFFECT_INTENDED && typeof host === 'string' && typeof domain === 'string') {
      this.streams.set(event.stream, { stream: event.stream, host, name: domain });
    } else {
      this.streams.delete(event.stream);
    }
  }

  load(open: readonly OpenIntent[]): void {
    for (const o of open) this.streams.set(o.stream, o);
  }

  list(): OpenIntent[] {
    return [...this.streams.values()];
  }

  closed(stream: string): void {
    this.streams.delete(stream);
  }
}

export class IntentProtocol {
  readonly open = new OpenIntents();
  private readonly owner: Owner = { machine: hostname(), pid: process.pid, instance: randomUUID() };

  constructor(
    private readonly port: IntentPort,
    private readonly options: IntentOptions = {},
  ) {
    if (port.driver.hasEffect && !port.driver.settle) {
      throw new Error(`driver '${port.driver.name}' has effects (hasEffect) but no settle(): open intents could never be settled`);
    }
    liveInstances.add(this.owner.instance);
  }

  /** The ledger closed: intents it left open (a perform that threw twice) are anyone's to settle now. */
  close(): void {
    liveInstances.delete(this.owner.instance);
  }

  /** Whether this command goes through intent → perform → result. */
  applies(c: Command, decided: readonly Fact[]): boolean {
    return this.port.driver.hasEffect?.(c, decided) === true;
  }

  /**
   * Records the intent at `head`'s revision, performs, records the result. 'lost': another writer appended first
   * (reload and decide again; nothing was performed).
   */
  async performOnce(head: IntentHead, c: Command, decided: Fact[], saveDoc: boolean): Promise<IntentAttempt | 'lost'> {
    const { store, driver } = this.port;
    const now = Date.now();
    const data: IntentData = {
      command: JSON.parse(JSON.stringify(c)) as IntentData['command'],
      decided: JSON.parse(JSON.stringify(decided)) as IntentData['decided'],
      driver: driver.name,
      owner: this.owner,
      recordedAt: new Date(now).toISOString(),
      leaseUntil: new Date(now + (this.options.leaseMs ?? DEFAULT_LEASE_MS)).toISOString(),
    };
    const hash = factHash(head.hash, EFFECT_INTENDED, data);
    const event: NewEvent = { type: EFFECT_INTENDED, data, metadata: { ...this.port.baseMeta(c), hash } };
    let result: AppendResult;
    try {
      result = await store.append(head.stream, [event], {
        expectedRevision: head.revision < 0 ? 'no-stream' : head.revision,
        commandId: c.meta.commandId,
      });
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) return 'lost';
      throw error;
    }
    if (result.duplicate) {
      // Another process recorded this command id's intent first: its outcome, once it has one.
      const prior = await this.port.recallOutcome(c.meta.commandId);
      return prior ? { outcome: prior, save: false } : 'lost';
    }
    const [intent] = this.port.recorded(head.stream, [event], result);
    const open: IntentHead = { ...head, revision: result.revision, hash, intent };
    this.port.appended(open);
    await this.point('after-intent', c);
    let effect: EffectResult;
    let settledBy: 'performer' | 'recovery' = 'performer';
    try {
      effect = await driver.perform(head.state, c, decided);
    } catch (error) {
      // Whether it happened is unknown: ask the hypervisor (if that throws too, the intent stays open: busy).
      this.port.discard('intent', c.meta.commandId, `perform threw (${error instanceof Error ? error.message : String(error)}); settling`);
      const settled = await driver.settle!(this.intentOf(open, data));
      effect = settled.performed ? settled.result : { facts: [], refusal: interruptedRefusal(c.verb) };
      settledBy = 'recovery';
    }
    await this.point('after-effect', c);
    return this.recordResult(open, data, c, effect, settledBy, saveDoc);
  }

  /**
   * A command met an open intent on its domain (`head.intent`). Settles it when its recorder is gone; otherwise
   * waits for it to close (up to the job wait). Returns the command's own outcome when the intent was its own,
   * 'reload' when the domain moved on, or a JOB-BUSY refusal (not recorded: a retry may pass).
   */
  async unblock(head: IntentHead, c: Command): Promise<IntentAttempt | 'reload'> {
    const event = head.intent!;
    const data = intentDataOf(event);
    if (!data) throw new Error(`stream '${head.stream}' revision ${event.revision} holds an ${EFFECT_INTENDED} record that does not parse`);
    const own = data.command.meta.commandId === c.meta.commandId;
    const deadline = Date.now() + (this.options.jobWaitMs ?? DEFAULT_JOB_WAIT_MS);
    for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
      if (this.recoverable(data)) {
        const settled = await this.settle(head, data);
        if (settled === 'lost') return 'reload';
        return own ? { ...settled, outcome: { ...settled.outcome, duplicate: true } } : 'reload';
      }
      const now = await this.port.store.streamRevision(head.stream);
      if (now !== event.revision) {
        this.port.forget(head.stream);
        if (!own) return 'reload';
        const prior = await this.port.recallOutcome(c.meta.commandId);
        return prior ? { outcome: prior, save: false } : 'reload';
      }
      // Past the job wait, or no point waiting: nobody alive will close it and this driver cannot settle it.
      const hopeless = !this.canSettle(data) && this.recorderGone(data);
      if (hopeless || Date.now() >= deadline) return { outcome: this.port.refusedOutcome(c, jobBusyRefusal(data), head.revision), save: false };
      await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
    }
  }

  /** On opening a store: settles every open intent whose recorder is gone (the others are left to their owners). */
  async recover(load: (host: string, name: string) => Promise<IntentHead>, lock: <T>(stream: string, fn: () => Promise<T>) => Promise<T>): Promise<void> {
    for (const { stream, host, name } of this.open.list()) {
      try {
        await lock(stream, async () => {
          const head = await load(host, name);
          const data = head.intent && intentDataOf(head.intent);
          if (!data) return this.open.closed(stream);
          if (this.recoverable(data)) await this.settle(head, data);
        });
      } catch (error) {
        this.port.discard('intent', stream, `not settled: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  /** The outcome of a command whose store result is its intent record: what follows it, or undefined while open. */
  async outcomeAfter(intent: RecordedEvent): Promise<CommandOutcome | undefined> {
    const data = intentDataOf(intent);
    if (!data) return undefined;
    const c = data.command as unknown as Command;
    const facts: RecordedEvent[] = [];
    for await (const e of this.port.store.readStream(intent.stream, intent.revision + 1)) {
      if (e.metadata.commandId !== c.meta.commandId) break;
      if (e.type !== EFFECT_SETTLED) {
        facts.push(e);
        continue;
      }
      const settled = SettledDataSchema.safeParse(e.data);
      if (settled.success && settled.data.refusal) {
        const r = settled.data.refusal;
        const outcome = this.port.refusedOutcome(c, { ...r, codeName: r.codeName as Refusal['codeName'] }, e.revision);
        return { ...outcome, audit: { stream: e.stream, revision: e.revision, position: e.position } };
      }
      const outcome = this.port.accepted(c, facts, e.revision);
      return facts.length === 0 ? { ...outcome, audit: { stream: e.stream, revision: e.revision, position: e.position } } : outcome;
    }
    return facts.length > 0 ? this.port.accepted(c, facts, facts.at(-1)!.revision) : undefined;
  }

  // -------------------------------------------------------------------------------------------------

  private async point(point: 'after-intent' | 'after-effect', c: Command): Promise<void> {
    await this.options.onPoint?.(point, c);
    await envPause(point);
  }

  /** Settling is up to us: our own driver's intent, and its recorder is gone. */
  private recoverable(data: IntentData): boolean {
    return this.canSettle(data) && this.recorderGone(data);
  }

  /** Only the driver that recorded an intent can see what its hypervisor did. */
  private canSettle(data: IntentData): boolean {
    return data.driver === this.port.driver.name && this.port.driver.settle !== undefined;
  }

  /** The recorder is this ledger (perform threw; we hold the domain's lock), a dead process, or out of time. */
  private recorderGone(data: IntentData): boolean {
    const o = data.owner;
    if (o.instance === this.owner.instance) return true; // ours, and we hold the domain's lock: perform threw
    if (Date.parse(data.leaseUntil) < Date.now()) return true;
    if (o.machine !== this.owner.machine) return false;
    if (o.pid === process.pid) return !liveInstances.has(o.instance); // a ledger of this process, or of a dead one with our pid
    return !alive(o.pid);
  }

  private intentOf(head: IntentHead, data: IntentData): EffectIntent {
    return {
      command: data.command as unknown as Command,
      state: head.state,
      decided: data.decided as unknown as Fact[],
      revision: head.intent!.revision,
      recordedAt: data.recordedAt,
    };
  }

  private async settle(head: IntentHead, data: IntentData): Promise<IntentAttempt | 'lost'> {
    const settled = await this.port.driver.settle!(this.intentOf(head, data));
    const c = data.command as unknown as Command;
    const effect: EffectResult = settled.performed ? settled.result : { facts: [], refusal: interruptedRefusal(c.verb) };
    return this.recordResult(head, data, c, effect, 'recovery', true);
  }

  /**
   * Appends the result at the intent's revision: the facts (the command on the first, as every decision), and an
   * `EffectSettled` record where no fact tells how it ended (nothing performed, refused, settled on recovery).
   */
  private async recordResult(
    head: IntentHead,
    data: IntentData,
    c: Command,
    effect: EffectResult,
    settledBy: 'performer' | 'recovery',
    saveDoc: boolean,
  ): Promise<IntentAttempt | 'lost'> {
    const intent = head.intent!;
    const facts = effect.refusal ? [] : effect.facts;
    const events = facts.length > 0 ? this.port.encode(c, facts, head.hash) : [];
    let hash = events.at(-1)?.metadata.hash ?? head.hash;
    if (facts.length === 0 || settledBy === 'recovery') {
      const r = effect.refusal;
      const settled = {
        verb: c.verb,
        performed: r?.rule !== JOB_INTERRUPTED_RULE,
        settledBy,
        ...(r ? { refusal: { rule: r.rule, code: r.code, codeName: r.codeName, message: r.message } } : {}),
      };
      hash = factHash(hash, EFFECT_SETTLED, settled);
      events.push({ type: EFFECT_SETTLED, data: settled, metadata: { ...this.port.baseMeta(c), hash } });
    }
    let state = head.state;
    for (const f of facts) state = evolve(state, f);
    const after: IntentHead = { stream: head.stream, state, revision: intent.revision + events.length, hash, checkpointRevision: head.checkpointRevision };
    const checkpoint = this.port.checkpointDue(after);
    let outcome: CommandOutcome | undefined;
    const outcomeOf = (r: AppendResult): CommandOutcome => {
      const recorded = this.port.recorded(head.stream, events, r);
      const closer = recorded.at(-1)!;
      const where = { stream: closer.stream, revision: closer.revision, position: closer.position };
      if (effect.refusal) return { ...this.port.refusedOutcome(c, effect.refusal, r.revision), audit: where };
      const factsRecorded = recorded.filter((e) => e.type !== EFFECT_SETTLED);
      return { ...this.port.accepted(c, factsRecorded, r.revision), ...(factsRecorded.length === 0 ? { audit: where } : {}) };
    };
    try {
      // No command id on this append: the intent took it, and the intent's revision admits exactly one result.
      await this.port.store.append(head.stream, events, {
        expectedRevision: intent.revision,
        docs: (r) => {
          outcome = outcomeOf(r);
          const doc = saveDoc ? this.port.outcomeDoc(outcome) : undefined;
          return [...(doc ? [doc] : []), ...(checkpoint ? [checkpoint] : [])];
        },
      });
    } catch (error) {
      if (!(error instanceof WrongExpectedRevisionError)) throw error;
      // Someone settled it first (our lease ran out): theirs is the record.
      this.port.forget(head.stream);
      this.port.discard('intent', c.meta.commandId, `the result came after the intent was settled by another ledger (${settledBy})`);
      const prior = await this.port.recallOutcome(c.meta.commandId);
      return prior ? { outcome: prior, save: false } : 'lost';
    }
    this.open.closed(head.stream);
    this.port.appended({ ...after, checkpointRevision: checkpoint ? after.revision : head.checkpointRevision });
    return { outcome: outcome!, save: !saveDoc, state };
  }
}
