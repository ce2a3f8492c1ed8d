// The EventStoreDB event store. EventStoreDB cannot run on these machines, so:
//   - against a real server, the contract suite runs whenever EVENTSTORE_URL is set (and is visibly skipped,
//     with the reason printed, when it is not);
//   - against an in-process double of @eventstore/db-client (test/support/fakeEsdbClient.ts), the same suite
//     always runs: it exercises the adapter's own logic (ordinal positions, sidecars, checkpoints, command
//     reservations), not the wire protocol;
//   - the conversions (bigint revisions, expected revisions) are checked directly.
import { randomUUID } from 'node:crypto';

import { ANY, NO_STREAM, jsonEvent } from '@eventstore/db-client';
import { describe, expect, it } from 'vitest';

import {
  commandEventId,
  fromEsdbCurrentRevision,
  openEsdbEventStore,
  toEsdbExpectedRevision,
  toSafeNumber,
} from '../services/eventstore/esdb';
import { openEventStore } from '../services/eventstore/index';
import { WrongExpectedRevisionError } from '../services/eventstore/types';
import { collect, describeStoreContract, fact } from './store-contract';
import { FakeEsdbClient } from './support/fakeEsdbClient';

const EVENTSTORE_URL = process.env.EVENTSTORE_URL;

if (!EVENTSTORE_URL) {
  console.log(
    "EventStoreDB contract suite skipped: EVENTSTORE_URL is not set (start one with 'docker compose up eventstore' " +
      "and set EVENTSTORE_URL=esdb://127.0.0.1:2113?tls=false)",
  );
}

describe.skipIf(!EVENTSTORE_URL)('EventStoreDB server at EVENTSTORE_URL', () => {
  // Every test gets its own namespace, so runs against one long-lived server never see each other's facts.
  const runId = randomUUID().replace(/-/g, '').slice(0, 12);
  let n = 0;
  describeStoreContract('esdb (real server)', async () => {
    const store = await openEsdbEventStore(EVENTSTORE_URL!, { namespace: `vmledger_t${runId}_${++n}` });
    return { store, cleanup: () => store.close() };
  });

  it('is opened by the spec esdb://HOST:PORT', async () => {
    const store = await openEventStore(EVENTSTORE_URL!);
    expect(await store.headPosition()).toBeGreaterThanOrEqual(0);
    await store.close();
  });
});

// ---------------------------------------------------------------------------------------------------------------

describeStoreContract('esdb adapter on an in-process double of @eventstore/db-client (not a server)', async () => {
  const fake = new FakeEsdbClient();
  const store = await openEsdbEventStore({ client: fake.asClient() });
  return { store, cleanup: () => store.close() };
});

