// The embedded ledger on a real SQLite file: accept/refuse/append, the audit trail of refusals, idempotency,
// racing writers, checkpoints (and broken ones), the host view across instances, and kill -9 safety of the CLI.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { evolve } from '../machines/evolve';
import { domainStream, initialDomainState, type DomainConfig } from '../machines/model';
import { createSimulatedDriver } from '../services/drivers/simulated';
import type { HypervisorDriver } from '../services/drivers/types';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { factFromEvent, verifyChain } from '../services/factHash';
import {
  CHECKPOINTS_COLLECTION,
  COMMAND_ACCEPTED,
  COMMAND_REFUSED,
  createLedger,
  noopStream,
  refusalStream,
  type LedgerOptions,
} from '../services/ledger';
import type { Ledger } from '../services/ledger-types';
import { parseDomainXml } from '../services/xml';
import { runVmledger, VMLEDGER_BIN as BIN, type CliRun } from './support/cli';

const EXAMPLES = fileURLToPath(new URL('./fixtures/libvirt-examples/', import.meta.url));
const TEST_XML = readFileSync(join(EXAMPLES, 'test.xml'), 'utf8');
const CONFIG: DomainConfig = parseDomainXml(TEST_XML);
const TIME = '2026-11-22T00:00:00.000Z';
const STREAM = domainStream('local', 'test');

let dir: string;
let file: string;
const opened: { store: EventStore; ledger: Ledger }[] = [];
let ids = 0;

function open(options: LedgerOptions = {}) {
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store, options);
  opened.push({ store, ledger });
  return { store, ledger };
}

/** A command with fresh metadata (or the given command id, to retry). */
function cmd(spec: Record<string, unknown>, commandId = `cmd-${++ids}`): CommandInput {
  return { ...spec, meta: { commandId, actor: 'test', time: TIME, ...((spec.meta as object) ?? {}) } } as CommandInput;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function runAll(ledger: Ledger, specs: Record<string, unknown>[]) {
  const outcomes = [];
  for (const s of specs) outcomes.push(await ledger.execute(cmd(s)));
  return outcomes;
}

/** The state from the stream's facts alone, from revision 0: what every load must equal. */
async function fullReplay(store: EventStore, stream = STREAM, name = 'test') {
  let state = initialDomainState('local', name);
  for await (const e of store.readStream(stream)) state = evolve(state, factFromEvent(e));
  return state;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-ledger-'));
  file = join(dir, 'ledger.sqlite');
});

