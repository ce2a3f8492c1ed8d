// auditLog: one entry per command the ledger decided, accepted or refused, with the rule that refused it and
// the facts it produced. Accepted decisions are read from the domain streams (the first fact of a decision
// carries the whole command), refusals from `refusals-<host>`; facts the hypervisor reported on its own (no
// command) get an entry of their own so that nothing in a domain stream is missing from the audit.
import { z } from 'zod';

import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { commandOf, commandTarget, isDomainStream, isRefusalStream, refusalOf, streamIdentityGuess, timeMs } from './log';
import { CHECKPOINT_COLLECTION, type FoldMemo, type Projection } from './projection';

export interface AuditFact {
  position: number;
  stream: string;
  revision: number;
  type: string;
}

export interface AuditEntry {
  /** Global position of the decision's first fact, or of the refusal record. */
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
   * (a MigrationFailed fact), whose message (and rule, when the fact names one) is carried here.
   */
  rule?: string;
  code?: number;
  codeName?: string;
  message?: string;
  /** Facts the command appended (empty for a refusal), in order. */
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

/**
 * A migration phase that failed is an accepted decision (MigrationFailed is a fact: the domain returns to where it
 * was); its message, and the rule when the fact names one, go on the entry so the audit says why.
 */
function noteFailure(entry: AuditEntry, event: RecordedEvent): void {
  if (event.type !== 'MigrationFailed') return;
  const data = event.data as { message?: unknown; rule?: unknown };
  if (typeof data.message === 'string') entry.message = data.message;
  if (typeof data.rule === 'string') entry.rule = data.rule;
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
    version: 1,
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
}

export function selectAuditEntries(entries: readonly AuditEntry[], query: AuditQuery = {}): AuditEntry[] {
  const since = query.since;
  const sinceMs = since && 'time' in since ? timeMs(since.time) : Number.NaN;
  const out = entries.filter((e) => {
    if (query.domain !== undefined && e.domain !== query.domain) return false;
    if (query.host !== undefined && e.host !== query.host) return false;
    if (query.outcome !== undefined && e.outcome !== query.outcome) return false;
    if (since && 'position' in since && e.position < since.position) return false;
    if (since && 'time' in since && !(timeMs(e.time) >= sinceMs)) return false;
    return true;
  });
  if (query.limit === undefined || out.length <= query.limit) return out;
  return since ? out.slice(0, query.limit) : out.slice(out.length - query.limit);
}