describe('esdb adapter on the client double', () => {
  it('a second process (cold start) reads the same positions, from sidecars and persisted checkpoints', async () => {
    const fake = new FakeEsdbClient();
    const first = await openEsdbEventStore({ client: fake.asClient() });
    for (let i = 0; i < 5; i++) {
      await first.append('vm-big', Array.from({ length: 500 }, (_, k) => fact('Tick', i * 500 + k)), {
        expectedRevision: i === 0 ? 'no-stream' : i * 500 - 1,
      });
      await first.append(`vm-${i}`, [fact('Other', i)], { expectedRevision: 'no-stream' });
    }
    const expected = await collect(first.readAll());
    expect(expected.map((e) => e.position)).toEqual(expected.map((_, i) => i + 1));
    await first.close();

    const cold = await openEsdbEventStore({ client: fake.asClient() });
    expect(await cold.headPosition()).toBe(2505);
    expect((await collect(cold.readAll(2000, 3))).map((e) => e.position)).toEqual([2001, 2002, 2003]);
    const fromStream = await collect(cold.readStream('vm-big', 1998));
    expect(fromStream.slice(0, 3).map((e) => [e.revision, e.position])).toEqual(
      expected.filter((e) => e.stream === 'vm-big' && e.revision >= 1998).slice(0, 3).map((e) => [e.revision, e.position]),
    );
  });

  it('computes positions of facts whose sidecar entry was never written (a crash after the append)', async () => {
    const fake = new FakeEsdbClient();
    const store = await openEsdbEventStore({ client: fake.asClient() });
    await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
    // Written behind the store's back, as a crashed appender would leave it: facts, no sidecar, no command record.
    await fake.appendToStream('vmledger-vm-a', [jsonEvent({ type: 'A', data: { n: 2 }, metadata: { commandId: 'x' } })], {
      expectedRevision: 0n,
    });
    await store.append('vm-b', [fact('B', 3)], { expectedRevision: 'no-stream' });
    const cold = await openEsdbEventStore({ client: fake.asClient() });
    expect((await collect(cold.readStream('vm-a'))).map((e) => [e.revision, e.position])).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect((await collect(cold.readAll())).map((e) => [e.stream, e.position])).toEqual([
      ['vm-a', 1],
      ['vm-a', 2],
      ['vm-b', 3],
    ]);
  });

  it('completes a command whose appender crashed after the facts, and takes over one that crashed before', async () => {
    const fake = new FakeEsdbClient();
    const store = await openEsdbEventStore({ client: fake.asClient(), leaseMs: 50 });
    // Crash after the facts: a reservation and the command's facts (ids derived from the command id), no completion.
    await fake.appendToStream(
      'vmledger.commands-cmd-after',
      jsonEvent({ type: 'CommandReserved', data: { stream: 'vm-a', count: 2, afterRevision: -1, at: new Date().toISOString() } }),
      { expectedRevision: NO_STREAM },
    );
    await fake.appendToStream(
      'vmledger-vm-a',
      [0, 1].map((i) => jsonEvent({ id: commandEventId('cmd-after', i), type: 'A', data: { i }, metadata: { commandId: 'cmd-after' } })),
      { expectedRevision: NO_STREAM },
    );
    expect(await store.commandResult('cmd-after')).toEqual({ revision: 1, position: 2, duplicate: true });
    expect(await store.append('vm-a', [fact('A', 9)], { expectedRevision: 'no-stream', commandId: 'cmd-after' })).toEqual({
      revision: 1,
      position: 2,
      duplicate: true,
    });

    // Crash before the facts: a reservation only. Within the lease a retry is told to wait; after it, it takes over.
    await fake.appendToStream(
      'vmledger.commands-cmd-before',
      jsonEvent({ type: 'CommandReserved', data: { stream: 'vm-b', count: 1, afterRevision: -1, at: new Date().toISOString() } }),
      { expectedRevision: ANY },
    );
    await expect(store.append('vm-b', [fact('B', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-before' })).rejects.toThrow(
      /being appended by another writer/,
    );
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await store.append('vm-b', [fact('B', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-before' })).toEqual({
      revision: 0,
      position: 3,
      duplicate: false,
    });
    expect(await store.commandResult('cmd-before')).toEqual({ revision: 0, position: 3, duplicate: true });
    await store.close();
  });

  it('maps a wrong expected version to WrongExpectedRevisionError with the actual revision', async () => {
    const store = await openEsdbEventStore({ client: new FakeEsdbClient().asClient() });
    await store.append('vm-a', [fact('A', 1), fact('A', 2)], { expectedRevision: 'no-stream' });
    const error = await store.append('vm-a', [fact('A', 3)], { expectedRevision: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WrongExpectedRevisionError);
    expect(error).toMatchObject({ stream: 'vm-a', expected: 0, actual: 1 });
    const missing = await store.append('vm-new', [fact('N', 1)], { expectedRevision: 3 }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ expected: 3, actual: 'no-stream' });
    await store.close();
  });
});

describe('esdb conversions', () => {
  it('maps expected revisions: number → bigint, no-stream → NO_STREAM, any → ANY', () => {
    expect(toEsdbExpectedRevision(0)).toBe(0n);
    expect(toEsdbExpectedRevision(41)).toBe(41n);
    expect(toEsdbExpectedRevision('no-stream')).toBe(NO_STREAM);
    expect(toEsdbExpectedRevision('any')).toBe(ANY);
  });

  it('converts bigint revisions without loss and refuses those beyond Number.MAX_SAFE_INTEGER', () => {
    expect(toSafeNumber(0n, 'revision')).toBe(0);
    expect(toSafeNumber(BigInt(Number.MAX_SAFE_INTEGER), 'revision')).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => toSafeNumber(BigInt(Number.MAX_SAFE_INTEGER) + 1n, 'stream revision')).toThrow(
      /stream revision 9007199254740992 from EventStoreDB is beyond Number.MAX_SAFE_INTEGER/,
    );
    expect(fromEsdbCurrentRevision(5n)).toBe(5);
    expect(fromEsdbCurrentRevision('no_stream')).toBe('no-stream');
    expect(fromEsdbCurrentRevision(-1n)).toBe('no-stream');
  });

  it('derives UUIDs from command ids: stable, distinct per fact, well-formed', () => {
    const a = commandEventId('cmd-1', 0);
    expect(a).toBe(commandEventId('cmd-1', 0));
    expect(a).not.toBe(commandEventId('cmd-1', 1));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('registers esdb:// and esdb+discover:// store specs', async () => {
    // A malformed connection string is refused by the client's parser before any network traffic.
    await expect(openEventStore('esdb://')).rejects.toThrow(/bad EventStoreDB connection string/);
    await expect(openEventStore('esdb+discover://')).rejects.toThrow(/bad EventStoreDB connection string/);
  });
});
