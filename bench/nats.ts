// What the command service costs on top of NATS itself: the raw request/reply rate of a plain echo responder,
// against the end-to-end rate of vmledger commands (validate, decide, durable SQLite append, publish the fact,
// reply), both with 64 requests in flight over one client connection.
//
// Each responder runs in a process of its own, as it does when deployed: the echo responder is a minimal nats.js
// script, and vmledger is the real `vmledger serve` (what `npm start` runs: SQLite store in a temp dir, the ledger
// following the log, the NATS micro-service). The load comes from this process in both cases, so the two figures
// differ only by what answers the requests. (With the responder inside the load generator's process, the
// generator's own NATS work is charged to the responder: 0.22–0.29 instead of the figures below.)
//
// The echo and the durable echo are measured twice: with the responder on nats.js v3 (`@nats-io/transport-node`,
// the line the service and this load generator use, so these are the baselines of the targets), and on nats 2.29
// (the line the service left; `nats` is kept as a devDependency for this responder only), to keep the A/B figure
// of the move. The load comes from one v3 connection in both cases.
//
// The vmledger commands go to 64 domains (one worker per domain, alternating start/destroy), so they never
// conflict on a stream: the number measures the pipeline, not retries. `ledgerDirect` runs the same commands
// into ledger.execute in this process, to separate what NATS costs from what the durable store costs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

import { openEventStore } from '../services/eventstore/index';
import { createLedger } from '../services/ledger';
import { createVmledgerClient, type CommandRequest } from '../services/client';
import type { CommandOutcome, Ledger } from '../services/ledger-types';

export interface RateAndLatency {
  count: number;
  elapsedMs: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * CPU time (user + system, all threads) the responder process spent per request over the measured window, in
   * µs; absent where /proc is not (not Linux) or when the responder runs in this process.
   */
  responderCpuUs?: number;
}

export interface NatsBenchResult {
  inFlight: number;
  /** Plain NATS request/reply to an echo responder process (nats.js v3, as the service). */
  echo: RateAndLatency;
  /** A durable echo responder process: parse, one SQLite insert (WAL, FULL, group commit), reply (nats.js v3). */
  durableEcho: RateAndLatency;
  /** The same two responders written with nats 2.29 (the `nats` package), measured right after each. */
  echoNats2: RateAndLatency;
  durableEchoNats2: RateAndLatency;
  /** vmledger rate / durable echo rate (target ≥ 0.5). */
  durableRatio: number;
  /** vmledger p99 / durable echo p99 (target ≤ 5). */
  p99Ratio: number;
  /** vmledger commands end to end: a `vmledger serve` process on a SQLite store in a temp dir. */
  vmledger: RateAndLatency;
  /**
   * The same `vmledger serve` on the in-memory store (`--store memory`: no disk, nothing durable): what the
   * service costs without SQLite, so `vmledger` against this is what the durable store costs.
   */
  vmledgerMemoryStore: RateAndLatency;
  /** vmledger rate / echo rate. */
  ratio: number;
  /**
   * The same commands straight into ledger.execute in this process (no NATS), on a fresh store: what the ledger
   * and the store cost by themselves, so `vmledger` minus this is what the NATS layer costs.
   */
  ledgerDirect: RateAndLatency;
}

export interface NatsBenchOptions {
  inFlight?: number;
  /** How long each measurement runs (after a short warm-up). Default 3000 ms. */
  durationMs?: number;
  /** Directory for the temporary store. Default: the OS temp dir. */
  dir?: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[i]! * 1000) / 1000;
}

/** Runs `workers` loops for durationMs; each loop calls `once(worker, n)` and times it. */
async function measure(workers: number, durationMs: number, once: (worker: number, n: number) => Promise<void>): Promise<RateAndLatency> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let n = 0; performance.now() < deadline; n++) {
        const t0 = performance.now();
        await once(worker, n);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    elapsedMs: Math.round(elapsedMs),
    requestsPerSecond: Math.round((latencies.length / elapsedMs) * 1000),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

/**
 * CPU time a process has used so far (user + system, every thread), in µs, from /proc/<pid>/stat; undefined where
 * there is no /proc. Clock ticks are taken as 100 per second (USER_HZ on Linux).
 */
function processCpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces and parentheses): utime is the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** Runs `measureWindow` and adds the CPU the responder process `pid` spent per request meanwhile. */
async function withResponderCpu(pid: number | undefined, measureWindow: () => Promise<RateAndLatency>): Promise<RateAndLatency> {
  const before = processCpuMicros(pid);
  const result = await measureWindow();
  const after = processCpuMicros(pid);
  if (before === undefined || after === undefined || result.count === 0) return result;
  return { ...result, responderCpuUs: Math.round((after - before) / result.count) };
}

export type Execute = (command: CommandRequest) => Promise<CommandOutcome>;

/**
 * Commands through `execute`: 64 domains defined first, then worker w alternates start/destroy on domain w
 * (always accepted, one fact each, no two workers on one stream).
 */
