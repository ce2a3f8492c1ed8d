// copy-store: a ledger written through the real ledger (a seeded script of accepted and refused commands) is
// copied from SQLite into JetStream and into another SQLite file, verified by replaying both, and the copy
// behaves as the original: same facts, same states, retried commands answered as duplicates.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { copyStore, registerCopyStoreCommand, TargetNotEmptyError, verifyCopy, type CopyProgress } from '../services/copyStore';
import { openJetStreamEventStore } from '../services/eventstore/jetstream';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore } from '../services/eventstore/types';
import { createLedger } from '../services/ledger';
import { runScript } from './replay.fixture';
import { collect, fact } from './store-contract';
import { startNatsServer, type NatsServerHandle } from './support/natsServer';

let dir: string;
let server: NatsServerHandle;
const opened: EventStore[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-copy-'));
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
  rmSync(dir, { recursive: true, force: true });
});

function sqlite(name: string): EventStore {
  const store = openSqliteEventStore(join(dir, name));
  opened.push(store);
  return store;
}

let jetstreamCounter = 0;
async function jetstream(): Promise<{ store: EventStore; spec: string }> {
  const n = ++jetstreamCounter;
  const store = await openJetStreamEventStore({
    servers: server.url,
    streamName: `COPY_${n}`,
    subjectPrefix: `copy${n}.log`,
    commandsBucket: `copy${n}-commands`,
    docsBucket: `copy${n}-docs`,
  });
  opened.push(store);
  return { store, spec: `jetstream://127.0.0.1:${server.port}?stream=COPY_${n}&prefix=copy${n}.log` };
}

/** A source ledger: 200 commands of the seeded script (about a third refused), plus facts written without the ledger. */
async function seedSource(store: EventStore): Promise<void> {
  const ledger = createLedger(store);
  const stats = await runScript(ledger, { seed: 11, count: 200, domains: 4 });
  expect(stats.refused).toBeGreaterThan(0);
  await ledger.close();
  // Facts carrying a command id in their metadata but appended without one, right after that command's own
  // append to the same stream: the copy must give the id to the command's facts only.
  await store.append('notes', [fact('Note', 1, 'cmd-note')], { expectedRevision: 'no-stream', commandId: 'cmd-note' });
  await store.append('notes', [fact('Note', 2, 'cmd-note'), fact('Note', 3, 'cmd-note')], { expectedRevision: 0 });
  await store.append('notes', [fact('Note', 4, 'no-such-command')], { expectedRevision: 'any' });
}

/** Re-executes the recorded command of the first decision on `stream` through a ledger on `store`. */
async function retryFirstCommand(store: EventStore, stream: string) {
  const [first] = await collect(store.readStream(stream));
  const command = first!.metadata.command as CommandInput;
  return createLedger(store).execute(command);
}

async function expectSameCopy(from: EventStore, to: EventStore): Promise<void> {
  const progress: CopyProgress[] = [];
  const summary = await copyStore(from, to, { onProgress: (p) => progress.push(p), progressEvery: 100 });
  const head = await from.headPosition();
  expect(summary.facts).toBe(head);
  expect(summary.head).toBe(head);
  expect(summary.verification?.ok, JSON.stringify(summary.verification?.mismatches)).toBe(true);
  expect(summary.verification!.facts).toBe(head);
  expect(summary.verification!.domains).toBeGreaterThan(0);
  expect(summary.verification!.commands).toBeGreaterThan(100);
  expect(progress.filter((p) => p.phase === 'copy').at(-1)).toMatchObject({ done: head, total: head });
  expect(progress.some((p) => p.phase === 'verify')).toBe(true);

  expect(await to.headPosition()).toBe(head);
  expect(await collect(to.readAll())).toEqual(await collect(from.readAll()));
  expect(await to.commandResult('cmd-note')).toEqual({ revision: 0, position: head - 3, duplicate: true });
  expect(await to.commandResult('no-such-command')).toBeUndefined();

  // The copy answers a retried command as the original does: a duplicate, nothing appended.
  const domainStreams = [...new Set((await collect(to.readAll())).map((e) => e.stream))].filter((s) => s.startsWith('domain-'));
  const retried = await retryFirstCommand(to, domainStreams[0]!);
  expect(retried.duplicate).toBe(true);
  expect(await to.headPosition()).toBe(head);
}

