// Memory of the command service on a big store: resident set size (RSS) of a real service process — the same
// code as `vmledger serve` (runServe: the SQLite store, the ledger with its host index, the NATS command service)
// — after it has loaded a store of D domains and F facts, after a few thousand commands over NATS, and after it
// has also opened the read-side projections (domain list, snapshot tree, audit log: what the UI holds).
//
//   npx tsx bench/memory.ts [DOMAINS] [FACTS] [COMMANDS]     (default 10 000 domains, 100 000 facts, 5 000 commands)
//
// The store is written straight through the SQLite store (many appends in flight, so group commit batches them),
// in the ledger's format: per domain define + start, then suspend/resume in turn, each fact its own decision
// carrying its command and the hash chain. The service runs in a child process (node --expose-gc, so each figure
// is taken after a full GC: what stays resident, not garbage waiting to be collected); the child reports
// process.memoryUsage() and the peak RSS (VmHWM) at each phase; the parent drives it over stdin/stdout and sends
// the commands through NATS (a private nats-server from test/support/natsServer.ts unless a URL is given).
// A child on an empty store gives the floor (Node, tsx, nats.js, zod, the code itself) to read the others against.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { connect } from '@nats-io/transport-node';

import { CommandSchema, type Command } from '../machines/commands';
import { domainStream } from '../machines/model';
import { createVmledgerClient } from '../services/client';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { NewEvent } from '../services/eventstore/types';
import { eventHash, factToEventData } from '../services/factHash';
import type { Fact } from '../machines/events';

const HOST = 'bench';
const T0 = Date.parse('2024-01-01T00:00:00Z');
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');

export interface MemoryFigures {
  /** Resident set size after a full GC, MiB. */
  rssMiB: number;
  /** Peak RSS of the process so far (VmHWM), MiB. */
  peakRssMiB: number;
  heapUsedMiB: number;
  /** V8 heap reserved (used + free pages V8 keeps), MiB: RSS beyond it is native (SQLite, malloc, code). */
  heapTotalMiB: number;
  /** Memory outside the V8 heap held by JS objects (buffers, SQLite is not included), MiB. */
  externalMiB: number;
}

export interface MemoryBenchResult {
  domains: number;
  facts: number;
  fileBytes: number;
  buildMs: number;
  /** The same service process on an empty store: the floor. */
  emptyStore: MemoryFigures;
  /** After the service started and its ledger loaded the host index from the whole log (first command answered). */
  afterLoad: MemoryFigures & { loadMs: number };
  /** After `commands` commands over NATS (64 in flight, each on another domain: cold loads through the LRU). */
  afterCommands: MemoryFigures & { commands: number; commandsPerSecond: number };
  /** After the same process also opened the projections and folded the whole log into them. */
  withProjections: MemoryFigures & { foldMs: number };
}

export interface MemoryBenchOptions {
  domains?: number;
  facts?: number;
  commands?: number;
  /** NATS server URL; default: a private nats-server started (and stopped) here. */
  natsUrl?: string;
  /** Directory for the store. Default: the OS temp dir. */
  dir?: string;
  log?: (line: string) => void;
}

const MiB = 1024 * 1024;
const round1 = (n: number) => Math.round(n * 10) / 10;

// ---------------------------------------------------------------------------------------------------------------
// Building the store.