export async function measureCommands(
  execute: Execute,
  inFlight: number,
  warmupMs: number,
  durationMs: number,
  responderPid?: number,
): Promise<RateAndLatency> {
  const domains = Array.from({ length: inFlight }, (_, i) => `bench-${i}`);
  let n = 0;
  const meta = () => ({ commandId: `bench-${n++}`, time: new Date().toISOString(), actor: 'bench' });
  await Promise.all(
    domains.map(async (name, i) => {
      const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const out = await execute({ verb: 'define', config: { name, uuid }, meta: meta() });
      if (!out.ok) throw new Error(`bench setup: define ${name} refused: ${out.message}`);
    }),
  );
  const running = new Array<boolean>(inFlight).fill(false);
  const once = async (worker: number) => {
    const domain = domains[worker]!;
    const out = await execute({ verb: running[worker] ? 'destroy' : 'start', domain, meta: meta() });
    if (!out.ok) throw new Error(`bench: ${out.command} ${domain} refused: ${out.rule} ${out.message}`);
    running[worker] = !running[worker];
  };
  await measure(inFlight, warmupMs, once);
  return withResponderCpu(responderPid, () => measure(inFlight, durationMs, once));
}

/** The same commands into ledger.execute in this process, on a fresh SQLite store. */
async function measureLedgerDirect(file: string, inFlight: number, warmupMs: number, durationMs: number): Promise<RateAndLatency> {
  const store = await openEventStore(`sqlite:${file}`);
  const ledger: Ledger = createLedger(store);
  try {
    return await measureCommands((c) => ledger.execute(c), inFlight, warmupMs, durationMs);
  } finally {
    await ledger.close();
    await store.close();
  }
}

export const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * The nats.js packages a responder is written with: the maintained v3 line (`@nats-io/transport-node`, what the
 * service uses) or `nats` 2.29 (a devDependency for this comparison only; same connect/subscribe/respond calls),
 * so the two can be compared on the same load.
 */
export type NatsPackage = 'nats' | '@nats-io/transport-node';

/** The minimal responder the baseline measures: every request answered with its own body. */
const echoResponder = (pkg: NatsPackage) => `
  import { connect } from '${pkg}';
  const nc = await connect({ servers: process.env.BENCH_NATS_URL, name: 'bench-echo-responder' });
  nc.subscribe(process.env.BENCH_ECHO_SUBJECT, { callback: (_err, msg) => msg.respond(msg.data) });
  await nc.flush();
  process.stderr.write('echo responder ready\\n');
  process.on('SIGTERM', () => nc.drain().then(() => process.exit(0)));
`;

/**
 * The floor of a durable command service: parse the JSON request, one SQLite insert per request with vmledger's
 * store settings (WAL, synchronous = FULL, the requests of one I/O event committed together on process.nextTick:
 * one transaction, one fsync), reply once committed. What vmledger does beyond this is its own cost.
 */
const durableEchoResponder = (pkg: NatsPackage) => `
  import Database from 'better-sqlite3';
  import { connect } from '${pkg}';
  const db = new Database(process.env.BENCH_DB_FILE);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS requests (position INTEGER PRIMARY KEY, subject TEXT NOT NULL, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO requests (subject, body) VALUES (?, ?)');
  const commit = db.transaction((batch) => {
    for (const item of batch) item.position = Number(insert.run(item.subject, item.body).lastInsertRowid);
  });
  let queue = [];
  const flush = () => {
    const batch = queue;
    queue = [];
    commit.immediate(batch);
    for (const item of batch) item.msg.respond(JSON.stringify({ ok: true, position: item.position }));
  };
  const nc = await connect({ servers: process.env.BENCH_NATS_URL, name: 'bench-durable-echo-responder' });
  nc.subscribe(process.env.BENCH_ECHO_SUBJECT, {
    callback: (_err, msg) => {
      const request = JSON.parse(new TextDecoder().decode(msg.data));
      if (queue.push({ msg, subject: msg.subject, body: JSON.stringify(request) }) === 1) process.nextTick(flush);
    },
  });
  await nc.flush();
  process.stderr.write('durable echo responder ready\\n');
  process.on('SIGTERM', () => nc.drain().then(() => { db.close(); process.exit(0); }));
`;

/** The line `vmledger serve` logs once it serves (a JSON line from pino, its stderr being a pipe: services/log.ts). */
export const SERVE_READY = /^\{.*"msg":"serving '/;
/** The environment a `vmledger serve` responder needs so that SERVE_READY is logged whatever the caller's level. */
export const SERVE_ENV: NodeJS.ProcessEnv = { VMLEDGER_LOG_LEVEL: 'info' };

/**
 * Spawns a responder process; resolves once a line of its stderr starts with `ready` (or matches it), rejects if
 * it exits first.
 */
export async function spawnResponder(args: string[], env: NodeJS.ProcessEnv, ready: string | RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.split('\n').some((line) => (typeof ready === 'string' ? line.startsWith(ready) : ready.test(line)))) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`bench responder '${args.join(' ')}' exited (${code ?? signal}) before it was ready:\n${output}`)));
  });
  child.stderr!.removeAllListeners('data');
  child.stderr!.resume();
  return child;
}

