// Host-side image operations from several writers at once, on one real SQLite file: every append that loses the
// race to the storage stream's head is tried again on the new head, so none is lost and the stream stays one hash
// chain (what the audit replay checks).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, expect, test } from 'vitest';

import { createSimulatedDriver, STORAGE_STREAM } from '../../services/drivers/simulated';
import { openSqliteEventStore, type EventStore, type RecordedEvent } from '../../services/eventstore/index';
import { eventHash } from '../../services/factHash';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

function sqliteStore(): EventStore {
  const dir = mkdtempSync(join(tmpdir(), 'vmledger-storage-stream-'));
  const store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  cleanup.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

test('four hypervisor processes creating images at once on one store: all recorded, one unbroken hash chain', async () => {
  const store = sqliteStore();
  // Four drivers on one store, as four processes on one file would be: each folds the log on its own.
  const drivers = Array.from({ length: 4 }, () => createSimulatedDriver({ store }));
  const conflicts = { n: 0 };
  const append = store.append.bind(store);
  store.append = (async (...args: Parameters<EventStore['append']>) => {
    try {
      return await append(...args);
    } catch (error) {
      conflicts.n++;
      throw error;
    }
  }) as EventStore['append'];

  await Promise.all(drivers.map(async (driver, d) => {
    for (let i = 0; i < 25; i++) await driver.createImage({ path: `/images/d${d}-${i}.qcow2`, size: 1024 });
  }));

  const events: RecordedEvent[] = [];
  for await (const e of store.readStream(STORAGE_STREAM, 0)) events.push(e);
  expect(events).toHaveLength(100);
  // The writers did collide (else this test would not test the retry), and every collision was retried.
  expect(conflicts.n).toBeGreaterThan(0);
  let previous: string | undefined;
  for (const e of events) {
    expect(e.metadata.hash).toBe(eventHash(previous, e));
    previous = e.metadata.hash as string;
  }
  // Each driver, having caught up, sees every image, whoever created it.
  for (const driver of drivers) {
    for (let d = 0; d < 4; d++) expect(await driver.image(`/images/d${d}-24.qcow2`)).toMatchObject({ size: 1024, format: 'qcow2' });
  }
});
