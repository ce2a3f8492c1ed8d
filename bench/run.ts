// `npm run bench`: every benchmark of the project in one run, each figure printed beside its baseline measured in
// the same run (same machine, same disk, same minute), with the ratio and the target; all figures are written to
// bench-results.json in the working directory (gitignored), whose path is printed at the end.
//
//   npm run bench                      default sizes: about 75 s on a 2-core machine
//   npm run bench -- --full            full sizes (also VMLEDGER_BENCH_FULL=1, or `npm run bench:full`):
//                                      replay over 1,000,000 facts, memory with 100,000 domains and 1,000,000 facts
//   npm run bench -- --only a,c        some sections only (a b c d e f g h, as below; f and g run with --full or --only)
//   npm run bench -- --out FILE        write the JSON elsewhere;  --dir DIR  put the temporary stores in DIR
//
// Sections (targets from the project's issues 3, 5 and 9):
//   a  durable appends, one at a time: raw better-sqlite3 (WAL, synchronous = FULL, one INSERT per transaction) vs
//      ledger.execute (parse, decide, hash, append the facts and a due checkpoint in one transaction), fresh files in the
//      same folder, several interleaved rounds, medians. Target: ledger ≥ 0.5 × raw. Also the vmledger store's own
//      sequential append and 64 appends in flight (group commit) against the same raw figure.
//   b  cold load of a domain with 100 facts vs one with 100,000 facts, both in one file (new ledger on a store just
//      opened, checkpoint + tail). Target: within 2×. Also the open itself (its quick_check grows with the file,
//      not the domain, so it is timed apart) and the first load before any checkpoint existed (a full replay).
//   c  NATS request/reply, 64 in flight, private nats-server: a durable echo responder (parse the JSON request, one
//      SQLite insert with the store's WAL, synchronous = FULL and group commit, reply) vs vmledger commands end to
//      end (service, ledger, durable SQLite append, fact published, reply). Targets (issue 19): vmledger ≥ 0.5 ×
//      the durable echo, p99 ≤ 5 × its p99. The plain echo (no disk) is shown too. Each responder is a process of
//      its own (vmledger: the real `vmledger serve`). Also, to show where the time goes: the CPU each responder
//      process spends per request, the same service on the in-memory store (no store work: the ceiling of any
//      store change), and the same commands into ledger.execute in-process (no NATS). Median of several runs.
//      The service, the load and the echo responders use nats.js v3 (@nats-io/transport-node); the echo and the
//      durable echo are also measured with their responder written on nats 2.29 (the line the service left; a
//      devDependency kept for this A/B only), right after each: the rows 'on nats.js v3 (vs nats 2.29)'.
//   d  replay check (decide + evolve + hash chain of every fact) vs the raw read-and-parse rate of the same store.
//      Target ≥ 0.3, the median of three rounds, each beside its own raw read. 200,000 facts by default, 1,000,000
//      with --full.
//   g  scale (issue 19; --full, or --only g): a store of 100,000 domains / 1,000,000 facts (default sizes: 10,000 /
//      100,000): `list --all` locally (CLI wall clock beside the CLI's bare start-up, and in process) and over NATS
//      from a real `vmledger serve` (typed client, CLI), one page of 1,000 over NATS (p50/p99 of 300 at random
//      places), `domstate` of one domain, the UI's first page in Chromium. Targets: list ≤ 1.5 s locally, ≤ 3 s over
//      NATS, a page p99 ≤ 50 ms, the UI ≤ 1 s.
//   e  RSS of a service process (runServe: store + ledger + host index + NATS service) on a store of 10,000
//      domains / 100,000 facts (--full: 100,000 / 1,000,000), after loading, after 5,000 commands, and with the
//      projections opened too; against the same process on an empty store.
//   f  (--full) vmledger serve on a three-node JetStream cluster (replicas 3) vs one JetStream server, same
//      commands, 64 in flight; and the longest gap in acknowledged commands while the cluster replaces the killed
//      leader of the log stream (bench/cluster.ts).
//   h  CLI start-up: median wall time of `vmledger --store memory list --all` (the built dist/cli/cli.mjs; run
//      `npm run build` first) vs bare `node -e 0`, interleaved. Target ≤ 3×. Also the same from source (tsx).
//   i  vmledger --connect in front of a private libvirtd (qemu driver, a tiny TCG guest) vs one long-lived virsh
//      alone on the same daemon: define, start, snapshot-create-as, destroy, undefine --snapshots-metadata,
//      sequences/s, interleaved rounds, medians. Target ≥ 0.9. Also one command's cost: a long-lived virsh vs a
//      fresh virsh process (bench/libvirt.ts).
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

