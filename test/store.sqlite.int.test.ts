import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { DEFAULT_STORE_FILE, openEventStore, registerStoreScheme } from '../services/eventstore/index';
import { createMemoryEventStore } from '../services/eventstore/memory';
import {
  SQLITE_STORE_FORMAT,
  VMLEDGER_APPLICATION_ID,
  openSqliteEventStore,
} from '../services/eventstore/sqlite';
import { StoreCorruptError, WrongExpectedRevisionError, type EventStore, type RecordedEvent } from '../services/eventstore/types';
import { collect, describeStoreContract, fact, waitFor } from './store-contract';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface ChildAppender {
  /** Resolves once the child has opened the store and waits for go(). */
  ready: Promise<void>;
  go(): void;
  /** Resolves when the child exited with code 0; rejects with its stderr otherwise. */
  done: Promise<void>;
}

/**
 * Starts a separate Node process that opens `file`, says it is ready, and on go() appends `count` facts to
 * `stream`: one per append with expectedRevision 'any', or all in one append carrying `commandId` when given.
 * The ready/go handshake lets several children start appending at the same moment.
 */
function startAppender(dir: string, file: string, stream: string, count: number, commandId?: string): ChildAppender {
  const script = join(dir, 'appender.mts');
  const storeModule = pathToFileURL(join(repoRoot, 'services/eventstore/sqlite/index.ts')).href;
  writeFileSync(
    script,
    `import { once } from 'node:events';
import { openSqliteEventStore } from ${JSON.stringify(storeModule)};
const [file, stream, count, commandId] = process.argv.slice(2);
const store = openSqliteEventStore(file);
const fact = (n) => ({ type: 'Remote', data: { n, pid: process.pid },
  metadata: { commandId: commandId ?? 'child-' + process.pid + '-' + n, actor: 'child', time: '2024-01-01T00:00:00.000Z' } });
process.stdout.write('ready\\n');
await once(process.stdin, 'data');
if (commandId) {
  const facts = Array.from({ length: Number(count) }, (_, n) => fact(n));
  await store.append(stream, facts, { expectedRevision: 'no-stream', commandId });
} else {
  for (let n = 0; n < Number(count); n++) await store.append(stream, [fact(n)], { expectedRevision: 'any' });
}
await store.close();
process.exit(0);
`,
  );
  const args = [join(repoRoot, 'node_modules/tsx/dist/cli.mjs'), script, file, stream, String(count)];
  if (commandId) args.push(commandId);
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolveReady) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolveReady();
    });
  });
  const done = new Promise<void>((resolveDone, rejectDone) => {
    const timer = setTimeout(() => child.kill(), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolveDone();
      else rejectDone(new Error(`appender child exited with ${String(code)}: ${stderr}`));
    });
  });
  return { ready: Promise.race([ready, done]), go: () => child.stdin.write('go\n'), done };
}

async function runAppender(dir: string, file: string, stream: string, count: number, commandId?: string): Promise<void> {
  const child = startAppender(dir, file, stream, count, commandId);
  await child.ready;
  child.go();
  await child.done;
}

function makeTempDir(): string {
  return mkdtempSync(join(tmpdir(), 'vmledger-store-'));
}

