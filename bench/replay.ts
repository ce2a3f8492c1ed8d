// Replay throughput against the floor: on one SQLite store, the raw read-and-parse rate (store.readAll, which
// JSON-parses data and metadata, and nothing else) and the replay-check rate (decide on every decision, evolve
// every fact, the hash chain of every stream), measured in the same run. Target: replay ≥ 0.3 × raw. Three rounds
// (raw, replay, raw again), each ratio against its own round's raw read; the median ratio is the figure, so one
// round disturbed by a busy machine does not decide it.
//
//   npx tsx bench/replay.ts [FACTS]      (default 1 000 000; e.g. 100000 for a quick run)
//
// The log is written straight through the store in big batches (one durable append per batch), in the ledger's
// format: N domains are defined and started, then suspended and resumed in turn, every fact a decision carrying
// its whole command and the hash chain; one resume in 50 is a refusal (ACT-REQ) in refusals-<host>.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CommandSchema, type Command, type CommandOf } from '../machines/commands';
import type { Fact } from '../machines/events';
import { domainStream } from '../machines/model';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore, NewEvent } from '../services/eventstore/types';
import { factHash, factToEventData } from '../services/factHash';
import { replayCheck, type ReplaySummary } from '../services/replay';

export interface RateMeasure {
  facts: number;
  ms: number;
  factsPerSecond: number;
}

/** One round: the raw read beside the replay check, on the same store, one after the other. */
export interface ReplayRound {
  /** store.readAll (read + JSON.parse of data and metadata), nothing else; the better of the passes before and after the replay. */
  raw: RateMeasure;
  replay: RateMeasure;
  /** replay / raw. */
  ratio: number;
}

export interface ReplayBenchResult {
  facts: number;
  domains: number;
  build: RateMeasure;
  /** The round with the median ratio (of `rounds`). */
  raw: RateMeasure;
  replay: RateMeasure;
  ratio: number;
  target: number;
  /** Every round, in the order run: one round can be unlucky on a busy machine, so the median is reported. */
  rounds: ReplayRound[];
  summary: Pick<ReplaySummary, 'ok' | 'facts' | 'decisions' | 'refusals' | 'domains'>;
}

/** Rounds of raw read + replay; the median ratio is the figure. */
export const REPLAY_ROUNDS = 3;

const HOST = 'bench';
const BATCH = 250;
const T0 = Date.parse('2024-01-01T00:00:00Z');

function measure(facts: number, started: number): RateMeasure {
  const ms = performance.now() - started;
  return { facts, ms: Math.round(ms), factsPerSecond: Math.round((facts / ms) * 1000) };
}

interface Chain {
  revision: number;
  hash: string | undefined;
}

/** Builds the ledger-format events of some decisions on one stream (each command one fact), chaining hashes. */
function encode(chain: Chain, decisions: { command: Command; fact: Fact }[]): NewEvent[] {
  return decisions.map(({ command, fact }) => {
    const data = factToEventData(fact);
    chain.hash = factHash(chain.hash, fact.type, data, command); // the hash covers the recorded command
    const { commandId, actor, time } = command.meta;
    return {
      type: fact.type,
      data,
      metadata: { commandId, actor, time, host: command.host, domain: domainName(command), command, hash: chain.hash },
    };
  });
}

function domainName(c: Command): string {
  return c.verb === 'define' ? c.config.name : (c as { domain: string }).domain;
}

async function appendAll(store: EventStore, stream: string, chain: Chain, events: NewEvent[]) {
  const result = await store.append(stream, events, { expectedRevision: chain.revision < 0 ? 'no-stream' : chain.revision });
  chain.revision = result.revision;
}

