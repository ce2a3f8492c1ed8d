// auditLog: one entry per command the ledger decided, accepted or refused, with the rule that refused it and
// the facts it produced. Accepted decisions are read from the domain streams (the first fact of a decision
// carries the whole command), refusals from `refusals-<host>`; facts the hypervisor reported on its own (no
// command) get an entry of their own so that nothing in a domain stream is missing from the audit. Accepted
// commands that changed nothing are read from `noops-<host>` (entry marked `noop`, no facts). The steps of one
// migration share a correlation id (the migrate command's, or the client's): `groupAuditEntries` puts them together.
import { deflateRawSync, inflateRawSync } from 'node:zlib';

import { z } from 'zod';

import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { ERROR_CODES } from '../machines/errors';
import {
  acceptedNoopOf,
  commandOf,
  commandTarget,
  EFFECT_INTENDED,
  isDomainStream,
  isEffectRecord,
  isNoopStream,
  isRefusalStream,
  refusalOf,
  streamIdentityGuess,
  timeMs,
} from './log';
import { CHECKPOINT_COLLECTION, type Projection } from './projection';

export interface AuditFact {
  position: number;
  stream: string;
  revision: number;
  type: string;
}

export interface AuditEntry {
  /** Global position of the decision's first fact, or of the refusal (or no-op) record. */
  position: number;
  time: string;
  actor: string;
  /** How the service authenticated the actor (the command's meta.auth): NATS user, verified signer, or nobody. */
  auth?: AuditAuth;
  commandId: string;
  correlationId?: string;
  /** Set when the entry records what libvirt did on its own (meta.observed): how vmledger heard it, what libvirt said. */
  observed?: AuditObserved;
  /** The command's verb; `hypervisor` for facts the hypervisor reported without a command. */
  verb: string;
  host: string;
  domain: string;
  outcome: 'accepted' | 'refused';
  /**
   * Refused: the rule, libvirt's code and message. Accepted: unset, except for a migration phase that failed
   * (a MigrationFailed fact), whose message (and rule and code, when the fact names them) is carried here.
   */
  rule?: string;
  code?: number;
  codeName?: string;
  message?: string;
  /** Accepted and changed nothing (its `CommandAccepted` record is at `position` in `noops-<host>`). */
  noop?: true;
  /**
   * The record of an effect about to be performed (services/intents.ts): its result is the command's next entry
   * (or, refused or interrupted, this entry's outcome, with the `EffectSettled` record among its facts).
   */
  intent?: true;
  /** Facts the command appended (empty for a refusal and a no-op), in order. */
  facts: AuditFact[];
}

const AuditAuthSchema = z.object({
  natsAccount: z.string().optional(),
  natsUser: z.string().optional(),
  signer: z.string().optional(),
  unauthenticated: z.literal(true).optional(),
  claimedActor: z.string().optional(),
});
export type AuditAuth = z.infer<typeof AuditAuthSchema>;

const AuditObservedSchema = z.object({ source: z.string(), detail: z.string().optional() });
export type AuditObserved = z.infer<typeof AuditObservedSchema>;

const AuditFactSchema = z.object({ position: z.number().int(), stream: z.string(), revision: z.number().int(), type: z.string() });
export const AuditEntrySchema = z.object({
  position: z.number().int(),
  time: z.string(),
  actor: z.string(),
  auth: AuditAuthSchema.optional(),
  commandId: z.string(),
  correlationId: z.string().optional(),
  observed: AuditObservedSchema.optional(),
  verb: z.string(),
  host: z.string(),
  domain: z.string(),
  outcome: z.enum(['accepted', 'refused']),
  rule: z.string().optional(),
  code: z.number().optional(),
  codeName: z.string().optional(),
  message: z.string().optional(),
  noop: z.literal(true).optional(),
  intent: z.literal(true).optional(),
  facts: z.array(AuditFactSchema),
});

const AuditChunkSchema = z.array(AuditEntrySchema);

/** What groups an entry: its correlation id, else its own command id (so a migrate Begin recorded without one still heads its saga). */
function groupKey(e: AuditEntry): string {
  return e.correlationId ?? e.commandId;
}