import { clusterBench, type ClusterBenchResult } from './cluster';
import { effectfulBookkeeping, measureCommandRate, measureConcurrentCommandRate, measureLoads, type CommandRate, type LoadTime } from './ledger';
import { libvirtBench, type LibvirtBenchResult } from './libvirt';
import { memoryBench, type MemoryBenchResult } from './memory';
import { natsBench, type NatsBenchResult, type RateAndLatency } from './nats';
import { replayBench, type ReplayBenchResult } from './replay';
import { scaleBench, type ScaleBenchResult } from './scale';
import { startupBench, type StartupBenchResult } from './startup';
import { rawSqliteAppendRate, sqliteStoreAppendRate, type AppendRate } from './store-raw';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { startNatsServer, type NatsServerHandle } from '../test/support/natsServer';

// ---------------------------------------------------------------------------------------------------------------
// Arguments

interface RunOptions {
  full: boolean;
  only: Set<string>;
  out: string;
  dir: string;
}

function parseArgs(argv: string[]): RunOptions {
  const options: RunOptions = {
    full: ['1', 'true', 'yes'].includes((process.env.VMLEDGER_BENCH_FULL ?? '').toLowerCase()),
    only: new Set(['a', 'b', 'c', 'd', 'e', 'h', 'i']),
    out: resolve('bench-results.json'),
    dir: tmpdir(),
  };
  let onlyGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--full') options.full = true;
    else if (arg.startsWith('--only')) {
      options.only = new Set(value().split(',').map((s) => s.trim().toLowerCase()));
      onlyGiven = true;
    }
    else if (arg.startsWith('--out')) options.out = resolve(value());
    else if (arg.startsWith('--dir')) options.dir = resolve(value());
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run bench [-- --full] [--only a,b,c,d,e,f,g,h,i] [--out FILE] [--dir DIR]');
      process.exit(0);
    } else throw new Error(`unknown argument '${arg}' (try --help)`);
  }
  // The cluster section starts three more servers and takes about a minute: part of the full run only.
  if (options.full && !onlyGiven) options.only.add('f');
  // The scale section builds a store of 100,000 domains (about 2 minutes) before it measures: full run only too.
  if (options.full && !onlyGiven) options.only.add('g');
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function timed<T>(name: string, work: () => Promise<T>): Promise<{ value?: T; error?: string; seconds: number }> {
  const t = performance.now();
  log(`${name} …`);
  try {
    const value = await work();
    const seconds = round((performance.now() - t) / 1000, 1);
    log(`${name} done in ${seconds} s`);
    return { value, seconds };
  } catch (error) {
    const seconds = round((performance.now() - t) / 1000, 1);
    const message = (error as Error)?.stack ?? String(error);
    log(`${name} FAILED after ${seconds} s: ${message}`);
    return { error: (error as Error)?.message ?? String(error), seconds };
  }
}

