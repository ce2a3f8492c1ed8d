// Replay over logs the real ledger wrote: the check re-runs every recorded decision and verifies the hash chains
// (tampering done straight in the SQLite file is named fact by fact); time travel; what-if without a rule.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { domainStream } from '../machines/model';
import { createMemoryEventStore } from '../services/eventstore/memory';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { eventHash, factHash } from '../services/factHash';
import { createLedger } from '../services/ledger';
import type { Ledger } from '../services/ledger-types';
import { domainList } from '../projections/domainList';
import { ProjectionRunner } from '../projections/runner';
import { replayCheck, stateAt, whatIf, type ReplayProgress } from '../services/replay';
import { config, runScript, timeOf, type ScriptStats } from './replay.fixture';

let dir: string;
let pristine: string;
let stats: ScriptStats;
let log: RecordedEvent[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-replay-'));
  pristine = join(dir, 'pristine.sqlite');
  const store = openSqliteEventStore(pristine);
  const ledger = createLedger(store);
  stats = await runScript(ledger, { seed: 5, count: 400 });
  await ledger.close();
  log = [];
  for await (const e of store.readAll(0)) log.push(e);
  await store.close(); // closing the last connection folds the WAL into the file, so a copy is complete
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

let copies = 0;
/** A copy of the pristine ledger, tampered with through better-sqlite3 directly, then opened as a store. */
async function tampered(edit: (db: Database.Database) => void): Promise<EventStore> {
  const file = join(dir, `copy-${++copies}.sqlite`);
  copyFileSync(pristine, file);
  const db = new Database(file);
  edit(db);
  db.close();
  return openSqliteEventStore(file);
}

/** A domain stream with many facts, and its facts in revision order. */
function busyStream(minFacts = 8): RecordedEvent[] {
  const counts = new Map<string, RecordedEvent[]>();
  for (const e of log) if (e.stream.startsWith('domain-')) counts.set(e.stream, [...(counts.get(e.stream) ?? []), e]);
  const found = [...counts.values()].find((events) => events.length >= minFacts);
  if (!found) throw new Error(`no domain stream with ${minFacts} facts in the test log`);
  return found;
}

/** Swaps the content (type, data, metadata) of the facts at two positions: the stream now has them in the other order. */
function swap(db: Database.Database, a: number, b: number): void {
  type Row = { type: string; data: string; metadata: string };
  const read = db.prepare<[number], Row>('SELECT type, data, metadata FROM events WHERE position = ?');
  const write = db.prepare('UPDATE events SET type = ?, data = ?, metadata = ? WHERE position = ?');
  const ra = read.get(a)!;
  const rb = read.get(b)!;
  db.transaction(() => {
    write.run(rb.type, rb.data, rb.metadata, a);
    write.run(ra.type, ra.data, ra.metadata, b);
  })();
}

describe('replayCheck on an untouched log', () => {
  it('re-runs every decision and finds nothing, migrations included', async () => {
    const store = await tampered(() => {});
    const progress: ReplayProgress[] = [];
    const summary = await replayCheck(store, { onProgress: (p) => progress.push(p), progressEvery: 50 });
    expect(summary.violations).toEqual([]);
    expect(summary.tampered).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(summary.facts).toBe(log.length);
    expect(summary.refusals).toBe(log.filter((e) => e.type === 'CommandRefused').length);
    expect(summary.decisions).toBe(log.filter((e) => e.stream.startsWith('domain-') && e.metadata.command).length);
    expect(log.filter((e) => e.type === 'DomainMigratedIn').length).toBeGreaterThan(0);
    expect(summary.rate).toBeGreaterThan(0);
    // Progress: increasing, out of the head, ending at the end.
    expect(progress.length).toBeGreaterThan(3);
    expect(progress.map((p) => p.done)).toEqual([...progress.map((p) => p.done)].sort((a, b) => a - b));
    expect(progress.at(-1)).toMatchObject({ done: log.length, total: log.length });
    await store.close();
  });
});

describe('replayCheck names tampering done in the SQLite file', () => {
  it('a changed fact: stream, revision, position', async () => {
    const target = busyStream()[3]!;
    const store = await tampered((db) => {
      const data = JSON.parse(db.prepare('SELECT data FROM events WHERE position = ?').pluck().get(target.position) as string);
      db.prepare('UPDATE events SET data = ? WHERE position = ?').run(JSON.stringify({ ...data, edited: true }), target.position);
    });
    const summary = await replayCheck(store);
    expect(summary.ok).toBe(false);
    expect(summary.tampered).toEqual([
      expect.objectContaining({ stream: target.stream, revision: target.revision, position: target.position, problem: 'changed' }),
    ]);
    await store.close();
  });

  it('a deleted fact: removed, with the position it had', async () => {
    const target = busyStream()[4]!;
    const store = await tampered((db) => db.prepare('DELETE FROM events WHERE position = ?').run(target.position));
    const summary = await replayCheck(store);
    expect(summary.tampered).toEqual([
      expect.objectContaining({ stream: target.stream, revision: target.revision, position: target.position, problem: 'removed' }),
    ]);
    await store.close();
  });

  it('two facts swapped: both reordered (adjacent and apart)', async () => {
    const facts = busyStream();
    for (const [i, j] of [
      [2, 3],
      [2, 6],
    ] as const) {
      const a = facts[i]!;
      const b = facts[j]!;
      const store = await tampered((db) => swap(db, a.position, b.position));
      const summary = await replayCheck(store);
      expect(summary.tampered, `swap ${i} and ${j}`).toEqual([
        expect.objectContaining({ stream: a.stream, revision: a.revision, position: a.position, problem: 'reordered' }),
        expect.objectContaining({ stream: b.stream, revision: b.revision, position: b.position, problem: 'reordered' }),
      ]);
      expect(summary.tampered[0]!.detail).toContain(`recorded as revision ${b.revision}`);
      await store.close();
    }
  });

  it('positions swapped, or a fact deleted and the stream renumbered: named too', async () => {
    const facts = busyStream();
    const [a, b] = [facts[2]!, facts[5]!];
    let store = await tampered((db) => {
      db.prepare('UPDATE events SET position = -1 WHERE position = ?').run(a.position);
      db.prepare('UPDATE events SET position = ? WHERE position = ?').run(a.position, b.position);
      db.prepare('UPDATE events SET position = ? WHERE position = -1').run(b.position);
    });
    expect((await replayCheck(store)).tampered).toEqual([
      expect.objectContaining({ stream: a.stream, revision: b.revision, position: a.position, problem: 'reordered' }),
      expect.objectContaining({ stream: a.stream, revision: a.revision, position: b.position, problem: 'reordered' }),
    ]);
    await store.close();

    const gone = facts[3]!;
    store = await tampered((db) => {
      db.prepare('DELETE FROM events WHERE position = ?').run(gone.position);
      for (const later of facts.slice(4)) db.prepare('UPDATE events SET revision = ? WHERE position = ?').run(later.revision - 1, later.position);
    });
    expect((await replayCheck(store)).tampered).toEqual([
      expect.objectContaining({ stream: gone.stream, revision: gone.revision, position: gone.position, problem: 'removed' }),
    ]);
    await store.close();
  });

  it('a refusal record changed, and the last facts cut from the end after a verified replay', async () => {
    const refusal = log.find((e) => e.type === 'CommandRefused')!;
    let store = await tampered((db) =>
      db.prepare("UPDATE events SET data = json_set(data, '$.rule', 'NOTHING') WHERE position = ?").run(refusal.position),
    );
    expect((await replayCheck(store)).tampered).toEqual([
      expect.objectContaining({ stream: refusal.stream, revision: refusal.revision, position: refusal.position, problem: 'changed' }),
    ]);
    await store.close();

    const file = join(dir, 'truncated.sqlite');
    copyFileSync(pristine, file);
    store = openSqliteEventStore(file);
    expect((await replayCheck(store)).ok).toBe(true); // verified: the anchor is kept
    await store.close();
    const db = new Database(file);
    db.prepare('DELETE FROM events WHERE position > ?').run(log.length - 2);
    db.close();
    store = openSqliteEventStore(file);
    const summary = await replayCheck(store);
    expect(summary.tampered).toEqual([expect.objectContaining({ position: log.length, problem: 'truncated' })]);
    await store.close();
  });
});

/** Appends facts by hand with the ledger's conventions, as a ledger with other (older, buggy) rules would have. */
async function appendRecorded(store: EventStore, stream: string, facts: { type: string; data: object }[], meta: Record<string, unknown>) {
  let previous: string | undefined;
  for await (const e of store.readStream(stream)) previous = e.metadata.hash as string;
  const revision = await store.streamRevision(stream);
  const events = facts.map((f, i) => {
    previous = factHash(previous, f.type, f.data, i === 0 ? meta.command : undefined);
    return { type: f.type, data: f.data, metadata: { ...meta, ...(i === 0 && meta.command ? {} : { command: undefined }), hash: previous } };
  });
  for (const e of events) if (e.metadata.command === undefined) delete (e.metadata as Record<string, unknown>).command;
  return store.append(stream, events as never, { expectedRevision: revision });
}

async function ledgerOn(store: EventStore, commands: Record<string, unknown>[]): Promise<Ledger> {
  const ledger = createLedger(store);
  let n = 0;
  for (const c of commands) {
    n++;
    await ledger.execute({ ...c, host: 'h1', meta: { commandId: `c${n}`, actor: 'test', time: timeOf(n) } } as CommandInput);
  }
  return ledger;
}

describe('replayCheck against today’s rules', () => {
  it('reports a recorded decision the rules refuse, with position, stream, command id, verb and rule', async () => {
    const store = createMemoryEventStore();
    const ledger = await ledgerOn(store, [
      { verb: 'define', config: config('h1', 'web') },
      { verb: 'start', domain: 'web' },
    ]);
    await ledger.close();
    // A second start of a running domain, recorded as if accepted (by rules that did not check STA-ACTIVE).
    const command = { verb: 'start', host: 'h1', domain: 'web', paused: false, autodestroy: false, forceBoot: false, meta: { commandId: 'bad-1', actor: 'old', time: timeOf(10) } };
    const appended = await appendRecorded(
      store,
      domainStream('h1', 'web'),
      [{ type: 'DomainStarted', data: { paused: false, autodestroy: false, reason: 'booted', managedSaveConsumed: false } }],
      { commandId: 'bad-1', actor: 'old', time: timeOf(10), host: 'h1', domain: 'web', command },
    );
    const summary = await replayCheck(store);
    expect(summary.tampered).toEqual([]);
    expect(summary.violations).toEqual([
      {
        position: appended.position,
        stream: 'domain-h1-web',
        revision: appended.revision,
        commandId: 'bad-1',
        verb: 'start',
        host: 'h1',
        domain: 'web',
        rule: 'STA-ACTIVE',
        code: 55,
        message: 'Requested operation is not valid: domain is already running',
      },
    ]);
  });

  it('checks facts the hypervisor reported without a command as their guest-event', async () => {
    const store = createMemoryEventStore();
    const ledger = await ledgerOn(store, [
      { verb: 'define', config: config('h1', 'db') },
      { verb: 'start', domain: 'db' },
    ]);
    await ledger.close();
    const meta = { commandId: 'hv-1', actor: 'hypervisor', time: timeOf(20), host: 'h1', domain: 'db' };
    await appendRecorded(store, domainStream('h1', 'db'), [{ type: 'DomainStopped', data: { reason: 'shutdown' } }], meta);
    let summary = await replayCheck(store);
    expect(summary).toMatchObject({ ok: true, hypervisorReports: 1 });
    // Powered off again while shut off: no guest can do that (ACT-REQ).
    const again = await appendRecorded(store, domainStream('h1', 'db'), [{ type: 'DomainStopped', data: { reason: 'shutdown' } }], { ...meta, commandId: 'hv-2' });
    summary = await replayCheck(store);
    expect(summary.violations).toEqual([
      expect.objectContaining({ position: again.position, commandId: 'hv-2', verb: 'guest-event', rule: 'ACT-REQ' }),
    ]);
  });
});

describe('time travel', () => {
  it('shows the earlier state at a position: the same as the projection folded that far', async () => {
    const store = openSqliteEventStore(join(dir, 'pristine.sqlite'));
    const undefine = log.find((e) => e.type === 'DomainUndefined' && log.some((s) => s.stream === e.stream && s.type === 'SnapshotCreated' && s.position < e.position))!;
    expect(undefine).toBeDefined();
    const before = await stateAt(store, { position: undefine.position - 1 });
    const after = await stateAt(store, { position: undefine.position });
    const name = String(undefine.metadata.domain);
    const host = String(undefine.metadata.host);
    const then = before.domains.find((d) => d.host === host && d.name === name);
    expect(then).toBeDefined();
    expect(before.position).toBe(undefine.position - 1);
    expect(before.time).toBe(log[undefine.position - 2]!.metadata.time);
    const now = after.domains.find((d) => d.host === host && d.name === name);
    expect(now === undefined || now.persistent === false).toBe(true); // gone, or (UND-ACTIVE) transient

    for (const position of [1, Math.floor(log.length / 3), undefine.position, log.length]) {
      const runner = await ProjectionRunner.open(store, [domainList], { persist: false });
      await runner.rebuild(position);
      const rows = (await stateAt(store, { position })).domains.map(({ detail, tree, ...row }) => row);
      const { domainRows } = await import('../projections/domainList');
      expect(rows).toEqual(domainRows(runner.stateOf(domainList).streams));
    }
    // By time: the same as by the position of the last fact stamped at or before it.
    const t = String(log[120]!.metadata.time);
    const lastAt = log.filter((e) => Date.parse(String(e.metadata.time)) <= Date.parse(t)).at(-1)!.position;
    expect(await stateAt(store, { time: t })).toEqual(await stateAt(store, { position: lastAt }));
    await store.close();
  });
});

describe('whatIf', () => {
  it('without UND-SNAPSHOTS lists exactly the refused undefines (the simple case)', async () => {
    const store = createMemoryEventStore();
    const ledger = await ledgerOn(store, [
      { verb: 'define', config: config('h1', 'a') },
      { verb: 'define', config: config('h1', 'b') },
      { verb: 'define', config: config('h1', 'c') },
      { verb: 'snapshot-create', domain: 'a', snapshot: { name: 's1', disks: [] } },
      { verb: 'snapshot-create', domain: 'b', snapshot: { name: 's1', disks: [] } },
      { verb: 'undefine', domain: 'a' }, // refused: UND-SNAPSHOTS
      { verb: 'start', domain: 'c' },
      { verb: 'undefine', domain: 'b' }, // refused: UND-SNAPSHOTS
      { verb: 'undefine', domain: 'c', storage: ['vda'] }, // refused: UND-STORAGE-RUNNING (another rule)
      { verb: 'suspend', domain: 'a' }, // refused: ACT-REQ (stays refused, now DOM-NOTFOUND: a consequence)
    ]);
    await ledger.close();
    const report = await whatIf(store, { without: ['UND-SNAPSHOTS'] });
    const refusedUndefines = (await collect(store)).filter((e) => e.type === 'CommandRefused' && (e.data as { rule: string }).rule === 'UND-SNAPSHOTS');
    expect(refusedUndefines).toHaveLength(2);
    expect(report.changes.filter((c) => c.cause === 'rule')).toEqual(
      refusedUndefines.map((e) => ({
        position: e.position,
        commandId: e.metadata.commandId,
        verb: 'undefine',
        host: 'h1',
        domain: (e.data as { command: { domain: string } }).command.domain,
        cause: 'rule',
        was: { outcome: 'refused', rule: 'UND-SNAPSHOTS', message: 'Requested operation is not valid: cannot delete inactive domain with 1 snapshots' },
        wouldBe: { outcome: 'accepted' },
      })),
    );
    expect(report.changes.filter((c) => c.cause === 'consequence')).toEqual([
      expect.objectContaining({ commandId: 'c10', verb: 'suspend', was: expect.objectContaining({ rule: 'ACT-REQ' }), wouldBe: expect.objectContaining({ rule: 'DOM-NOTFOUND' }) }),
    ]);
    expect(report).toMatchObject({ direct: 2, consequences: 1, commands: 10 });
  });

  it('on the big log: nothing changes without switching a rule off; UND-SNAPSHOTS changes only undefines it refused', async () => {
    const store = openSqliteEventStore(join(dir, 'pristine.sqlite'));
    expect((await whatIf(store, { without: [] })).changes).toEqual([]);
    expect((await whatIf(store, { without: ['SC-QUIESCE'] })).changes).toEqual([]);

    const report = await whatIf(store, { without: ['UND-SNAPSHOTS'] });
    const refused = log.filter((e) => e.type === 'CommandRefused' && (e.data as { rule: string }).rule === 'UND-SNAPSHOTS');
    expect(refused.length).toBe(stats.byRule['UND-SNAPSHOTS']);
    const direct = report.changes.filter((c) => c.cause === 'rule');
    expect(direct.length).toBeGreaterThan(0);
    // Every direct change is a refused UND-SNAPSHOTS undefine…
    expect(direct.every((c) => c.verb === 'undefine' && c.was.outcome === 'refused' && c.was.rule === 'UND-SNAPSHOTS')).toBe(true);
    // …and every such refusal is listed: directly, or as a consequence when its domain had already changed.
    expect(refused.map((e) => e.position).every((p) => report.changes.some((c) => c.position === p))).toBe(true);
    // The first one on each domain is direct (nothing changed that domain before it).
    const firstPerDomain = new Map<string, number>();
    for (const e of refused) {
      const c = (e.data as { command: { host: string; domain: string } }).command;
      const key = `${c.host}/${c.domain}`;
      if (!firstPerDomain.has(key)) firstPerDomain.set(key, e.position);
    }
    for (const position of firstPerDomain.values()) {
      const earlier = report.changes.some((c) => c.position < position && `${c.host}/${c.domain}` === [...firstPerDomain].find(([, p]) => p === position)![0]);
      if (!earlier) expect(direct.map((c) => c.position)).toContain(position);
    }
    expect(report.direct + report.consequences).toBe(report.changes.length);
    await store.close();
  });

  it('refuses rule ids it does not know, and effect rules that refuse nothing', async () => {
    const store = createMemoryEventStore();
    await expect(whatIf(store, { without: ['NO-SUCH-RULE'] })).rejects.toThrow(/unknown rule 'NO-SUCH-RULE'/);
    await expect(whatIf(store, { without: ['TRANSIENT-QUIT'] })).rejects.toThrow(/kind: effect/);
  });
});

async function collect(store: EventStore): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  for await (const e of store.readAll(0)) out.push(e);
  return out;
}

