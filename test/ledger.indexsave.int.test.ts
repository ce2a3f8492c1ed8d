// A long-running service (`follow: true`) keeps its host index doc near the head of the log while it runs, so a
// restart after kill -9 folds at most SAVE_EVERY_FOLLOWED records instead of everything since it started.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { buildReplayLog } from '../bench/replay';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { createLedger, HOST_INDEX_KEY, INDEX_COLLECTION } from '../services/ledger';
import { SAVE_EVERY_FOLLOWED } from '../services/ledger/logFollow';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-indexsave-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('host index doc of a following ledger', () => {
  it('is saved while the ledger follows, not only at close', { timeout: 120_000 }, async () => {
    const file = join(dir, 'store.sqlite');
    const store = openSqliteEventStore(file);
    const ledger = createLedger(store, { follow: true });
    await ledger.queryDomains({ limit: 1 }); // started, following
    // Another writer (another process on the same file, as far as the ledger can tell) appends a long log.
    const writer = openSqliteEventStore(file, { integrityCheck: 'header' });
    await buildReplayLog(writer, SAVE_EVERY_FOLLOWED + 10_000);
    const head = await writer.headPosition();
    await writer.close();

    // Read as a restart after kill -9 would: from the file, the ledger still open and never closed.
    const reader = openSqliteEventStore(file, { integrityCheck: 'header' });
    const deadline = Date.now() + 90_000;
    let saved: number | undefined;
    while (Date.now() < deadline) {
      const doc = (await reader.getDoc(INDEX_COLLECTION, HOST_INDEX_KEY)) as { position?: number } | undefined;
      saved = doc?.position;
      if (saved !== undefined && head - saved <= SAVE_EVERY_FOLLOWED) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // What a restart would fold: at most SAVE_EVERY_FOLLOWED records of the log's head, not all of it.
    expect(head).toBeGreaterThan(SAVE_EVERY_FOLLOWED);
    expect(head - (saved ?? 0), `records after the saved host index doc (at ${saved})`).toBeLessThanOrEqual(SAVE_EVERY_FOLLOWED);
    await reader.close();
    await ledger.close();
    await store.close();
  });
});
