// Restarts: the service process killed mid-traffic and started again (no acknowledged command is lost), the
// nats-server restarted under a running service (clients and service reconnect), and `vmledger serve` when NATS
// is not there at all. The service runs in child processes through runServe, as `vmledger serve` does.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createVmledgerClient } from '../../services/client';
import { openEventStore } from '../../services/eventstore/index';
import type { RecordedEvent } from '../../services/eventstore/types';
import type { CommandOutcome } from '../../services/ledger-types';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { connectLikeProduction, domainConfig, ledgerOnFile, startStack, tempDir, waitFor } from './fixtures';

const ROOT = resolve(import.meta.dirname, '../..');

interface ServeChild {
  proc: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node --import tsx -e …` running code against the repository's modules (ESM). */
function nodeChild(code: string, env: NodeJS.ProcessEnv = {}): ServeChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  return { proc, stderr: () => err + out, exited };
}

/** A `vmledger serve`-like child on a store file; resolves once it serves. */
async function serveChild(url: string, storeFile: string): Promise<ServeChild> {
  const child = nodeChild(
    `import { runServe } from ${JSON.stringify(join(ROOT, 'services/nats/serve.ts'))};
     const running = await runServe({ store: ${JSON.stringify(`sqlite:${storeFile}`)}, natsUrl: ${JSON.stringify(url)} });
     await running.done;`,
  );
  await waitFor(() => /serving 'vmledger'/.test(child.stderr()) || child.proc.exitCode !== null, 30_000, 'the service to start');
  if (child.proc.exitCode !== null) throw new Error(`serve exited early:\n${child.stderr()}`);
  return child;
}

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
const children: ServeChild[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir();
});

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  tmp?.remove();
  await server?.stop();
});

describe('service restart', () => {
  it('loses no acknowledged command when the service process is killed mid-traffic and started again', async () => {
    const storeFile = join(tmp.dir, 'kill.sqlite');
    const first = await serveChild(server.url, storeFile);
    children.push(first);

    const acked: CommandOutcome[] = [];
    let stop = false;
    let phase: 'before' | 'after' = 'before';
    const ackedIn = { before: 0, after: 0 };
    const clientConns: NatsConnection[] = [];
    const loops = Array.from({ length: 8 }, async (_, w) => {
      const nc = await connectLikeProduction(server.url, `client-${w}`);
      clientConns.push(nc);
      const client = createVmledgerClient(nc, { timeoutMs: 3_000, retries: 40, retryDelayMs: 100 });
      const domain = `kill-${w}`;
      await client.command('define', { config: domainConfig(domain) });
      let running = false;
      for (let n = 0; !stop; n++) {
        try {
          const out = running ? await client.command('destroy', { domain }) : await client.command('start', { domain });
          if (out.ok) {
            acked.push(out);
            ackedIn[phase]++;
            running = !running;
          } else if (out.rule === 'STA-ACTIVE') running = true;
          else if (out.rule === 'ACT-REQ') running = false;
        } catch {
          // not acknowledged (gave up retrying): its fate is unknown, so it is not counted
        }
      }
    });

    await waitFor(() => acked.length >= 40, 20_000, 'traffic before the kill');
    first.proc.kill('SIGKILL'); // no drain, no close: only what SQLite made durable survives
    expect((await first.exited).signal).toBe('SIGKILL');
    phase = 'after';
    const second = await serveChild(server.url, storeFile);
    children.push(second);
    await waitFor(() => ackedIn.after >= 40, 30_000, 'traffic after the restart');
    stop = true;
    await Promise.all(loops);
    for (const nc of clientConns) await nc.close();

    // SIGTERM: drain and close the store, exit 0.
    second.proc.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(second.stderr()).toMatch(/SIGTERM: draining/);

    const store = await openEventStore(`sqlite:${storeFile}`);
    try {
      const byPosition = new Map<number, RecordedEvent>();
      for await (const e of store.readAll(0)) byPosition.set(e.position, e);
      for (const out of acked) {
        for (const e of out.events) {
          const stored = byPosition.get(e.position);
          expect(stored, `acknowledged fact at ${e.position} (${out.commandId})`).toBeDefined();
          expect([stored!.stream, stored!.revision, stored!.type, stored!.metadata.commandId]).toEqual([e.stream, e.revision, e.type, out.commandId]);
        }
      }
      expect(ackedIn.before).toBeGreaterThan(0);
      expect(ackedIn.after).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });
});

describe('nats-server restart', () => {
  it('is survived: service and client reconnect, and requests after the restart succeed', async () => {
    const db = await ledgerOnFile(join(tmp.dir, 'nats-restart.sqlite'));
    const stack = await startStack(server.url, db.ledger, {}, { timeoutMs: 1_000, retries: 30, retryDelayMs: 200 });
    try {
      expect(await stack.client.command('define', { config: domainConfig('survivor') })).toMatchObject({ ok: true });
      const reconnected = (nc: NatsConnection) =>
        new Promise<void>((resolve) => {
          void (async () => {
            for await (const s of nc.status()) if (s.type === 'reconnect') return resolve();
          })();
        });
      const serviceBack = reconnected(stack.serviceNc);
      const clientBack = reconnected(stack.clientNc);

      await server.kill();
      // A command sent during the outage: the client retries (same commandId) until the service answers.
      const during = stack.client.command('start', { domain: 'survivor' });
      await new Promise((r) => setTimeout(r, 500));
      await server.restart();
      await Promise.all([serviceBack, clientBack]);

      expect(await during).toMatchObject({ ok: true, command: 'start' });
      expect(await stack.client.command('destroy', { domain: 'survivor' })).toMatchObject({ ok: true });
      const loaded = await stack.client.loadDomain('local', 'survivor');
      expect(loaded).toMatchObject({ revision: 2, state: { active: false } });
      // Exactly one start was recorded, however many times it was sent.
      const types = [];
      for await (const e of db.store.readStream('domain-local-survivor')) types.push(e.type);
      expect(types).toEqual(['DomainDefined', 'DomainStarted', 'DomainStopped']);
    } finally {
      await stack.stop();
      await db.close();
    }
  });
});

describe('vmledger serve without NATS', () => {
  it('exits non-zero saying how to start NATS, before touching the store', async () => {
    const storeFile = join(tmp.dir, 'never.sqlite');
    const child = nodeChild(
      `import { Command } from 'commander';
       import { registerServeCommand } from ${JSON.stringify(join(ROOT, 'services/nats/serve.ts'))};
       const program = new Command('vmledger');
       registerServeCommand(program);
       await program.parseAsync(['serve', '--nats', 'nats://127.0.0.1:1', '--store', ${JSON.stringify(`sqlite:${storeFile}`)}], { from: 'user' });`,
    );
    children.push(child);
    const { code } = await child.exited;
    expect(code).toBe(1);
    expect(child.stderr()).toContain(
      "cannot reach NATS at nats://127.0.0.1:1: connection refused (connect ECONNREFUSED 127.0.0.1:1). Start one with 'nats-server -js' (or 'docker compose up nats'), or set NATS_URL.",
    );
    expect(existsSync(storeFile)).toBe(false);
  });
});