/**
 * The audit log as kept in memory: the open tail of entries and a small index of the sealed chunks, never the
 * whole log. Entries are sealed in chunks of `chunkSize` as the log grows (every chunk but the one holding the
 * last entry, which may still gain facts); a sealed chunk is kept compressed only until the next checkpoint
 * writes it to its doc (`projections/<name>/chunk/N`), then it is dropped and read back from there when a query
 * needs it. (A fold that never checkpoints, `persist: false`, keeps its sealed chunks compressed.)
 *
 * The enumerable fields are the same whether a sealed chunk is still pending or already written, so two folds
 * of the same log compare equal however they were checkpointed.
 */
export class AuditLogState {
  /** How many chunks are sealed: entries 0 .. sealed × chunkSize − 1 are in them, not in memory. */
  sealed = 0;
  /** The open tail: every entry after the sealed chunks, in log order (the last may still gain facts). */
  entries: AuditEntry[] = [];
  /** Per sealed chunk: the position of its last entry (entries are in position order). */
  chunkLast: number[] = [];
  /** Per sealed chunk: the latest time stamped on one of its entries (ms; -Infinity when none parses). */
  chunkMaxTime: number[] = [];
  /** Domain name → the sealed chunks holding an entry for a domain of that name, ascending. */
  chunksByDomain = new Map<string, number[]>();

  readonly #chunkSize: number;
  readonly #chunkKey: (i: number) => string;
  /** Sealed chunks not written to the store yet (deflated JSON); the next checkpoint writes and drops them. */
  readonly #pending = new Map<number, Buffer>();

  constructor(chunkSize: number, chunkKey: (i: number) => string) {
    this.#chunkSize = chunkSize;
    this.#chunkKey = chunkKey;
  }

  /** Folds one event of the global log; seals the tail's first chunk once the tail outgrows it. */
  fold(event: RecordedEvent): void {
    foldAuditEvent(this.entries, event);
    this.#sealFull();
  }

  #sealFull(): void {
    while (this.entries.length > this.#chunkSize) {
      const chunk = this.entries.splice(0, this.#chunkSize);
      const i = this.sealed;
      this.#index(i, chunk);
      this.#pending.set(i, deflateRawSync(JSON.stringify(chunk), { level: 1 }));
      this.sealed = i + 1;
    }
  }

