// One command on one domain, top to bottom: load the stream → decide → perform → append at the loaded revision →
// the outcome. An append that loses the race with another writer (WrongExpectedRevision) loads and decides again,
// up to MAX_ATTEMPTS; a refusal or an accepted command that changes nothing goes to the host's audit stream
// instead (auditRecords.ts); a driver whose effects land outside the ledger gets the exactly-once protocol
// (services/intents.ts). Within one process, commands on one domain queue on its lock, and UUID claims (define,
// create, migrate-incoming) on one host queue on the host's, after the host index has followed the log.
import { commandDomainName, type Command } from '../../machines/commands';
import { refusal as makeRefusal } from '../../machines/errors';
import type { Fact } from '../../machines/events';
import type { HostView } from '../../machines/guards';
import { domainStream, type DomainState } from '../../machines/model';
import type { HypervisorDriver } from '../drivers/types';
import { WrongExpectedRevisionError, type AppendResult, type EventStore } from '../eventstore/types';
import { JOB_BUSY_RULE, type IntentAttempt, type IntentProtocol } from '../intents';
import type { CommandOutcome } from '../ledger-types';
import type { AuditRecords } from './auditRecords';
import { applyFacts, decideOn } from './decider';
import { encode, recorded } from './encoding';
import type { KeyedMutex } from './keyedMutex';
import type { OutcomeDocs } from './outcomeDocs';
import { accepted, CONCURRENCY_RULE, refusedOutcome } from './outcomes';
import type { Head, StreamCache } from './streamCache';

/** Appends tried per command before giving up on a domain that keeps changing under us. */
export const MAX_ATTEMPTS = 5;

export interface CommandHandlerParts {
  store: EventStore;
  driver: HypervisorDriver;
  hostView: HostView;
  streams: StreamCache;
  audit: AuditRecords;
  docs: OutcomeDocs;
  intents: IntentProtocol;
  /** Per domain stream in this process (shared with loads and intent recovery). */
  streamLocks: KeyedMutex;
  /** Per host: UUID claims. */
  claimLocks: KeyedMutex;
  /** Reads the global log into the host index (other processes' claims). */
  followLog: () => Promise<void>;
  /** After an append of ours: the host index learns the domain's new state. */
  applied: (stream: string, state: DomainState, revision: number) => void;
}

/** What an attempt loaded (at `revision`) is no longer the stream's head: load and decide again. */
class StaleHead extends Error {
  constructor(readonly revision: number) {
    super(`stale at revision ${revision}`);
  }
}

function isClaim(c: Command): boolean {
  return c.verb === 'define' || c.verb === 'create' || c.verb === 'migrate-incoming';
}

export class CommandHandler {
  constructor(private readonly parts: CommandHandlerParts) {}

  /**
   * Decides and appends under the domain's lock: commands on one domain queue here (in this process) instead of
   * racing each other into WrongExpectedRevision retries; commands on other domains run concurrently, so the
   * SQLite store commits their appends together (group commit). `saveDoc`: write the outcome doc with the facts
   * (then the attempt comes back with `save: false`: nothing left for the caller to write).
   */
  async handle(c: Command, saveDoc = true): Promise<IntentAttempt> {
    const stream = domainStream(c.host, commandDomainName(c));
    const work = () => this.parts.streamLocks.run(stream, () => this.attempts(c, stream, saveDoc));
    return isClaim(c) ? this.parts.claimLocks.run(c.host, work) : work();
  }