afterEach(async () => {
  for (const { ledger, store } of opened.splice(0)) {
    await ledger.close();
    await store.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('accept, refuse, append', () => {
  it('appends the facts of an accepted command, hash-chained, with the command on the first fact', async () => {
    const { store, ledger } = open();
    const [defined, started, snap] = await runAll(ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
      { verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } },
    ]);
    expect(defined).toMatchObject({ ok: true, command: 'define', host: 'local', domain: 'test', revision: 0 });
    expect(started!.events.map((e) => e.type)).toEqual(['DomainStarted']);
    expect(snap).toMatchObject({ ok: true, revision: 2 });
    const events = await collect(store.readStream(STREAM));
    expect(events.map((e) => e.type)).toEqual(['DomainDefined', 'DomainStarted', 'SnapshotCreated']);
    expect(events[0]!.metadata).toMatchObject({ commandId: defined!.commandId, actor: 'test', time: TIME, host: 'local', domain: 'test' });
    expect((events[0]!.metadata.command as { verb: string }).verb).toBe('define');
    expect(verifyChain(events)).toBeUndefined();
    // The hash covers the recorded command: a forged one (still a command today's rules accept) breaks the chain.
    const forged = structuredClone(events);
    (forged[1]!.metadata.command as { forceBoot: boolean }).forceBoot = true;
    expect(verifyChain(forged)).toMatchObject({ stream: STREAM, revision: 1 });
    delete forged[1]!.metadata.command;
    expect(verifyChain(forged)).toMatchObject({ stream: STREAM, revision: 1 });
    // The outcome's events are the stored ones.
    expect(snap!.events[0]).toMatchObject({ stream: STREAM, revision: 2, position: events[2]!.position, type: 'SnapshotCreated' });
  });

  it('a refused command appends nothing to the domain stream and one CommandRefused to refusals-<host>', async () => {
    const { store, ledger } = open();
    await runAll(ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
      { verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } },
      { verb: 'destroy', domain: 'test' },
    ]);
    const before = await store.streamRevision(STREAM);
    const refused = await ledger.execute(cmd({ verb: 'undefine', domain: 'test' }));
    expect(refused).toMatchObject({
      ok: false,
      rule: 'UND-SNAPSHOTS',
      code: 55,
      codeName: 'VIR_ERR_OPERATION_INVALID',
      message: 'Requested operation is not valid: cannot delete inactive domain with 1 snapshots',
      events: [],
      revision: before,
    });
    expect(await store.streamRevision(STREAM)).toBe(before);
    const audit = await collect(store.readStream(refusalStream('local')));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ type: COMMAND_REFUSED, data: { rule: 'UND-SNAPSHOTS', code: 55, codeName: 'VIR_ERR_OPERATION_INVALID' } });
    expect((audit[0]!.data as { command: { verb: string } }).command.verb).toBe('undefine');
    expect(refused.audit).toEqual({ stream: 'refusals-local', revision: 0, position: audit[0]!.position });
    expect(verifyChain(audit)).toBeUndefined();
    // With the flag it goes through and the domain is gone.
    const ok = await ledger.execute(cmd({ verb: 'undefine', domain: 'test', snapshotsMetadata: true }));
    expect(ok.ok).toBe(true);
    expect(await ledger.listDomains()).toEqual([]);
  });

  it('input that does not parse is refused with VALIDATION, naming the field', async () => {
    const { ledger } = open();
    const { uuid: _uuid, ...noUuid } = CONFIG;
    const outcome = await ledger.execute(cmd({ verb: 'define', config: noUuid }));
    expect(outcome).toMatchObject({
      ok: false,
      rule: 'VALIDATION',
      code: 8,
      codeName: 'VIR_ERR_INVALID_ARG',
      message: 'invalid command: config.uuid: Required',
    });
    const bad = await ledger.execute({ verb: 'snapshot-revert', domain: 'test', meta: { commandId: 'x', time: 'yesterday' } });
    expect(bad.message).toMatch(/^invalid command: /);
    expect(bad.message).toContain('snapshotname: Required');
    expect(bad.message).toContain('meta.time: ');
  });

  it("meta.expectedRevision must be the stream's revision (CONCURRENCY, code 9)", async () => {
    const { ledger } = open();
    await runAll(ledger, [{ verb: 'define', config: CONFIG }]);
    const stale = await ledger.execute(cmd({ verb: 'start', domain: 'test', meta: { expectedRevision: 5 } }));
    expect(stale).toMatchObject({
      ok: false,
      rule: 'CONCURRENCY',
      code: 9,
      codeName: 'VIR_ERR_OPERATION_FAILED',
      message: 'operation failed: domain test changed: expected revision 5, actual 0',
    });
    const fresh = await ledger.execute(cmd({ verb: 'start', domain: 'test', meta: { expectedRevision: 0 } }));
    expect(fresh).toMatchObject({ ok: true, revision: 1 });
  });
});

