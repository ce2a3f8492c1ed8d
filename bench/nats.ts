// What the command service costs on top of NATS itself: the raw request/reply rate of a plain echo responder,
// against the end-to-end rate of vmledger commands (validate, decide, durable SQLite append, publish the fact,
// reply), both with 64 requests in flight over one client connection and one responder connection.
//
// The vmledger commands go to 64 domains (one worker per domain, alternating start/destroy), so they never
// conflict on a stream: the number measures the pipeline, not retries. `ledgerDirect` runs the same commands
// into ledger.execute in-process, to separate what NATS costs from what the durable store costs (each command
// is an fsync'd append plus its fsync'd outcome record).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { connect, type NatsConnection } from 'nats';

import { openEventStore } from '../services/eventstore/index';
import { createLedger } from '../services/ledger';
import { createVmledgerClient, type CommandRequest } from '../services/client';
import type { CommandOutcome, Ledger } from '../services/ledger-types';
import { startCommandService } from '../services/nats/service';

export interface RateAndLatency {
  count: number;
  elapsedMs: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface NatsBenchResult {
  inFlight: number;
  /** Plain NATS request/reply to an echo responder. */
  echo: RateAndLatency;
  /** vmledger commands end to end (SQLite store in a temp dir, one service instance). */
  vmledger: RateAndLatency;
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

type Execute = (command: CommandRequest) => Promise<CommandOutcome>;

/**
 * Commands through `execute` on a fresh SQLite store: 64 domains defined first, then worker w alternates
 * start/destroy on domain w (always accepted, one fact each, no two workers on one stream).
 */
async function measureLedger(
  file: string,
  inFlight: number,
  warmupMs: number,
  durationMs: number,
  through: (ledger: Ledger) => Promise<{ execute: Execute; close(): Promise<void> }>,
): Promise<RateAndLatency> {
  const store = await openEventStore(`sqlite:${file}`);
  const ledger = createLedger(store);
  const path = await through(ledger);
  try {
    const domains = Array.from({ length: inFlight }, (_, i) => `bench-${i}`);
    let n = 0;
    const meta = () => ({ commandId: `bench-${n++}`, time: new Date().toISOString(), actor: 'bench' });
    await Promise.all(
      domains.map(async (name, i) => {
        const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
        const out = await path.execute({ verb: 'define', config: { name, uuid }, meta: meta() });
        if (!out.ok) throw new Error(`bench setup: define ${name} refused: ${out.message}`);
      }),
    );
    const running = new Array<boolean>(inFlight).fill(false);
    const once = async (worker: number) => {
      const domain = domains[worker]!;
      const out = await path.execute({ verb: running[worker] ? 'destroy' : 'start', domain, meta: meta() });
      if (!out.ok) throw new Error(`bench: ${out.command} ${domain} refused: ${out.rule} ${out.message}`);
      running[worker] = !running[worker];
    };
    await measure(inFlight, warmupMs, once);
    return await measure(inFlight, durationMs, once);
  } finally {
    await path.close();
    await ledger.close();
    await store.close();
  }
}

export async function natsBench(natsUrl: string, options: NatsBenchOptions = {}): Promise<NatsBenchResult> {
  const inFlight = options.inFlight ?? 64;
  const durationMs = options.durationMs ?? 3_000;
  const warmupMs = Math.min(500, durationMs / 4);
  const connections: NatsConnection[] = [];
  const open = async (name: string) => {
    const nc = await connect({ servers: natsUrl, name });
    connections.push(nc);
    return nc;
  };
  const workDir = mkdtempSync(join(options.dir ?? tmpdir(), 'vmledger-nats-bench-'));
  try {
    // ---- raw echo ----
    const responder = await open('bench-echo-responder');
    const requester = await open('bench-echo-requester');
    const echoSubject = `bench.echo.${Date.now()}`;
    responder.subscribe(echoSubject, { callback: (_err, msg) => msg.respond(msg.data) });
    await responder.flush();
    const body = new TextEncoder().encode(JSON.stringify({ domain: 'bench-0', meta: { commandId: 'x'.repeat(36) } }));
    const echoOnce = async () => {
      await requester.request(echoSubject, body, { timeout: 10_000 });
    };
    await measure(inFlight, warmupMs, echoOnce);
    const echo = await measure(inFlight, durationMs, echoOnce);

    // ---- vmledger end to end, then the ledger alone ----
    const vmledger = await measureLedger(join(workDir, 'nats.sqlite'), inFlight, warmupMs, durationMs, async (ledger) => {
      const serviceConn = await open('bench-vmledger-service');
      const service = await startCommandService({ ledger, nc: serviceConn, log: () => {} });
      const client = createVmledgerClient(await open('bench-vmledger-client'), { timeoutMs: 30_000, retries: 0 });
      return { execute: (c) => client.execute(c), close: () => service.stop() };
    });
    const ledgerDirect = await measureLedger(join(workDir, 'direct.sqlite'), inFlight, warmupMs, durationMs, async (ledger) => ({
      execute: (c) => ledger.execute(c),
      close: async () => {},
    }));
    return {
      inFlight,
      echo,
      vmledger,
      ratio: Math.round((vmledger.requestsPerSecond / echo.requestsPerSecond) * 10_000) / 10_000,
      ledgerDirect,
    };
  } finally {
    await Promise.all(connections.map((nc) => nc.close().catch(() => {})));
    rmSync(workDir, { recursive: true, force: true });
  }
}