/** `workers` loops appending one fact each to their own stream through the vmledger store: group commit at work. */
async function concurrentStoreAppendRate(dir: string, perWorker: number, workers: number): Promise<AppendRate & { transactions: number; largestBatch: number }> {
  const work = mkdtempSync(join(dir, 'store-concurrent-'));
  const store = openSqliteEventStore(join(work, 'store.sqlite'));
  try {
    const started = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let n = 0; n < perWorker; n++) {
          await store.append(
            `vm-${w}`,
            [
              {
                type: 'DomainStarted',
                data: { domain: `vm-${w}`, host: 'bench-host', uuid: '6b0f8a5e-1d1c-4b8e-9d55-0c2f4d0e7a11', n },
                metadata: { commandId: `bench-${w}-${n}`, actor: 'bench', time: '2024-01-01T00:00:00.000Z' },
              },
            ],
            { expectedRevision: n === 0 ? 'no-stream' : n - 1, commandId: `bench-${w}-${n}` },
          );
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    const count = workers * perWorker;
    const { transactions, largestBatch } = store.groupCommitStats;
    return { appendsPerSecond: Math.round((count / elapsedMs) * 1000), count, elapsedMs: Math.round(elapsedMs), transactions, largestBatch };
  } finally {
    await store.close();
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

interface AppendSection {
  rounds: number;
  appendsPerRound: number;
  raw: AppendRate[];
  store: AppendRate[];
  ledger: CommandRate[];
  /** The same commands through a driver with an effect: intent, perform, result (services/intents.ts). */
  ledgerIntents: CommandRate[];
  /** 64 domains in flight through one ledger, without and with intents (do they share the group commit?). */
  ledgerConcurrent: CommandRate[];
  ledgerConcurrentIntents: CommandRate[];
  concurrent: (AppendRate & { transactions: number; largestBatch: number })[];
  median: {
    raw: number;
    store: number;
    ledger: number;
    concurrent: number;
    ledgerP50Ms: number;
    ledgerP99Ms: number;
    ledgerIntents: number;
    ledgerIntentsP50Ms: number;
    ledgerConcurrent: number;
    ledgerConcurrentIntents: number;
  };
  ratio: { ledger: number; store: number; concurrent: number; intents: number; concurrentIntents: number };
}

async function appendSection(dir: string, rounds: number, count: number): Promise<AppendSection> {
  const raw: AppendRate[] = [];
  const store: AppendRate[] = [];
  const ledger: CommandRate[] = [];
  const ledgerIntents: CommandRate[] = [];
  const ledgerConcurrent: CommandRate[] = [];
  const ledgerConcurrentIntents: CommandRate[] = [];
  const concurrent: AppendSection['concurrent'] = [];
  const inFolder = async (prefix: string, fn: (file: string) => Promise<void>) => {
    const work = mkdtempSync(join(dir, prefix));
    try {
      await fn(join(work, 'ledger.sqlite'));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  };
  // Warm up the disk and the code paths once, unmeasured.
  await rawSqliteAppendRate(dir, 200);
  {
    const warm = mkdtempSync(join(dir, 'ledger-warm-'));
    await measureCommandRate(join(warm, 'ledger.sqlite'), 200, 'warm');
    rmSync(warm, { recursive: true, force: true });
  }
  for (let round = 0; round < rounds; round++) {
    // Interleaved, order alternating, so a disk that changes speed during the run hits all of them alike.
    const steps = [
      async () => raw.push(await rawSqliteAppendRate(dir, count)),
      async () => {
        const work = mkdtempSync(join(dir, 'ledger-rate-'));
        try {
          ledger.push(await measureCommandRate(join(work, 'ledger.sqlite'), count, 'bench'));
        } finally {
          rmSync(work, { recursive: true, force: true });
        }
      },
      () => inFolder('ledger-intents-', async (f) => void ledgerIntents.push(await measureCommandRate(f, count, 'bench', { driver: effectfulBookkeeping }))),
      () => inFolder('ledger-c-', async (f) => void ledgerConcurrent.push(await measureConcurrentCommandRate(f, 64, Math.ceil((count * 4) / 64)))),
      () =>
        inFolder('ledger-ci-', async (f) => void ledgerConcurrentIntents.push(await measureConcurrentCommandRate(f, 64, Math.ceil((count * 4) / 64), { driver: effectfulBookkeeping }))),
      async () => store.push(await sqliteStoreAppendRate(dir, count)),
      async () => concurrent.push(await concurrentStoreAppendRate(dir, Math.ceil((count * 4) / 64), 64)),
    ];
    if (round % 2 === 1) steps.reverse();
    for (const step of steps) await step();
  }
  const m = {
    raw: median(raw.map((r) => r.appendsPerSecond)),
    store: median(store.map((r) => r.appendsPerSecond)),
    ledger: median(ledger.map((r) => r.commandsPerSecond)),
    concurrent: median(concurrent.map((r) => r.appendsPerSecond)),
    ledgerP50Ms: median(ledger.map((r) => r.p50Ms)),
    ledgerP99Ms: median(ledger.map((r) => r.p99Ms)),
    ledgerIntents: median(ledgerIntents.map((r) => r.commandsPerSecond)),
    ledgerIntentsP50Ms: median(ledgerIntents.map((r) => r.p50Ms)),
    ledgerConcurrent: median(ledgerConcurrent.map((r) => r.commandsPerSecond)),
    ledgerConcurrentIntents: median(ledgerConcurrentIntents.map((r) => r.commandsPerSecond)),
  };
  return {
    rounds,
    appendsPerRound: count,
    raw,
    store,
    ledger,
    ledgerIntents,
    ledgerConcurrent,
    ledgerConcurrentIntents,
    concurrent,
    median: m,
    ratio: {
      ledger: round(m.ledger / m.raw),
      store: round(m.store / m.raw),
      concurrent: round(m.concurrent / m.raw),
      intents: round(m.ledgerIntents / m.ledger),
      concurrentIntents: round(m.ledgerConcurrentIntents / m.ledgerConcurrent),
    },
  };
}

interface LoadSection {
  small: LoadTime;
  big: LoadTime;
  ratio: number;
}

async function loadSection(dir: string, bigFacts: number, runs: number): Promise<LoadSection> {
  const work = mkdtempSync(join(dir, 'load-bench-'));
  try {
    const file = join(work, 'ledger.sqlite');
    const { small, big } = await measureLoads(file, bigFacts, runs);
    return { small, big, ratio: round(big.coldLoadMs / small.coldLoadMs, 2) };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

interface NatsSection {
  runs: NatsBenchResult[];
  /** The run with the median ratio. */
  median: NatsBenchResult;
}

async function natsSection(url: string, dir: string, runs: number, durationMs: number): Promise<NatsSection> {
  const results: NatsBenchResult[] = [];
  for (let i = 0; i < runs; i++) results.push(await natsBench(url, { inFlight: 64, durationMs, dir }));
  const sorted = [...results].sort((a, b) => a.durableRatio - b.durableRatio);
  return { runs: results, median: sorted[sorted.length >> 1]! };
}

// ---------------------------------------------------------------------------------------------------------------
// The table

interface Row {
  section: string;
  what: string;
  figure: string;
  baseline: string;
  ratio: string;
  target: string;
  met: '' | 'yes' | 'NO';
}

const fmt = (n: number, unit = '') => `${n.toLocaleString('en-US', { maximumFractionDigits: 2 })}${unit}`;

function rowsFor(results: Results): Row[] {
  const rows: Row[] = [];
  const failed = (section: string, what: string, error: string) =>
    rows.push({ section, what, figure: `failed: ${error.split('\n')[0]!.slice(0, 60)}`, baseline: '', ratio: '', target: '', met: 'NO' });

  const a = results.a;
  if (a?.value) {
    const m = a.value.median;
    rows.push({
      section: 'a',
      what: 'ledger commands/s, one at a time (vs raw SQLite appends/s)',
      figure: fmt(m.ledger),
      baseline: fmt(m.raw),
      ratio: fmt(a.value.ratio.ledger),
      target: '≥ 0.5',
      met: a.value.ratio.ledger >= 0.5 ? 'yes' : 'NO',
    });
    rows.push({ section: 'a', what: '  ledger command latency p50 / p99', figure: `${fmt(m.ledgerP50Ms)} / ${fmt(m.ledgerP99Ms)} ms`, baseline: '', ratio: '', target: '', met: '' });
    rows.push({
      section: 'a',
      what: '  the same with exactly-once intents (vs the ledger without)',
      figure: `${fmt(m.ledgerIntents)} (p50 ${fmt(m.ledgerIntentsP50Ms)} ms)`,
      baseline: fmt(m.ledger),
      ratio: fmt(a.value.ratio.intents),
      target: '',
      met: '',
    });
    rows.push({
      section: 'a',
      what: '  64 domains in flight, with intents (vs without)',
      figure: fmt(m.ledgerConcurrentIntents),
      baseline: fmt(m.ledgerConcurrent),
      ratio: fmt(a.value.ratio.concurrentIntents),
      target: '',
      met: '',
    });
    rows.push({ section: 'a', what: '  vmledger store appends/s, one at a time', figure: fmt(m.store), baseline: fmt(m.raw), ratio: fmt(a.value.ratio.store), target: '', met: '' });
    rows.push({
      section: 'a',
      what: '  vmledger store appends/s, 64 in flight (group commit)',
      figure: fmt(m.concurrent),
      baseline: fmt(m.raw),
      ratio: fmt(a.value.ratio.concurrent),
      target: '',
      met: '',
    });
  } else if (a?.error) failed('a', 'durable appends', a.error);

  const b = results.b;
  if (b?.value) {
    rows.push({
      section: 'b',
      what: `cold load ms, ${fmt(b.value.big.facts)} facts (vs 100 facts)`,
      figure: fmt(b.value.big.coldLoadMs, ' ms'),
      baseline: fmt(b.value.small.coldLoadMs, ' ms'),
      ratio: fmt(b.value.ratio),
      target: '≤ 2',
      met: b.value.ratio <= 2 ? 'yes' : 'NO',
    });
    rows.push({
      section: 'b',
      what: '  opening the store file just before (quick_check of every page)',
      figure: fmt(b.value.big.openMs, ' ms'),
      baseline: fmt(b.value.small.openMs, ' ms'),
      ratio: '',
      target: '',
      met: '',
    });
    rows.push({
      section: 'b',
      what: '  first load before any checkpoint (full replay)',
      figure: fmt(b.value.big.fullReplayMs, ' ms'),
      baseline: fmt(b.value.small.fullReplayMs, ' ms'),
      ratio: fmt(round(b.value.big.fullReplayMs / b.value.small.fullReplayMs, 1)),
      target: '',
      met: '',
    });
  } else if (b?.error) failed('b', 'load time', b.error);

  const c = results.c;
  if (c?.value) {
    const r = c.value.median;
    rows.push({
      section: 'c',
      what: `vmledger over NATS req/s, ${r.inFlight} in flight (vs durable echo)`,
      figure: fmt(r.vmledger.requestsPerSecond),
      baseline: fmt(r.durableEcho.requestsPerSecond),
      ratio: fmt(r.durableRatio),
      target: '≥ 0.5',
      met: r.durableRatio >= 0.5 ? 'yes' : 'NO',
    });
    rows.push({ section: 'c', what: '  p50 latency (vs durable echo)', figure: fmt(r.vmledger.p50Ms, ' ms'), baseline: fmt(r.durableEcho.p50Ms, ' ms'), ratio: '', target: '', met: '' });
    rows.push({
      section: 'c',
      what: '  p99 latency (vs durable echo)',
      figure: fmt(r.vmledger.p99Ms, ' ms'),
      baseline: fmt(r.durableEcho.p99Ms, ' ms'),
      ratio: fmt(r.p99Ratio),
      target: '≤ 5',
      met: r.p99Ratio <= 5 ? 'yes' : 'NO',
    });
    rows.push({
      section: 'c',
      what: '  vs the plain echo (no disk)',
      figure: fmt(r.vmledger.requestsPerSecond),
      baseline: `${fmt(r.echo.requestsPerSecond)} (p99 ${fmt(r.echo.p99Ms, ' ms')})`,
      ratio: fmt(r.ratio),
      target: '',
      met: '',
    });
    // The same responder on nats.js v3 (the service's line, the baselines above) beside nats 2.29: rate and p99 of each.
    const v3Row = (what: string, v3: RateAndLatency, v2: RateAndLatency): Row => ({
      section: 'c',
      what,
      figure: `${fmt(v3.requestsPerSecond)} (p99 ${fmt(v3.p99Ms, ' ms')})`,
      baseline: `${fmt(v2.requestsPerSecond)} (p99 ${fmt(v2.p99Ms, ' ms')})`,
      ratio: fmt(round(v3.requestsPerSecond / v2.requestsPerSecond)),
      target: '',
      met: '',
    });
    rows.push(v3Row('  echo responder on nats.js v3 (vs nats 2.29)', r.echo, r.echoNats2));
    rows.push(v3Row('  durable echo on nats.js v3 (vs nats 2.29)', r.durableEcho, r.durableEchoNats2));
    // What each responder process spends per request: the durable echo's few µs are the floor the target is set
    // against, so the row shows how much of the gap is the service's own work rather than the store's.
    const cpu = (x: RateAndLatency) => (x.responderCpuUs === undefined ? 'n/a' : fmt(x.responderCpuUs, ' µs'));
    const cpuRatio = (x: RateAndLatency, y: RateAndLatency) =>
      x.responderCpuUs !== undefined && y.responderCpuUs ? fmt(round(x.responderCpuUs / y.responderCpuUs, 1)) : '';
    rows.push({
      section: 'c',
      what: '  CPU per request in the responder process (vs durable echo)',
      figure: cpu(r.vmledger),
      baseline: cpu(r.durableEcho),
      ratio: cpuRatio(r.vmledger, r.durableEcho),
      target: '',
      met: '',
    });
    // With no store work at all: the most any change to the store could bring.
    rows.push({
      section: 'c',
      what: '  same service on the in-memory store (vs durable echo)',
      figure: `${fmt(r.vmledgerMemoryStore.requestsPerSecond)} (${cpu(r.vmledgerMemoryStore)})`,
      baseline: `${fmt(r.durableEcho.requestsPerSecond)} (${cpu(r.durableEcho)})`,
      ratio: fmt(round(r.vmledgerMemoryStore.requestsPerSecond / r.durableEcho.requestsPerSecond)),
      target: '',
      met: '',
    });
    rows.push({
      section: 'c',
      what: '  same commands into ledger.execute, no NATS',
      figure: fmt(r.ledgerDirect.requestsPerSecond),
      baseline: fmt(r.echo.requestsPerSecond),
      ratio: fmt(round(r.ledgerDirect.requestsPerSecond / r.echo.requestsPerSecond)),
      target: '',
      met: '',
    });
    rows.push({
      section: 'c',
      what: `  ratio to the durable echo, each run (median shown above)`,
      figure: c.value.runs.map((x) => fmt(x.durableRatio)).join(', '),
      baseline: '',
      ratio: '',
      target: '',
      met: '',
    });
  } else if (c?.error) failed('c', 'NATS', c.error);

  const d = results.d;
  if (d?.value) {
    rows.push({
      section: 'd',
      what: `replay facts/s over ${fmt(d.value.facts)} facts (vs raw read; median of ${d.value.rounds.length} rounds)`,
      figure: fmt(d.value.replay.factsPerSecond),
      baseline: fmt(d.value.raw.factsPerSecond),
      ratio: fmt(d.value.ratio),
      target: '≥ 0.3',
      met: d.value.ratio >= 0.3 ? 'yes' : 'NO',
    });
    rows.push({
      section: 'd',
      what: `  ratio to the raw read of its round, each round (median shown above)`,
      figure: d.value.rounds.map((r) => fmt(r.ratio)).join(', '),
      baseline: '',
      ratio: '',
      target: '',
      met: '',
    });
  } else if (d?.error) failed('d', 'replay', d.error);

  const e = results.e;
  if (e?.value) {
    const v = e.value;
    const floor = v.emptyStore.rssMiB;
    const scale = `${fmt(v.domains)} domains, ${fmt(v.facts)} facts`;
    rows.push({ section: 'e', what: `service RSS after loading (${scale}; vs empty store)`, figure: fmt(v.afterLoad.rssMiB, ' MiB'), baseline: fmt(floor, ' MiB'), ratio: fmt(round(v.afterLoad.rssMiB / floor, 2)), target: '', met: '' });
    rows.push({ section: 'e', what: `  after ${fmt(v.afterCommands.commands)} commands over NATS`, figure: fmt(v.afterCommands.rssMiB, ' MiB'), baseline: fmt(floor, ' MiB'), ratio: fmt(round(v.afterCommands.rssMiB / floor, 2)), target: '', met: '' });
    rows.push({ section: 'e', what: '  with the projections opened too', figure: fmt(v.withProjections.rssMiB, ' MiB'), baseline: fmt(floor, ' MiB'), ratio: fmt(round(v.withProjections.rssMiB / floor, 2)), target: '', met: '' });
    rows.push({
      section: 'e',
      what: '  V8 heap used (reserved): loaded / commands / projections',
      figure: [v.afterLoad, v.afterCommands, v.withProjections].map((f) => `${fmt(f.heapUsedMiB)} (${fmt(f.heapTotalMiB)})`).join(' / ') + ' MiB',
      baseline: `${fmt(v.emptyStore.heapUsedMiB)} (${fmt(v.emptyStore.heapTotalMiB)}) MiB`,
      ratio: '',
      target: '',
      met: '',
    });
    rows.push({ section: 'e', what: '  peak RSS (VmHWM) / load time / fold time', figure: `${fmt(v.withProjections.peakRssMiB)} MiB / ${fmt(v.afterLoad.loadMs)} ms / ${fmt(v.withProjections.foldMs)} ms`, baseline: '', ratio: '', target: '', met: '' });
  } else if (e?.error) failed('e', 'memory', e.error);

  const f = results.f;
  if (f?.value) {
    const v = f.value;
    rows.push({
      section: 'f',
      what: `vmledger on 3 JetStream nodes, replicas 3, req/s, ${v.inFlight} in flight (vs 1 node)`,
      figure: fmt(v.threeNodes.requestsPerSecond),
      baseline: fmt(v.oneNode.requestsPerSecond),
      ratio: fmt(v.ratio),
      target: '',
      met: '',
    });
    rows.push({ section: 'f', what: '  p50 / p99 latency', figure: `${fmt(v.threeNodes.p50Ms)} / ${fmt(v.threeNodes.p99Ms)} ms`, baseline: `${fmt(v.oneNode.p50Ms)} / ${fmt(v.oneNode.p99Ms)} ms`, ratio: '', target: '', met: '' });
    const lc = v.leaderChange;
    rows.push({
      section: 'f',
      what: `  longest gap in acks, stream leader ${lc.killed} killed (vs before)`,
      figure: fmt(lc.longestGapMs, ' ms'),
      baseline: fmt(lc.gapBeforeMs, ' ms'),
      ratio: '',
      target: '',
      met: '',
    });
    rows.push({
      section: 'f',
      what: '  meanwhile: STORE-UNAVAILABLE replies / client timeouts (resent)',
      figure: `${fmt(lc.storeUnavailableReplies)} / ${fmt(lc.timeouts)}`,
      baseline: '',
      ratio: '',
      target: '',
      met: '',
    });
  } else if (f?.error) failed('f', 'cluster', f.error);

  const g = results.g;
  if (g?.value) {
    const v = g.value;
    const at = `${fmt(v.domains)} domains`;
    const row = (what: string, ms: number, baseline: string, target: number | undefined) =>
      rows.push({ section: 'g', what, figure: fmt(ms, ' ms'), baseline, ratio: '', target: target === undefined ? '' : `≤ ${fmt(target)} ms`, met: target === undefined ? '' : ms <= target ? 'yes' : 'NO' });
    row(`list --all, local store, in process (${at})`, v.local.inProcessMs, `CPU ${fmt(v.local.inProcessCpuMs, ' ms')}`, 1500);
    row('  the same, the vmledger CLI (wall clock; vs its bare start-up)', v.local.cliMs, fmt(v.cliStartMs, ' ms'), undefined);
    row('  first list after the store was written (folds the log into the index)', v.local.firstMs, '', undefined);
    row(`list --all over NATS, typed client (${fmt(v.nats.listed)} listed)`, v.nats.clientMs, '', 3000);
    row('  the same, vmledger --nats URL list --all (wall clock)', v.nats.cliMs, fmt(v.cliStartMs, ' ms'), undefined);
    row(`one page of 1,000 over NATS, p99 of ${v.nats.pages} (p50 ${fmt(v.nats.pageP50Ms)} ms)`, v.nats.pageP99Ms, '', 50);
    row('domstate of one domain, in process (open + load)', v.domstate.inProcessMs, '', undefined);
    row('  the same, the vmledger CLI (wall clock)', v.domstate.cliMs, fmt(v.cliStartMs, ' ms'), undefined);
    if ('coldMs' in v.ui) {
      row(`UI first page in Chromium, server running (${v.ui.options - 1} shown)`, v.ui.warmMs, '', 1000);
      row('  the first one after the server started (projections folded)', v.ui.coldMs, '', undefined);
      row('    its page loaded (HTML and scripts), while the projections fold', v.ui.coldShownMs, '', undefined);
    } else rows.push({ section: 'g', what: 'UI first page', figure: v.ui.skipped, baseline: '', ratio: '', target: '', met: '' });
  } else if (g?.error) failed('g', 'scale', g.error);

  const h = results.h;
  if (h?.value) {
    const v = h.value;
    rows.push({
      section: 'h',
      what: `CLI start-up, \`vmledger --store memory list --all\` (vs node -e 0), median of ${v.runs}`,
      figure: fmt(v.cliMs, ' ms'),
      baseline: fmt(v.nodeMs, ' ms'),
      ratio: fmt(v.ratio),
      target: '≤ 3',
      met: v.ratio <= 3 ? 'yes' : 'NO',
    });
    rows.push({ section: 'h', what: '  the same from source through tsx (bin/vmledger.mjs)', figure: fmt(v.sourceMs, ' ms'), baseline: fmt(v.nodeMs, ' ms'), ratio: fmt(Math.round((v.sourceMs / v.nodeMs) * 100) / 100), target: '', met: '' });
  } else if (h?.error) failed('h', 'CLI start-up', h.error);

  const lvb = results.i;
  if (lvb?.value) {
    const v = lvb.value;
    rows.push({
      section: 'i',
      what: 'libvirt: define/start/snapshot/destroy/undefine sequences/s, vmledger --connect',
      figure: fmt(v.median.vmledger),
      baseline: `long-lived virsh ${fmt(v.median.virsh)}`,
      ratio: fmt(v.ratio),
      target: '≥ 0.9',
      met: v.ratio >= 0.9 ? 'yes' : 'NO',
    });
    rows.push({ section: 'i', what: '  one virsh command: long-lived child', figure: fmt(v.perCommandMs.longLived, ' ms'), baseline: `fresh process ${fmt(v.perCommandMs.freshProcess, ' ms')}`, ratio: '', target: '', met: '' });
  } else if (lvb?.error) failed('i', 'libvirt', lvb.error);
  return rows;
}

function printTable(rows: Row[]): void {
  const header: Row = { section: '', what: 'benchmark', figure: 'figure', baseline: 'baseline (same run)', ratio: 'ratio', target: 'target', met: '' };
  const all = [header, ...rows];
  const width = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const w = { what: width('what'), figure: width('figure'), baseline: width('baseline'), ratio: width('ratio'), target: width('target') };
  const line = (r: Row) =>
    (
      `${r.section.padEnd(2)} ${r.what.padEnd(w.what)}  ${r.figure.padStart(w.figure)}  ${r.baseline.padStart(w.baseline)}  ` +
      `${r.ratio.padStart(w.ratio)}  ${r.target.padEnd(w.target)}  ${r.met === 'yes' ? 'met' : r.met === 'NO' ? 'NOT MET' : ''}`
    ).trimEnd();
  const rule = '-'.repeat(line(header).length + 8);
  console.log(rule);
  console.log(line({ ...header, met: '' }));
  console.log(rule);
  let previous = '';
  for (const r of rows) {
    if (previous && r.section !== previous) console.log('');
    previous = r.section;
    console.log(line(r));
  }
  console.log(rule);
}

// ---------------------------------------------------------------------------------------------------------------

interface Results {
  a?: { value?: AppendSection; error?: string; seconds: number };
  b?: { value?: LoadSection; error?: string; seconds: number };
  c?: { value?: NatsSection; error?: string; seconds: number };
  d?: { value?: ReplayBenchResult; error?: string; seconds: number };
  e?: { value?: MemoryBenchResult; error?: string; seconds: number };
  f?: { value?: ClusterBenchResult; error?: string; seconds: number };
  g?: { value?: ScaleBenchResult; error?: string; seconds: number };
  h?: { value?: StartupBenchResult; error?: string; seconds: number };
  i?: { value?: LibvirtBenchResult; error?: string; seconds: number };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const sizes = options.full
    ? { appendRounds: 5, appends: 2000, bigFacts: 100_000, loadRuns: 9, natsRuns: 3, natsMs: 5000, replayFacts: 1_000_000, domains: 100_000, facts: 1_000_000, commands: 5000, startupRuns: 21 }
    : { appendRounds: 5, appends: 1000, bigFacts: 100_000, loadRuns: 7, natsRuns: 3, natsMs: 3000, replayFacts: 200_000, domains: 10_000, facts: 100_000, commands: 5000, startupRuns: 15 };
  const started = performance.now();
  log(`mode ${options.full ? 'full' : 'default'}, sections ${[...options.only].join(',')}, temporary stores under ${options.dir}`);

  let server: NatsServerHandle | undefined;
  const results: Results = {};
  try {
    if (options.only.has('a')) results.a = await timed('a: durable appends', () => appendSection(options.dir, sizes.appendRounds, sizes.appends));
    if (options.only.has('b')) results.b = await timed('b: load time', () => loadSection(options.dir, sizes.bigFacts, sizes.loadRuns));
    const scale = options.only.has('g');
    if (options.only.has('c') || options.only.has('e') || scale) {
      try {
        server = await startNatsServer();
      } catch (error) {
        const message = (error as Error).message;
        if (options.only.has('c')) results.c = { error: message, seconds: 0 };
        if (options.only.has('e')) results.e = { error: message, seconds: 0 };
        if (scale) results.g = { error: message, seconds: 0 };
      }
    }
    if (options.only.has('c') && server) results.c = await timed('c: NATS', () => natsSection(server!.url, options.dir, sizes.natsRuns, sizes.natsMs));
    if (options.only.has('d')) results.d = await timed(`d: replay over ${sizes.replayFacts} facts`, () => replayBench(options.dir, sizes.replayFacts));
    if (options.only.has('e') && server) {
      results.e = await timed(`e: memory (${sizes.domains} domains, ${sizes.facts} facts)`, () =>
        memoryBench({ domains: sizes.domains, facts: sizes.facts, commands: sizes.commands, natsUrl: server!.url, dir: options.dir, log }),
      );
    }
    if (scale && server) {
      results.g = await timed(`g: scale (${sizes.domains} domains, ${sizes.facts} facts)`, () =>
        scaleBench({ domains: sizes.domains, facts: sizes.facts, natsUrl: server!.url, dir: options.dir, log }),
      );
    }
  } finally {
    await server?.stop();
  }
  if (options.only.has('f')) results.f = await timed('f: three-node JetStream cluster', () => clusterBench({ durationMs: sizes.natsMs, log }));
  if (options.only.has('h')) results.h = await timed('h: CLI start-up', async () => startupBench(options.dir, sizes.startupRuns));
  if (options.only.has('i')) results.i = await timed('i: libvirt', () => libvirtBench({ dir: options.dir, log }));

  const rows = rowsFor(results);
  const totalSeconds = round((performance.now() - started) / 1000, 1);
  const report = {
    startedAt: new Date(Date.now() - totalSeconds * 1000).toISOString(),
    mode: options.full ? 'full' : 'default',
    totalSeconds,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: round(totalmem() / 1024 ** 3, 1), node: process.version, platform: process.platform },
    sizes,
    table: rows,
    results,
  };
  writeFileSync(options.out, JSON.stringify(report, null, 2) + '\n');
  console.log('');
  console.log(`vmledger benchmarks (${report.mode} mode, ${totalSeconds} s, ${report.machine.cpus} CPUs, Node ${process.version})`);
  printTable(rows);
  console.log(`all figures: ${options.out}`);
  if (rows.some((r) => r.figure.startsWith('failed'))) process.exitCode = 1;
}

await main();