describe.each(['all', 'unrecorded'] as const)('idempotency (outcomeDocs: %s)', (outcomeDocs) => {
  it('a retried command gets the first outcome again and appends nothing', async () => {
    const { store, ledger } = open({ outcomeDocs });
    await runAll(ledger, [{ verb: 'define', config: CONFIG }]);
    const first = await ledger.execute(cmd({ verb: 'start', domain: 'test' }, 'start-1'));
    const head = await store.headPosition();
    const again = await ledger.execute(cmd({ verb: 'start', domain: 'test' }, 'start-1'));
    expect(again).toEqual({ ...first, duplicate: true });
    expect(await store.headPosition()).toBe(head);
  });

  it('an accepted no-op (nothing appended) is remembered too', async () => {
    const { store, ledger } = open({ outcomeDocs });
    await runAll(ledger, [{ verb: 'define', config: CONFIG }]);
    const first = await ledger.execute(cmd({ verb: 'managedsave-remove', domain: 'test' }, 'noop-1'));
    expect(first).toMatchObject({ ok: true, events: [] });
    await runAll(ledger, [{ verb: 'start', domain: 'test' }, { verb: 'managedsave', domain: 'test' }]);
    const again = await ledger.execute(cmd({ verb: 'managedsave-remove', domain: 'test' }, 'noop-1'));
    expect(again).toEqual({ ...first, duplicate: true });
    expect((await ledger.loadDomain('local', 'test')).state.hasManagedSave).toBe(true);
    void store;
  });

  it('accepted no-ops leave the domain stream alone and one CommandAccepted each in noops-<host>, rebuilt after losing their docs', async () => {
    const a = open({ outcomeDocs });
    await runAll(a.ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
      { verb: 'suspend', domain: 'test' },
    ]);
    const domainBefore = await collect(a.store.readStream(STREAM));
    const revision = domainBefore.length - 1;
    // suspend of a paused domain, a guest event with nothing to report, managedsave-remove without an image.
    const noops = [
      await a.ledger.execute(cmd({ verb: 'suspend', domain: 'test' }, 'noop-suspend')),
      await a.ledger.execute(cmd({ verb: 'guest-event', domain: 'test', event: 'blockjob-ready', disk: 'vda' }, 'noop-report')),
      await a.ledger.execute(cmd({ verb: 'managedsave-remove', domain: 'test' }, 'noop-msr')),
    ];
    noops.forEach((o, i) =>
      expect(o).toMatchObject({ ok: true, events: [], revision, audit: { stream: noopStream('local'), revision: i } }),
    );
    expect(await collect(a.store.readStream(STREAM))).toEqual(domainBefore); // the domain did not move, not even its revision
    const records = await collect(a.store.readStream(noopStream('local')));
    expect(records.map((r) => [r.type, r.position, r.metadata.commandId])).toEqual(noops.map((o) => [COMMAND_ACCEPTED, o.audit!.position, o.commandId]));
    expect(records[0]!.data).toEqual({
      command: records[0]!.metadata.command,
      domainRevision: revision,
      domainHash: domainBefore.at(-1)!.metadata.hash,
    });
    expect((records[0]!.data as { command: { verb: string } }).command.verb).toBe('suspend');
    expect(verifyChain(records)).toBeUndefined();

    await a.ledger.close();
    await a.store.close();
    opened.splice(0);
    const db = new Database(file);
    db.prepare("DELETE FROM docs WHERE collection = 'outcomes'").run();
    db.close();
    // Another process, after a crash that lost the outcome docs: the same answers, nothing recorded twice.
    const b = open({ outcomeDocs });
    expect(await b.ledger.execute(cmd({ verb: 'suspend', domain: 'test' }, 'noop-suspend'))).toEqual({ ...noops[0], duplicate: true });
    expect(await b.ledger.execute(cmd({ verb: 'managedsave-remove', domain: 'test' }, 'noop-msr'))).toEqual({ ...noops[2], duplicate: true });
    expect(await collect(b.store.readStream(noopStream('local')))).toHaveLength(3);
  });

  it('a retried refused command is refused the same way, recorded once', async () => {
    const { store, ledger } = open({ outcomeDocs });
    const first = await ledger.execute(cmd({ verb: 'start', domain: 'nosuch' }, 'r-1'));
    expect(first).toMatchObject({ ok: false, rule: 'DOM-NOTFOUND', code: 42 });
    const again = await ledger.execute(cmd({ verb: 'start', domain: 'nosuch' }, 'r-1'));
    expect(again).toEqual({ ...first, duplicate: true });
    expect(await collect(store.readStream(refusalStream('local')))).toHaveLength(1);
  });

  it('survives losing the outcome doc: the outcome is rebuilt from the stored facts (another process, after a crash)', async () => {
    const a = open({ outcomeDocs });
    await runAll(a.ledger, [{ verb: 'define', config: CONFIG }]);
    const first = await a.ledger.execute(cmd({ verb: 'start', domain: 'test' }, 'lost-doc'));
    const refused = await a.ledger.execute(cmd({ verb: 'start', domain: 'test' }, 'lost-doc-2'));
    await a.ledger.close();
    await a.store.close();
    opened.splice(0);
    // Simulate a crash between the append and the outcome doc.
    const db = new Database(file);
    db.prepare("DELETE FROM docs WHERE collection = 'outcomes'").run();
    db.close();
    const b = open({ outcomeDocs });
    const again = await b.ledger.execute(cmd({ verb: 'start', domain: 'test' }, 'lost-doc'));
    expect(again).toMatchObject({ ok: true, duplicate: true, command: 'start', domain: 'test', revision: first.revision });
    expect(again.events.map((e) => e.position)).toEqual(first.events.map((e) => e.position));
    const again2 = await b.ledger.execute(cmd({ verb: 'start', domain: 'test' }, 'lost-doc-2'));
    expect(again2).toEqual({ ...refused, duplicate: true });
  });
});