/** Writes about `factCount` facts: define + start per domain, then suspend/resume rounds across all domains. */
export async function buildReplayLog(store: EventStore, factCount: number): Promise<{ facts: number; domains: number }> {
  const domains = Math.max(1, Math.min(1000, Math.floor(factCount / 100)));
  const perDomain = Math.max(2, Math.floor(factCount / domains));
  let n = 0;
  const meta = () => {
    n++;
    return { commandId: `b-${n}`, actor: 'bench', time: new Date(T0 + n * 10).toISOString() };
  };
  // Parsed once per verb (defaults applied), as the ledger records them; only meta and the domain change.
  const template = (input: Record<string, unknown>) => CommandSchema.parse({ host: HOST, meta: meta(), ...input });
  const suspend = template({ verb: 'suspend', domain: 'x' });
  const resume = template({ verb: 'resume', domain: 'x' });
  const chains = new Map<string, Chain>();
  const refusalChain: Chain = { revision: -1, hash: undefined };
  let facts = 0;
  let resumes = 0;

  for (let d = 0; d < domains; d++) {
    const name = `vm${String(d).padStart(4, '0')}`;
    const stream = domainStream(HOST, name);
    const chain: Chain = { revision: -1, hash: undefined };
    chains.set(stream, chain);
    const config = { name, uuid: `00000000-0000-4000-8000-${String(d).padStart(12, '0')}`, disks: [{ target: 'vda', source: `/images/${name}.qcow2` }], hostdevs: [] };
    const define = template({ verb: 'define', config }) as CommandOf<'define'>;
    const start = template({ verb: 'start', domain: name });
    const events = encode(chain, [
      { command: define, fact: { type: 'DomainDefined', config: define.config } },
      { command: start, fact: { type: 'DomainStarted', paused: false, autodestroy: false, reason: 'booted', managedSaveConsumed: false } },
    ]);
    await appendAll(store, stream, chain, events);
    facts += events.length;
  }

  const rounds = Math.ceil((perDomain - 2) / BATCH);
  for (let round = 0; round < rounds; round++) {
    const refusals: NewEvent[] = [];
    for (let d = 0; d < domains; d++) {
      const name = `vm${String(d).padStart(4, '0')}`;
      const stream = domainStream(HOST, name);
      const chain = chains.get(stream)!;
      const decisions: { command: Command; fact: Fact }[] = [];
      const size = Math.min(BATCH, perDomain - 2 - round * BATCH);
      for (let i = 0; i < size; i++) {
        const paused = (chain.revision + 1 + decisions.length) % 2 === 0; // revision 1 was the start: running
        if (!paused && ++resumes % 50 === 0) {
          // A resume of a running domain: refused, recorded in refusals-<host>, nothing in the domain stream.
          const command = { ...resume, domain: name, meta: meta() } as Command;
          const data = {
            command,
            rule: 'ACT-REQ',
            code: 55,
            codeName: 'VIR_ERR_OPERATION_INVALID',
            message: 'Requested operation is not valid: domain is already running',
          };
          refusalChain.hash = factHash(refusalChain.hash, 'CommandRefused', data, command);
          refusals.push({
            type: 'CommandRefused',
            data,
            metadata: { ...command.meta, host: HOST, domain: name, command, hash: refusalChain.hash },
          });
        }
        decisions.push(
          paused
            ? { command: { ...suspend, domain: name, meta: meta() } as Command, fact: { type: 'DomainSuspended' } }
            : { command: { ...resume, domain: name, meta: meta() } as Command, fact: { type: 'DomainResumed' } },
        );
      }
      if (decisions.length === 0) continue;
      await appendAll(store, stream, chain, encode(chain, decisions));
      facts += decisions.length;
    }
    if (refusals.length > 0) {
      await appendAll(store, `refusals-${HOST}`, refusalChain, refusals);
      facts += refusals.length;
    }
  }
  return { facts, domains };
}

async function rawRead(store: EventStore): Promise<RateMeasure> {
  const started = performance.now();
  let facts = 0;
  for await (const _event of store.readAll(0)) facts++;
  return measure(facts, started);
}

/** One round: raw read, replay check, raw read again (the better raw pass is the baseline). */
async function replayRound(store: EventStore): Promise<{ round: ReplayRound; summary: ReplaySummary }> {
  const rawFirst = await rawRead(store);
  const started = performance.now();
  const summary = await replayCheck(store, { anchor: false });
  const replay = measure(summary.facts, started);
  const rawSecond = await rawRead(store);
  const raw = rawSecond.factsPerSecond > rawFirst.factsPerSecond ? rawSecond : rawFirst;
  if (!summary.ok) {
    throw new Error(`the bench log did not replay clean: ${summary.violations.length} violations, ${summary.tampered.length} tampered`);
  }
  return { round: { raw, replay, ratio: Math.round((replay.factsPerSecond / raw.factsPerSecond) * 1000) / 1000 }, summary };
}

/** Builds a log of about `factCount` facts under `dir` (removed afterwards) and measures raw read vs replay, REPLAY_ROUNDS times. */
export async function replayBench(dir: string, factCount = 1_000_000, roundCount = REPLAY_ROUNDS): Promise<ReplayBenchResult> {
  const workDir = mkdtempSync(join(dir, 'replay-bench-'));
  const store = openSqliteEventStore(join(workDir, 'replay.sqlite'));
  try {
    const started = performance.now();
    const built = await buildReplayLog(store, factCount);
    const build = measure(built.facts, started);
    const rounds: ReplayRound[] = [];
    let summary: ReplaySummary | undefined;
    for (let i = 0; i < roundCount; i++) {
      const result = await replayRound(store);
      rounds.push(result.round);
      summary = result.summary;
    }
    const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]!;
    return {
      facts: built.facts,
      domains: built.domains,
      build,
      raw: median.raw,
      replay: median.replay,
      ratio: median.ratio,
      target: 0.3,
      rounds,
      summary: { ok: summary!.ok, facts: summary!.facts, decisions: summary!.decisions, refusals: summary!.refusals, domains: summary!.domains },
    };
  } finally {
    await store.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const count = Number(process.argv[2] ?? 1_000_000);
  const result = await replayBench(tmpdir(), count);
  console.log(JSON.stringify(result, null, 2));
}