describe('replayCheck: the recorded command is in the hash chain', () => {
  const first = (e: RecordedEvent) => e.metadata.command as { verb?: string; forceBoot?: boolean } | undefined;

  it('a recorded command edited in the SQLite file, into one today’s rules accept, is named: stream, revision, position', async () => {
    const target = log.find((e) => e.stream.startsWith('domain-') && first(e)?.verb === 'start' && first(e)?.forceBoot === false)!;
    expect(target).toBeDefined();
    const store = await tampered((db) =>
      db.prepare("UPDATE events SET metadata = json_set(metadata, '$.command.forceBoot', json('true')) WHERE position = ?").run(target.position),
    );
    const summary = await replayCheck(store);
    expect(summary.violations).toEqual([]); // the forged command passes today's rules: only the hash tells
    expect(summary.tampered).toEqual([
      expect.objectContaining({ stream: target.stream, revision: target.revision, position: target.position, problem: 'changed' }),
    ]);
    expect(summary.tampered[0]!.detail).toContain(`covers the command recorded with it too (now 'start', id ${target.metadata.commandId})`);
    await store.close();
  });

  it('a refusal’s recorded command, and metadata copied from a command, edited: named too', async () => {
    const refusal = log.find((e) => e.type === 'CommandRefused')!;
    let store = await tampered((db) =>
      db.prepare("UPDATE events SET metadata = json_set(metadata, '$.command.meta.actor', 'mallory') WHERE position = ?").run(refusal.position),
    );
    expect((await replayCheck(store)).tampered).toEqual([
      expect.objectContaining({ stream: refusal.stream, revision: refusal.revision, position: refusal.position, problem: 'changed' }),
    ]);
    await store.close();

    // The top-level actor is a copy of the (hashed) command's: changing it alone is caught by comparing the two.
    const decision = log.find((e) => e.stream.startsWith('domain-') && first(e) !== undefined && e.revision > 0)!;
    store = await tampered((db) => db.prepare("UPDATE events SET metadata = json_set(metadata, '$.actor', 'mallory') WHERE position = ?").run(decision.position));
    const summary = await replayCheck(store);
    expect(summary.tampered).toEqual([
      expect.objectContaining({ stream: decision.stream, revision: decision.revision, position: decision.position, problem: 'changed' }),
    ]);
    expect(summary.tampered[0]!.detail).toBe(`metadata actor "mallory" is not the recorded command's ${JSON.stringify(decision.metadata.actor)}`);
    await store.close();
  });
});