/** A driver that waits before reporting, so that racing writers decide on the same revision. */
function slowDriver(ms: number): HypervisorDriver {
  return {
    name: 'slow',
    perform: async (_s, _c, decided) => {
      await new Promise((r) => setTimeout(r, ms));
      return { facts: decided };
    },
  };
}

describe('racing writers on one file', () => {
  it('two ledgers racing `snapshot-create s1` never both win; the loser is re-decided and refused', async () => {
    const a = open({ driver: slowDriver(30) });
    await runAll(a.ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
    ]);
    const b = open({ driver: slowDriver(30) });
    const [ra, rb] = await Promise.all([
      a.ledger.execute(cmd({ verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } })),
      b.ledger.execute(cmd({ verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } })),
    ]);
    const outcomes = [ra, rb];
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect(outcomes.find((o) => !o.ok)).toMatchObject({ rule: 'SC-EXISTS', code: 9, message: 'operation failed: domain moment s1 already exists' });
    const events = await collect(a.store.readStream(STREAM));
    expect(events.filter((e) => e.type === 'SnapshotCreated')).toHaveLength(1);
    expect(verifyChain(events)).toBeUndefined();
    // And the rule that depends on it still holds, from either ledger.
    await a.ledger.execute(cmd({ verb: 'destroy', domain: 'test' }));
    const undefine = await b.ledger.execute(cmd({ verb: 'undefine', domain: 'test' }));
    expect(undefine).toMatchObject({ ok: false, rule: 'UND-SNAPSHOTS', message: expect.stringContaining('with 1 snapshots') });
  });

  it('a racing undefine and snapshot-create: the undefine cannot slip past UND-SNAPSHOTS', async () => {
    const a = open({ driver: slowDriver(20) });
    await runAll(a.ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
      { verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } },
      { verb: 'snapshot-delete', domain: 'test', snapshotname: 's1' },
      { verb: 'destroy', domain: 'test' },
    ]);
    const b = open({ driver: slowDriver(20) });
    const [snap, undef] = await Promise.all([
      a.ledger.execute(cmd({ verb: 'snapshot-create', domain: 'test', snapshot: { name: 's2' } })),
      b.ledger.execute(cmd({ verb: 'undefine', domain: 'test' })),
    ]);
    // Either order is fine, but never "snapshot taken and domain undefined without --snapshots-metadata".
    const state = await fullReplay(a.store);
    if (undef.ok) {
      expect(snap.ok).toBe(false);
      expect(state.life).toBe('gone');
    } else {
      expect(snap.ok).toBe(true);
      expect(undef.rule).toBe('UND-SNAPSHOTS');
      expect(Object.keys(state.snapshots)).toEqual(['s2']);
    }
  });

  it('many interleaved commands from two ledgers keep one consistent, unbroken chain', async () => {
    const a = open();
    await runAll(a.ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
    ]);
    const b = open();
    const work = (l: Ledger, n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => l.execute(cmd({ verb: i % 2 ? 'resume' : 'suspend', domain: 'test' }))),
      );
    const results = (await Promise.all([work(a.ledger, 20), work(b.ledger, 20)])).flat();
    const events = await collect(a.store.readStream(STREAM));
    expect(verifyChain(events)).toBeUndefined();
    expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => i));
    // Every accepted command's facts are in the stream, and every refusal is a rule (ACT-REQ), never a lost write.
    const accepted = results.filter((r) => r.ok).flatMap((r) => r.events.map((e) => e.position));
    expect(new Set(accepted).size).toBe(accepted.length);
    for (const p of accepted) expect(events.some((e) => e.position === p)).toBe(true);
    for (const r of results.filter((x) => !x.ok)) expect(r.rule).toBe('ACT-REQ');
    const fromA = await a.ledger.loadDomain('local', 'test');
    const fromB = await b.ledger.loadDomain('local', 'test');
    expect(fromA).toEqual(fromB);
    expect(fromA.state).toEqual(await fullReplay(a.store));
  });

  it("a ledger decides on the store's state, not on a head it cached before another writer moved the domain on", async () => {
    const a = open();
    await runAll(a.ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
      { verb: 'destroy', domain: 'test' },
    ]); // a has the domain cached as shut off
    const b = open();
    expect((await b.ledger.execute(cmd({ verb: 'start', domain: 'test' }))).ok).toBe(true);
    // From a's cache this is a refusal (not running); from the store it is accepted.
    const suspend = await a.ledger.execute(cmd({ verb: 'suspend', domain: 'test' }));
    expect(suspend).toMatchObject({ ok: true, revision: 4 });
    // And the other way round: accepted from a's cache (running), refused from the store (b destroyed it).
    expect((await b.ledger.execute(cmd({ verb: 'destroy', domain: 'test' }))).ok).toBe(true);
    const resume = await a.ledger.execute(cmd({ verb: 'resume', domain: 'test' }));
    expect(resume).toMatchObject({ ok: false, rule: 'ACT-REQ' });
    const events = await collect(a.store.readStream(STREAM));
    expect(events.map((e) => e.type)).toEqual(['DomainDefined', 'DomainStarted', 'DomainStopped', 'DomainStarted', 'DomainSuspended', 'DomainStopped']);
    expect(verifyChain(events)).toBeUndefined();
    expect((await a.ledger.loadDomain('local', 'test')).state).toEqual(await fullReplay(a.store));
  });

  it('the host view follows other writers: a UUID defined by one ledger is seen by the other (DEF-NAME)', async () => {
    const a = open();
    const b = open();
    await b.ledger.listDomains(); // b has built its index before a defines anything
    expect((await a.ledger.execute(cmd({ verb: 'define', config: CONFIG }))).ok).toBe(true);
    const clash = await b.ledger.execute(cmd({ verb: 'define', config: { ...CONFIG, name: 'other' } }));
    expect(clash).toMatchObject({ ok: false, rule: 'DEF-NAME', message: `operation failed: domain 'test' is already defined with uuid ${CONFIG.uuid}` });
    expect((await b.ledger.listDomains()).map((s) => s.name)).toEqual(['test']);
  });
});

