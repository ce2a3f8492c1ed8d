// The ledger on the SQLite store's group commit: one durable write (one transaction, one fsync) per command, the
// outcome doc and a due checkpoint riding with the facts; commands on different domains sharing transactions;
// commands on one domain queued in-process instead of racing into WrongExpectedRevision retries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { domainStream } from '../machines/model';
import { openSqliteEventStore, type SqliteEventStore } from '../services/eventstore/sqlite';
import { WrongExpectedRevisionError, type EventStore } from '../services/eventstore/types';
import { CHECKPOINTS_COLLECTION, OUTCOMES_COLLECTION, createLedger, type LedgerOptions } from '../services/ledger';
import type { Ledger } from '../services/ledger-types';

const TIME = '2026-11-22T00:00:00.000Z';
let dir: string;
let ids = 0;
const toClose: (() => Promise<void>)[] = [];

function cmd(spec: Record<string, unknown>): CommandInput {
  return { ...spec, meta: { commandId: `gc-${++ids}`, actor: 'test', time: TIME } } as CommandInput;
}

const config = (name: string, n: number) => ({ name, uuid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}` });

/** Delegates to the store, counting what the ledger asks of it. */
function counting(store: EventStore) {
  const counts = { appends: 0, conflicts: 0, putDocs: 0 };
  const wrapped: EventStore = {
    append: async (stream, events, options) => {
      counts.appends++;
      try {
        return await store.append(stream, events, options);
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError) counts.conflicts++;
        throw error;
      }
    },
    readStream: (stream, from) => store.readStream(stream, from),
    streamRevision: (stream) => store.streamRevision(stream),
    readAll: (after, limit) => store.readAll(after, limit),
    headPosition: () => store.headPosition(),
    subscribe: (after, onEvent) => store.subscribe(after, onEvent),
    commandResult: (id) => store.commandResult(id),
    getDoc: (collection, key) => store.getDoc(collection, key),
    putDoc: async (collection, key, value) => {
      counts.putDocs++;
      return store.putDoc(collection, key, value);
    },
    close: () => store.close(),
  };
  return { wrapped, counts };
}

function open(options: LedgerOptions = {}): { store: SqliteEventStore; ledger: Ledger; counts: ReturnType<typeof counting>['counts'] } {
  const store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  const { wrapped, counts } = counting(store);
  const ledger = createLedger(wrapped, options);
  toClose.push(async () => {
    await ledger.close();
    await store.close();
  });
  return { store, ledger, counts };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-groupcommit-'));
});

afterEach(async () => {
  for (const close of toClose.splice(0).reverse()) await close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ledger on the group-committing SQLite store', () => {
  it.each([
    ['facts (the outcome rebuilt from them on a retry)', 'unrecorded'],
    ['facts, outcome doc', 'all'],
  ] as const)('makes one durable write per command: %s and a due checkpoint in one transaction (outcomeDocs: %s)', async (_what, outcomeDocs) => {
    const { store, ledger, counts } = open({ checkpointEvery: 3, outcomeDocs });
    const inputs = [
      cmd({ verb: 'define', config: config('vm1', 1) }),
      cmd({ verb: 'start', domain: 'vm1' }),
      ...Array.from({ length: 6 }, (_, i) => cmd({ verb: i % 2 ? 'resume' : 'suspend', domain: 'vm1' })),
      cmd({ verb: 'resume', domain: 'vm1' }), // refused: the domain is running (a CommandRefused fact)
      cmd({ verb: 'undefine', domain: 'nope' }), // refused: no such domain
    ];
    for (const input of inputs) {
      const before = store.groupCommitStats.transactions;
      const outcome = await ledger.execute(input);
      expect(store.groupCommitStats.transactions - before, `${outcome.command} ${outcome.ok ? 'accepted' : outcome.rule}`).toBe(1);
      // Under 'all' the first outcome is on disk with the facts (which it names by reference); either way it is
      // recalled exactly as answered.
      const doc = (await store.getDoc(OUTCOMES_COLLECTION, outcome.commandId)) as { events: Record<string, unknown>[] } | undefined;
      if (outcomeDocs === 'unrecorded') expect(doc).toBeUndefined();
      else {
        expect(doc).toMatchObject({ ok: outcome.ok, commandId: outcome.commandId, revision: outcome.revision });
        expect(doc!.events).toEqual(outcome.events.map(({ stream, revision, position, type }) => ({ stream, revision, position, type })));
      }
      expect(await ledger.recall(outcome.commandId)).toEqual({ ...JSON.parse(JSON.stringify(outcome)), duplicate: true });
    }
    expect(counts.putDocs).toBe(0);
    const outcomes = await Promise.all(inputs.map((input) => ledger.execute(input)));
    expect(outcomes.every((o) => o.duplicate)).toBe(true);
    expect(outcomes.slice(-2).map((o) => o.ok)).toEqual([false, false]);
    // Checkpoints went with the facts that made them due (every 3 facts), not as writes of their own.
    const { revision } = await ledger.loadDomain('local', 'vm1');
    expect(revision).toBe(7);
    const checkpoint = (await store.getDoc(CHECKPOINTS_COLLECTION, domainStream('local', 'vm1'))) as { revision: number };
    expect(checkpoint.revision).toBe(5);
  });

  it('an outcome doc whose referenced facts do not match the log is discarded, and the outcome rebuilt from the facts', async () => {
    const discarded: string[] = [];
    const { store, ledger } = open({ outcomeDocs: 'all', onDiscard: (what, key) => discarded.push(`${what}:${key}`) });
    await ledger.execute(cmd({ verb: 'define', config: config('vm1', 1) }));
    const started = await ledger.execute(cmd({ verb: 'start', domain: 'vm1' }));
    const doc = (await store.getDoc(OUTCOMES_COLLECTION, started.commandId)) as { events: { position: number }[] };
    await store.putDoc(OUTCOMES_COLLECTION, started.commandId, { ...doc, events: doc.events.map((e) => ({ ...e, position: e.position + 1 })) });
    expect(await ledger.recall(started.commandId)).toEqual({ ...JSON.parse(JSON.stringify(started)), duplicate: true });
    expect(discarded).toEqual([`outcome:${started.commandId}`]);
  });

  it('commits concurrent commands on different domains together', async () => {
    const { store, ledger } = open();
    const names = Array.from({ length: 32 }, (_, i) => `vm${i}`);
    for (const [i, name] of names.entries()) expect((await ledger.execute(cmd({ verb: 'define', config: config(name, i) }))).ok).toBe(true);
    const before = store.groupCommitStats.transactions;
    const outcomes = await Promise.all(names.map((name) => ledger.execute(cmd({ verb: 'start', domain: name }))));
    expect(outcomes.every((o) => o.ok && o.events.length === 1)).toBe(true);
    const transactions = store.groupCommitStats.transactions - before;
    expect(transactions).toBeLessThan(names.length / 4);
    expect(new Set(outcomes.map((o) => o.events[0]!.position)).size).toBe(names.length);
  });

  it('queues commands on one domain in-process: no WrongExpectedRevision retries, every outcome a rule', async () => {
    const { ledger, counts } = open();
    await ledger.execute(cmd({ verb: 'define', config: config('vm1', 1) }));
    await ledger.execute(cmd({ verb: 'start', domain: 'vm1' }));
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => ledger.execute(cmd({ verb: i % 3 === 0 ? 'resume' : 'suspend', domain: 'vm1' }))),
    );
    expect(counts.conflicts).toBe(0);
    for (const o of outcomes.filter((x) => !x.ok)) expect(o.rule).not.toBe('CONCURRENCY');
    const loaded = await ledger.loadDomain('local', 'vm1');
    const accepted = outcomes.filter((o) => o.ok && o.events.length > 0).length;
    expect(loaded.revision).toBe(1 + accepted);
  });
});
