// Copying a ledger from one event store to another (e.g. the embedded SQLite file to JetStream or EventStoreDB
// when a team outgrows one machine), then proving the copy by replaying both.
//
// What is copied: every fact, in global order, into the same stream at the same revision and (because the target
// must be empty) the same global position, with its type, data and metadata unchanged (command ids, the whole
// command, the hash chain). Facts that one command appended are appended together again, with the command id as
// the idempotency key, so a client retrying a command against the new store still gets the first result.
// What is not copied: docs (state checkpoints, projection checkpoints, outcome caches). They are disposable by
// design and rebuilt from the facts; the store interface cannot list them anyway.
//
// Verification replays both logs side by side: fact by fact (stream, revision, position, type, canonical JSON of
// data and metadata), every domain stream folded with machines/evolve and the resulting states compared, and
// every command id's recorded result compared.
import type { Command } from 'commander';

import { foldDomainEvent, type StreamFold } from '../projections/domainList';
import { openEventStore } from './eventstore/index';
import type { AppendOptions, EventStore, NewEvent, RecordedEvent } from './eventstore/types';
import { canonicalJson } from './factHash';

export interface CopyProgress {
  phase: 'copy' | 'verify';
  /** Facts copied (or compared) so far, and the source's head position when the copy started. */
  done: number;
  total: number;
  elapsedMs: number;
  /** Facts per second so far in this phase. */
  rate: number;
}

export interface CopyOptions {
  onProgress?: (progress: CopyProgress) => void;
  /** Report progress every this many facts (default 1000) and once at the end of each phase. */
  progressEvery?: number;
  /** Replay both stores afterwards and compare (default true). */
  verify?: boolean;
}

export interface CopyMismatch {
  /** Global position of the first fact that differs, or null for a difference not tied to one fact. */
  position: number | null;
  what: string;
}

export interface CopyVerification {
  ok: boolean;
  /** Facts compared. */
  facts: number;
  /** Domain streams folded on both sides and found in the same state. */
  domains: number;
  /** Command ids whose recorded results were compared. */
  commands: number;
  /** The first differences found (at most 20). */
  mismatches: CopyMismatch[];
  elapsedMs: number;
}

export interface CopySummary {
  facts: number;
  /** Appends made on the target (one per command, or per run of facts of one stream without a command id). */
  appends: number;
  streams: number;
  /** Appends that carried a command id (the target answers retries of those commands as duplicates). */
  commands: number;
  head: number;
  elapsedMs: number;
  rate: number;
  verification?: CopyVerification;
}

const MAX_MISMATCHES = 20;

/** Thrown when the target already holds facts: a copy never merges logs. */
export class TargetNotEmptyError extends Error {
  constructor(head: number) {
    super(`the target store is not empty (it holds facts up to position ${head}): copy-store only copies into an empty store`);
    this.name = 'TargetNotEmptyError';
  }
}

