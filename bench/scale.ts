// The scale bench: a store of D domains / F facts (bench:full: 100,000 / 1,000,000), and what users feel on it:
// `vmledger list --all` locally (the CLI process, wall clock, and the same work in process), the same over NATS
// from a real `vmledger serve` (typed client and CLI), one page of 1,000 over NATS (p50/p99 of many, at random
// places), `domstate` of one domain, and the UI's first page load in Chromium (when it is installed).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { connect } from '@nats-io/transport-node';

import { createVmledgerClient } from '../services/client';
import { allDomains, cursorAfter } from '../services/domainQuery';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { createLedger } from '../services/ledger';
import { listOutput } from '../services/virsh/print';
import { buildMemoryStore, domainName } from './memory';
import { REPO, SERVE_ENV, SERVE_READY, spawnResponder, stopResponder } from './nats';

const HOST = 'bench';
const BIN = join(REPO, 'bin', 'vmledger.mjs');

export interface ScaleBenchResult {
  domains: number;
  facts: number;
  buildMs: number;
  /** The CLI doing nothing but start (`--store memory list`): the floor of every CLI figure. */
  cliStartMs: number;
  /** inProcessCpuMs: the CPU time of that work (user + system), which a loaded machine does not inflate. */
  local: { firstMs: number; inProcessMs: number; inProcessCpuMs: number; cliMs: number; lines: number };
  nats: { clientMs: number; cliMs: number; listed: number; pageP50Ms: number; pageP99Ms: number; pages: number };
  domstate: { cliMs: number; inProcessMs: number };
  /** Navigation to a ready page (diagram, rules and the picker's first page of domains) in Chromium. */
  /** coldShownMs: the first page's own load (its HTML and scripts), while the projections still fold. */
  ui: { coldMs: number; coldShownMs: number; warmMs: number; options: number; total: string } | { skipped: string };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const r1 = (n: number) => Math.round(n * 10) / 10;

/** Runs the CLI; resolves with its wall time and stdout. */
function cli(args: string[]): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { cwd: REPO, maxBuffer: 1 << 30, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`vmledger ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve({ ms: performance.now() - started, stdout });
    });
  });
}

/** `list --all` in process: open the store and ledger, query every page, print. */
async function listInProcess(file: string): Promise<{ ms: number; cpuMs: number; lines: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store);
  try {
    const out = listOutput(await allDomains(ledger, { host: HOST, all: true }));
    const used = process.cpuUsage(cpu);
    return { ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000, lines: out.split('\n').length - 1 };
  } finally {
    await ledger.close();
    await store.close();
  }
}

export async function scaleBench(options: {
  domains: number;
  facts: number;
  natsUrl: string;
  dir: string;
  runs?: number;
  /** A store this bench built before (`buildMemoryStore`, same sizes): used as it is, and kept. */
  store?: string;
  log?: (line: string) => void;
}): Promise<ScaleBenchResult> {
  const log = options.log ?? (() => {});
  const runs = options.runs ?? 3;
  const work = mkdtempSync(join(options.dir, 'scale-bench-'));
  const file = options.store ?? join(work, 'scale.sqlite');
  try {
    let t = performance.now();
    const built = options.store ? { facts: options.facts } : await buildMemoryStore(file, options.domains, options.facts);
    const buildMs = performance.now() - t;
    log(`scale: built ${options.domains} domains / ${built.facts} facts in ${Math.round(buildMs)} ms`);

    // The first open folds the whole log into the host index and saves it; every later open starts from it.
    const first = await listInProcess(file);
    const inProcess: number[] = [];
    const inProcessCpu: number[] = [];
    const cliRuns: number[] = [];
    const starts: number[] = [];
    let lines = 0;
    for (let i = 0; i < runs; i++) {
      const run = await listInProcess(file);
      inProcess.push(run.ms);
      inProcessCpu.push(run.cpuMs);
      const viaCli = await cli(['--store', `sqlite:${file}`, '--host', HOST, 'list', '--all']);
      cliRuns.push(viaCli.ms);
      lines = viaCli.stdout.split('\n').filter((l) => l.includes(' vm')).length;
      starts.push((await cli(['--store', 'memory', 'list'])).ms);
    }
    if (lines !== options.domains) throw new Error(`list --all printed ${lines} domains, expected ${options.domains}`);

    const domstateRuns: number[] = [];
    const domstateInProcess: number[] = [];
    const one = domainName(Math.floor(options.domains / 2));
    for (let i = 0; i < runs; i++) {
      domstateRuns.push((await cli(['--store', `sqlite:${file}`, '--host', HOST, 'domstate', one])).ms);
      t = performance.now();
      const store = openSqliteEventStore(file);
      const ledger = createLedger(store);
      await ledger.loadDomain(HOST, one);
      await ledger.close();
      await store.close();
      domstateInProcess.push(performance.now() - t);
    }

    // Over NATS: the real `vmledger serve` on the same file.
    const serve = await spawnResponder([BIN, 'serve', '--store', `sqlite:${file}`, '--nats', options.natsUrl], SERVE_ENV, SERVE_READY);
    const nc = await connect({ servers: options.natsUrl, name: 'scale-bench' });
    try {
      const client = createVmledgerClient(nc, { timeoutMs: 30_000 });
      await client.queryDomains({ host: HOST, limit: 1 }); // the service has loaded its index
      const clientRuns: number[] = [];
      let listed = 0;
      for (let i = 0; i < runs; i++) {
        t = performance.now();
        listed = (await client.listDomains({ host: HOST, all: true })).length;
        clientRuns.push(performance.now() - t);
      }
      if (listed !== options.domains) throw new Error(`the NATS client listed ${listed} domains, expected ${options.domains}`);
      const natsCli: number[] = [];
      for (let i = 0; i < runs; i++) {
        const run = await cli(['--nats', options.natsUrl, '--host', HOST, 'list', '--all']);
        const n = run.stdout.split('\n').filter((l) => l.includes(' vm')).length;
        if (n !== options.domains) throw new Error(`vmledger --nats list --all printed ${n} domains, expected ${options.domains}`);
        natsCli.push(run.ms);
      }
      // Pages of 1,000 from random places, one after another.
      const pages: number[] = [];
      let seed = 12345;
      for (let i = 0; i < 300; i++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        const after = seed % options.domains;
        t = performance.now();
        const page = await client.queryDomains({ host: HOST, all: true, limit: 1000, cursor: cursorAfter({ host: HOST, name: domainName(after) }) });
        pages.push(performance.now() - t);
        if (page.domains.length === 0 && after < options.domains - 1) throw new Error('an empty page');
      }
      const ui = await uiFirstPage(file, runs);
      return {
        ui,
        domains: options.domains,
        facts: built.facts,
        buildMs: Math.round(buildMs),
        cliStartMs: Math.round(median(starts)),
        local: { firstMs: Math.round(first.ms), inProcessMs: Math.round(median(inProcess)), inProcessCpuMs: Math.round(median(inProcessCpu)), cliMs: Math.round(median(cliRuns)), lines },
        nats: {
          clientMs: Math.round(median(clientRuns)),
          cliMs: Math.round(median(natsCli)),
          listed,
          pageP50Ms: r1(percentile(pages, 50)),
          pageP99Ms: r1(percentile(pages, 99)),
          pages: pages.length,
        },
        domstate: { cliMs: Math.round(median(domstateRuns)), inProcessMs: r1(median(domstateInProcess)) },
      };
    } finally {
      await nc.close();
      await stopResponder(serve);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const CHROMIUM = '/usr/bin/chromium';

/**
 * The UI's first page load: cold (the server has just started and folds the projections from their checkpoints
 * or from the log) and warm (a fresh page on the running server), from navigation to `body[data-ready]`.
 */
async function uiFirstPage(file: string, runs: number): Promise<ScaleBenchResult['ui']> {
  if (!existsSync(CHROMIUM)) return { skipped: `${CHROMIUM} is not installed` };
  const { chromium } = await import('playwright-core');
  const { startUiServer } = await import('../services/ui/server');
  const store = openSqliteEventStore(file);
  const ui = await startUiServer({ store, port: 0 });
  const profile = mkdtempSync(join(tmpdir(), 'scale-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const load = async () => {
      const page = await context.newPage();
      const started = performance.now();
      // The first load after start waits for the projections' fold (a minute on 1,000,000 facts without their
      // checkpoints): it is timed, not cut off at playwright's 30 s.
      await page.goto(ui.url, { timeout: 600_000 });
      const shownMs = performance.now() - started;
      await page.waitForSelector('body[data-ready="true"]', { timeout: 600_000 });
      const ms = performance.now() - started;
      const options = await page.locator('#domain-picker option').count();
      const total = (await page.locator('#domain-count').textContent()) ?? '';
      await page.close();
      return { ms, shownMs, options, total };
    };
    const cold = await load();
    const warm: number[] = [];
    for (let i = 0; i < runs; i++) warm.push((await load()).ms);
    return { coldMs: Math.round(cold.ms), coldShownMs: Math.round(cold.shownMs), warmMs: Math.round(median(warm)), options: cold.options, total: cold.total };
  } finally {
    await context.close();
    await ui.close();
    await store.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

// `npx tsx bench/scale.ts DOMAINS FACTS NATS_URL`: this bench alone.
if (process.argv[1]?.endsWith('scale.ts')) {
  const [domains = '10000', facts = '100000', url = ''] = process.argv.slice(2);
  const { startNatsServer } = await import('../test/support/natsServer');
  const server = url ? undefined : await startNatsServer();
  try {
    const result = await scaleBench({
      domains: Number(domains),
      facts: Number(facts),
      natsUrl: url || server!.url,
      dir: tmpdir(),
      ...(process.env.SCALE_STORE ? { store: process.env.SCALE_STORE } : {}),
      log: (l) => process.stderr.write(`${l}\n`),
    });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await server?.stop();
  }
}
