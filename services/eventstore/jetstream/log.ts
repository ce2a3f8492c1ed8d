// The state one JetStream store object keeps (connection, buckets, settings, cached heads, its followers) and the
// single-message reads of the log stream every job uses, each retried within the retry budget.

import type { JetStreamClient, JetStreamManager, MsgRequest, StoredMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';

import type { AsyncLogFollower } from '../follow';
import type { NetworkedLog } from '../networked';
import { Queue } from '../common';
import { StoreCorruptError, StoreUnavailableError } from '../types';
import { describeTransient, withTransientRetries } from './errors';
import {
  NO_SUBJECT_HEAD,
  encodeToken,
  lastPositionOf,
  lastRevisionOf,
  parseAppend,
  parsePayload,
  toRawFromStored,
  type AppendMessage,
  type Head,
  type Payload,
  type SubjectHead,
} from './messages';
import type { JetStreamTestHooks } from './options';

export interface StoreSettings {
  streamName: string;
  prefix: string;
  retryBudgetMs: number;
  hooks: JetStreamTestHooks;
}

export class JetStreamLog implements NetworkedLog {
  closed = false;
  readonly followers = new Set<AsyncLogFollower>();
  readonly appendQueue = new Queue();
  /** The global head as of our last read or ack; a stale value only costs a refused publish. */
  head: Head | undefined;
  /**
   * Last message of each stream this process wrote or read (bounded LRU). Safe to publish against even when
   * stale: the server re-checks it (expected last subject sequence), and a conflict found on cached data is
   * confirmed by a fresh read before it is reported.
   */
  readonly subjectHeads = new Map<string, SubjectHead>();
  /** First position and count of messages seen, by sequence (bounded), for seeking positions. */
  readonly seen = new Map<number, { firstPosition: number; count: number }>();
  readonly streamName: string;
  readonly prefix: string;
  readonly metaSubject: string;
  readonly label: string;

  constructor(
    readonly nc: NatsConnection,
    readonly ownConnection: boolean,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly commands: KV,
    readonly docs: KV,
    readonly settings: StoreSettings,
  ) {
    this.streamName = settings.streamName;
    this.prefix = settings.prefix;
    this.metaSubject = `${settings.prefix}.meta`;
    this.label = `JetStream stream '${settings.streamName}' at ${nc.getServer()}`;
  }

  subjectFor(stream: string): string {
    return `${this.prefix}.s.${encodeToken(stream)}`;
  }

  remember(seq: number, firstPosition: number, count: number): void {
    if (this.seen.size >= 10_000) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(seq, { firstPosition, count });
  }

  /** The stream's last message (the global head), read fresh. */
  async readHead(): Promise<Head> {
    this.assertOpen();
    const last = await this.getMessage('read the head of the log', { last_by_subj: '>' });
    // Never empty once opened: its first message is the format marker (open.ts).
    if (!last) throw new StoreCorruptError(`${this.label} has no messages, not even its format marker`);
    const msg = parseAppend(toRawFromStored(last));
    const head = { seq: msg.seq, lastPosition: lastPositionOf(msg) };
    if (!this.head || head.seq >= this.head.seq) this.head = head;
    return head;
  }

  /** The stream's last message, read fresh (and cached for the next append). */
  async readSubjectHead(subject: string): Promise<SubjectHead> {
    const last = await this.lastOnSubject(subject);
    const head = last ? { seq: last.seq, lastRevision: lastRevisionOf(last), lastPosition: lastPositionOf(last) } : NO_SUBJECT_HEAD;
    this.rememberSubjectHead(subject, head);
    return head;
  }

  rememberSubjectHead(subject: string, head: SubjectHead): void {
    this.subjectHeads.delete(subject);
    if (this.subjectHeads.size >= 10_000) this.subjectHeads.delete(this.subjectHeads.keys().next().value!);
    this.subjectHeads.set(subject, head);
  }

  forgetSubjectHead(subject: string): void {
    this.subjectHeads.delete(subject);
  }

  async lastOnSubject(subject: string): Promise<AppendMessage | undefined> {
    this.assertOpen();
    const msg = await this.getMessage('read the head of a stream', { last_by_subj: subject });
    return msg ? parseAppend(toRawFromStored(msg)) : undefined;
  }

  /**
   * One message of the log stream, read from its leader (retried within the budget); undefined when there is
   * none (nats.js v3 answers JetStream's "no message found", 10037, with null). `next_by_subj` (the first message
   * on a subject at or after `seq`) is understood by the server but missing from nats.js's MsgRequest type.
   */
  async getMessage(what: string, query: MsgRequest | { seq: number; next_by_subj: string }): Promise<StoredMsg | undefined> {
    return (await this.retry(what, () => this.jsm.streams.getMessage(this.streamName, query as MsgRequest))) ?? undefined;
  }

  /** The message at `seq`, which must exist: nothing is ever removed from the log (deny_delete, deny_purge). */
  async getBySeq(seq: number): Promise<StoredMsg> {
    const msg = await this.getMessage('read a message', { seq });
    if (!msg) throw new StoreCorruptError(`${this.label} has no message at sequence ${seq}, though nothing is ever removed from the log`);
    return msg;
  }

  /** The first message on `subject` after sequence `afterSeq` whose payload satisfies `match`. */
  async findOnSubject(
    subject: string,
    afterSeq: number,
    match: (payload: Payload) => boolean,
  ): Promise<AppendMessage | undefined> {
    let seq = afterSeq + 1;
    for (;;) {
      const msg = await this.getMessage('search a stream', { seq, next_by_subj: subject });
      if (!msg) return undefined;
      const raw = toRawFromStored(msg);
      if (match(parsePayload(raw))) return parseAppend(raw);
      seq = msg.seq + 1;
    }
  }

  /** Runs a request, retrying transport failures within the retry budget. */
  retry<T>(what: string, work: () => Promise<T>): Promise<T> {
    return withTransientRetries(
      this.settings.retryBudgetMs,
      work,
      (error) => this.unavailable(`could not ${what}`, error),
      () => this.assertOpen(),
    );
  }

  /** What a caller sees when the cluster did not answer within the retry budget (no leader, no quorum, no server). */
  unavailable(what: string, error: unknown, outcome = 'no fact was appended by this attempt'): StoreUnavailableError {
    return new StoreUnavailableError(
      `event store unavailable: ${this.label}: ${what} within ${this.settings.retryBudgetMs} ms ` +
        `(${describeTransient(error)}); ${outcome}; retry with the same command id`,
      { cause: error },
    );
  }

  async release(): Promise<void> {
    if (this.ownConnection) await this.nc.close().catch(() => {});
  }

  closedError(): Error {
    return new Error(`event store ${this.label} is closed`);
  }

  assertOpen(): void {
    if (this.closed) throw this.closedError();
  }
}
