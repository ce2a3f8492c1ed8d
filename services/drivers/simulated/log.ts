// The simulated hypervisor's link to the store: folding the global log into the world up to its head (one fold
// at a time), and appending a host-side image operation to the hash-chained `hypervisor-storage` stream.
import { randomUUID } from 'node:crypto';

import pRetry from 'p-retry';

import { WrongExpectedRevisionError, type EventStore } from '../../eventstore/types';
import { factHash } from '../../factHash';
import type { World } from './types';
import { applyStorageEvent, foldEvent, STORAGE_STREAM, type StorageEvent } from './world';

/** A sync() that folds the store's log into `world` up to its head (a no-op without a store). */
export function logSync(store: EventStore | undefined, world: World): () => Promise<void> {
  let syncing: Promise<void> | undefined;
  async function sync(): Promise<void> {
    if (!store) return;
    // One fold at a time: concurrent callers share it.
    while (syncing) await syncing;
    syncing = (async () => {
      for await (const event of store.readAll(world.position)) foldEvent(world, event);
    })();
    try {
      await syncing;
    } finally {
      syncing = undefined;
    }
  }
  return sync;
}

/** Records a host-side image operation: in the storage stream with a store, straight into the world without. */
export async function recordStorage(store: EventStore | undefined, world: World, sync: () => Promise<void>, event: StorageEvent): Promise<void> {
  if (!store) {
    applyStorageEvent(world, event);
    return;
  }
  const { type, ...data } = event;
  // A host-side operation happens now (it is no command of the ledger): its id only has to be unique. Like every
  // stream of the log it is hash-chained (the audit replay checks that), so append on top of the last fact seen.
  const metadata = { commandId: `storage-${randomUUID()}`, actor: 'hypervisor', time: new Date().toISOString() };
  // Another writer may append between reading the head and appending on it: then read the new head and try again,
  // right away and for as long as it takes (each retry means the other writer got through).
  await pRetry(
    async () => {
      const revision = await store.streamRevision(STORAGE_STREAM);
      let previous: string | undefined;
      if (revision !== 'no-stream') {
        for await (const e of store.readStream(STORAGE_STREAM, revision)) previous = typeof e.metadata.hash === 'string' ? e.metadata.hash : undefined;
      }
      const hash = factHash(previous, type, data);
      await store.append(STORAGE_STREAM, [{ type, data, metadata: { ...metadata, hash } }], {
        expectedRevision: revision === 'no-stream' ? 'no-stream' : revision,
      });
    },
    { retries: Number.POSITIVE_INFINITY, minTimeout: 0, shouldRetry: ({ error }) => error instanceof WrongExpectedRevisionError },
  );
  await sync();
}
