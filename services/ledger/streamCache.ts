// Loading a domain's stream: the latest verified checkpoint plus the facts after it (hash chain checked before
// anything is built on it), with the most recently used domains kept in memory; and the checkpoint a stream is due
// every `checkpointEvery` facts (written by the command handler with the fact that makes it due).
import { createHash } from 'node:crypto';

import { LRUCache } from 'lru-cache';
import { z } from 'zod';

import { DomainStateSchema, domainStream, initialDomainState } from '../../machines/model';
import { EFFECT_INTENDED, isEffectRecord } from '../../projections/log';
import { StoreCorruptError, type DocWrite, type EventStore } from '../eventstore/types';
import { canonicalJson, eventHash, factFromEvent } from '../factHash';
import type { IntentHead } from '../intents';
import { applyFact } from './decider';
import { jsonClone } from './encoding';
import { CHECKPOINTS_COLLECTION } from './layout';
import type { Discard } from './options';

/** A loaded domain stream (defined beside the exactly-once protocol, which reads and writes it too). */
export type Head = IntentHead;

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

function stateHash(state: unknown): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex');
}

export interface StreamCacheOptions {
  checkpointEvery: number;
  cacheSize: number;
  discard: Discard;
}

export class StreamCache {
  private readonly cache: LRUCache<string, Head>;

  constructor(
    private readonly store: EventStore,
    private readonly options: StreamCacheOptions,
  ) {
    this.cache = new LRUCache({ max: options.cacheSize });
  }

  /** The domain's stream as the store has it now: the cached head brought up to date, or a cold load. */
  async load(host: string, name: string): Promise<Head> {
    const head = await this.maybeCheckpoint(await this.current(host, name, (stream) => this.cache.get(stream)));
    this.cache.set(head.stream, head);
    return head;
  }

  /**
   * The domain's stream as the store has it now, leaving the cache as it is and writing no checkpoint: a read that
   * takes no stream lock, for a look that must not wait for a command in flight (its lock is held while libvirt
   * performs it).
   */
  async peek(host: string, name: string): Promise<Head> {
    return this.current(host, name, (stream) => this.cache.peek(stream));
  }

  /**
   * The cached head (`cached`, asked once the store has answered, so it is the newest) brought to the store's
   * revision, or a cold load.
   */
  private async current(host: string, name: string, cached: (stream: string) => Head | undefined): Promise<Head> {
    const stream = domainStream(host, name);
    const actual = await this.store.streamRevision(stream);
    const actualRevision = actual === 'no-stream' ? -1 : actual;
    const head = cached(stream);
    // A cached head past the store's revision: the store is not what we cached.
    if (!head || head.revision > actualRevision) return this.coldLoad(stream, host, name, actualRevision);
    return head.revision < actualRevision ? this.fold(head, head.revision + 1) : head;
  }

  /**
   * The domain's stream for a decision that is to end in an append at the head's revision: the cached head as it
   * is, without asking the store (the append checks the revision: when another writer got in first it fails, and
   * the command is decided again on a fresh load), else a load. `checked: false` says the store was not asked:
   * an answer that no append checks (a refusal, a no-op) must first ask `isCurrent`. A cached open intent is
   * always loaded again (it may have been settled meanwhile). One read of the store fewer per command: 3–4 % of
   * the service's CPU in a profile of the NATS bench (bench/run.ts section c).
   */
  async loadForAppend(host: string, name: string): Promise<{ head: Head; checked: boolean }> {
    const cached = this.cache.get(domainStream(host, name));
    if (cached && !cached.intent) return { head: cached, checked: false };
    return { head: await this.load(host, name), checked: true };
  }

  /** Whether the store's stream is still at `head`'s revision (nobody appended since it was loaded). */
  async isCurrent(head: Head): Promise<boolean> {
    const actual = await this.store.streamRevision(head.stream);
    return (actual === 'no-stream' ? -1 : actual) === head.revision;
  }

  /** After an append of ours: the stream's new head. */
  set(stream: string, head: Head): void {
    this.cache.set(stream, head);
  }

  /** Someone else appended (or may have): load it again next time. */
  forget(stream: string): void {
    this.cache.delete(stream);
  }

  /** The state checkpoint of `head` when one is due (`checkpointEvery` facts after the last), else undefined. */
  checkpointDue(head: Head): DocWrite | undefined {
    // Never at an open intent: a load from the checkpoint would not see it.
    if (head.hash === undefined || head.intent || head.revision - head.checkpointRevision < this.options.checkpointEvery) return undefined;
    const state = jsonClone(head.state);
    return {
      collection: CHECKPOINTS_COLLECTION,
      key: head.stream,
      value: { version: 1, stream: head.stream, revision: head.revision, hash: head.hash, stateHash: stateHash(state), state },
    };
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
      this.options.discard('checkpoint', stream, `the fact at revision ${checkpoint.revision} does not carry the checkpoint's hash`);
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
      state = applyFact(state, fact);
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
      this.options.discard('checkpoint', stream, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      return undefined;
    }
    const cp = parsed.data;
    const rawState = (doc as { state?: unknown }).state;
    if (cp.stream !== stream || cp.revision > actualRevision || stateHash(rawState) !== cp.stateHash) {
      this.options.discard('checkpoint', stream, 'stream, revision or state hash does not match');
      return undefined;
    }
    return cp;
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
}
