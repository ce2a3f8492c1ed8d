// What the ledger costs on top of the store, on one SQLite file (WAL, synchronous = FULL):
//   - command rate: durable single commands through ledger.execute (no CLI): suspend/resume pairs on one running
//     domain, each acknowledged only after its facts are on disk (compare with bench/store-raw.ts's raw append rate);
//   - load time of a domain with 100 facts and with 100,000 facts, cold (a new store connection and a new Ledger on
//     the file, so the load is the state checkpoint plus the facts after it), and, for comparison, the first load
//     before any checkpoint existed (a full replay).
//
// Run alone: `npx tsx bench/ledger.ts [dir]` prints the numbers as JSON.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import type { Fact } from '../machines/events';
import { domainStream, type DomainConfig } from '../machines/model';
import { bookkeepingDriver, type HypervisorDriver } from '../services/drivers/types';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { NewEvent } from '../services/eventstore/types';
import { factHash, factToEventData } from '../services/factHash';
import { CHECKPOINTS_COLLECTION, createLedger, type LedgerOptions } from '../services/ledger';

export interface CommandRate {
  commands: number;
  elapsedMs: number;
  commandsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadTime {
  facts: number;
  /** New Ledger + loadDomain on a store just opened, median of several runs (checkpoint + tail). */
  coldLoadMs: number;
  /**
   * Opening the store file just before (schema, WAL, `PRAGMA quick_check` of every page), median: it grows with
   * the file, not with the domain, so it is timed apart from the load.
   */
  openMs: number;
  /** The first load, before any checkpoint existed: every fact read and folded. */
  fullReplayMs: number;
  /** Revision of the checkpoint the cold loads started from. */
  checkpointRevision: number | undefined;
}

export interface LedgerBenchResult {
  file: string;
  fileBytes: number;
  /** Default ledger (`outcomeDocs: 'unrecorded'`): outcomes rebuilt from the facts on a retry, no doc per command. */
  commandRate: CommandRate;
  /** `outcomeDocs: 'all'`: every outcome also gets an outcome doc, in the transaction of its facts. */
  commandRateAllDocs: CommandRate;
  load: { small: LoadTime; big: LoadTime };
}

const TIME = '2024-01-01T00:00:00.000Z';
const CONFIG: DomainConfig = {
  name: 'bench',
  uuid: '6b0f8a5e-1d1c-4b8e-9d55-0c2f4d0e7a11',
  disks: [{ target: 'vda', source: '/var/lib/images/bench.qcow2', device: 'disk', readonly: false, shareable: false, storage: 'managed' }],
  hostdevs: [],
};

function ms(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Writes a domain's history straight into the store, in batches (one transaction per 1000 facts): the same facts,
 * metadata and hash chain the ledger writes, without paying one fsync per command for 100,000 facts.
 */
async function seedDomain(file: string, name: string, facts: number): Promise<void> {
  const store = openSqliteEventStore(file);
  const stream = domainStream('local', name);
  const config = { ...CONFIG, name, uuid: `${CONFIG.uuid.slice(0, -6)}${String(facts).padStart(6, '0').slice(-6)}` };
  let hash: string | undefined;
  let revision = -1;
  let batch: NewEvent[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await store.append(stream, batch, { expectedRevision: revision < 0 ? 'no-stream' : revision });
    revision += batch.length;
    batch = [];
  };
  for (let i = 0; i < facts; i++) {
    const fact: Fact =
      i === 0
        ? { type: 'DomainDefined', config }
        : i === 1
          ? { type: 'DomainStarted', paused: false, autodestroy: false, reason: 'booted', managedSaveConsumed: false }
          : i % 2 === 0
            ? { type: 'DomainSuspended' }
            : { type: 'DomainResumed' };
    const data = factToEventData(fact);
    hash = factHash(hash, fact.type, data);
    batch.push({
      type: fact.type,
      data,
      metadata: { commandId: `seed-${name}-${i}`, actor: 'bench', time: TIME, host: 'local', domain: name, hash },
    });
    if (batch.length === 1000) await flush();
  }
  await flush();
  await store.close();
}

/**
 * Cold loads of a domain with 100 facts and of one with `bigFacts`, both seeded into `file` before either is
 * measured: every open then checks the same file, and the two loads differ by the domains' histories only.
 */
export async function measureLoads(file: string, bigFacts: number, runs: number): Promise<{ small: LoadTime; big: LoadTime }> {
  await seedDomain(file, 'small', 100);
  await seedDomain(file, 'big', bigFacts);
  return { small: await measureLoad(file, 'small', 100, runs), big: await measureLoad(file, 'big', bigFacts, runs) };
}

async function measureLoad(file: string, name: string, facts: number, runs: number): Promise<LoadTime> {
  // First load: no checkpoint yet, every fact is folded; the ledger then saves a checkpoint.
  let fullReplayMs: number;
  {
    const store = openSqliteEventStore(file);
    const ledger = createLedger(store);
    // Start-up (reading the global log into the host index) is not what this number is about: get it done first.
    await ledger.loadDomain('local', 'no-such-domain');
    const t = process.hrtime.bigint();
    const loaded = await ledger.loadDomain('local', name);
    fullReplayMs = ms(t);
    if (loaded.revision !== facts - 1) throw new Error(`loaded revision ${loaded.revision}, expected ${facts - 1}`);
    await ledger.close();
    await store.close();
  }
  const times: number[] = [];
  const opens: number[] = [];
  let checkpointRevision: number | undefined;
  for (let i = 0; i < runs; i++) {
    const opening = process.hrtime.bigint();
    const store = openSqliteEventStore(file);
    opens.push(ms(opening));
    const t = process.hrtime.bigint();
    const ledger = createLedger(store);
    const loaded = await ledger.loadDomain('local', name);
    times.push(ms(t));
    if (loaded.revision !== facts - 1) throw new Error(`loaded revision ${loaded.revision}, expected ${facts - 1}`);
    checkpointRevision = (await store.getDoc(CHECKPOINTS_COLLECTION, domainStream('local', name)) as { revision?: number } | undefined)?.revision;
    await ledger.close();
    await store.close();
  }
  times.sort((a, b) => a - b);
  opens.sort((a, b) => a - b);
  return { facts, coldLoadMs: round(percentile(times, 50)), openMs: round(percentile(opens, 50)), fullReplayMs: round(fullReplayMs), checkpointRevision };
}

/**
 * The bookkeeping driver declaring an effect on every command: each command then pays the exactly-once protocol
 * (services/intents.ts: an intent appended and made durable before perform, the result after), with nothing else
 * changed, so beside the plain ledger it shows what that protocol costs.
 */
export const effectfulBookkeeping: HypervisorDriver = { ...bookkeepingDriver, name: 'bookkeeping-with-intents', hasEffect: () => true };

/** `domains` domains, one command loop each, all in flight at once through one ledger (group commit at work). */
export async function measureConcurrentCommandRate(file: string, domains: number, perDomain: number, options: LedgerOptions = {}): Promise<CommandRate> {
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store, options);
  const names = Array.from({ length: domains }, (_, i) => `c${i}`);
  let n = 0;
  const meta = () => ({ commandId: `bench-c-${++n}`, actor: 'bench', time: TIME });
  await Promise.all(
    names.map(async (name, i) => {
      const config = { ...CONFIG, name, uuid: `${CONFIG.uuid.slice(0, -6)}${String(100000 + i).slice(-6)}` };
      for (const input of [{ verb: 'define', config, meta: meta() }, { verb: 'start', domain: name, meta: meta() }]) {
        const o = await ledger.execute(input);
        if (!o.ok) throw new Error(`bench setup failed: ${o.message}`);
      }
    }),
  );
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  await Promise.all(
    names.map(async (name) => {
      for (let i = 0; i < perDomain; i++) {
        const t = process.hrtime.bigint();
        const o = await ledger.execute({ verb: i % 2 === 0 ? 'suspend' : 'resume', domain: name, meta: meta() });
        latencies.push(ms(t));
        if (!o.ok || o.events.length !== 1) throw new Error(`bench command on ${name} was not applied: ${o.message ?? 'no facts'}`);
      }
    }),
  );
  const elapsedMs = ms(start);
  await ledger.close();
  await store.close();
  return rateOf(domains * perDomain, elapsedMs, latencies);
}

export async function measureCommandRate(file: string, count: number, name: string, options: LedgerOptions = {}): Promise<CommandRate> {
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store, options);
  const config = { ...CONFIG, name, uuid: `${CONFIG.uuid.slice(0, -1)}${name.length % 10}` };
  let n = 0;
  const meta = () => ({ commandId: `bench-${name}-${++n}`, actor: 'bench', time: TIME });
  for (const input of [
    { verb: 'define', config, meta: meta() },
    { verb: 'start', domain: name, meta: meta() },
  ]) {
    const o = await ledger.execute(input);
    if (!o.ok) throw new Error(`bench setup failed: ${o.message}`);
  }
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    const o = await ledger.execute({ verb: i % 2 === 0 ? 'suspend' : 'resume', domain: name, meta: meta() });
    latencies.push(ms(t));
    if (!o.ok || o.events.length !== 1) throw new Error(`bench command ${i} was not applied: ${o.message ?? 'no facts'}`);
  }
  const elapsedMs = ms(start);
  await ledger.close();
  await store.close();
  return rateOf(count, elapsedMs, latencies);
}