  /**
   * Attempts until one is not stale (MAX_ATTEMPTS at most, straight after each other: the loser of a race reloads).
   * A plain loop, not p-retry: no delay between attempts and one error type to retry on, and p-retry's per-call
   * bookkeeping was 2–5 % of the service's CPU in a profile of the NATS bench (bench/run.ts section c).
   */
  private async attempts(c: Command, stream: string, saveDoc: boolean): Promise<IntentAttempt> {
    let lastRevision = -1;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        return await this.attempt(c, stream, saveDoc);
      } catch (error) {
        if (!(error instanceof StaleHead)) throw error;
        lastRevision = error.revision;
      }
    }
    const name = commandDomainName(c);
    const gaveUp = makeRefusal(
      CONCURRENCY_RULE,
      'VIR_ERR_OPERATION_FAILED',
      `domain ${name} kept changing while the command was decided: gave up after ${MAX_ATTEMPTS} attempts; retry the command`,
    );
    // Not recorded and not remembered: a retry with the same command id may well succeed.
    return { outcome: refusedOutcome(c, gaveUp, lastRevision), save: false };
  }

  /**
   * One attempt: load → decide → perform → append. Throws StaleHead when what it loaded went stale (another writer
   * appended first, an intent was settled meanwhile): the next attempt loads again.
   */
  private async attempt(c: Command, stream: string, saveDoc: boolean): Promise<IntentAttempt> {
    const { store, driver, streams, audit, docs, intents } = this.parts;
    const name = commandDomainName(c);
    if (isClaim(c)) await this.parts.followLog();
    const { head, checked } = await streams.loadForAppend(c.host, name);
    /** Before an answer that no append checks: the head decided on must still be the store's, else decide again. */
    const confirm = async (): Promise<void> => {
      if (checked || (await streams.isCurrent(head))) return;
      streams.forget(stream);
      throw new StaleHead(head.revision);
    };
    if (head.intent && c.meta.observed) {
      // What libvirt did while a command's job holds the domain is most likely that job's own effect: not
      // recorded now; the observer looks again once the job's result is in.
      return { outcome: refusedOutcome(c, makeRefusal(JOB_BUSY_RULE, 'VIR_ERR_OPERATION_INVALID', `domain ${name} has a job in progress`), head.revision), save: false };
    }
    if (head.intent) {
      // Another command's job holds the domain (or this command's own, recorded before a crash or by another process).
      const unblocked = await intents.unblock(head, c);
      if (unblocked === 'reload') throw new StaleHead(head.revision);
      return unblocked;
    }
    const expected = c.meta.expectedRevision;
    if (expected !== undefined && expected !== head.revision) {
      const conflict = makeRefusal(
        CONCURRENCY_RULE,
        'VIR_ERR_OPERATION_FAILED',
        `domain ${name} changed: expected revision ${expected}, actual ${head.revision}`,
      );
      // An observation made on an older state is not recorded: the observer compares again.
      await confirm();
      if (c.meta.observed) return { outcome: refusedOutcome(c, conflict, head.revision), save: false };
      return audit.refuse(c, conflict, head.revision, saveDoc);
    }
    const decision = decideOn(head.state, c, this.parts.hostView);
    if (!decision.ok) {
      await confirm();
      return audit.refuse(c, decision.refusal, head.revision, saveDoc);
    }
    if (!c.meta.observed && intents.applies(c, decision.facts)) {
      // An effect outside the ledger: intent first, performed once, then the result (services/intents.ts).
      const done = await intents.performOnce(head, c, decision.facts, saveDoc);
      if (done !== 'lost') return done;
      streams.forget(stream);
      throw new StaleHead(head.revision);
    }
    // What libvirt did on its own already happened: recorded as decided, never performed.
    const effect = c.meta.observed ? { facts: decision.facts } : await driver.perform(head.state, c, decision.facts);
    if (effect.refusal) {
      await confirm();
      return audit.refuse(c, effect.refusal, head.revision, saveDoc);
    }
    // Accepted, changing nothing: the domain's stream and revision stay as they are; the audit record goes to
    // noops-<host> (as a refusal's to refusals-<host>).
    if (effect.facts.length === 0) {
      await confirm();
      return audit.recordNoop(c, head, saveDoc);
    }
    const facts: Fact[] = effect.facts;

    const events = encode(c, facts, head.hash);
    const state = applyFacts(head.state, facts);
    const after: Head = { ...head, state, revision: head.revision + events.length, hash: events.at(-1)!.metadata.hash };
    const checkpoint = streams.checkpointDue(after);
    const outcomeOf = (r: AppendResult): CommandOutcome => accepted(c, recorded(stream, events, r), r.revision);
    // One durable write per command: the outcome doc (which quotes the positions the store assigns, hence a
    // function of the result) and a due checkpoint go with the facts, in the same transaction on SQLite.
    let outcome: CommandOutcome | undefined;
    let result: AppendResult;
    try {
      result = await store.append(stream, events, {
        expectedRevision: head.revision < 0 ? 'no-stream' : head.revision,
        commandId: c.meta.commandId,
        docs: (r) => {
          outcome = outcomeOf(r);
          const doc = saveDoc ? docs.outcomeDoc(outcome) : undefined;
          return [...(doc ? [doc] : []), ...(checkpoint ? [checkpoint] : [])];
        },
      });
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) {
        streams.forget(stream); // someone else appended: reload and decide again
        throw new StaleHead(head.revision);
      }
      throw error;
    }
    if (result.duplicate) {
      // The same command id was appended by someone else meanwhile: theirs is the first outcome.
      const prior = await docs.recallOutcome(c.meta.commandId, false);
      if (prior) return { outcome: prior, save: false };
    }
    const docsWritten = outcome !== undefined;
    outcome ??= outcomeOf(result);
    const next: Head = {
      ...after,
      revision: result.revision,
      checkpointRevision: docsWritten && checkpoint ? after.revision : head.checkpointRevision,
    };
    streams.set(stream, next);
    this.parts.applied(stream, state, result.revision);
    return { outcome, save: !docsWritten, state };
  }
}