describe('replayCheck over accepted no-ops (noops-<host>)', () => {
  const noops = () => log.filter((e) => e.stream.startsWith('noops-'));

  it('re-decides each on the domain revision it names, and names an edited record', async () => {
    expect(noops().length).toBeGreaterThan(0);
    const untouched = await tampered(() => {});
    expect(await replayCheck(untouched, { anchor: false })).toMatchObject({ ok: true, noops: noops().length });
    await untouched.close();

    const record = noops()[0]!;
    const store = await tampered((db) =>
      db.prepare("UPDATE events SET data = json_set(data, '$.command.verb', 'resume') WHERE position = ?").run(record.position),
    );
    expect((await replayCheck(store)).tampered).toEqual([
      expect.objectContaining({ stream: record.stream, revision: record.revision, position: record.position, problem: 'changed' }),
    ]);
    await store.close();
  });

  it('a domain stream rewritten under a no-op, every hash recomputed, is noticed by the record that quotes its hash', async () => {
    const record = noops().find((e) => (e.data as { domainRevision: number }).domainRevision >= 0)!;
    const { domainRevision, command } = record.data as { domainRevision: number; command: { host: string; domain: string } };
    const stream = domainStream(command.host, command.domain);
    const facts = log.filter((e) => e.stream === stream);
    const store = await tampered((db) => {
      // Forge the fact at that revision, then re-chain the stream from there so that it verifies on its own.
      let previous = domainRevision > 0 ? String(facts[domainRevision - 1]!.metadata.hash) : undefined;
      for (const e of facts.slice(domainRevision)) {
        const data = e.revision === domainRevision ? { ...(e.data as object), forged: true } : e.data;
        previous = eventHash(previous, { ...e, data });
        db.prepare("UPDATE events SET data = ?, metadata = json_set(metadata, '$.hash', ?) WHERE position = ?").run(JSON.stringify(data), previous, e.position);
      }
    });
    const summary = await replayCheck(store, { anchor: false });
    expect(summary.tampered.length).toBeGreaterThan(0);
    expect(summary.tampered.every((t) => t.stream.startsWith('noops-') && t.problem === 'unchained')).toBe(true);
    expect(summary.tampered[0]).toMatchObject({ stream: record.stream, position: record.position });
    expect(summary.tampered[0]!.detail).toContain(`decided on revision ${domainRevision} of ${stream}`);
    await store.close();
  });

  it('reports a recorded no-op today’s rules refuse as a violation, at the record', async () => {
    const store = createMemoryEventStore();
    const ledger = await ledgerOn(store, [{ verb: 'define', config: config('h1', 'web') }]);
    await ledger.close();
    let defined: RecordedEvent | undefined;
    for await (const e of store.readStream(domainStream('h1', 'web'))) defined ??= e;
    // "suspend of a shut-off domain changed nothing", as a ledger with older rules might have recorded it.
    const command = { verb: 'suspend', host: 'h1', domain: 'web', meta: { commandId: 'old-noop', actor: 'old', time: timeOf(5) } };
    const data = { command, domainRevision: 0, domainHash: defined!.metadata.hash };
    const hash = factHash(undefined, 'CommandAccepted', data, command);
    const appended = await store.append(
      'noops-h1',
      [{ type: 'CommandAccepted', data, metadata: { commandId: 'old-noop', actor: 'old', time: timeOf(5), host: 'h1', domain: 'web', command, hash } }],
      { expectedRevision: 'no-stream' },
    );
    const summary = await replayCheck(store);
    expect(summary.tampered).toEqual([]);
    expect(summary.violations).toEqual([
      expect.objectContaining({ position: appended.position, stream: 'noops-h1', commandId: 'old-noop', verb: 'suspend', rule: 'ACT-REQ', code: 55 }),
    ]);
  });
});

