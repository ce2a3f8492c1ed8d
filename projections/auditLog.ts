// auditLog: one entry per command the ledger decided, accepted or refused, with the rule that refused it and
// the facts it produced. Accepted decisions are read from the domain streams (the first fact of a decision
// carries the whole command), refusals from `refusals-<host>`; facts the hypervisor reported on its own (no
// command) get an entry of their own so that nothing in a domain stream is missing from the audit. Accepted
// commands that changed nothing are read from `noops-<host>` (entry marked `noop`, no facts). The steps of one
// migration share a correlation id (the migrate command's, or the client's): `groupAuditEntries` puts them together.
import { z } from 'zod';

import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { ERROR_CODES } from '../machines/errors';
import {
  acceptedNoopOf,
  commandOf,
  commandTarget,
  isDomainStream,
  isNoopStream,
  isRefusalStream,
  refusalOf,
  streamIdentityGuess,
  timeMs,
} from './log';
import { CHECKPOINT_COLLECTION, type FoldMemo, type Projection } from './projection';

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
  commandId: string;
  correlationId?: string;
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
  /** Facts the command appended (empty for a refusal and a no-op), in order. */
  facts: AuditFact[];
}

const AuditFactSchema = z.object({ position: z.number().int(), stream: z.string(), revision: z.number().int(), type: z.string() });
export const AuditEntrySchema = z.object({
  position: z.number().int(),
  time: z.string(),
  actor: z.string(),
  commandId: z.string(),
  correlationId: z.string().optional(),
  verb: z.string(),
  host: z.string(),
  domain: z.string(),
  outcome: z.enum(['accepted', 'refused']),
  rule: z.string().optional(),
  code: z.number().optional(),
  codeName: z.string().optional(),
  message: z.string().optional(),
  noop: z.literal(true).optional(),
  facts: z.array(AuditFactSchema),
});

export interface AuditLogState {
  entries: AuditEntry[];
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
  return {
    position: event.position,
    time: metaString(m.time),
    actor: metaString(m.actor),
    commandId: metaString(m.commandId),
    ...(typeof m.correlationId === 'string' ? { correlationId: m.correlationId } : {}),
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
 * `chunkSize` (`projections/<name>/chunk/N`, each written once per fold), and the checkpoint holds the count of
 * sealed chunks and the open tail. The chunk holding the last entry is never sealed: that entry may still gain
 * facts (a decision's facts can straddle a checkpoint).
 */
export function createAuditLog(options: { name?: string; chunkSize?: number } = {}): Projection<AuditLogState> {
  const name = options.name ?? 'auditLog';
  const chunkSize = options.chunkSize ?? 1000;
  const chunkKey = (i: number) => `${name}/chunk/${i}`;
  return {
    name,
    // 2: no-op entries, a failed phase's code, Begin's correlation id.
    version: 2,
    initial: () => ({ entries: [] }),
    apply(state, event) {
      foldAuditEvent(state.entries, event);
      return state;
    },
    revive: (saved) => z.object({ entries: z.array(AuditEntrySchema) }).parse(saved) as AuditLogState,
    async save(store: EventStore, state: AuditLogState, memo: FoldMemo) {
      const sealed = Math.max(0, Math.floor((state.entries.length - 1) / chunkSize));
      // Chunks this fold has already written (or loaded) never change again: entries before the last are final.
      const written = typeof memo.sealed === 'number' ? Math.min(memo.sealed, sealed) : 0;
      for (let i = written; i < sealed; i++) {
        await store.putDoc(CHECKPOINT_COLLECTION, chunkKey(i), state.entries.slice(i * chunkSize, (i + 1) * chunkSize));
      }
      memo.sealed = sealed;
      return { sealed, chunkSize, open: state.entries.slice(sealed * chunkSize) };
    },
    async load(store: EventStore, saved: unknown, memo: FoldMemo) {
      const parsed = SavedAuditSchema.parse(saved);
      if (parsed.chunkSize !== chunkSize) throw new Error(`it was written with chunks of ${parsed.chunkSize}, not ${chunkSize}`);
      const entries: AuditEntry[] = [];
      for (let i = 0; i < parsed.sealed; i++) {
        const doc = await store.getDoc(CHECKPOINT_COLLECTION, chunkKey(i));
        entries.push(...(z.array(AuditEntrySchema).length(chunkSize).parse(doc) as AuditEntry[]));
      }
      entries.push(...(parsed.open as AuditEntry[]));
      memo.sealed = parsed.sealed;
      return { entries };
    },
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
  /** At most this many: the earliest ones after `since` when given, else the latest ones. */
  limit?: number;
  outcome?: 'accepted' | 'refused';
  /** One migration (or any commands a client correlated): entries whose correlation id, or command id, is this. */
  correlationId?: string;
}

export function selectAuditEntries(entries: readonly AuditEntry[], query: AuditQuery = {}): AuditEntry[] {
  const since = query.since;
  const sinceMs = since && 'time' in since ? timeMs(since.time) : Number.NaN;
  const out = entries.filter((e) => {
    if (query.domain !== undefined && e.domain !== query.domain) return false;
    if (query.host !== undefined && e.host !== query.host) return false;
    if (query.outcome !== undefined && e.outcome !== query.outcome) return false;
    if (query.correlationId !== undefined && groupKey(e) !== query.correlationId) return false;
    if (since && 'position' in since && e.position < since.position) return false;
    if (since && 'time' in since && !(timeMs(e.time) >= sinceMs)) return false;
    return true;
  });
  if (query.limit === undefined || out.length <= query.limit) return out;
  return since ? out.slice(0, query.limit) : out.slice(out.length - query.limit);
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

/** What groups an entry: its correlation id, else its own command id (so a migrate Begin recorded without one still heads its saga). */
function groupKey(e: AuditEntry): string {
  return e.correlationId ?? e.commandId;
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