  #index(i: number, chunk: readonly AuditEntry[]): void {
    let maxTime = Number.NEGATIVE_INFINITY;
    for (const e of chunk) {
      const t = timeMs(e.time);
      if (t > maxTime) maxTime = t;
      const chunks = this.chunksByDomain.get(e.domain);
      if (!chunks) this.chunksByDomain.set(e.domain, [i]);
      else if (chunks[chunks.length - 1] !== i) chunks.push(i);
    }
    this.chunkLast[i] = chunk[chunk.length - 1]!.position;
    this.chunkMaxTime[i] = maxTime;
  }

  /** Writes the sealed chunks not written yet to their docs, then drops them from memory. */
  async flush(store: EventStore): Promise<void> {
    for (const i of [...this.#pending.keys()].sort((a, b) => a - b)) {
      const packed = this.#pending.get(i)!;
      await store.putDoc(CHECKPOINT_COLLECTION, this.#chunkKey(i), JSON.parse(inflateRawSync(packed).toString('utf8')) as unknown);
      this.#pending.delete(i);
    }
  }

  /** The checkpoint: the count of sealed chunks (call `flush` first) and the open tail. */
  saved(): { sealed: number; chunkSize: number; open: AuditEntry[] } {
    return { sealed: this.sealed, chunkSize: this.#chunkSize, open: this.entries.slice() };
  }

  /** The state with its tail sealed into chunks as far as it goes (after entries were pushed onto it directly). */
  static resealed(state: AuditLogState): AuditLogState {
    state.#sealFull();
    return state;
  }

  /** Restores a checkpoint: indexes the sealed chunks from their docs (one at a time), keeps the tail. */
  static async load(store: EventStore, saved: unknown, chunkSize: number, chunkKey: (i: number) => string): Promise<AuditLogState> {
    const parsed = SavedAuditSchema.parse(saved);
    if (parsed.chunkSize !== chunkSize) throw new Error(`it was written with chunks of ${parsed.chunkSize}, not ${chunkSize}`);
    const state = new AuditLogState(chunkSize, chunkKey);
    for (let i = 0; i < parsed.sealed; i++) {
      const doc = await store.getDoc(CHECKPOINT_COLLECTION, chunkKey(i));
      state.#index(i, AuditChunkSchema.length(chunkSize).parse(doc) as AuditEntry[]);
    }
    state.sealed = parsed.sealed;
    state.entries = parsed.open as AuditEntry[];
    state.#sealFull();
    return state;
  }

  /** One sealed chunk: from memory while it is pending, else from its doc. */
  async #chunk(store: EventStore, i: number): Promise<AuditEntry[]> {
    const packed = this.#pending.get(i);
    if (packed) return JSON.parse(inflateRawSync(packed).toString('utf8')) as AuditEntry[];
    const doc = await store.getDoc(CHECKPOINT_COLLECTION, this.#chunkKey(i));
    if (doc === undefined) throw new Error(`audit log chunk '${this.#chunkKey(i)}' is missing from the store`);
    return AuditChunkSchema.length(this.#chunkSize).parse(doc) as AuditEntry[];
  }

  /** The sealed chunks (of the first `sealed`) that may hold an entry the query selects, ascending. */
  #candidates(sealed: number, query: AuditQuery): number[] {
    let chunks: number[];
    if (query.domain !== undefined) {
      chunks = (this.chunksByDomain.get(query.domain) ?? []).filter((i) => i < sealed);
    } else {
      chunks = Array.from({ length: sealed }, (_, i) => i);
    }
    const since = query.since;
    if (since && 'position' in since) chunks = chunks.filter((i) => this.chunkLast[i]! >= since.position);
    const after = query.after;
    if (after !== undefined) chunks = chunks.filter((i) => this.chunkLast[i]! > after);
    if (since && 'time' in since) {
      const sinceMs = timeMs(since.time);
      chunks = chunks.filter((i) => this.chunkMaxTime[i]! >= sinceMs);
    }
    return chunks;
  }

  /** What the sealed count and tail are now: a query answers as of this, whatever is folded while it reads. */
  #snapshot(): { sealed: number; tail: AuditEntry[] } {
    return { sealed: this.sealed, tail: this.entries.slice() };
  }

  async #select(store: EventStore, at: { sealed: number; tail: AuditEntry[] }, query: AuditQuery): Promise<AuditEntry[]> {
    const match = auditMatcher(query);
    const chunks = this.#candidates(at.sealed, query);
    const limit = query.limit;
    const parts: AuditEntry[][] = [];
    if (limit === undefined || query.since || query.after !== undefined) {
      // Every match, or the earliest `limit` of them: forwards, stopping once there are enough.
      let found = 0;
      for (const i of chunks) {
        if (limit !== undefined && found >= limit) break;
        const part = (await this.#chunk(store, i)).filter(match);
        parts.push(part);
        found += part.length;
      }
      if (limit === undefined || found < limit) parts.push(at.tail.filter(match));
    } else {
      // The latest `limit`: backwards from the tail.
      let part = at.tail.filter(match);
      parts.push(part);
      let found = part.length;
      for (let k = chunks.length - 1; k >= 0 && found < limit; k--) {
        part = (await this.#chunk(store, chunks[k]!)).filter(match);
        parts.push(part);
        found += part.length;
      }
      parts.reverse();
    }
    return limitAuditEntries(parts.flat(), query);
  }

  /** The entries the query selects (see AuditQuery), reading the sealed chunks it needs from `store`. */
  select(store: EventStore, query: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.#select(store, this.#snapshot(), query);
  }

  /**
   * The audit grouped by correlation id: the query picks the entries first, then every entry of each group they
   * belong to is included (every sealed chunk is read, one at a time, to find them).
   */
  async groups(store: EventStore, query: AuditQuery = {}): Promise<AuditGroup[]> {
    const at = this.#snapshot();
    const ids = new Set((await this.#select(store, at, query)).map(groupKey));
    if (ids.size === 0) return [];
    const inGroup = (e: AuditEntry) => ids.has(groupKey(e));
    const members: AuditEntry[] = [];
    for (let i = 0; i < at.sealed; i++) members.push(...(await this.#chunk(store, i)).filter(inGroup));
    members.push(...at.tail.filter(inGroup));
    return groupAuditEntries(members);
  }
}

/** Where the last entry stands, so a decision's later facts join it (facts of one decision are contiguous). */
function continues(entry: AuditEntry | undefined, event: RecordedEvent): boolean {
  if (!entry || entry.outcome !== 'accepted' || commandOf(event) !== undefined) return false;
  const last = entry.facts.at(-1);
  return last !== undefined && last.stream === event.stream && entry.commandId === String(event.metadata.commandId ?? '');
}

function metaString(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function entryBase(event: RecordedEvent) {
  const m = event.metadata;
  const meta = commandOf(event)?.meta;
  const auth = AuditAuthSchema.safeParse(meta?.auth);
  const observed = AuditObservedSchema.safeParse(meta?.observed);
  return {
    position: event.position,
    time: metaString(m.time),
    actor: metaString(m.actor),
    ...(auth.success && auth.data !== undefined ? { auth: auth.data } : {}),
    commandId: metaString(m.commandId),
    ...(typeof m.correlationId === 'string' ? { correlationId: m.correlationId } : {}),
    ...(observed.success && observed.data !== undefined ? { observed: observed.data } : {}),
  };
}

export function foldAuditEvent(entries: AuditEntry[], event: RecordedEvent): void {
  if (isRefusalStream(event.stream)) {
    const refused = refusalOf(event);
    if (!refused) return;
    const target = safeTarget(refused.command) ?? { host: event.stream.slice('refusals-'.length), name: '' };
    entries.push({
      ...entryBase(event),
      verb: String(refused.command.verb),
      host: target.host,
      domain: target.name,
      outcome: 'refused',
      rule: refused.rule,
      code: refused.code,
      codeName: String(refused.codeName),
      message: refused.message,
      facts: [],
    });
    return;
  }
  if (isNoopStream(event.stream)) {
    const noop = acceptedNoopOf(event);
    if (!noop) return;
    const target = safeTarget(noop.command) ?? { host: event.stream.slice('noops-'.length), name: '' };
    entries.push({
      ...entryBase(event),
      verb: String(noop.command.verb),
      host: target.host,
      domain: target.name,
      outcome: 'accepted',
      noop: true,
      facts: [],
    });
    return;
  }
  if (!isDomainStream(event.stream)) return;
  const fact: AuditFact = { position: event.position, stream: event.stream, revision: event.revision, type: event.type };
  if (isEffectRecord(event.type)) return auditEffectRecord(entries, event, fact);
  const last = entries.at(-1);
  if (continues(last, event)) {
    last!.facts.push(fact);
    noteFailure(last!, event);
    return;
  }
  const command = commandOf(event);
  const target = (command && safeTarget(command)) ?? streamIdentityGuess(event.stream);
  entries.push({
    ...entryBase(event),
    verb: command ? String(command.verb) : 'hypervisor',
    host: target.host,
    domain: target.name,
    outcome: 'accepted',
    facts: [fact],
  });
  noteFailure(entries.at(-1)!, event);
}

/** An intent gets an entry of its own; its settlement joins the command's latest entry (the intent's, or its result's). */
function auditEffectRecord(entries: AuditEntry[], event: RecordedEvent, fact: AuditFact): void {
  const commandId = String(event.metadata.commandId ?? '');
  const data = (event.data ?? {}) as { command?: { verb?: unknown }; verb?: unknown; refusal?: { rule?: unknown; code?: unknown; codeName?: unknown; message?: unknown } };
  if (event.type === EFFECT_INTENDED) {
    const target = streamIdentityGuess(event.stream);
    entries.push({
      ...entryBase(event),
      verb: String(data.command?.verb ?? 'hypervisor'),
      host: typeof event.metadata.host === 'string' ? event.metadata.host : target.host,
      domain: typeof event.metadata.domain === 'string' ? event.metadata.domain : target.name,
      outcome: 'accepted',
      intent: true,
      facts: [fact],
    });
    return;
  }
  // Recent entries only: the settlement follows its intent or result closely (other domains' entries between).
  const entry = entries.findLast((e, i) => i >= entries.length - 64 && e.commandId === commandId && e.facts.at(-1)?.stream === event.stream);
  if (!entry) return;
  entry.facts.push(fact);
  const r = data.refusal;
  if (r && typeof r.rule === 'string') {
    Object.assign(entry, { outcome: 'refused', rule: r.rule, code: Number(r.code), codeName: String(r.codeName), message: String(r.message) });
  }
}

const CODE_NAMES = new Map<number, string>(Object.entries(ERROR_CODES).map(([name, code]) => [code, name]));

/**
 * A migration phase that failed is an accepted decision (MigrationFailed is a fact: the domain returns to where it
 * was); its message, and the rule and libvirt code when the fact names them, go on the entry so the audit says why.
 */
function noteFailure(entry: AuditEntry, event: RecordedEvent): void {
  if (event.type !== 'MigrationFailed') return;
  const data = event.data as { message?: unknown; rule?: unknown; code?: unknown };
  if (typeof data.message === 'string') entry.message = data.message;
  if (typeof data.rule === 'string') entry.rule = data.rule;
  if (typeof data.code === 'number') {
    entry.code = data.code;
    const name = CODE_NAMES.get(data.code);
    if (name) entry.codeName = name;
  }
}

function safeTarget(command: Parameters<typeof commandTarget>[0]) {
  try {
    return commandTarget(command);
  } catch {
    return undefined;
  }
}

const SavedAuditSchema = z.object({ sealed: z.number().int().min(0), chunkSize: z.number().int().min(1), open: z.array(AuditEntrySchema) });

/**
 * The audit log grows with every command, so its checkpoint is split: entries are sealed in docs of
 * `chunkSize` (`projections/<name>/chunk/N`, each written once, by the first checkpoint after it seals), and the
 * checkpoint holds the count of sealed chunks and the open tail. The chunk holding the last entry is never
 * sealed: that entry may still gain facts (a decision's facts can straddle a checkpoint). Only the tail and a
 * small index of the chunks stay in memory (see AuditLogState).
 */
export function createAuditLog(options: { name?: string; chunkSize?: number } = {}): Projection<AuditLogState> {
  const name = options.name ?? 'auditLog';
  const chunkSize = options.chunkSize ?? 1000;
  const chunkKey = (i: number) => `${name}/chunk/${i}`;
  return {
    name,
    // 2: no-op entries, a failed phase's code, Begin's correlation id.
    version: 2,
    initial: () => new AuditLogState(chunkSize, chunkKey),
    apply(state, event) {
      state.fold(event);
      return state;
    },
    revive(saved) {
      // Only used without load (never, here): a whole list of entries, sealed again as they would have been.
      const state = new AuditLogState(chunkSize, chunkKey);
      for (const entry of z.object({ entries: z.array(AuditEntrySchema) }).parse(saved).entries as AuditEntry[]) {
        state.entries.push(entry);
      }
      return AuditLogState.resealed(state);
    },
    async save(store: EventStore, state: AuditLogState) {
      await state.flush(store);
      return state.saved();
    },
    load: (store: EventStore, saved: unknown) => AuditLogState.load(store, saved, chunkSize, chunkKey),
  };
}

export const auditLog = createAuditLog();

// ---------------------------------------------------------------------------------------------------
// Queries

export interface AuditQuery {
  /** Domain name; with `host`, only that host's domain of that name. */
  domain?: string;
  host?: string;
  /** Entries at or after this global position, or stamped at or after this ISO time. */
  since?: { position: number } | { time: string };
  /** Only entries after this global position (where the previous page of a paged query ended). */
  after?: number;
  /** At most this many: the earliest ones after `since` (or `after`) when given, else the latest ones. */
  limit?: number;
  outcome?: 'accepted' | 'refused';
  /** One migration (or any commands a client correlated): entries whose correlation id, or command id, is this. */
  correlationId?: string;
}

/** Whether an entry passes the query's filters (everything but `limit`). */
export function auditMatcher(query: AuditQuery = {}): (e: AuditEntry) => boolean {
  const since = query.since;
  const sinceMs = since && 'time' in since ? timeMs(since.time) : Number.NaN;
  return (e) => {
    if (query.domain !== undefined && e.domain !== query.domain) return false;
    if (query.host !== undefined && e.host !== query.host) return false;
    if (query.outcome !== undefined && e.outcome !== query.outcome) return false;
    if (query.correlationId !== undefined && groupKey(e) !== query.correlationId) return false;
    if (since && 'position' in since && e.position < since.position) return false;
    if (query.after !== undefined && e.position <= query.after) return false;
    if (since && 'time' in since && !(timeMs(e.time) >= sinceMs)) return false;
    return true;
  };
}

/** The query's `limit` applied to the matching entries (in log order): the earliest after `since`, else the latest. */
function limitAuditEntries(out: AuditEntry[], query: AuditQuery): AuditEntry[] {
  if (query.limit === undefined || out.length <= query.limit) return out;
  return query.since || query.after !== undefined ? out.slice(0, query.limit) : out.slice(out.length - query.limit);
}

export function selectAuditEntries(entries: readonly AuditEntry[], query: AuditQuery = {}): AuditEntry[] {
  return limitAuditEntries(entries.filter(auditMatcher(query)), query);
}

// ---------------------------------------------------------------------------------------------------
// Groups: a migration's steps (or any correlated commands) together

export interface AuditGroup {
  /** The correlation id the entries share (a migration: the migrate command's id unless the client gave one). */
  id: string;
  /** Position of the first entry. */
  position: number;
  /** The first entry's verb (`migrate` for a migration) and command id. */
  verb: string;
  commandId: string;
  /** Every host/domain the group touched, in order of first appearance (a migration: source, then destination). */
  targets: string[];
  /**
   * accepted: every step accepted and none failed; refused: a step was refused (a migration refused at Begin);
   * failed: a step recorded a failure (MigrationFailed), whose rule, code and message are given here.
   */
  outcome: 'accepted' | 'refused' | 'failed';
  rule?: string;
  code?: number;
  codeName?: string;
  message?: string;
  entries: AuditEntry[];
}

/**
 * The entries grouped by correlation id, in order of each group's first entry: a migration saga (Begin, Prepare,
 * Perform, the arrival on the destination, Finish, Confirm, and any rollback) becomes one group. Entries without
 * a correlation id stand alone (grouped with the steps correlated to their command id, if any).
 */
export function groupAuditEntries(entries: readonly AuditEntry[]): AuditGroup[] {
  const groups = new Map<string, AuditGroup>();
  for (const e of entries) {
    const id = groupKey(e);
    let group = groups.get(id);
    if (!group) {
      group = { id, position: e.position, verb: e.verb, commandId: e.commandId, targets: [], outcome: 'accepted', entries: [] };
      groups.set(id, group);
    }
    group.entries.push(e);
    const target = `${e.host}/${e.domain}`;
    if (!group.targets.includes(target)) group.targets.push(target);
    if (group.outcome !== 'accepted') continue; // the first refusal or failure tells
    const failed = e.outcome === 'refused' ? 'refused' : e.rule !== undefined || e.facts.some((f) => f.type === 'MigrationFailed') ? 'failed' : undefined;
    if (failed) {
      group.outcome = failed;
      for (const k of ['rule', 'code', 'codeName', 'message'] as const) if (e[k] !== undefined) (group as Record<typeof k, unknown>)[k] = e[k];
    }
  }
  return [...groups.values()].sort((a, b) => a.position - b.position);
}
