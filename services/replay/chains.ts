// Hash chains and tamper findings: what is wrong with a record (its hash, its metadata against its hashed command,
// its signature), the anchor that notices facts cut from the end of the log, and the second look at a flagged
// stream that names each changed, removed or reordered fact.
import type { Command } from '../../machines/commands';
import { canonicalJson, eventHash } from '../factHash';
import { verifyCommandSignature } from '../identity/signature';
import { COMMAND_ACCEPTED, COMMAND_REFUSED } from '../../projections/log';
import type { EventStore, RecordedEvent } from '../eventstore/types';
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

export function lastStream(chains: Map<string, ChainCursor>, position: number): string | undefined {
  for (const [stream, cursor] of chains) if (cursor.position === position) return stream;
  return undefined;
}

export async function readAnchor(store: EventStore) {
  const doc = (await store.getDoc(ANCHOR_COLLECTION, ANCHOR_KEY)) as
    | { position?: unknown; stream?: unknown; revision?: unknown; hash?: unknown }
    | undefined;
  if (!doc || typeof doc.position !== 'number' || typeof doc.stream !== 'string' || typeof doc.revision !== 'number') return undefined;
  return { position: doc.position, stream: doc.stream, revision: doc.revision, hash: typeof doc.hash === 'string' ? doc.hash : '' };
}

/**
 * Second look at a stream the first pass flagged, in revision order: revisions that are missing (removed, with
 * the global positions that went missing between their neighbours), facts whose global order contradicts their
 * revisions, and the hash chain, from which the order the facts were recorded in is re-derived (each fact's hash
 * names the hash it was chained to) to tell a changed fact from a moved one. One finding per fact.
 */
export async function checkStream(store: EventStore, stream: string, positionGaps: [number, number][], claimed: Set<number>): Promise<TamperFinding[]> {
  const events: RecordedEvent[] = [];
  for await (const event of store.readStream(stream)) events.push(event);
  const findings = new Map<number, TamperFinding>(); // by revision
  const report = (finding: TamperFinding) => {
    const known = findings.get(finding.revision);
    if (!known) findings.set(finding.revision, finding);
    else if (finding.problem === 'reordered' && known.problem === 'reordered') known.detail += `; ${finding.detail}`;
    else if (finding.problem === 'reordered' || finding.problem === 'removed') findings.set(finding.revision, finding);
  };

  // Removed: holes in the revisions, matched with holes in the global positions between the neighbours.
  events.forEach((event, i) => {
    const previous = events[i - 1];
    const from = previous ? previous.revision + 1 : 0;
    if (event.revision <= from) return;
    const after = previous?.position ?? 0;
    const missing: number[] = [];
    for (const [a, b] of positionGaps) for (let p = Math.max(a, after + 1); p <= Math.min(b, event.position - 1); p++) missing.push(p);
    const count = event.revision - from;
    for (let k = 0; k < count; k++) {
      const revision = from + k;
      const position = missing.length === count ? missing[k]! : null;
      if (position !== null) claimed.add(position);
      report({
        stream,
        revision,
        position,
        problem: 'removed',
        detail:
          `revision ${revision} is missing (the stream goes from revision ${from - 1}${previous ? ` at position ${after}` : ''} ` +
          `to revision ${event.revision} at position ${event.position})` +
          (position !== null ? `; it was at position ${position}` : ''),
      });
    }
  });

  // Global order: the facts whose positions contradict their revisions are those outside the longest run of
  // increasing positions (in revision order): the fewest facts that, moved back, would make the order agree.
  const inOrder = longestIncreasingRun(events.map((e) => e.position));
  events.forEach((event, i) => {
    if (inOrder.has(i)) return;
    report({
      stream,
      revision: event.revision,
      position: event.position,
      problem: 'reordered',
      detail: `revision ${event.revision} is at position ${event.position}, out of order with the stream's other revisions`,
    });
  });

  // The hash chain.
  const hashes = events.map((e) => (typeof e.metadata.hash === 'string' ? e.metadata.hash : ''));
  const holder = new Map<string, number>(); // recorded hash → index in `events`
  hashes.forEach((h, i) => h && holder.set(h, i));
  /** Index of the fact each fact chains to: -1 for the stream's start, undefined when none fits. */
  const predecessor: (number | undefined)[] = events.map((event, i) => {
    const own = hashes[i]!;
    if (!own) return undefined;
    if (i > 0 && eventHash(hashes[i - 1], event) === own) return i - 1;
    if (eventHash('', event) === own) return -1;
    for (const [hash, j] of holder) if (j !== i && eventHash(hash, event) === own) return j;
    return undefined;
  });
  // The revision each fact was recorded at: one after the revision its predecessor was recorded at.
  const recordedAt = new Map<number, number>();
  const originalRevision = (i: number, depth = 0): number => {
    const known = recordedAt.get(i);
    if (known !== undefined) return known;
    const p = predecessor[i];
    const value = p === undefined || depth > events.length ? events[i]!.revision : p === -1 ? 0 : originalRevision(p, depth + 1) + 1;
    recordedAt.set(i, value);
    return value;
  };
  events.forEach((event, i) => {
    if (!hashes[i]) {
      report({ stream, revision: event.revision, position: event.position, problem: 'missing-hash', detail: 'the fact carries no hash' });
      return;
    }
    const base = { stream, revision: event.revision, position: event.position };
    const p = predecessor[i];
    if (p === undefined) {
      const previous = events[i - 1];
      if (i === 0 ? event.revision !== 0 : previous!.revision !== event.revision - 1) return; // after a removal: not checkable alone
      // A hole in the global log right before it: the fact recorded before it was removed, and the stream renumbered.
      const after = previous?.position ?? 0;
      const hole = positionGaps
        .flatMap(([a, b]) => Array.from({ length: Math.max(0, Math.min(b, event.position - 1) - Math.max(a, after + 1) + 1) }, (_, k) => Math.max(a, after + 1) + k))
        .filter((position) => !claimed.has(position));
      if (hole.length > 0) {
        for (const position of hole) claimed.add(position);
        report({
          stream,
          revision: event.revision,
          position: hole[0]!,
          problem: 'removed',
          detail:
            `revision ${event.revision} (position ${hole.join(', ')}) was removed and the later revisions renumbered: ` +
            `the ${event.type} now at revision ${event.revision} (position ${event.position}) chains to a hash no stored fact has`,
        });
        return;
      }
      const previousBroken = i > 0 && predecessor[i - 1] === undefined;
      if (previousBroken) {
        report({ ...base, problem: 'unchained', detail: `it does not chain to revision ${event.revision - 1}'s recorded hash (that hash was changed, or this fact was too)` });
      } else {
        report({ ...base, problem: 'changed', detail: changedDetail(event) });
      }
      return;
    }
    const original = originalRevision(i);
    if (original !== event.revision) {
      report({
        ...base,
        problem: 'reordered',
        detail: `this ${event.type} was recorded as revision ${original} (its hash chains to the fact recorded before it), but it is stored as revision ${event.revision}`,
      });
    }
  });
  return [...findings.values()];
}

/** Indexes of one longest strictly increasing subsequence of `values` (patience sorting, O(n log n)). */
function longestIncreasingRun(values: readonly number[]): Set<number> {
  const tails: number[] = []; // index of the last element of the best run of each length
  const previous: number[] = new Array(values.length).fill(-1);
  values.forEach((v, i) => {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[tails[mid]!]! < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1]!;
    tails[lo] = i;
  });
  const run = new Set<number>();
  for (let i = tails.at(-1) ?? -1; i >= 0; i = previous[i]!) run.add(i);
  return run;
}