describeStoreContract('sqlite', async () => {
  const dir = makeTempDir();
  const store = openSqliteEventStore(join(dir, 'contract.sqlite'), { pollIntervalMs: 20 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('sqlite event store', () => {
  let dir: string;
  const opened: EventStore[] = [];
  const open = (file: string, options?: Parameters<typeof openSqliteEventStore>[1]) => {
    const store = openSqliteEventStore(file, options);
    opened.push(store);
    return store;
  };

  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps everything across close and reopen', async () => {
    const file = join(dir, 'ledger.sqlite');
    const first = open(file);
    await first.append('vm-a', [fact('Defined', 1), fact('Started', 2)], {
      expectedRevision: 'no-stream',
      commandId: 'cmd-define',
    });
    await first.append('vm-b', [fact('Defined', 3)], { expectedRevision: 'no-stream' });
    await first.putDoc('checkpoints', 'domain-list', { position: 3 });
    await first.close();

    const again = open(file);
    expect((await collect(again.readAll())).map((e) => [e.stream, e.revision, e.position, e.type])).toEqual([
      ['vm-a', 0, 1, 'Defined'],
      ['vm-a', 1, 2, 'Started'],
      ['vm-b', 0, 3, 'Defined'],
    ]);
    expect(await again.getDoc('checkpoints', 'domain-list')).toEqual({ position: 3 });
    expect(await again.commandResult('cmd-define')).toEqual({ revision: 1, position: 2, duplicate: true });
    expect(await again.append('vm-a', [fact('Stopped', 4)], { expectedRevision: 1 })).toEqual({
      revision: 2,
      position: 4,
      duplicate: false,
    });
  });

  it('a long read lets other I/O run between its pages (a UI or NATS connection is not starved by a fold)', async () => {
    const store = open(join(dir, 'long.sqlite'));
    await store.append('vm-long', Array.from({ length: 2500 }, (_, i) => fact('Tick', i)), { expectedRevision: 'no-stream' });
    for (const read of [() => store.readAll(), () => store.readStream('vm-long')]) {
      // A timer due at once fires only when the event loop gets a turn: within the read, not after it.
      let firedAt: number | undefined;
      let count = 0;
      const timer = setTimeout(() => (firedAt = count), 0);
      for await (const _event of read()) count++;
      clearTimeout(timer);
      expect(count).toBe(2500);
      expect(firedAt).toBeDefined();
      expect(firedAt!).toBeLessThan(2500);
    }
    // A subscription catching up on the same backlog.
    let delivered = 0;
    let firedAt: number | undefined;
    const timer = setTimeout(() => (firedAt = delivered), 0);
    const subscription = store.subscribe(0, () => {
      delivered++;
    });
    await waitFor(() => delivered === 2500, 'the subscription to deliver all 2,500 facts');
    clearTimeout(timer);
    await subscription.close();
    expect(firedAt).toBeDefined();
    expect(firedAt!).toBeLessThan(2500);
  });

  it('marks the file as a vmledger store (application_id and format row) in WAL mode', async () => {
    const file = join(dir, 'ledger.sqlite');
    await open(file).close();
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('application_id', { simple: true })).toBe(VMLEDGER_APPLICATION_ID);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.prepare("SELECT value FROM meta WHERE key = 'format'").pluck().get()).toBe(SQLITE_STORE_FORMAT);
    } finally {
      db.close();
    }
  });

  it('initialises an existing empty file (0 bytes) and an empty SQLite database', async () => {
    const zeroBytes = join(dir, 'zero.sqlite');
    writeFileSync(zeroBytes, '');
    const a = open(zeroBytes);
    await a.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
    expect(await a.headPosition()).toBe(1);

    const emptyDb = join(dir, 'empty.sqlite');
    const raw = new Database(emptyDb);
    raw.pragma('user_version = 0'); // forces SQLite to write a header with no tables
    raw.exec('CREATE TABLE t (x); DROP TABLE t;');
    raw.close();
    const b = open(emptyDb);
    expect(await b.headPosition()).toBe(0);
  });

  it('sees facts appended by another process on the same file', async () => {
    const file = join(dir, 'shared.sqlite');
    const store = open(file, { pollIntervalMs: 20 });
    await store.append('vm-local', [fact('Local', 1)], { expectedRevision: 'no-stream' });

    const seen: RecordedEvent[] = [];
    const subscription = store.subscribe(0, (event) => {
      seen.push(event);
    });

    await runAppender(dir, file, 'vm-remote', 2, 'child-cmd');

    await waitFor(() => seen.length === 3, 'the child process facts to reach the subscription');
    expect(seen.map((e) => [e.stream, e.position])).toEqual([
      ['vm-local', 1],
      ['vm-remote', 2],
      ['vm-remote', 3],
    ]);
    expect(await store.commandResult('child-cmd')).toEqual({ revision: 1, position: 3, duplicate: true });
    // Positions stay gap-free across processes.
    expect(await store.append('vm-local', [fact('Local', 2)], { expectedRevision: 0 })).toMatchObject({ position: 4 });
    await subscription.close();
  });

  // SQLite's busy handler is not fair, so the children may well take turns in long runs rather than interleave
  // fact by fact; what matters is that a child waiting for the write lock neither fails nor reuses a revision.
  it('serialises appenders in several processes: revisions unique, positions gap-free', async () => {
    const file = join(dir, 'contended.sqlite');
    await open(file).close(); // create the file before the children race to open it
    const processes = 3;
    const perProcess = 100;
    const children = Array.from({ length: processes }, () => startAppender(dir, file, 'vm-hot', perProcess));
    await Promise.all(children.map((child) => child.ready));
    for (const child of children) child.go();
    await Promise.all(children.map((child) => child.done));

    const store = open(file);
    const events = await collect(store.readAll());
    expect(events).toHaveLength(processes * perProcess);
    expect(events.map((e) => e.position)).toEqual(events.map((_, i) => i + 1));
    expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => i));
    expect(new Set(events.map((e) => (e.data as { pid: number }).pid)).size).toBe(processes);
  });

  describe('refuses files that are not vmledger stores, leaving them byte for byte unchanged', () => {
    function expectRefused(file: string, message: RegExp): void {
      const before = readFileSync(file);
      const filesBefore = readdirSync(dir).sort();
      let error: unknown;
      try {
        open(file);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(StoreCorruptError);
      expect((error as Error).message).toContain(file);
      expect((error as Error).message).toMatch(message);
      expect(readFileSync(file).equals(before)).toBe(true);
      expect(readdirSync(dir).sort()).toEqual(filesBefore);
    }

    it('random bytes', () => {
      const file = join(dir, 'random.sqlite');
      writeFileSync(file, randomBytes(8192));
      expectRefused(file, /not a SQLite database/);
    });

    it('a text file', () => {
      const file = join(dir, 'notes.sqlite');
      writeFileSync(file, 'these are my notes, not a ledger\n');
      expectRefused(file, /not a SQLite database/);
    });

    it('a foreign SQLite database', () => {
      const file = join(dir, 'foreign.sqlite');
      const foreign = new Database(file);
      foreign.exec("CREATE TABLE foo (x); CREATE TABLE bar (y); INSERT INTO foo VALUES ('keep me');");
      foreign.close();
      expectRefused(file, /SQLite database with other tables \(bar, foo\)/);
    });

    it('a SQLite database of another application', () => {
      const file = join(dir, 'other-app.sqlite');
      const foreign = new Database(file);
      foreign.pragma('application_id = 1234');
      foreign.exec('CREATE TABLE events (x)');
      foreign.close();
      expectRefused(file, /another application \(application_id 0x000004d2\)/);
    });

    it('a vmledger store with a damaged header', async () => {
      const file = join(dir, 'damaged.sqlite');
      const store = openSqliteEventStore(file);
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      await store.close();

      const bytes = readFileSync(file);
      bytes.write('SQLite format 4', 0, 'latin1'); // magic string
      writeFileSync(file, bytes);
      expectRefused(file, /not a SQLite database/);

      bytes.write('SQLite format 3', 0, 'latin1');
      bytes.writeUInt16BE(1000, 16); // page size that is not a power of two
      writeFileSync(file, bytes);
      expectRefused(file, /not a vmledger store.*file is not a database/);
    });
  });

  it('names the missing folder when the parent folder does not exist', () => {
    const file = join(dir, 'no-such-folder', 'ledger.sqlite');
    expect(() => open(file)).toThrow(`folder '${join(dir, 'no-such-folder')}' does not exist`);
  });

  it('reports a full disk, appends nothing and stays readable', async () => {
    const file = join(dir, 'full.sqlite');
    const seed = open(file);
    await seed.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
    await seed.close();

    const store = open(file, { maxPageCount: 8 }); // the seeded file already uses most of those pages
    const bulky = Array.from({ length: 50 }, (_, i) => ({ ...fact('Bulky', i), data: { blob: 'x'.repeat(4000) } }));
    await expect(store.append('vm-a', bulky, { expectedRevision: 0, commandId: 'cmd-full' })).rejects.toThrow(
      /disk is full: nothing was appended to stream 'vm-a'/,
    );
    expect(await store.headPosition()).toBe(1);
    expect(await store.commandResult('cmd-full')).toBeUndefined();
    expect((await collect(store.readStream('vm-a'))).map((e) => e.type)).toEqual(['A']);
    // A small append still fits: the store is usable after the failure.
    expect(await store.append('vm-a', [fact('A', 2)], { expectedRevision: 0 })).toMatchObject({ position: 2 });
  });

  describe('group commit', () => {
    it('concurrent appends share one transaction; each is durable when it resolves', async () => {
      const file = join(dir, 'group.sqlite');
      const store = open(file);
      const results = await Promise.all(
        Array.from({ length: 64 }, (_, i) =>
          store.append(`vm-${i}`, [fact('A', i)], { expectedRevision: 'no-stream', commandId: `cmd-g-${i}` }),
        ),
      );
      expect(results.map((r) => r.position).sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
      expect(store.groupCommitStats).toMatchObject({ transactions: 1, writes: 64, largestBatch: 64 });
      // Another connection (as another process would) sees every acknowledged append.
      const db = new Database(file, { readonly: true });
      try {
        expect(db.prepare('SELECT COUNT(*) FROM events').pluck().get()).toBe(64);
        expect(db.prepare('SELECT COUNT(*) FROM commands').pluck().get()).toBe(64);
      } finally {
        db.close();
      }
    });

    it('a sequential appender gets one transaction per append', async () => {
      const store = open(join(dir, 'sequential.sqlite'));
      for (let i = 0; i < 5; i++) await store.append('vm-a', [fact('A', i)], { expectedRevision: i === 0 ? 'no-stream' : i - 1 });
      expect(store.groupCommitStats).toMatchObject({ transactions: 5, writes: 5, largestBatch: 1 });
    });

    it("one append's conflict, duplicate or failing docs function does not affect the others of its batch", async () => {
      const store = open(join(dir, 'savepoints.sqlite'));
      await store.append('vm-a', [fact('A', 0)], { expectedRevision: 'no-stream', commandId: 'cmd-first' });
      const before = store.groupCommitStats.transactions;
      const settled = await Promise.allSettled([
        store.append('vm-b', [fact('B', 1)], { expectedRevision: 'no-stream' }),
        store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' }), // conflict
        store.append('vm-c', [fact('C', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-first' }), // duplicate
        store.append('vm-d', [fact('D', 1), fact('D', 2)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-throws',
          docs: () => {
            throw new Error('docs bug');
          },
        }),
        store.append('vm-e', [{ ...fact('E', 1), data: { big: 1n } }], { expectedRevision: 'no-stream' }), // TypeError, never queued
        store.append('vm-f', [fact('F', 1)], { expectedRevision: 'no-stream', docs: [{ collection: 'c', key: 'f', value: 'f' }] }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
      expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
      expect((settled[2] as PromiseFulfilledResult<unknown>).value).toEqual({ revision: 0, position: 1, duplicate: true });
      expect(String((settled[3] as PromiseRejectedResult).reason)).toMatch(/docs bug/);
      expect((settled[4] as PromiseRejectedResult).reason).toBeInstanceOf(TypeError);
      expect(store.groupCommitStats.transactions - before).toBe(1);
      expect((await collect(store.readAll())).map((e) => [e.stream, e.position])).toEqual([
        ['vm-a', 1],
        ['vm-b', 2],
        ['vm-f', 3],
      ]);
      expect(await store.commandResult('cmd-throws')).toBeUndefined();
      expect(await store.streamRevision('vm-d')).toBe('no-stream');
      expect(await store.getDoc('c', 'f')).toBe('f');
    });

    it('bounds a batch by writes and by bytes', async () => {
      const byCount = open(join(dir, 'bound-count.sqlite'), { maxBatchWrites: 4 });
      await Promise.all(Array.from({ length: 10 }, (_, i) => byCount.append(`vm-${i}`, [fact('A', i)], { expectedRevision: 'no-stream' })));
      expect(byCount.groupCommitStats).toMatchObject({ transactions: 3, writes: 10, largestBatch: 4 });

      const byBytes = open(join(dir, 'bound-bytes.sqlite'), { maxBatchBytes: 10_000 });
      const bulky = (i: number) => ({ ...fact('Bulky', i), data: { blob: 'x'.repeat(4000) } });
      await Promise.all(Array.from({ length: 6 }, (_, i) => byBytes.append(`vm-${i}`, [bulky(i)], { expectedRevision: 'no-stream' })));
      expect(byBytes.groupCommitStats).toMatchObject({ transactions: 3, writes: 6, largestBatch: 2 });
      expect(await byBytes.headPosition()).toBe(6);
    });

    it('a full disk fails the whole batch with a clear message; the store stays readable and usable', async () => {
      const file = join(dir, 'full-batch.sqlite');
      const seed = open(file);
      await seed.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      await seed.close();

      const store = open(file, { maxPageCount: 8 });
      const bulky = Array.from({ length: 50 }, (_, i) => ({ ...fact('Bulky', i), data: { blob: 'x'.repeat(4000) } }));
      const settled = await Promise.allSettled([
        store.append('vm-small', [fact('S', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-small' }),
        store.append('vm-a', bulky, { expectedRevision: 0, commandId: 'cmd-full' }),
        store.putDoc('c', 'k', { v: 1 }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(String((settled[0] as PromiseRejectedResult).reason)).toMatch(/disk is full: nothing was appended to stream 'vm-small'/);
      expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/disk is full: nothing was appended to stream 'vm-a'/);
      expect(String((settled[2] as PromiseRejectedResult).reason)).toMatch(/disk is full: doc 'c\/k' was not written/);
      expect(await store.headPosition()).toBe(1);
      expect(await store.commandResult('cmd-small')).toBeUndefined();
      expect(await store.getDoc('c', 'k')).toBeUndefined();
      expect(await store.append('vm-small', [fact('S', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-small' })).toEqual({
        revision: 0,
        position: 2,
        duplicate: false,
      });
    });

    it('wakes subscribers after the commit, once per batch', async () => {
      const store = open(join(dir, 'subscribers.sqlite'), { pollIntervalMs: 10_000 });
      const seen: number[] = [];
      const subscription = store.subscribe(0, (event) => {
        seen.push(event.position);
      });
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.append(`vm-${i}`, [fact('A', i)], { expectedRevision: 'no-stream' })));
      await waitFor(() => seen.length === 20, 'the 20 facts of one batch');
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      await subscription.close();
    });

    it("a subscriber gets its own store's facts and another connection's, each once and in order, even when slow", async () => {
      // Facts this store commits are handed to its followers directly; the other connection's must be read from
      // the log, and they land between ours: the follower must notice the gaps and never skip or repeat a fact.
      const file = join(dir, 'offered.sqlite');
      // No polling in time for this test: the gaps in what we are offered are what tells the follower to read.
      // (The last round appends only to ours, so a gap is always followed by an offer that reveals it.)
      const ours = open(file, { pollIntervalMs: 60_000 });
      const theirs = open(file, { pollIntervalMs: 60_000 });
      const seen: RecordedEvent[] = [];
      const subscription = ours.subscribe(0, async (event) => {
        seen.push(event);
        if (event.position % 7 === 0) await new Promise((r) => setTimeout(r, 2)); // a slow subscriber falls behind
      });
      const revisions = new Map<string, number>();
      const appendTo = async (store: EventStore, stream: string, n: number) => {
        const expected = revisions.get(stream) ?? -1;
        revisions.set(stream, expected + n);
        await store.append(stream, Array.from({ length: n }, (_, i) => fact('A', i)), {
          expectedRevision: expected < 0 ? 'no-stream' : expected,
        });
      };
      for (let round = 0; round < 20; round++) {
        await Promise.all([
          ...Array.from({ length: 5 }, (_, i) => appendTo(ours, `ours-${i}`, 1 + (round % 2))),
          ...(round % 3 === 0 ? [appendTo(theirs, 'theirs', 2)] : []),
        ]);
      }
      const all = await collect(ours.readAll());
      await waitFor(() => seen.length >= all.length, 'every fact to reach the subscriber');
      await new Promise((r) => setTimeout(r, 50)); // and nothing more arrives
      expect(seen.map((e) => e.position)).toEqual(all.map((_, i) => i + 1));
      expect(seen).toEqual(all);
      await subscription.close();
      await theirs.close();
    });

    it('close() writes what was queued before it', async () => {
      const file = join(dir, 'close.sqlite');
      const store = openSqliteEventStore(file);
      const pending = store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      const doc = store.putDoc('c', 'k', 1);
      await store.close();
      expect(await pending).toMatchObject({ position: 1 });
      await doc;
      const again = open(file);
      expect(await again.headPosition()).toBe(1);
      expect(await again.getDoc('c', 'k')).toBe(1);
    });
  });
});

describe('store specs', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens memory and sqlite:PATH (absolute and relative)', async () => {
    const memory = await openEventStore('memory');
    await memory.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
    expect(await memory.headPosition()).toBe(1);
    await memory.close();

    const absolute = await openEventStore(`sqlite:${join(dir, 'abs.sqlite')}`);
    await absolute.close();
    const relativePath = relative(process.cwd(), join(dir, 'rel.sqlite'));
    const relativeStore = await openEventStore(`sqlite:${relativePath}`);
    await relativeStore.close();
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['abs.sqlite', 'rel.sqlite']));
    expect(DEFAULT_STORE_FILE).toBe('vmledger.sqlite');
  });

  it.each([
    ['', /no store spec given; valid specs: memory, sqlite:PATH/],
    ['sqlite:', /the path is missing; write sqlite:PATH/],
    ['sqlite://host/x.db', /plain path/],
    ['memory:extra', /written just 'memory'/],
    ['postgres://db:5432', /unknown store spec 'postgres:\/\/db:5432'; valid specs: memory, sqlite:PATH/],
    ['ledger.sqlite', /for a SQLite file write sqlite:ledger.sqlite/],
    // The jetstream and esdb backends load on first use and name the server they could not reach.
    ['jetstream://127.0.0.1:1', /cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/],
    ['esdb://127.0.0.1:1?tls=false', /cannot use EventStoreDB at esdb:\/\/127\.0\.0\.1:1/],
  ])('refuses %j with a clear error', async (spec, message) => {
    await expect(openEventStore(spec)).rejects.toThrow(message);
  });

  it('lists the external schemes in every error', async () => {
    await expect(openEventStore('nope:1')).rejects.toThrow(/jetstream:\/\/HOST:PORT.*esdb:\/\/HOST:PORT/);
  });

  it('lets another module register a scheme', async () => {
    let seenSpec = '';
    registerStoreScheme('teststore', (spec) => {
      seenSpec = spec;
      return createMemoryEventStore();
    });
    const store = await openEventStore('teststore://somewhere:1');
    expect(seenSpec).toBe('teststore://somewhere:1');
    await store.close();
    await expect(openEventStore('nope:1')).rejects.toThrow(/teststore:\/\/HOST:PORT/);
  });
});
