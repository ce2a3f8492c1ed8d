// replayCheck: one pass over the log in position order re-decides every recorded decision with today's rules (on
// the state before it, with the host as it was then) and follows every stream's hash chain (pass.ts, per
// record); afterwards, the no-ops and refusals decided on a revision the pass had already gone past are checked
// on that revision (auditRecords.ts), and the streams the pass flagged are read again to name each changed,
// removed or reordered fact (streamCheck.ts).
import { initialDomainState, domainStream } from '../../machines/model';
import { DamagedRecordError } from '../eventstore/common';
import type { EventStore } from '../eventstore/types';
import { domainAt, noopChecks, refusalDriftOf } from './auditRecords';
import { isCorruption, readAnchor, saveAnchor } from './chains';
import { newPass, visit, type Pass } from './pass';
import { progressOf } from './progress';
import { checkStream } from './streamCheck';
import type { ReplayOptions, ReplaySummary } from './types';

export async function replayCheck(store: EventStore, options: ReplayOptions = {}): Promise<ReplaySummary> {
  const started = performance.now();
  const total = await store.headPosition();
  const useAnchor = options.anchor ?? true;
  const pass = newPass(useAnchor ? await readAnchor(store) : undefined);
  if (store.damage !== undefined) pass.tampered.push({ stream: '', revision: -1, position: null, problem: 'damaged', detail: store.damage });
  const progressEvery = Math.max(1, options.progressEvery ?? 10_000);
  const onFact = options.onProgress
    ? (facts: number) => facts % progressEvery === 0 && options.onProgress!(progressOf(facts, total, started))
    : undefined;

  await readLog(store, pass, onFact);
  noteTruncation(pass);
  await checkLaterRecords(store, pass);
  pass.refusalDrift.sort((a, b) => a.position - b.position);
  pass.violations.sort((a, b) => a.position - b.position);
  await nameTampering(store, pass);

  if (options.onProgress) options.onProgress(progressOf(pass.counts.facts, total, started));
  const summary = summaryOf(pass, performance.now() - started);
  if (useAnchor && pass.tampered.length === 0 && pass.lastPosition > 0) await saveAnchor(store, pass.chains, pass.lastPosition);
  return summary;
}

/** The pass over the log. A record whose bytes no longer parse is named and skipped; a damaged page ends the read there (both: exit 2). */
async function readLog(store: EventStore, pass: Pass, onFact: ((facts: number) => void) | undefined): Promise<void> {
  let readFrom = 0;
  for (;;) {
    try {
      for await (const event of store.readAll(readFrom)) {
        readFrom = event.position;
        visit(pass, event);
        onFact?.(pass.counts.facts);
      }
      return;
    } catch (error) {
      if (error instanceof DamagedRecordError) {
        pass.tampered.push({ stream: error.stream, revision: error.revision, position: error.position, problem: 'damaged', detail: error.message });
        pass.damagedStreams.add(error.stream);
        pass.counts.facts++;
        readFrom = pass.lastPosition = error.position;
        continue;
      }
      if (!isCorruption(error)) throw error;
      pass.tampered.push({
        stream: '',
        revision: -1,
        position: readFrom + 1,
        problem: 'damaged',
        detail: `the log cannot be read past position ${readFrom}: ${(error as Error).message}`,
      });
      return;
    }
  }
}

/** The anchor's position not met: the log ends before where it ended when it was last verified. */
function noteTruncation(pass: Pass): void {
  const anchor = pass.anchor;
  if (!anchor || pass.anchorSeen) return;
  pass.tampered.push({
    stream: anchor.stream,
    revision: anchor.revision,
    position: anchor.position,
    problem: 'truncated',
    detail: `the log was verified up to position ${anchor.position}, but it now ends at ${pass.lastPosition}: facts were cut from its end`,
  });
}

/** No-ops and refusals decided on a revision the pass had gone past, each checked on the domain at that revision. */
async function checkLaterRecords(store: EventStore, pass: Pass): Promise<void> {
  for (const { event, noop, target } of pass.laterNoops) {
    const at = await domainAt(store, domainStream(target.host, target.name), target, noop.domainRevision);
    if (!at) {
      pass.mismatches.push({
        stream: event.stream,
        revision: event.revision,
        position: event.position,
        problem: 'unchained',
        detail: `it names revision ${noop.domainRevision} of ${domainStream(target.host, target.name)}, which the log does not hold`,
      });
      continue;
    }
    const finding = noopChecks(event, noop, target, at.state, at.hash, pass.hosts, pass.violation);
    if (finding) pass.mismatches.push(finding);
  }
  for (const { event, refused, target, revision } of pass.laterRefusals) {
    // A revision the stream does not reach is the hash chains' to report; the refusal is then decided on the last state.
    const last = pass.folds[domainStream(target.host, target.name)];
    const at = await domainAt(store, domainStream(target.host, target.name), target, revision);
    const drift = at
      ? refusalDriftOf(event, refused, target, at.state, revision, pass.hosts)
      : refusalDriftOf(event, refused, target, last?.state ?? initialDomainState(target.host, target.name), last?.revision ?? -1, pass.hosts);
    if (drift) pass.refusalDrift.push(drift);
  }
}

/** Every tamper finding, one per fact, in log order: the flagged streams read again, then mismatches and holes no stream claims. */
async function nameTampering(store: EventStore, pass: Pass): Promise<void> {
  const { tampered } = pass;
  const claimed = new Set<number>();
  for (const stream of pass.suspicious) {
    if (!pass.damagedStreams.has(stream)) tampered.push(...(await checkStream(store, stream, pass.positionGaps, claimed)));
  }
  for (const m of pass.mismatches) {
    if (!tampered.some((t) => t.stream === m.stream && t.revision === m.revision)) tampered.push(m);
  }
  for (const [from, to] of pass.positionGaps) {
    for (let p = from; p <= to; p++) {
      if (claimed.has(p)) continue;
      tampered.push({
        stream: '',
        revision: -1,
        position: p,
        problem: 'removed',
        detail: `position ${p} is missing from the global log (the last fact of some stream was removed)`,
      });
    }
  }
  tampered.sort((a, b) => (a.position ?? Infinity) - (b.position ?? Infinity) || a.stream.localeCompare(b.stream) || a.revision - b.revision);
}

function summaryOf(pass: Pass, elapsedMs: number): ReplaySummary {
  const { facts, decisions, refusals, noops, hypervisorReports, intents, domains } = pass.counts;
  return {
    ok: pass.violations.length === 0 && pass.tampered.length === 0,
    facts,
    decisions,
    refusals,
    noops,
    hypervisorReports,
    intents,
    openIntents: pass.openIntents.size,
    domains,
    head: pass.lastPosition,
    elapsedMs: Math.round(elapsedMs),
    rate: Math.round((facts / Math.max(elapsedMs, 1e-3)) * 1000),
    violations: pass.violations,
    tampered: pass.tampered,
    refusalDrift: pass.refusalDrift,
  };
}