export async function copyStore(from: EventStore, to: EventStore, options: CopyOptions = {}): Promise<CopySummary> {
  const every = options.progressEvery ?? 1000;
  const targetHead = await to.headPosition();
  if (targetHead !== 0) throw new TargetNotEmptyError(targetHead);

  const total = await from.headPosition();
  const started = Date.now();
  const progress = (phase: CopyProgress['phase'], done: number, since: number) => {
    const elapsedMs = Date.now() - since;
    options.onProgress?.({ phase, done, total, elapsedMs, rate: elapsedMs > 0 ? Math.round((done * 1000) / elapsedMs) : done });
  };

  const streams = new Set<string>();
  let facts = 0;
  let appends = 0;
  let commands = 0;
  let lastReported = 0;
  let group: RecordedEvent[] = [];

  /** Appends a run of facts of one stream, checking that they land where they were. */
  const appendRun = async (run: RecordedEvent[], commandId: string | undefined) => {
    const first = run[0]!;
    const last = run.at(-1)!;
    const appendOptions: AppendOptions = { expectedRevision: first.revision === 0 ? 'no-stream' : first.revision - 1 };
    if (commandId !== undefined) appendOptions.commandId = commandId;
    const events: NewEvent[] = run.map((e) => ({ type: e.type, data: e.data, metadata: e.metadata }));
    const result = await to.append(first.stream, events, appendOptions);
    if (result.duplicate || result.revision !== last.revision || result.position !== last.position) {
      throw new Error(
        `copy diverged at position ${first.position} (stream '${first.stream}' revision ${first.revision}): the target ` +
          `answered revision ${result.revision}, position ${result.position}${result.duplicate ? ' (duplicate)' : ''}, ` +
          `expected ${last.revision}, ${last.position}; is something else writing to the target?`,
      );
    }
    appends++;
    if (commandId !== undefined) commands++;
  };

  /**
   * A group is a run of consecutive facts of one stream sharing metadata.commandId. The command's recorded result
   * (in the source) says where its append ended: the facts up to there go with the command id, any after it
   * (appended without an id) go without.
   */
  const flush = async () => {
    if (group.length === 0) return;
    const run = group;
    group = [];
    const commandId = typeof run[0]!.metadata.commandId === 'string' ? run[0]!.metadata.commandId : undefined;
    const recorded = commandId === undefined ? undefined : await from.commandResult(commandId);
    const split = recorded ? run.findIndex((e) => e.position === recorded.position) : -1;
    if (split === -1) {
      await appendRun(run, undefined);
    } else {
      await appendRun(run.slice(0, split + 1), commandId);
      if (split + 1 < run.length) await appendRun(run.slice(split + 1), undefined);
    }
  };

  for await (const event of from.readAll(0, total)) {
    const previous = group.at(-1);
    if (
      previous &&
      (previous.stream !== event.stream ||
        previous.metadata.commandId !== event.metadata.commandId ||
        previous.revision + 1 !== event.revision)
    ) {
      await flush();
    }
    group.push(event);
    streams.add(event.stream);
    facts++;
    if (facts - lastReported >= every) {
      lastReported = facts;
      progress('copy', facts, started);
    }
  }
  await flush();
  progress('copy', facts, started);
  if (facts !== total) throw new Error(`the source log ended at ${facts} facts, its head said ${total}`);

  const elapsedMs = Date.now() - started;
  const summary: CopySummary = {
    facts,
    appends,
    streams: streams.size,
    commands,
    head: total,
    elapsedMs,
    rate: elapsedMs > 0 ? Math.round((facts * 1000) / elapsedMs) : facts,
  };
  if (options.verify ?? true) {
    summary.verification = await verifyCopy(from, to, {
      every,
      onProgress: (done, since) => progress('verify', done, since),
    });
  }
  return summary;
}

/**
 * Replays both stores: the same facts in the same places, the same state for every domain stream (folded with
 * machines/evolve), the same recorded result for every command id.
 */
export async function verifyCopy(
  a: EventStore,
  b: EventStore,
  options: { every?: number; onProgress?: (done: number, since: number) => void } = {},
): Promise<CopyVerification> {
  const started = Date.now();
  const every = options.every ?? 1000;
  const mismatches: CopyMismatch[] = [];
  const note = (position: number | null, what: string) => {
    if (mismatches.length < MAX_MISMATCHES) mismatches.push({ position, what });
  };
  const foldsA: Record<string, StreamFold> = {};
  const foldsB: Record<string, StreamFold> = {};
  const commandIds = new Set<string>();

  const headA = await a.headPosition();
  const headB = await b.headPosition();
  if (headA !== headB) note(null, `head positions differ: ${headA} in the source, ${headB} in the target`);

  const left = a.readAll(0, headA)[Symbol.asyncIterator]();
  const right = b.readAll(0, headB)[Symbol.asyncIterator]();
  let compared = 0;
  try {
    for (;;) {
      const [x, y] = await Promise.all([left.next(), right.next()]);
      if (x.done || y.done) {
        if (!x.done || !y.done) {
          const extra = (x.done ? y.value : x.value) as RecordedEvent;
          note(extra.position, `only the ${x.done ? 'target' : 'source'} has a fact at position ${extra.position}`);
        }
        break;
      }
      compared++;
      const difference = describeDifference(x.value, y.value);
      if (difference) note(x.value.position, difference);
      foldDomainEvent(foldsA, x.value);
      foldDomainEvent(foldsB, y.value);
      if (typeof x.value.metadata.commandId === 'string') commandIds.add(x.value.metadata.commandId);
      if (compared % every === 0) options.onProgress?.(compared, started);
    }
  } finally {
    await left.return?.();
    await right.return?.();
  }

  let domains = 0;
  for (const stream of new Set([...Object.keys(foldsA), ...Object.keys(foldsB)])) {
    const sa = foldsA[stream];
    const sb = foldsB[stream];
    if (!sa || !sb) {
      note(null, `domain stream '${stream}' exists only in the ${sa ? 'source' : 'target'}`);
    } else if (canonicalJson(sa) !== canonicalJson(sb)) {
      note(sb.position, `domain stream '${stream}' replays to a different state (revision ${sa.revision} vs ${sb.revision})`);
    } else {
      domains++;
    }
  }

  for (const commandId of commandIds) {
    const [ra, rb] = await Promise.all([a.commandResult(commandId), b.commandResult(commandId)]);
    if (canonicalJson(ra ?? null) !== canonicalJson(rb ?? null)) {
      note(ra?.position ?? rb?.position ?? null, `command '${commandId}' has result ${canonicalJson(ra ?? null)} in the source, ${canonicalJson(rb ?? null)} in the target`);
    }
  }
  options.onProgress?.(compared, started);
  return {
    ok: mismatches.length === 0,
    facts: compared,
    domains,
    commands: commandIds.size,
    mismatches,
    elapsedMs: Date.now() - started,
  };
}