describe('hypervisor reports (driver.pendingReports)', () => {
  const copyConfig = { name: 'vm', uuid: 'uuid-vm', disks: [{ target: 'vda', source: '/data/vda.qcow2' }] };

  it('the ledger runs them after an accepted command: a block copy is ready without the caller, once, however often retried', async () => {
    const store = openSqliteEventStore(file);
    const driver = createSimulatedDriver({ store });
    const ledger = createLedger(store, { driver });
    opened.push({ store, ledger });
    await ledger.execute(cmd({ verb: 'create', config: copyConfig }));
    const copy = await ledger.execute(cmd({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2' }, 'copy-1'));
    expect(copy.ok).toBe(true);
    expect(copy.events.map((e) => e.type)).toEqual(['BlockJobStarted']); // the command's own outcome: its own facts only
    expect((await ledger.loadDomain('local', 'vm')).state.blockJobs.vda?.phase).toBe('ready');
    const stream = domainStream('local', 'vm');
    const ready = (await collect(store.readStream(stream))).filter((e) => e.type === 'BlockJobReady');
    expect(ready).toHaveLength(1);
    expect(ready[0]!.metadata).toMatchObject({ actor: 'hypervisor', commandId: `hv/ready-${stream}-vda-${copy.events[0]!.position}` });
    // A retry (here, or in another process) appends no second report.
    expect(await ledger.execute(cmd({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2' }, 'copy-1'))).toMatchObject({ duplicate: true });
    const otherStore = openSqliteEventStore(file);
    const other = createLedger(otherStore, { driver: createSimulatedDriver({ store: otherStore }) });
    opened.push({ store: otherStore, ledger: other });
    await other.execute(cmd({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2' }, 'copy-1'));
    expect((await collect(store.readStream(stream))).filter((e) => e.type === 'BlockJobReady')).toHaveLength(1);
  });

  it('under mirror-never-ready nothing is reported; a driver whose reports fail does not fail the command', async () => {
    const store = openSqliteEventStore(file);
    const ledger = createLedger(store, { driver: createSimulatedDriver({ store, faults: { mirrorNeverReady: true } }) });
    opened.push({ store, ledger });
    await ledger.execute(cmd({ verb: 'create', config: copyConfig }));
    expect((await ledger.execute(cmd({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2' }))).ok).toBe(true);
    expect((await ledger.loadDomain('local', 'vm')).state.blockJobs.vda?.phase).toBe('copying');

    const discarded: string[] = [];
    const failing: HypervisorDriver = {
      name: 'failing-reports',
      perform: async (_s, _c, facts) => ({ facts }),
      pendingReports: async () => {
        throw new Error('hypervisor connection lost');
      },
    };
    const b = open({ driver: failing, onDiscard: (what, key, reason) => discarded.push(`${what} ${key}: ${reason}`) });
    expect(await b.ledger.execute(cmd({ verb: 'reboot', domain: 'vm' }))).toMatchObject({ ok: true });
    expect(discarded).toEqual(['report local/vm: hypervisor connection lost']);
  });
});

describe('checkpoints', () => {
  /** A store that records where readStream started, to see whether a load used a checkpoint. */
  function spying(store: EventStore) {
    const reads: { stream: string; from: number }[] = [];
    const proxy: EventStore = Object.create(store);
    proxy.readStream = (stream: string, from = 0) => {
      reads.push({ stream, from });
      return store.readStream(stream, from);
    };
    return { proxy, reads };
  }

  async function busyDomain(pairs: number, checkpointEvery = 100) {
    const { store, ledger } = open({ checkpointEvery });
    await runAll(ledger, [
      { verb: 'define', config: CONFIG },
      { verb: 'start', domain: 'test' },
      { verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } },
    ]);
    for (let i = 0; i < pairs; i++) {
      await ledger.execute(cmd({ verb: 'suspend', domain: 'test' }));
      await ledger.execute(cmd({ verb: 'resume', domain: 'test' }));
    }
    return { store, ledger };
  }

  it('a cold load reads the checkpoint and the facts after it, and equals a full replay', async () => {
    const { store } = await busyDomain(130); // 263 facts: checkpoints at revisions 99 and 199
    const cp = (await store.getDoc(CHECKPOINTS_COLLECTION, STREAM)) as { revision: number };
    expect(cp.revision).toBe(199); // -1 → 99 → 199: one every 100 facts
    const { proxy, reads } = spying(openSqliteEventStore(file));
    opened.push({ store: proxy, ledger: createLedger(proxy) });
    const cold = opened.at(-1)!.ledger;
    const loaded = await cold.loadDomain('local', 'test');
    expect(loaded.revision).toBe(262);
    expect(loaded.state).toEqual(await fullReplay(store));
    expect(reads.filter((r) => r.stream === STREAM).map((r) => r.from)).toEqual([cp.revision]);
  });

  it.each([
    ['garbage', () => 'not a checkpoint'],
    ['an edited state', (doc: Record<string, unknown>) => ({ ...doc, state: { ...(doc.state as object), persistent: false } })],
    ['a hash from another history', (doc: Record<string, unknown>) => ({ ...doc, hash: 'f'.repeat(64) })],
    ['a revision beyond the stream', (doc: Record<string, unknown>) => ({ ...doc, revision: 10_000 })],
    ['a state that does not validate', (doc: Record<string, unknown>) => ({ ...doc, state: { life: 'maybe' } })],
  ])('a corrupted checkpoint (%s) is ignored and rebuilt', async (_what, corrupt) => {
    const { store } = await busyDomain(60);
    const doc = (await store.getDoc(CHECKPOINTS_COLLECTION, STREAM)) as Record<string, unknown>;
    expect(doc).toBeDefined();
    await store.putDoc(CHECKPOINTS_COLLECTION, STREAM, corrupt(doc));
    const discarded: string[] = [];
    const fresh = open({ onDiscard: (what) => discarded.push(what) });
    const loaded = await fresh.ledger.loadDomain('local', 'test');
    expect(loaded.state).toEqual(await fullReplay(store));
    expect(discarded).toContain('checkpoint');
    // The rebuilt state was checkpointed again (the tail was long), and a new ledger loads it cleanly.
    const rebuilt = checkpointRevision(await store.getDoc(CHECKPOINTS_COLLECTION, STREAM));
    expect(rebuilt).toBe(loaded.revision);
    const again: string[] = [];
    const third = open({ onDiscard: (what) => again.push(what) });
    expect((await third.ledger.loadDomain('local', 'test')).state).toEqual(loaded.state);
    expect(again).toEqual([]);
    // Commands still go through on the rebuilt state.
    expect((await third.ledger.execute(cmd({ verb: 'suspend', domain: 'test' }))).ok).toBe(true);
  });

  it('the host index doc is disposable too', async () => {
    const { store, ledger } = open();
    await runAll(ledger, [{ verb: 'define', config: CONFIG }]);
    await ledger.close();
    await store.putDoc('indexes', 'host-view', { version: 1, position: 'x' });
    const discarded: string[] = [];
    const fresh = open({ onDiscard: (what) => discarded.push(what) });
    expect((await fresh.ledger.listDomains()).map((s) => s.name)).toEqual(['test']);
    expect(discarded).toEqual(['index']);
  });
});

function checkpointRevision(doc: unknown): number | undefined {
  return (doc as { revision?: number } | undefined)?.revision;
}

// ---------------------------------------------------------------------------------------------------
// The CLI as a child process

function runCli(args: string[], input?: string): Promise<CliRun> {
  return runVmledger(args, dir, input);
}

describe('the CLI on a store file', () => {
  it('kill -9 between commands: every acknowledged command is in the store', async () => {
    writeFileSync(join(dir, 'test.xml'), TEST_XML);
    const child = spawn(process.execPath, [BIN, 'shell', '--store', `sqlite:${file}`], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let waiting: { text: string; resolve: () => void } | undefined;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (waiting && stdout.includes(waiting.text)) waiting.resolve();
    });
    const ack = (text: string) =>
      new Promise<void>((res, rej) => {
        if (stdout.includes(text)) return res();
        const timer = setTimeout(() => rej(new Error(`no '${text}' in: ${stdout}`)), 20_000);
        waiting = { text, resolve: () => (clearTimeout(timer), res()) };
      });
    child.stdin.write('define test.xml\n');
    await ack("Domain 'test' defined from test.xml");
    child.stdin.write('start test\n');
    await ack("Domain 'test' started");
    const acknowledged: string[] = [];
    for (let i = 1; i <= 12; i++) {
      child.stdin.write(`snapshot-create-as test s${i}\n`);
      await ack(`Domain snapshot s${i} created`);
      acknowledged.push(`s${i}`);
    }
    // One more command in flight, then the process dies without any chance to clean up.
    child.stdin.write('snapshot-create-as test s13\n');
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));

    const { ledger } = open();
    const { state } = await ledger.loadDomain('local', 'test');
    for (const name of acknowledged) expect(state.snapshots[name]).toBeDefined();
    expect(state.active).toBe(true);
    const events = await collect(opened.at(-1)!.store.readStream(STREAM));
    expect(verifyChain(events)).toBeUndefined();
    // The reopened store accepts commands again.
    expect((await ledger.execute(cmd({ verb: 'snapshot-create', domain: 'test', snapshot: { name: 'after' } }))).ok).toBe(true);
  });

  it.each([
    [
      'a foreign SQLite database',
      (path: string) => {
        const db = new Database(path);
        db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers (name) VALUES ('ada');");
        db.close();
      },
      /^error: '.*' is not a vmledger store: it is a SQLite database with other tables \(customers\); the file was left as it is\n$/,
    ],
    ['a text file', (path: string) => writeFileSync(path, 'hello, I am not a database\n'), /^error: '.*' is not a vmledger store: it is not a SQLite database/],
  ])('%s as --store: one clear error line, exit 1, the file byte-identical', async (_what, make, expected) => {
    const path = join(dir, 'other.db');
    make(path);
    const before = readFileSync(path);
    const r = await runCli(['--store', `sqlite:${path}`, 'list', '--all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(expected);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stdout).toBe('');
    expect(readFileSync(path).equals(before)).toBe(true);
    const viaShell = await runCli(['shell', '--store', `sqlite:${path}`, '-e', 'list; list']);
    expect(viaShell.code).toBe(1);
    expect(viaShell.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('a malformed store spec: one error line, exit 1, no stack trace', async () => {
    for (const spec of ['bogus', 'sqlite:', 'sqlite://x', `sqlite:${join(dir, 'no/such/dir/x.sqlite')}`]) {
      const r = await runCli(['--store', spec, 'list']);
      expect(r.code, spec).toBe(1);
      expect(r.stderr, spec).toMatch(/^error: /);
      expect(r.stderr.trim().split('\n'), spec).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

});
