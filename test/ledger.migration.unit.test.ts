// The migration saga (services/migration.ts) through the ledger: both streams, failures at each phase, the
// destination's Prepare check, and resuming a saga that was interrupted half way.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { domainStream, type DomainConfig } from '../machines/model';
import { createMemoryEventStore } from '../services/eventstore/memory';
import type { EventStore, RecordedEvent } from '../services/eventstore/types';
import { verifyChain } from '../services/factHash';
import { createLedger, type LedgerOptions } from '../services/ledger';
import type { MigrationAwareDriver } from '../services/migration';
import { parseDomainXml } from '../services/xml';
import { auditEntries, auditGroups } from '../projections/queries';

const CONFIG: DomainConfig = parseDomainXml(readFileSync(new URL('./fixtures/libvirt-examples/test.xml', import.meta.url), 'utf8'));
const SRC = domainStream('local', 'test');
const DST = domainStream('dst', 'test');
let ids = 0;

function cmd(spec: Record<string, unknown>, commandId = `m-${++ids}`): CommandInput {
  return { ...spec, meta: { commandId, actor: 'test', time: '2026-11-22T00:00:00Z' } } as CommandInput;
}

async function collect(it: AsyncIterable<RecordedEvent>) {
  const out: RecordedEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

async function running(options: LedgerOptions = {}, store: EventStore = createMemoryEventStore()) {
  const ledger = createLedger(store, options);
  for (const spec of [{ verb: 'define', config: CONFIG }, { verb: 'start', domain: 'test' }]) {
    expect((await ledger.execute(cmd(spec))).ok).toBe(true);
  }
  return { store, ledger };
}

describe('migrate: the saga over two streams', () => {
  it('moves a running domain: Begin, Prepare, Perform, Finish (destination), Confirm', async () => {
    const { store, ledger } = await running();
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst', persistent: true }));
    expect(outcome).toMatchObject({ ok: true, command: 'migrate', host: 'local', domain: 'test', destination: { host: 'dst', revision: 0 } });
    expect(outcome.events.map((e) => `${e.stream}:${e.type}`)).toEqual([
      `${SRC}:MigrationStarted`,
      `${SRC}:MigrationPhaseReached`,
      `${SRC}:MigrationPhaseReached`,
      `${DST}:DomainMigratedIn`,
      `${SRC}:MigrationPhaseReached`,
      `${SRC}:MigrationPhaseReached`,
      `${SRC}:DomainMigratedOut`,
    ]);
    const src = await ledger.loadDomain('local', 'test');
    const dst = await ledger.loadDomain('dst', 'test');
    expect(src.state).toMatchObject({ life: 'exists', active: false, persistent: true, migration: null, reason: 'migrated' });
    expect(dst.state).toMatchObject({ life: 'exists', active: true, persistent: true, uuid: CONFIG.uuid });
    expect(verifyChain(await collect(store.readStream(SRC)))).toBeUndefined();
    expect(verifyChain(await collect(store.readStream(DST)))).toBeUndefined();
    // The steps carry their own command ids and the migrate command's id as correlation.
    const dstFacts = await collect(store.readStream(DST));
    expect(dstFacts[0]!.metadata).toMatchObject({ commandId: `${outcome.commandId}/incoming`, correlationId: outcome.commandId });
    // Idempotent as a whole.
    const again = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }, outcome.commandId));
    expect(again).toEqual({ ...outcome, duplicate: true });
  });

  it('--undefinesource removes the source definition', async () => {
    const { ledger } = await running();
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst', undefinesource: true }));
    expect(outcome.ok).toBe(true);
    expect((await ledger.loadDomain('local', 'test')).state.life).toBe('gone');
    expect((await ledger.listDomains()).map((s) => `${s.host}/${s.name}`)).toEqual(['dst/test']);
  });

  it('a source-side refusal at Begin is an ordinary refusal: nothing appended', async () => {
    const { store, ledger } = await running();
    await ledger.execute(cmd({ verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } }));
    const before = await store.headPosition();
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }));
    expect(outcome).toMatchObject({ ok: false, rule: 'MIG-SNAPSHOTS', code: 55, events: [] });
    expect(await store.streamRevision(DST)).toBe('no-stream');
    expect(await store.headPosition()).toBe(before + 1); // the CommandRefused audit fact only
  });

  it('Prepare: a name clash on the destination fails the migration and the source returns to running', async () => {
    const { store, ledger } = await running();
    await ledger.execute({ ...cmd({ verb: 'define', config: { ...CONFIG, uuid: '11111111-2222-3333-4444-555555555555' } }), host: 'dst' });
    const dstBefore = await store.streamRevision(DST);
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }));
    expect(outcome).toMatchObject({
      ok: false,
      rule: 'DEF-NAME',
      code: 9,
      message: "operation failed: domain 'test' already exists with uuid 11111111-2222-3333-4444-555555555555",
    });
    expect(outcome.events.map((e) => e.type)).toEqual(['MigrationStarted', 'MigrationFailed']);
    expect(await store.streamRevision(DST)).toBe(dstBefore);
    expect((await ledger.loadDomain('local', 'test')).state).toMatchObject({ active: true, migration: null });
    // The rule and code that failed Prepare are on the fact, and so in the audit.
    expect(outcome.events[1]!.data).toEqual({
      phase: 'prepare',
      message: "operation failed: domain 'test' already exists with uuid 11111111-2222-3333-4444-555555555555",
      rule: 'DEF-NAME',
      code: 9,
    });
    const [prepare] = await auditEntries(store, { correlationId: outcome.commandId, outcome: 'accepted', since: { position: outcome.events[1]!.position } });
    expect(prepare).toMatchObject({ verb: 'migrate-phase', rule: 'DEF-NAME', code: 9, codeName: 'VIR_ERR_OPERATION_FAILED' });
  });

  it('a saga resumed after a recorded Prepare failure (its outcome doc lost) answers with the same refusal, appending nothing', async () => {
    const base = createMemoryEventStore();
    const { ledger } = await running({}, base);
    await ledger.execute({ ...cmd({ verb: 'define', config: { ...CONFIG, uuid: '11111111-2222-3333-4444-555555555555' } }), host: 'dst' });
    // A process that dies right after the failure was recorded, before the saga's own outcome doc.
    const dying: EventStore = Object.create(base);
    dying.putDoc = async (collection, key, value) => {
      if (collection === 'outcomes' && key === 'mig-f') throw new Error('process died');
      return base.putDoc(collection, key, value);
    };
    await expect(createLedger(dying).execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }, 'mig-f'))).rejects.toThrow('process died');
    const head = await base.headPosition();
    const again = await createLedger(base).execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }, 'mig-f'));
    expect(again).toMatchObject({ ok: false, rule: 'DEF-NAME', code: 9, codeName: 'VIR_ERR_OPERATION_FAILED' });
    expect(again.events.map((e) => e.type)).toEqual(['MigrationStarted', 'MigrationFailed']);
    expect(await base.headPosition()).toBe(head); // no Perform attempted on a domain the migration had let go
  });

  it('every fact of a saga carries one correlation id (the migrate command id, or the client’s), and the audit groups the steps', async () => {
    const { store, ledger } = await running();
    const own = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst', persistent: true }, 'mig-own'));
    expect(own.ok).toBe(true);
    expect(own.events.map((e) => e.metadata.correlationId)).toEqual(own.events.map(() => 'mig-own'));
    expect(own.events[0]!.metadata).toMatchObject({ commandId: 'mig-own', correlationId: 'mig-own' });

    const back = await ledger.execute({
      ...cmd({ verb: 'migrate', host: 'dst', domain: 'test', desthost: 'local', persistent: true }, 'mig-back'),
      meta: { commandId: 'mig-back', actor: 'ops', time: '2026-11-22T00:00:01Z', correlationId: 'ticket-42' },
    });
    expect(back.ok).toBe(true);
    expect(new Set(back.events.map((e) => e.metadata.correlationId))).toEqual(new Set(['ticket-42']));

    const groups = await auditGroups(store);
    const saga = groups.find((g) => g.id === 'mig-own')!;
    expect(saga).toMatchObject({ verb: 'migrate', commandId: 'mig-own', outcome: 'accepted', targets: ['local/test', 'dst/test'] });
    expect(saga.entries.map((e) => e.verb)).toEqual(['migrate', 'migrate-phase', 'migrate-phase', 'migrate-incoming', 'migrate-phase', 'migrate-phase']);
    expect(saga.entries.flatMap((e) => e.facts.map((f) => f.position))).toEqual(own.events.map((e) => e.position));
    expect(groups.find((g) => g.id === 'ticket-42')).toMatchObject({ verb: 'migrate', commandId: 'mig-back', targets: ['dst/test', 'local/test'] });
    // Asking for one domain's audit brings each of its migrations whole, the other host's steps included.
    const fromDst = await auditGroups(store, { host: 'dst', domain: 'test', since: { position: back.events[0]!.position } });
    expect(fromDst.map((g) => g.id)).toEqual(['ticket-42']);
    expect(fromDst[0]!.entries.some((e) => e.host === 'local')).toBe(true);
  });

  it('a failed migration groups as failed, with the rule and code of the phase that failed', async () => {
    const { store, ledger } = await running();
    await ledger.execute({ ...cmd({ verb: 'define', config: { ...CONFIG, uuid: '11111111-2222-3333-4444-555555555555' } }), host: 'dst' });
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }, 'mig-clash'));
    expect(outcome.ok).toBe(false);
    const [group] = await auditGroups(store, { correlationId: 'mig-clash' });
    expect(group).toMatchObject({ outcome: 'failed', rule: 'DEF-NAME', code: 9, codeName: 'VIR_ERR_OPERATION_FAILED', message: outcome.message });
    expect(group!.entries.map((e) => e.verb)).toEqual(['migrate', 'migrate-phase']);
  });

  it.each(['prepare', 'perform', 'finish'] as const)('failAt %s: recorded on the source, nothing on the destination', async (phase) => {
    const { store, ledger } = await running({ migration: { failAt: phase, failMessage: 'network down' } });
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }));
    expect(outcome).toMatchObject({
      ok: false,
      rule: 'MIG-PHASES',
      code: 9,
      message: `operation failed: migration failed at phase ${phase}: network down`,
    });
    const src = await collect(store.readStream(SRC));
    expect(src.at(-1)).toMatchObject({ type: 'MigrationFailed', data: { phase } });
    expect(await store.streamRevision(DST)).toBe('no-stream');
    const state = (await ledger.loadDomain('local', 'test')).state;
    expect(state).toMatchObject({ active: true, migration: null });
    // And it can migrate afterwards.
    const retry = createLedger(store);
    expect((await retry.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }))).ok).toBe(true);
  });

  it('a driver can fail a phase through migrationPhase()', async () => {
    const driver: MigrationAwareDriver = {
      name: 'flaky',
      perform: async (_s, _c, facts) => ({ facts }),
      migrationPhase: async (phase) => (phase === 'perform' ? 'qemu died' : undefined),
    };
    const { ledger } = await running({ driver });
    const outcome = await ledger.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }));
    expect(outcome).toMatchObject({ ok: false, message: 'operation failed: migration failed at phase perform: qemu died' });
  });

  it('an interrupted saga resumes when the same migrate command is sent again, each step exactly once', async () => {
    const base = createMemoryEventStore();
    await running({}, base);
    // A store that dies after the destination arrived (the 4th append of the saga), like a crashed process.
    let appends = 0;
    const dying: EventStore = Object.create(base);
    dying.append = async (stream, events, options) => {
      if (++appends === 4) {
        await base.append(stream, events, options);
        throw new Error('process died');
      }
      return base.append(stream, events, options);
    };
    const first = createLedger(dying);
    await expect(first.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }, 'mig-1'))).rejects.toThrow('process died');
    expect((await createLedger(base).loadDomain('local', 'test')).state.migration).toMatchObject({ phase: 'perform' });

    const second = createLedger(base);
    const outcome = await second.execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst' }, 'mig-1'));
    expect(outcome.ok).toBe(true);
    expect(outcome.events.map((e) => e.type)).toEqual([
      'MigrationStarted',
      'MigrationPhaseReached',
      'MigrationPhaseReached',
      'DomainMigratedIn',
      'MigrationPhaseReached',
      'MigrationPhaseReached',
      'DomainMigratedOut',
    ]);
    const all = await collect(base.readAll(0));
    expect(all.filter((e) => e.type === 'DomainMigratedIn')).toHaveLength(1);
    expect(all.filter((e) => e.type === 'MigrationStarted')).toHaveLength(1);
  });

  it('--live is kept with the job: a saga resumed by another process after Begin still performs live', async () => {
    const base = createMemoryEventStore();
    await running({}, base);
    // Dies right after Begin (the saga's first append), before Perform.
    const dying: EventStore = Object.create(base);
    dying.append = async (stream, events, options) => {
      await base.append(stream, events, options);
      throw new Error('process died');
    };
    await expect(createLedger(dying).execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst', live: true }, 'mig-live'))).rejects.toThrow('process died');
    expect((await createLedger(base).loadDomain('local', 'test')).state.migration).toMatchObject({ phase: 'begin', live: true });

    // What the driver performing the migration is told: the job's flags, from the log, not from the first process.
    const performedLive: unknown[] = [];
    const driver: MigrationAwareDriver = {
      name: 'recording',
      perform: async (state, command, facts) => {
        if (command.verb === 'migrate-phase' && command.phase === 'perform') performedLive.push(state.migration?.live);
        return { facts };
      },
    };
    const outcome = await createLedger(base, { driver }).execute(cmd({ verb: 'migrate', domain: 'test', desthost: 'dst', live: true }, 'mig-live'));
    expect(outcome.ok).toBe(true);
    expect(performedLive).toEqual([true]);
  });
});
