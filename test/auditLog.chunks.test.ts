// The audit log keeps only its open tail in memory: sealed chunks are read back (from memory while pending, from
// the store's docs once a checkpoint wrote them) when a query needs them. Every query must answer exactly as a
// filter over the whole list of entries would.
import { describe, expect, it } from 'vitest';

import { createMemoryEventStore } from '../services/eventstore/memory';
import type { RecordedEvent } from '../services/eventstore/types';
import { createLedger } from '../services/ledger';
import { createAuditLog, foldAuditEvent, groupAuditEntries, selectAuditEntries, type AuditEntry, type AuditLogState, type AuditQuery } from '../projections/auditLog';
import { CHECKPOINT_COLLECTION } from '../projections/projection';
import { ProjectionRunner } from '../projections/runner';
import { runScript } from './replay.fixture';

const audit = createAuditLog({ name: 'auditChunks', chunkSize: 8 });

describe('auditLog chunks read on demand', () => {
  it('answers every query as a filter over the whole list, whether its chunks are pending or in docs', async () => {
    const store = createMemoryEventStore();
    const ledger = createLedger(store);
    await runScript(ledger, { seed: 5, count: 200 });
    await ledger.close();
    const log: RecordedEvent[] = [];
    for await (const e of store.readAll(0)) log.push(e);
    const all: AuditEntry[] = [];
    for (const e of log) foldAuditEvent(all, e);

    const pending = await ProjectionRunner.open(store, [audit], { persist: false });
    await pending.catchUp();
    const persisted = await ProjectionRunner.open(store, [audit], { checkpointEvery: 13 });
    await persisted.catchUp();
    await persisted.close();
    const reloaded = await ProjectionRunner.open(store, [audit]);
    expect(await store.getDoc(CHECKPOINT_COLLECTION, 'auditChunks/chunk/0')).toHaveLength(8);

    const sample = all.filter((_, i) => i % 17 === 0);
    const queries: AuditQuery[] = [{}, { limit: 0 }, { limit: 3 }, { limit: 30 }, { outcome: 'refused' }, { host: 'h2' }];
    for (const e of sample) {
      queries.push({ domain: e.domain }, { domain: e.domain, host: e.host, limit: 2 }, { correlationId: e.correlationId ?? e.commandId });
      queries.push({ since: { position: e.position } }, { since: { position: e.position + 1 }, limit: 4 }, { since: { time: e.time }, limit: 9 });
      queries.push({ since: { time: e.time } }, { domain: e.domain, since: { position: e.position }, limit: 1 });
    }
    queries.push({ since: { time: 'not a time' } }, { domain: 'no-such-domain' }, { since: { position: 1e9 } });
    for (const runner of [pending, reloaded]) {
      const state = runner.stateOf(audit) as AuditLogState;
      expect(state.sealed).toBeGreaterThan(10);
      expect(state.entries.length).toBeLessThanOrEqual(8);
      for (const query of queries) {
        expect(await state.select(store, query), JSON.stringify(query)).toStrictEqual(selectAuditEntries(all, query));
        const ids = new Set(selectAuditEntries(all, query).map((e) => e.correlationId ?? e.commandId));
        const groups = groupAuditEntries(all.filter((e) => ids.has(e.correlationId ?? e.commandId)));
        expect(await state.groups(store, query), JSON.stringify(query)).toStrictEqual(groups);
      }
    }
    expect(reloaded.stateOf(audit)).toStrictEqual(pending.stateOf(audit));
    await reloaded.close();
    await store.close();
  });
});