/** Per domain: define, start, then suspend/resume in turn; `factsPerDomain` facts, each its own decision. */
export async function buildMemoryStore(file: string, domains: number, facts: number): Promise<{ facts: number; running: boolean[] }> {
  const perDomain = Math.max(2, Math.floor(facts / domains));
  const store = openSqliteEventStore(file);
  let n = 0;
  const meta = () => {
    n++;
    return { commandId: `m-${n}`, actor: 'bench', time: new Date(T0 + n * 10).toISOString() };
  };
  const template = (input: Record<string, unknown>) => CommandSchema.parse({ host: HOST, meta: meta(), ...input });
  const suspend = template({ verb: 'suspend', domain: 'x' });
  const resume = template({ verb: 'resume', domain: 'x' });
  const running: boolean[] = [];
  let written = 0;

  const historyOf = (d: number): NewEvent[] => {
    const name = domainName(d);
    const config = { name, uuid: uuidOf(d), disks: [{ target: 'vda', source: `/images/${name}.qcow2` }], hostdevs: [] };
    const decisions: { command: Command; fact: Fact }[] = [];
    const define = template({ verb: 'define', config }) as Extract<Command, { verb: 'define' }>;
    decisions.push({ command: define, fact: { type: 'DomainDefined', config: define.config } });
    decisions.push({
      command: template({ verb: 'start', domain: name }),
      fact: { type: 'DomainStarted', paused: false, autodestroy: false, reason: 'booted', managedSaveConsumed: false },
    });
    for (let i = 2; i < perDomain; i++) {
      decisions.push(
        i % 2 === 0
          ? { command: { ...suspend, domain: name, meta: meta() } as Command, fact: { type: 'DomainSuspended' } }
          : { command: { ...resume, domain: name, meta: meta() } as Command, fact: { type: 'DomainResumed' } },
      );
    }
    running[d] = perDomain % 2 === 0;
    let hash: string | undefined;
    return decisions.map(({ command, fact }) => {
      const data = factToEventData(fact);
      const { commandId, actor, time } = command.meta;
      const event = { type: fact.type, data, metadata: { commandId, actor, time, host: HOST, domain: name, command } as NewEvent['metadata'] };
      hash = eventHash(hash, event);
      event.metadata.hash = hash;
      return event;
    });
  };

  // 64 appends in flight: the store's group commit writes them in shared transactions.
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let d = next++; d < domains; d = next++) {
        const events = historyOf(d);
        await store.append(domainStream(HOST, domainName(d)), events, { expectedRevision: 'no-stream' });
        written += events.length;
      }
    }),
  );
  await store.close();
  return { facts: written, running };
}

export function domainName(d: number): string {
  return `vm${String(d).padStart(6, '0')}`;
}