export async function stopResponder(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function natsBench(natsUrl: string, options: NatsBenchOptions = {}): Promise<NatsBenchResult> {
  const inFlight = options.inFlight ?? 64;
  const durationMs = options.durationMs ?? 3_000;
  const warmupMs = Math.min(500, durationMs / 4);
  const connections: NatsConnection[] = [];
  const children: ChildProcess[] = [];
  const open = async (name: string) => {
    const nc = await connect({ servers: natsUrl, name });
    connections.push(nc);
    return nc;
  };
  const workDir = mkdtempSync(join(options.dir ?? tmpdir(), 'vmledger-nats-bench-'));
  try {
    // ---- raw echo, then durable echo (the same requests, each inserted into SQLite before the reply); each
    // responder written with nats.js v3 and with nats 2.29, one right after the other ----
    const echoSubject = `bench.echo.${Date.now()}`;
    const requester = await open('bench-echo-requester');
    const body = new TextEncoder().encode(JSON.stringify({ domain: 'bench-0', meta: { commandId: 'x'.repeat(36) } }));
    const durableBody = (worker: number, n: number) =>
      new TextEncoder().encode(JSON.stringify({ domain: `bench-${worker}`, meta: { commandId: `durable-${worker}-${n}`, time: new Date().toISOString(), actor: 'bench' } }));
    const throughResponder = async (code: string, ready: string, once: (worker: number, n: number) => Promise<void>, dbFile = '') => {
      const responder = await spawnResponder(
        ['--input-type=module', '-e', code],
        { BENCH_NATS_URL: natsUrl, BENCH_ECHO_SUBJECT: echoSubject, BENCH_DB_FILE: dbFile },
        ready,
      );
      children.push(responder);
      try {
        await measure(inFlight, warmupMs, once);
        return await withResponderCpu(responder.pid, () => measure(inFlight, durationMs, once));
      } finally {
        await stopResponder(responder);
      }
    };
    const echoOnce = async () => {
      await requester.request(echoSubject, body, { timeout: 10_000 });
    };
    const durableOnce = async (worker: number, n: number) => {
      await requester.request(echoSubject, durableBody(worker, n), { timeout: 10_000 });
    };
    const echo = await throughResponder(echoResponder('@nats-io/transport-node'), 'echo responder ready', echoOnce);
    const echoNats2 = await throughResponder(echoResponder('nats'), 'echo responder ready', echoOnce);
    const durableEcho = await throughResponder(
      durableEchoResponder('@nats-io/transport-node'),
      'durable echo responder ready',
      durableOnce,
      join(workDir, 'durable-echo.sqlite'),
    );
    const durableEchoNats2 = await throughResponder(durableEchoResponder('nats'), 'durable echo responder ready', durableOnce, join(workDir, 'durable-echo-v2.sqlite'));

    // ---- vmledger end to end: the real `vmledger serve`, on SQLite, then on the in-memory store ----
    const client = createVmledgerClient(await open('bench-vmledger-client'), { timeoutMs: 30_000, retries: 0 });
    const throughServe = async (store: string) => {
      const serve = await spawnResponder(
        [join(REPO, 'bin', 'vmledger.mjs'), 'serve', '--store', store, '--nats', natsUrl],
        SERVE_ENV,
        SERVE_READY,
      );
      children.push(serve);
      try {
        return await measureCommands((c) => client.execute(c), inFlight, warmupMs, durationMs, serve.pid);
      } finally {
        await stopResponder(serve);
      }
    };
    const vmledger = await throughServe(`sqlite:${join(workDir, 'serve.sqlite')}`);
    const vmledgerMemoryStore = await throughServe('memory');

    // ---- the ledger alone, in this process ----
    const ledgerDirect = await measureLedgerDirect(join(workDir, 'direct.sqlite'), inFlight, warmupMs, durationMs);
    return {
      inFlight,
      echo,
      durableEcho,
      echoNats2,
      durableEchoNats2,
      durableRatio: Math.round((vmledger.requestsPerSecond / durableEcho.requestsPerSecond) * 10_000) / 10_000,
      p99Ratio: Math.round((vmledger.p99Ms / durableEcho.p99Ms) * 100) / 100,
      vmledger,
      vmledgerMemoryStore,
      ratio: Math.round((vmledger.requestsPerSecond / echo.requestsPerSecond) * 10_000) / 10_000,
      ledgerDirect,
    };
  } finally {
    await Promise.all(children.map(stopResponder));
    await Promise.all(connections.map((nc) => nc.close().catch(() => {})));
    rmSync(workDir, { recursive: true, force: true });
  }
}