describe('replayCheck over a no-op recorded after another writer moved the domain on', () => {
  it('re-checks it on the revision it names (not where the log stands), and names a record quoting a hash or revision the domain never had', async () => {
    const store = createMemoryEventStore();
    const ledger = await ledgerOn(store, [
      { verb: 'define', config: config('h1', 'db') },
      { verb: 'start', domain: 'db' },
      { verb: 'destroy', domain: 'db' }, // appended by another process between the no-op's decision and its record
    ]);
    await ledger.close();
    const facts: RecordedEvent[] = [];
    for await (const e of store.readStream(domainStream('h1', 'db'))) facts.push(e);
    let previous: string | undefined;
    const record = async (id: string, domainRevision: number, domainHash: unknown) => {
      // "the guest reported a block job ready that had nothing to report", decided while db ran (revision 1).
      const command = { verb: 'guest-event', host: 'h1', domain: 'db', event: 'blockjob-ready', disk: 'vda', meta: { commandId: id, actor: 'hypervisor', time: timeOf(9) } };
      const data = { command, domainRevision, domainHash };
      previous = factHash(previous, 'CommandAccepted', data, command);
      const revision = await store.streamRevision('noops-h1');
      return store.append(
        'noops-h1',
        [{ type: 'CommandAccepted', data, metadata: { commandId: id, actor: 'hypervisor', time: timeOf(9), host: 'h1', domain: 'db', command, hash: previous } }],
        { expectedRevision: revision },
      );
    };
    await record('late', 1, facts[1]!.metadata.hash);
    // Checked on revision 1 (running): accepted; on the state the log has reached (shut off) ACT-REQ would refuse it.
    expect(await replayCheck(store, { anchor: false })).toMatchObject({ ok: true, noops: 1, violations: [], tampered: [] });

    const wrongHash = await record('wrong-hash', 1, facts[0]!.metadata.hash);
    const noSuchRevision = await record('no-such-revision', 7, 'f'.repeat(64));
    const summary = await replayCheck(store, { anchor: false });
    expect(summary.tampered).toEqual([
      expect.objectContaining({ stream: 'noops-h1', position: wrongHash.position, problem: 'unchained' }),
      expect.objectContaining({ stream: 'noops-h1', position: noSuchRevision.position, problem: 'unchained' }),
    ]);
    expect(summary.tampered[1]!.detail).toContain('revision 7 of domain-h1-db, which the log does not hold');
  });
});

