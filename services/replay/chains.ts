// Tamper findings on single records: a fact that fails its hash, metadata that disagrees with the hashed command,
// a signature that does not verify, a store that cannot be read; and the anchor that notices facts cut from the
// end of the log. (The second look at a flagged stream is streamCheck.ts.)
import type { Command } from '../../machines/commands';
import { canonicalJson } from '../factHash';
import { verifyCommandSignature } from '../identity/signature';
import { COMMAND_ACCEPTED, COMMAND_REFUSED } from '../../projections/log';
import { StoreCorruptError, type EventStore, type RecordedEvent } from '../eventstore/types';
import { safeTarget } from './outcome';

export type TamperProblem = 'changed' | 'removed' | 'reordered' | 'unchained' | 'missing-hash' | 'truncated' | 'damaged';

export interface TamperFinding {
  stream: string;
  revision: number;
  /** Global position of the fact (for a removed fact: where it was, when that can be told). */
  position: number | null;
  problem: TamperProblem;
  detail: string;
}

export const ANCHOR_COLLECTION = 'replay';
export const ANCHOR_KEY = 'anchor';

export interface ChainCursor {
  revision: number;
  position: number;
  hash: string;
}

/** Why a fact fails its hash: its content, or (on a fact that carries one) the command recorded with it. */
export function changedDetail(event: RecordedEvent): string {
  const command = event.metadata.command as { verb?: unknown; meta?: { commandId?: unknown } } | undefined;
  if (command === undefined) return `its ${event.type} content does not match its recorded hash: the fact was changed`;
  const verb = command && typeof command === 'object' && typeof command.verb === 'string' ? command.verb : '?';
  const id = command && typeof command === 'object' && typeof command.meta?.commandId === 'string' ? command.meta.commandId : '?';
  return `its ${event.type} content does not match its recorded hash, which covers the command recorded with it too (now '${verb}', id ${id}): the fact or its command was changed`;
}

/**
 * The metadata the ledger copies from a decision's command (command id, actor, time, correlation id, host,
 * domain; and for a refusal, the command in its data) must agree with that command, which the hash covers.
 * Returns what disagrees, or undefined.
 */
export function metadataMismatch(event: RecordedEvent, command: Command): string | undefined {
  const m = event.metadata;
  const meta = (command.meta ?? {}) as Partial<Command['meta']>;
  const fields: [string, unknown, unknown][] = [
    ['commandId', m.commandId, meta.commandId],
    ['actor', m.actor, meta.actor],
    ['time', m.time, meta.time],
    ['correlationId', m.correlationId, meta.correlationId],
  ];
  const target = safeTarget(command);
  if (target && typeof m.host === 'string') fields.push(['host', m.host, target.host]);
  if (target && typeof m.domain === 'string') fields.push(['domain', m.domain, target.name]);
  const wrong = fields.filter(([, a, b]) => a !== b).map(([k, a, b]) => `metadata ${k} ${JSON.stringify(a) ?? 'missing'} is not the recorded command's ${JSON.stringify(b) ?? '(none)'}`);
  if ((event.type === COMMAND_REFUSED || event.type === COMMAND_ACCEPTED) && m.command !== undefined && canonicalJson(m.command) !== canonicalJson(command)) {
    wrong.push(`the command in the ${event.type} record's metadata is not the command in its data`);
  }
  return wrong.length > 0 ? wrong.join('; ') : undefined;
}

/** A recorded command's signature, if it carries one, must verify over the recorded command (a rehashed chain hides nothing here). */
export function signatureProblem(command: Command): string | undefined {
  if ((command.meta as { signature?: unknown } | undefined)?.signature === undefined) return undefined;
  const check = verifyCommandSignature(command);
  return check.ok ? undefined : `the recorded command's signature does not verify: ${check.reason}`;
}

/** A damaged store: our own errors, or SQLite's when a page does not parse. */
export function isCorruption(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof StoreCorruptError || (typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB'));
}

function lastStream(chains: Map<string, ChainCursor>, position: number): string | undefined {
  for (const [stream, cursor] of chains) if (cursor.position === position) return stream;
  return undefined;
}

/** Where the log ended when it was last verified clean: a later check must still find this fact there. */
export interface Anchor {
  position: number;
  stream: string;
  revision: number;
  hash: string;
}

export async function readAnchor(store: EventStore): Promise<Anchor | undefined> {
  const doc = (await store.getDoc(ANCHOR_COLLECTION, ANCHOR_KEY)) as
    | { position?: unknown; stream?: unknown; revision?: unknown; hash?: unknown }
    | undefined;
  if (!doc || typeof doc.position !== 'number' || typeof doc.stream !== 'string' || typeof doc.revision !== 'number') return undefined;
  return { position: doc.position, stream: doc.stream, revision: doc.revision, hash: typeof doc.hash === 'string' ? doc.hash : '' };
}

/** After a clean check: the fact at the head becomes the anchor. */
export async function saveAnchor(store: EventStore, chains: Map<string, ChainCursor>, lastPosition: number): Promise<void> {
  const last = chains.get(lastStream(chains, lastPosition) ?? '');
  const stream = lastStream(chains, lastPosition);
  if (stream && last) {
    await store.putDoc(ANCHOR_COLLECTION, ANCHOR_KEY, { position: lastPosition, stream, revision: last.revision, hash: last.hash });
  }
}