function describeDifference(x: RecordedEvent, y: RecordedEvent): string | undefined {
  const fields: Array<[string, unknown, unknown]> = [
    ['position', x.position, y.position],
    ['stream', x.stream, y.stream],
    ['revision', x.revision, y.revision],
    ['type', x.type, y.type],
    ['data', canonicalJson(x.data), canonicalJson(y.data)],
    ['metadata', canonicalJson(x.metadata), canonicalJson(y.metadata)],
  ];
  const differing = fields.filter(([, p, q]) => p !== q).map(([name]) => name);
  if (differing.length === 0) return undefined;
  return `fact at position ${x.position} (stream '${x.stream}' revision ${x.revision}) differs in ${differing.join(', ')}`;
}

// ------------------------------------------------------------------------------------------------------------
// The CLI: `vmledger copy-store --from SPEC --to SPEC`.


function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Adds `copy-store --from SPEC --to SPEC [--no-verify] [--json]` to a commander program. */
export function registerCopyStoreCommand(program: Command): Command {
  return program
    .command('copy-store')
    .description('copy every fact from one event store into an empty one, then verify by replaying both')
    .requiredOption('--from <spec>', 'source store: sqlite:PATH, jetstream://HOST:PORT, esdb://HOST:PORT')
    .requiredOption('--to <spec>', 'target store (must be empty): sqlite:PATH, jetstream://HOST:PORT, esdb://HOST:PORT')
    .option('--no-verify', 'skip replaying both stores after the copy')
    .option('--json', 'print the summary as one JSON object')
    .action(async (opts: { from: string; to: string; verify: boolean; json?: boolean }) => {
      const out = process.stdout;
      const err = process.stderr;
      let from: EventStore | undefined;
      let to: EventStore | undefined;
      try {
        if (opts.from === opts.to) throw new Error(`--from and --to name the same store '${opts.from}'`);
        from = await openEventStore(opts.from);
        to = await openEventStore(opts.to);
        const summary = await copyStore(from, to, {
          verify: opts.verify,
          onProgress: (p) => {
            err.write(`copy-store: ${p.phase === 'copy' ? 'copied' : 'verified'} ${p.done}/${p.total} facts (${p.rate}/s)\n`);
          },
        });
        if (opts.json) {
          out.write(`${JSON.stringify({ from: opts.from, to: opts.to, ...summary })}\n`);
        } else {
          out.write(
            `copied ${summary.facts} facts in ${summary.appends} appends (${summary.streams} streams, ` +
              `${summary.commands} command ids) from ${opts.from} to ${opts.to} in ${seconds(summary.elapsedMs)} (${summary.rate} facts/s)\n`,
          );
          const v = summary.verification;
          if (!v) out.write('not verified (--no-verify)\n');
          else if (v.ok) {
            out.write(
              `verified: both stores hold the same ${v.facts} facts, ${v.domains} domain streams replay to the same ` +
                `state, ${v.commands} command ids give the same result (${seconds(v.elapsedMs)})\n`,
            );
          } else {
            out.write(`VERIFICATION FAILED: ${v.mismatches.length} difference(s):\n`);
            for (const m of v.mismatches) out.write(`  ${m.position === null ? '' : `position ${m.position}: `}${m.what}\n`);
          }
        }
        if (summary.verification && !summary.verification.ok) process.exitCode = 1;
      } catch (error) {
        err.write(`error: copy-store: ${(error as Error)?.message ?? String(error)}\n`);
        process.exitCode = 1;
      } finally {
        await from?.close().catch(() => {});
        await to?.close().catch(() => {});
      }
    });
}
