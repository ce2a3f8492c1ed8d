// The second look at a stream the first pass flagged, in revision order: revisions that are missing (removed, with
// the global positions that went missing between their neighbours), facts whose global order contradicts their
// revisions, and the hash chain, from which the order the facts were recorded in is re-derived (each fact's hash
// names the hash it was chained to) to tell a changed fact from a moved one. One finding per fact.
import { eventHash } from '../factHash';
import type { EventStore, RecordedEvent } from '../eventstore/types';
import { changedDetail, type TamperFinding } from './chains';

/** Holes in the global positions ([from, to], both missing), in log order. */
export type PositionGaps = readonly (readonly [number, number])[];

/** Keeps one finding per revision: a removal or a reordering outranks what else was found there. */
type Report = (finding: TamperFinding) => void;

export async function checkStream(store: EventStore, stream: string, positionGaps: PositionGaps, claimed: Set<number>): Promise<TamperFinding[]> {
  const events: RecordedEvent[] = [];
  for await (const event of store.readStream(stream)) events.push(event);
  const findings = new Map<number, TamperFinding>(); // by revision
  const report: Report = (finding) => {
    const known = findings.get(finding.revision);
    if (!known) findings.set(finding.revision, finding);
    else if (finding.problem === 'reordered' && known.problem === 'reordered') known.detail += `; ${finding.detail}`;
    else if (finding.problem === 'reordered' || finding.problem === 'removed') findings.set(finding.revision, finding);
  };
  reportRemoved(stream, events, positionGaps, claimed, report);
  reportReordered(stream, events, report);
  reportChainBreaks(stream, events, positionGaps, claimed, report);
  return [...findings.values()];
}

/** The global positions in the gaps strictly between two positions. */
function missingBetween(positionGaps: PositionGaps, after: number, before: number): number[] {
  const missing: number[] = [];
  for (const [a, b] of positionGaps) for (let p = Math.max(a, after + 1); p <= Math.min(b, before - 1); p++) missing.push(p);
  return missing;
}

/** Removed: holes in the revisions, matched with holes in the global positions between the neighbours. */
function reportRemoved(stream: string, events: readonly RecordedEvent[], positionGaps: PositionGaps, claimed: Set<number>, report: Report): void {
  events.forEach((event, i) => {
    const previous = events[i - 1];
    const from = previous ? previous.revision + 1 : 0;
    if (event.revision <= from) return;
    const after = previous?.position ?? 0;
    const missing = missingBetween(positionGaps, after, event.position);
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
}

/**
 * Global order: the facts whose positions contradict their revisions are those outside the longest run of
 * increasing positions (in revision order): the fewest facts that, moved back, would make the order agree.
 */
function reportReordered(stream: string, events: readonly RecordedEvent[], report: Report): void {
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
}

/** Index of the fact each fact chains to: -1 for the stream's start, undefined when none fits. */
function chainPredecessors(events: readonly RecordedEvent[], hashes: readonly string[]): (number | undefined)[] {
  const holder = new Map<string, number>(); // recorded hash → index in `events`
  hashes.forEach((h, i) => h && holder.set(h, i));
  return events.map((event, i) => {
    const own = hashes[i]!;
    if (!own) return undefined;
    if (i > 0 && eventHash(hashes[i - 1], event) === own) return i - 1;
    if (eventHash('', event) === own) return -1;
    for (const [hash, j] of holder) if (j !== i && eventHash(hash, event) === own) return j;
    return undefined;
  });
}

/** The revision each fact was recorded at: one after the revision its predecessor was recorded at. */
function recordedRevisions(events: readonly RecordedEvent[], predecessor: readonly (number | undefined)[]): (i: number) => number {
  const recordedAt = new Map<number, number>();
  const originalRevision = (i: number, depth = 0): number => {
    const known = recordedAt.get(i);
    if (known !== undefined) return known;
    const p = predecessor[i];
    const value = p === undefined || depth > events.length ? events[i]!.revision : p === -1 ? 0 : originalRevision(p, depth + 1) + 1;
    recordedAt.set(i, value);
    return value;
  };
  return originalRevision;
}

/** The hash chain: facts without a hash, facts that chain to nothing stored, and facts stored at another revision. */
function reportChainBreaks(stream: string, events: readonly RecordedEvent[], positionGaps: PositionGaps, claimed: Set<number>, report: Report): void {
  const hashes = events.map((e) => (typeof e.metadata.hash === 'string' ? e.metadata.hash : ''));
  const predecessor = chainPredecessors(events, hashes);
  const originalRevision = recordedRevisions(events, predecessor);
  events.forEach((event, i) => {
    if (!hashes[i]) {
      report({ stream, revision: event.revision, position: event.position, problem: 'missing-hash', detail: 'the fact carries no hash' });
      return;
    }
    if (predecessor[i] === undefined) {
      reportUnchained(stream, events, i, predecessor, positionGaps, claimed, report);
      return;
    }
    const original = originalRevision(i);
    if (original !== event.revision) {
      report({
        stream,
        revision: event.revision,
        position: event.position,
        problem: 'reordered',
        detail: `this ${event.type} was recorded as revision ${original} (its hash chains to the fact recorded before it), but it is stored as revision ${event.revision}`,
      });
    }
  });
}

/** A fact whose hash chains to no stored fact: the one before it was removed, or it (or its predecessor's hash) was changed. */
function reportUnchained(
  stream: string,
  events: readonly RecordedEvent[],
  i: number,
  predecessor: readonly (number | undefined)[],
  positionGaps: PositionGaps,
  claimed: Set<number>,
  report: Report,
): void {
  const event = events[i]!;
  const base = { stream, revision: event.revision, position: event.position };
  const previous = events[i - 1];
  if (i === 0 ? event.revision !== 0 : previous!.revision !== event.revision - 1) return; // after a removal: not checkable alone
  // A hole in the global log right before it: the fact recorded before it was removed, and the stream renumbered.
  const after = previous?.position ?? 0;
  const hole = missingBetween(positionGaps, after, event.position).filter((position) => !claimed.has(position));
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