function uuidOf(d: number): string {
  return `00000000-0000-4000-8000-${String(d).padStart(12, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The child: a service process that reports its memory when asked.

interface ChildReport extends MemoryFigures {
  phase: string;
  ms?: number;
}

async function childMain(file: string, natsUrl: string): Promise<void> {
  const { runServe } = await import('../services/nats/serve');
  const { createLogger } = await import('../services/log');
  const { openViews } = await import('../projections/queries');
  const gc = (globalThis as { gc?: () => void }).gc;
  const report = (phase: string, ms?: number) => {
    gc?.();
    gc?.();
    const usage = process.memoryUsage();
    const status = readFileSync('/proc/self/status', 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const out: ChildReport = {
      phase,
      ...(ms !== undefined ? { ms: Math.round(ms) } : {}),
      rssMiB: round1(usage.rss / MiB),
      peakRssMiB: round1(hwm / MiB),
      heapUsedMiB: round1(usage.heapUsed / MiB),
      heapTotalMiB: round1(usage.heapTotal / MiB),
      externalMiB: round1(usage.external / MiB),
    };
    process.stdout.write(`REPORT ${JSON.stringify(out)}\n`);
  };

  const started = performance.now();
  const running = await runServe({ store: `sqlite:${file}`, natsUrl, handleSignals: false, log: createLogger({ level: 'silent' }) });
  // The ledger loads its host index (the whole log, no index doc yet) before it answers anything: wait for it.
  await running.ledger.loadDomain(HOST, domainName(0));
  report('loaded', performance.now() - started);

  let views: Awaited<ReturnType<typeof openViews>> | undefined;
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'report') report('commands');
    else if (line === 'views') {
      const t = performance.now();
      views = await openViews(running.store, { persist: false });
      report('views', performance.now() - t);
    } else if (line === 'exit') break;
  }
  await views?.close();
  await running.stop();
  process.exit(0);
}

function startChild(file: string, natsUrl: string) {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(here, 'memory.ts'), '--child', file, natsUrl],
    { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const waiting: ((report: ChildReport) => void)[] = [];
  const failed = new Promise<never>((_, reject) => {
    child.once('exit', (code) => reject(new Error(`memory bench child exited with ${String(code)}: ${stderr.slice(-2000)}`)));
  });
  failed.catch(() => {});
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('REPORT ')) waiting.shift()?.(JSON.parse(line.slice(7)) as ChildReport);
  });
  const next = () => Promise.race([new Promise<ChildReport>((resolveReport) => waiting.push(resolveReport)), failed]);
  return {
    next,
    async ask(line: string): Promise<ChildReport> {
      const report = next();
      child.stdin.write(`${line}\n`);
      return report;
    },
    async exit(): Promise<void> {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
      child.stdin.write('exit\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function figures(report: ChildReport): MemoryFigures {
  const { rssMiB, peakRssMiB, heapUsedMiB, heapTotalMiB, externalMiB } = report;
  return { rssMiB, peakRssMiB, heapUsedMiB, heapTotalMiB, externalMiB };
}

// ---------------------------------------------------------------------------------------------------------------

export async function memoryBench(options: MemoryBenchOptions = {}): Promise<MemoryBenchResult> {
  const domains = options.domains ?? 10_000;
  const facts = options.facts ?? 100_000;
  const commands = options.commands ?? 5_000;
  const log = options.log ?? (() => {});
  const work = mkdtempSync(join(options.dir ?? tmpdir(), 'vmledger-memory-bench-'));
  let server: { url: string; stop(): Promise<void> } | undefined;
  try {
    let natsUrl = options.natsUrl;
    if (!natsUrl) {
      const { startNatsServer } = await import('../test/support/natsServer');
      server = await startNatsServer();
      natsUrl = server.url;
    }

    // The floor: the same process on an empty store.
    const emptyFile = join(work, 'empty.sqlite');
    await openSqliteEventStore(emptyFile).close();
    const empty = startChild(emptyFile, natsUrl);
    const emptyStore = figures(await empty.next());
    await empty.exit();

    const file = join(work, 'memory.sqlite');
    let t = performance.now();
    log(`memory: writing ${domains} domains, ${facts} facts`);
    const built = await buildMemoryStore(file, domains, facts);
    const buildMs = Math.round(performance.now() - t);
    const fileBytes = statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);

    log('memory: starting the service on it');
    const child = startChild(file, natsUrl);
    try {
      const loaded = await child.next();

      log(`memory: ${commands} commands over NATS`);
      const nc = await connect({ servers: natsUrl, name: 'memory-bench-client' });
      let commandsPerSecond: number;
      try {
        const client = createVmledgerClient(nc, { timeoutMs: 60_000, retries: 0 });
        const running = built.running.slice();
        let next = 0;
        t = performance.now();
        await Promise.all(
          Array.from({ length: 64 }, async () => {
            for (let i = next++; i < commands; i = next++) {
              // Spread over the domains (cold loads through the ledger's LRU), toggling each one's state.
              const d = (i * 7919) % domains;
              const verb = running[d] ? 'suspend' : 'resume';
              running[d] = !running[d];
              const out = await client.execute({ verb, host: HOST, domain: domainName(d), meta: { commandId: `mem-${i}`, actor: 'bench' } });
              if (!out.ok) throw new Error(`memory bench: ${verb} ${domainName(d)} refused: ${out.rule} ${out.message}`);
            }
          }),
        );
        commandsPerSecond = Math.round((commands / (performance.now() - t)) * 1000);
      } finally {
        await nc.close();
      }
      const afterCommands = await child.ask('report');
      log('memory: opening the projections in the same process');
      const views = await child.ask('views');
      return {
        domains,
        facts: built.facts,
        fileBytes,
        buildMs,
        emptyStore,
        afterLoad: { ...figures(loaded), loadMs: loaded.ms ?? 0 },
        afterCommands: { ...figures(afterCommands), commands, commandsPerSecond },
        withProjections: { ...figures(views), foldMs: views.ms ?? 0 },
      };
    } finally {
      await child.exit();
    }
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  await childMain(process.argv[3]!, process.argv[4]!);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const [domains, facts, commands] = process.argv.slice(2).map((arg) => (arg === undefined ? undefined : Number(arg)));
  const result = await memoryBench({ domains, facts, commands, log: (line) => console.error(line) });
  console.log(JSON.stringify(result, null, 2));
}