function rateOf(count: number, elapsedMs: number, latencies: number[]): CommandRate {
  latencies.sort((a, b) => a - b);
  return {
    commands: count,
    elapsedMs: Math.round(elapsedMs),
    commandsPerSecond: Math.round((count / elapsedMs) * 1000),
    p50Ms: round(percentile(latencies, 50), 3),
    p99Ms: round(percentile(latencies, 99), 3),
  };
}

/** All measurements on one SQLite file in a fresh folder under `dir` (removed afterwards). */
export async function ledgerBench(dir: string, options: { commands?: number; bigFacts?: number; runs?: number } = {}): Promise<LedgerBenchResult> {
  const work = mkdtempSync(join(dir, 'ledger-bench-'));
  const file = join(work, 'ledger.sqlite');
  try {
    const commandRate = await measureCommandRate(file, options.commands ?? 2000, 'bench');
    const commandRateAllDocs = await measureCommandRate(file, options.commands ?? 2000, 'bench2', { outcomeDocs: 'all' });
    const load = await measureLoads(file, options.bigFacts ?? 100_000, options.runs ?? 7);
    return { file, fileBytes: statSync(file).size, commandRate, commandRateAllDocs, load };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? tmpdir();
  console.log(JSON.stringify(await ledgerBench(dir), null, 2));
}