describe('copyStore', () => {
  it('copies SQLite into JetStream, verified by replaying both', async () => {
    const from = sqlite('source.sqlite');
    await seedSource(from);
    const { store: to } = await jetstream();
    await expectSameCopy(from, to);
  });

  it('copies SQLite into SQLite, verified by replaying both', async () => {
    const from = sqlite('source.sqlite');
    await seedSource(from);
    await expectSameCopy(from, sqlite('target.sqlite'));
  });

  it('refuses a target that already holds facts, writing nothing', async () => {
    const from = sqlite('source.sqlite');
    await from.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
    const to = sqlite('target.sqlite');
    await to.append('vm-b', [fact('B', 1)], { expectedRevision: 'no-stream' });
    await expect(copyStore(from, to)).rejects.toThrow(TargetNotEmptyError);
    await expect(copyStore(from, to)).rejects.toThrow(/not empty \(it holds facts up to position 1\)/);
    expect(await to.headPosition()).toBe(1);
  });

  it('verification names the first fact that differs', async () => {
    const a = sqlite('a.sqlite');
    const b = sqlite('b.sqlite');
    await a.append('vm-a', [fact('A', 1, 'c1'), fact('A', 2, 'c1')], { expectedRevision: 'no-stream', commandId: 'c1' });
    await b.append('vm-a', [fact('A', 1, 'c1'), { ...fact('A', 2, 'c1'), data: { n: 2, label: 'edited' } }], {
      expectedRevision: 'no-stream',
      commandId: 'c1',
    });
    const result = await verifyCopy(a, b);
    expect(result.ok).toBe(false);
    expect(result.mismatches[0]).toEqual({ position: 2, what: "fact at position 2 (stream 'vm-a' revision 1) differs in data" });
  });
});

describe('vmledger copy-store', () => {
  async function run(args: string[]): Promise<{ out: string; err: string; exitCode: number | undefined }> {
    let out = '';
    let err = '';
    const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
    const saved = process.exitCode;
    process.exitCode = undefined;
    try {
      const program = new Command().exitOverride();
      registerCopyStoreCommand(program);
      await program.parseAsync(['node', 'vmledger', 'copy-store', ...args]);
      return { out, err, exitCode: process.exitCode as number | undefined };
    } finally {
      outSpy.mockRestore();
      errSpy.mockRestore();
      process.exitCode = saved;
    }
  }

  it('copies between specs, prints progress and the verification', async () => {
    const source = join(dir, 'cli-source.sqlite');
    const seeded = openSqliteEventStore(source);
    await seedSource(seeded);
    const head = await seeded.headPosition();
    await seeded.close();
    const { spec, store: target } = await jetstream();

    const { out, err, exitCode } = await run(['--from', `sqlite:${source}`, '--to', spec]);
    expect(exitCode).toBeUndefined();
    expect(err).toContain(`copy-store: copied ${head}/${head} facts`);
    expect(err).toContain(`copy-store: verified ${head}/${head} facts`);
    expect(out).toMatch(new RegExp(`^copied ${head} facts in \\d+ appends \\(\\d+ streams, \\d+ command ids\\) from sqlite:`));
    expect(out).toMatch(new RegExp(`verified: both stores hold the same ${head} facts, \\d+ domain streams replay to the same state`));
    expect(await target.headPosition()).toBe(head);

    const again = await run(['--from', `sqlite:${source}`, '--to', spec]);
    expect(again.exitCode).toBe(1);
    expect(again.err).toMatch(/^error: copy-store: the target store is not empty/);
  });
});