describe('whatIf over a migration that failed at Prepare', () => {
  it('without the rule that failed Prepare (DEF-NAME on the destination), lists that phase as a direct change and nothing after it', async () => {
    const store = createMemoryEventStore();
    const ledger = createLedger(store);
    let n = 0;
    const run = (c: Record<string, unknown>) => ledger.execute({ ...c, meta: { commandId: `w${++n}`, actor: 'test', time: timeOf(n) } } as CommandInput);
    await run({ verb: 'define', host: 'h1', config: config('h1', 'web') });
    await run({ verb: 'start', host: 'h1', domain: 'web' });
    await run({ verb: 'define', host: 'h2', config: config('h2', 'web') }); // the name exists there with another UUID
    const migrate = await run({ verb: 'migrate', host: 'h1', domain: 'web', desthost: 'h2' });
    expect(migrate).toMatchObject({ ok: false, rule: 'DEF-NAME', code: 9 });
    await run({ verb: 'suspend', host: 'h1', domain: 'web' });
    await ledger.close();

    expect((await whatIf(store, { without: [] })).changes).toEqual([]);
    const report = await whatIf(store, { without: ['DEF-NAME'] });
    const failed = migrate.events.find((e) => e.type === 'MigrationFailed')!;
    expect(report.changes).toEqual([
      {
        position: failed.position,
        commandId: `${migrate.commandId}/prepare`,
        verb: 'migrate-phase',
        host: 'h1',
        domain: 'web',
        cause: 'rule',
        was: { outcome: 'refused', rule: 'DEF-NAME', message: migrate.message },
        wouldBe: { outcome: 'accepted' },
      },
    ]);
  });
});
