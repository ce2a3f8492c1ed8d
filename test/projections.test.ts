// Projections over a log written by the real ledger (SQLite, a few hundred commands, accepted and refused mixed):
// rebuilt from 0 and resumed from checkpoints they must be identical; the queries answer from them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createMemoryEventStore } from '../services/eventstore/memory';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { COMMAND_REFUSED as LEDGER_COMMAND_REFUSED, createLedger, refusalStream as ledgerRefusalStream } from '../services/ledger';
import { createAuditLog, selectAuditEntries, type AuditLogState } from '../projections/auditLog';
import { domainList, type DomainListState } from '../projections/domainList';
import { COMMAND_REFUSED, refusalStream } from '../projections/log';
import { CHECKPOINT_COLLECTION, type Projection } from '../projections/projection';
import { auditEntries, domainAt, listDomains, openViews, snapshotTreeOf } from '../projections/queries';
import { ProjectionRunner } from '../projections/runner';
import { buildSnapshotTree, renderSnapshotTree, snapshotTree, type SnapshotTreeState } from '../projections/snapshotTree';
import { config, runScript, timeOf, type ScriptStats } from './replay.fixture';

let dir: string;
let file: string;
let stats: ScriptStats;
let head: number;
let log: RecordedEvent[];

async function withStore<T>(work: (store: EventStore) => Promise<T>): Promise<T> {
  const store = openSqliteEventStore(file);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-projections-'));
  file = join(dir, 'ledger.sqlite');
  await withStore(async (store) => {
    const ledger = createLedger(store);
    stats = await runScript(ledger, { seed: 11, count: 400 });
    await ledger.close();
    head = await store.headPosition();
    log = [];
    for await (const e of store.readAll(0)) log.push(e);
  });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small chunk size, so the audit log's sealed chunks are exercised by a few hundred entries. */
const audit = createAuditLog({ name: 'auditLog16', chunkSize: 16 });
const PROJECTIONS = [domainList, snapshotTree, audit] as const;

async function rebuildInMemory(store: EventStore, until?: number) {
  const runner = await ProjectionRunner.open(store, PROJECTIONS, { persist: false });
  await runner.rebuild(until);
  return runner;
}

function statesOf(runner: ProjectionRunner) {
  return PROJECTIONS.map((p: Projection<any>) => runner.stateOf(p));
}

describe('the log the projections fold', () => {
  it('is a few hundred commands from the real ledger, accepted and refused, with migrations', () => {
    expect(stats.commands).toBeGreaterThanOrEqual(400);
    expect(stats.accepted).toBeGreaterThan(100);
    expect(stats.refused).toBeGreaterThan(100);
    expect(stats.byRule['UND-SNAPSHOTS']).toBeGreaterThan(0);
    const types = new Set(log.map((e) => e.type));
    for (const t of ['DomainDefined', 'SnapshotCreated', 'DomainUndefined', 'DomainMigratedIn', 'DomainMigratedOut', 'CommandRefused']) {
      expect(types, t).toContain(t);
    }
    expect(head).toBe(log.length);
  });

  it('uses the ledger’s stream and fact names for refusals', () => {
    expect(COMMAND_REFUSED).toBe(LEDGER_COMMAND_REFUSED);
    expect(refusalStream('h1')).toBe(ledgerRefusalStream('h1'));
  });
});

describe('rebuild and resume', () => {
  it('gives identical states from 0 and from checkpoints taken anywhere, mid-decision included', async () => {
    await withStore(async (store) => {
      const expected = statesOf(await rebuildInMemory(store));
      // Stops: the start, ends of chunks, positions inside a multi-fact decision, the last fact.
      const midDecision = log.findIndex((e, i) => {
        const next = log[i + 1];
        return next !== undefined && next.stream === e.stream && next.metadata.commandId === e.metadata.commandId;
      });
      expect(midDecision).toBeGreaterThan(0);
      const stops = [1, 17, midDecision + 1, Math.floor(head / 3), Math.floor(head / 2) + 1, head - 1, head];
      for (const stop of stops) {
        const first = await ProjectionRunner.open(store, PROJECTIONS, { checkpointEvery: 7 });
        await first.rebuild(stop);
        expect(first.position).toBe(stop);
        await first.close();

        const second = await ProjectionRunner.open(store, PROJECTIONS, { onWarning: (m) => expect.fail(m) });
        expect(second.position, `resumed at ${stop}`).toBe(stop);
        await second.catchUp();
        expect(second.position).toBe(head);
        expect(statesOf(second), `resumed from ${stop}`).toStrictEqual(expected);
        await second.close();
      }
    });
  });

  it('folds only what is new when caught up twice, and says nothing has changed', async () => {
    await withStore(async (store) => {
      const runner = await ProjectionRunner.open(store, PROJECTIONS);
      await runner.catchUp();
      const before = JSON.stringify(statesOf(runner));
      await runner.catchUp();
      expect(JSON.stringify(statesOf(runner))).toBe(before);
      await runner.close();
    });
  });

  it('does not trust a checkpoint of another version or of another log, and rebuilds', async () => {
    await withStore(async (store) => {
      const expected = statesOf(await rebuildInMemory(store));
      const warnings: string[] = [];
      await store.putDoc(CHECKPOINT_COLLECTION, 'domainList', { position: 5, version: 99, state: { streams: {} } });
      await store.putDoc(CHECKPOINT_COLLECTION, 'snapshotTree', {
        position: 5,
        version: 1,
        anchor: { stream: 'domain-elsewhere-vm9', revision: 0 },
        state: { streams: {} },
      });
      await store.putDoc(CHECKPOINT_COLLECTION, audit.name, { position: head + 50, version: audit.version, state: { sealed: 0, chunkSize: 16, open: [] } });
      const runner = await ProjectionRunner.open(store, PROJECTIONS, { onWarning: (m) => warnings.push(m) });
      expect(runner.position).toBe(0);
      expect(warnings.join('\n')).toMatch(/domainList.*version 99/);
      expect(warnings.join('\n')).toMatch(/snapshotTree.*not the one it was folded from/);
      expect(warnings.join('\n')).toMatch(/auditLog16.*log ends at/);
      await runner.catchUp();
      expect(statesOf(runner)).toStrictEqual(expected);
      await runner.close();
    });
  });

  it('rejects a checkpoint whose state does not validate (zod), and rebuilds', async () => {
    await withStore(async (store) => {
      const at = Math.floor(head / 2);
      await store.putDoc(CHECKPOINT_COLLECTION, 'domainList', {
        position: at,
        version: 1,
        state: { streams: { 'domain-h1-vm0': { state: { life: 'maybe' }, revision: 0, position: 1, time: '' } } },
      });
      const warnings: string[] = [];
      const runner = await ProjectionRunner.open(store, [domainList], { onWarning: (m) => warnings.push(m) });
      expect(runner.position).toBe(0);
      expect(warnings.join('\n')).toMatch(/domainList.*does not load/);
      await runner.catchUp(); // leaves a good checkpoint for the tests after this one
      await runner.close();
    });
  });

  it('follows the log live: facts appended after opening reach the views', async () => {
    const store = createMemoryEventStore();
    const ledger = createLedger(store);
    await runScript(ledger, { seed: 3, count: 60 });
    const views = await openViews(store);
    views.follow();
    const opened = views.position;
    await ledger.execute({ verb: 'define', host: 'h9', config: config('h9', 'late'), meta: { commandId: 'late-1', time: timeOf(900) } });
    await ledger.execute({ verb: 'start', host: 'h9', domain: 'late', meta: { commandId: 'late-2', time: timeOf(901) } });
    const now = await store.headPosition();
    expect(now).toBeGreaterThan(opened);
    await views.waitFor(now);
    const row = (await views.listDomains({ host: 'h9' }))[0];
    expect(row).toMatchObject({ host: 'h9', name: 'late', state: 'running', runState: 'running', persistent: true });
    const audited = await views.auditEntries({ domain: 'late' });
    expect(audited.map((e) => [e.commandId, e.verb, e.outcome])).toEqual([
      ['late-1', 'define', 'accepted'],
      ['late-2', 'start', 'accepted'],
    ]);
    const rebuilt = await rebuildInMemory(store);
    expect(views.runner.stateOf(domainList)).toStrictEqual(rebuilt.stateOf(domainList));
    await views.close();
    await ledger.close();
    await store.close();
  });
});

describe('domainList and snapshotTree', () => {
  it('lists the same domains as the ledger itself', async () => {
    await withStore(async (store) => {
      const ledger = createLedger(store);
      const fromLedger = await ledger.listDomains();
      await ledger.close();
      const rows = await listDomains(store);
      expect(rows.map((r) => [r.host, r.name, r.uuid, r.persistent, r.runState !== null])).toEqual(
        fromLedger.map((s) => [s.host, s.name, s.uuid, s.persistent, s.active]),
      );
      expect(rows.length).toBeGreaterThan(3);
      for (const row of rows) {
        const { state } = await createLedger(store).loadDomain(row.host, row.name);
        expect(row.snapshots).toBe(Object.keys(state.snapshots).length);
        expect(row.currentSnapshot).toBe(state.current);
        expect(row.managedSave).toBe(state.hasManagedSave);
      }
    });
  });

  it('keeps, per domain, exactly the snapshot tree the full machine state has', async () => {
    await withStore(async (store) => {
      const runner = await rebuildInMemory(store);
      const full = runner.stateOf(domainList) as DomainListState;
      const trees = runner.stateOf(snapshotTree) as SnapshotTreeState;
      expect(Object.keys(trees.streams).sort()).toEqual(Object.keys(full.streams).sort());
      let withSnapshots = 0;
      for (const [stream, fold] of Object.entries(full.streams)) {
        const slice = trees.streams[stream]!;
        expect(slice.snapshots, stream).toStrictEqual(fold.state.snapshots);
        expect(slice.current, stream).toBe(fold.state.current);
        expect(slice.life, stream).toBe(fold.state.life);
        if (Object.keys(slice.snapshots).length > 1) withSnapshots++;
      }
      expect(withSnapshots).toBeGreaterThan(0);
    });
  });

  it('answers domainAt and snapshotTreeOf, now and as of an earlier position', async () => {
    await withStore(async (store) => {
      const rows = await listDomains(store);
      const withTree = rows.find((r) => r.snapshots >= 2)!;
      expect(withTree).toBeDefined();
      const tree = (await snapshotTreeOf(store, withTree.host, withTree.name))!;
      expect(tree.count).toBe(withTree.snapshots);
      const flat: string[] = [];
      const walk = (nodes: typeof tree.roots) => nodes.forEach((n) => (flat.push(n.name), walk(n.children)));
      walk(tree.roots);
      expect(flat.sort()).toEqual(Object.keys((await domainAt(store, withTree.host, withTree.name))!.detail.snapshots).sort());
      expect(renderSnapshotTree(tree).filter((l) => l.endsWith(' *'))).toHaveLength(tree.current ? 1 : 0);

      // As of the position of its first SnapshotCreated: exactly one snapshot, and it is current.
      const first = log.find((e) => e.stream === withTree.stream && e.type === 'SnapshotCreated')!;
      const then = (await domainAt(store, withTree.host, withTree.name, { position: first.position }))!;
      expect(then.snapshots).toBe(1);
      expect(then.tree.roots.map((n) => [n.name, n.current])).toEqual([[then.currentSnapshot, true]]);
      expect(then.position).toBe(first.position);
      // The same point by time.
      const byTime = (await domainAt(store, withTree.host, withTree.name, { time: String(first.metadata.time) }))!;
      expect(byTime).toStrictEqual(then);
      expect(await domainAt(store, 'nowhere', 'none')).toBeUndefined();
    });
  });

  it('builds a tree from parent links whatever the names (epoch-like names sort by creation time)', () => {
    const snap = (name: string, parent: string | null, t: number) => ({
      name,
      parent,
      state: 'shutoff' as const,
      diskOnly: false,
      external: false,
      creationTime: timeOf(t),
      disks: [],
      mirrored: false,
    });
    const tree = buildSnapshotTree({
      host: 'h',
      name: 'd',
      current: '1700000002',
      snapshots: { b: snap('b', null, 1), '1700000002': snap('1700000002', 'b', 3), a: snap('a', 'b', 2), orphan: snap('orphan', 'gone', 4) },
    });
    expect(renderSnapshotTree(tree)).toEqual(['b', '├─ a', '└─ 1700000002 *', 'orphan']);
  });
});

describe('auditLog', () => {
  it('has one entry per decision and per refusal, with every domain fact in exactly one entry', async () => {
    await withStore(async (store) => {
      const entries = await auditEntries(store);
      const refusals = log.filter((e) => e.type === COMMAND_REFUSED);
      expect(entries.filter((e) => e.outcome === 'refused')).toHaveLength(refusals.length);
      const decisions = log.filter((e) => e.stream.startsWith('domain-') && e.metadata.command !== undefined);
      const noops = log.filter((e) => e.stream.startsWith('noops-'));
      expect(noops.length).toBeGreaterThan(0);
      expect(entries.filter((e) => e.outcome === 'accepted' && !e.noop)).toHaveLength(decisions.length);
      expect(entries.filter((e) => e.noop)).toHaveLength(noops.length);
      const positions = entries.flatMap((e) => e.facts.map((f) => f.position));
      expect(positions).toEqual(log.filter((e) => e.stream.startsWith('domain-')).map((e) => e.position));
      for (const e of entries.filter((x) => x.outcome === 'refused')) {
        expect(e.rule).toMatch(/^[A-Z]+(-[A-Z]+)*$/);
        expect(typeof e.code).toBe('number');
        expect(e.message).toBeTruthy();
        expect(e.facts).toEqual([]);
      }
      // In log order, with who and when.
      expect(entries.map((e) => e.position)).toEqual([...entries.map((e) => e.position)].sort((a, b) => a - b));
      expect(entries.every((e) => e.actor && e.time && e.commandId)).toBe(true);
      // A migration saga: the steps carry the migrate command's id as correlation id, on both hosts.
      const migrated = log.find((e) => e.type === 'DomainMigratedIn')!;
      const sagaId = migrated.metadata.correlationId;
      const saga = entries.filter((e) => e.correlationId === sagaId || e.commandId === sagaId);
      expect(saga.map((e) => e.verb)).toEqual(['migrate', 'migrate-phase', 'migrate-phase', 'migrate-incoming', 'migrate-phase', 'migrate-phase']);
      expect(new Set(saga.map((e) => e.host)).size).toBe(2);
    });
  });

  it('filters by domain, host, since (position or time) and limit', async () => {
    await withStore(async (store) => {
      const all = await auditEntries(store);
      const vm1 = await auditEntries(store, { domain: 'vm1' });
      expect(vm1.length).toBeGreaterThan(0);
      expect(vm1.every((e) => e.domain === 'vm1')).toBe(true);
      const vm1h2 = await auditEntries(store, { domain: 'vm1', host: 'h2' });
      expect(vm1h2).toEqual(vm1.filter((e) => e.host === 'h2'));

      const mid = all[Math.floor(all.length / 2)]!;
      const sincePosition = await auditEntries(store, { since: { position: mid.position } });
      expect(sincePosition[0]).toEqual(mid);
      expect(sincePosition).toEqual(all.filter((e) => e.position >= mid.position));
      const sinceTime = await auditEntries(store, { since: { time: mid.time } });
      expect(sinceTime).toEqual(all.filter((e) => Date.parse(e.time) >= Date.parse(mid.time)));

      expect(await auditEntries(store, { limit: 5 })).toEqual(all.slice(-5));
      expect(await auditEntries(store, { since: { position: mid.position }, limit: 5 })).toEqual(sincePosition.slice(0, 5));
      expect(selectAuditEntries(all, { outcome: 'refused' }).every((e) => e.outcome === 'refused')).toBe(true);
    });
  });

  it('seals chunks in docs and reloads them', async () => {
    await withStore(async (store) => {
      const runner = await ProjectionRunner.open(store, [audit]);
      await runner.rebuild();
      await runner.close();
      const saved = (await store.getDoc(CHECKPOINT_COLLECTION, audit.name)) as { state: { sealed: number; open: unknown[] } };
      expect(saved.state.sealed).toBeGreaterThan(5);
      expect(saved.state.open.length).toBeGreaterThan(0);
      expect(saved.state.open.length).toBeLessThanOrEqual(16);
      const chunk = (await store.getDoc(CHECKPOINT_COLLECTION, `${audit.name}/chunk/0`)) as unknown[];
      expect(chunk).toHaveLength(16);
      const reloaded = await ProjectionRunner.open(store, [audit]);
      expect((reloaded.stateOf(audit) as AuditLogState).entries).toStrictEqual((runner.stateOf(audit) as AuditLogState).entries);
      await reloaded.close();
    });
  });
});
