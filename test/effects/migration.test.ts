// Migration between two hosts of the ledger (docs/rules.md §7, seed 003): Begin/Prepare/Perform/Finish/Confirm as
// machine states (migration.phase), source checks at Begin and again at Perform, XML-only checks on the
// destination at Prepare, a failure injected at each phase returning the domain to where it was, and success
// moving it to the destination (--persistent / --undefinesource; a transient domain stays transient).
import { afterEach, describe, expect, test } from 'vitest';

import type { CommandOf } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import { initialDomainState, topState, type DomainConfig } from '../../machines/model';
import type { MigrationFaultPhase } from '../../services/drivers/faults';
import type { MigrationPort } from '../../services/migration';
import { replayCheck } from '../../services/replay';
import { disk, factsOf, rig, twoHostViolations, type Rig, type RigOptions } from './harness';

const UUID = 'uuid-vm';
const CONFIG: DomainConfig = { name: 'vm', uuid: UUID, disks: [disk('vda', '/shared/vm.qcow2')], hostdevs: [] };

let r: Rig;
afterEach(async () => {
  if (r) expect(await twoHostViolations(r.store)).toEqual([]);
  await r?.close();
});

async function runningOnLocal(options: RigOptions = {}, config: DomainConfig = CONFIG): Promise<Rig> {
  r = await rig(options);
  await r.ok({ verb: 'define', config });
  await r.ok({ verb: 'start', domain: 'vm' });
  return r;
}

const types = (facts: Fact[]) => facts.map((f) => f.type);

describe('success', () => {
  test('the phases in order on the source, the arrival on the destination between Perform and Finish', async () => {
    await runningOnLocal();
    const o = await r.ok({ verb: 'migrate', domain: 'vm', desthost: 'dst', persistent: true, undefinesource: true, live: true });
    expect(o.destination).toEqual({ host: 'dst', revision: 0 });
    expect(types(await r.facts('vm'))).toEqual([
      'DomainDefined',
      'DomainStarted',
      'MigrationStarted',
      'MigrationPhaseReached',
      'MigrationPhaseReached',
      'MigrationPhaseReached',
      'MigrationPhaseReached',
      'DomainMigratedOut',
    ]);
    expect((await r.facts('vm')).filter((f) => f.type === 'MigrationPhaseReached').map((f) => (f as { phase: string }).phase)).toEqual([
      'prepare',
      'perform',
      'finish',
      'confirm',
    ]);
    // Global order: the destination's arrival comes after Perform and before Finish.
    const order: string[] = [];
    for await (const e of r.store.readAll(0)) {
      if (e.type === 'MigrationPhaseReached') order.push((e.data as { phase: string }).phase);
      if (e.type === 'DomainMigratedIn') order.push(`arrived on ${e.stream}`);
    }
    expect(order).toEqual(['prepare', 'perform', 'arrived on domain-dst-vm', 'finish', 'confirm']);

    expect((await r.state('vm')).life).toBe('gone'); // --undefinesource
    const dst = await r.state('vm', 'dst');
    expect(dst).toMatchObject({ life: 'exists', active: true, persistent: true, uuid: UUID, migration: null });
    expect(await r.driver.activeHosts(UUID)).toEqual(['dst']);
  });

  test('--persistent without --undefinesource: persistent on both hosts, running on the destination only', async () => {
    await runningOnLocal();
    await r.ok({ verb: 'migrate', domain: 'vm', desthost: 'dst', persistent: true });
    expect(await r.state('vm')).toMatchObject({ life: 'exists', persistent: true, active: false, reason: 'migrated' });
    expect(await r.state('vm', 'dst')).toMatchObject({ persistent: true, active: true });
    // Starting the source copy as well would run the domain on two hosts: its lease is held on the destination.
    expect(await r.run({ verb: 'start', domain: 'vm' })).toMatchObject({
      ok: false,
      rule: 'DRV-LOCK',
      code: 55,
      message: "Requested operation is not valid: domain 'vm' is already active on host 'dst' (it holds the domain's lease)",
    });
    expect(await r.driver.activeHosts(UUID)).toEqual(['dst']);
  });

  test('another domain cannot open an image a running guest holds for writing (qemu image locking)', async () => {
    await runningOnLocal();
    const o = await r.run({ verb: 'create', host: 'dst', config: { ...CONFIG, name: 'intruder', uuid: 'uuid-intruder' } });
    expect(o).toMatchObject({
      ok: false,
      rule: 'DRV-LOCK',
      code: 1,
      message:
        'internal error: process exited while connecting to monitor: Failed to get "write" lock: Is another process using the image [/shared/vm.qcow2]? ' +
        "(domain 'vm' on host 'local' has it open)",
    });
  });

  test('without --persistent the domain arrives transient; the persistent source stays defined', async () => {
    await runningOnLocal();
    await r.ok({ verb: 'migrate', domain: 'vm', desthost: 'dst' });
    expect(await r.state('vm', 'dst')).toMatchObject({ persistent: false, active: true });
    expect(topState(await r.state('vm'))).toBe('inactive');
  });

  test('a transient domain stays transient and is gone from the source', async () => {
    r = await rig();
    await r.ok({ verb: 'create', config: CONFIG, paused: true });
    await r.ok({ verb: 'migrate', domain: 'vm', desthost: 'dst' });
    expect((await r.state('vm')).life).toBe('gone');
    expect(await r.state('vm', 'dst')).toMatchObject({ persistent: false, active: true, paused: true });
  });

  test('--offline moves the definition only', async () => {
    r = await rig();
    await r.ok({ verb: 'define', config: CONFIG });
    await r.ok({ verb: 'migrate', domain: 'vm', desthost: 'dst', offline: true, persistent: true, undefinesource: true });
    expect((await r.state('vm')).life).toBe('gone');
    expect(await r.state('vm', 'dst')).toMatchObject({ persistent: true, active: false });
  });
});

describe('a failure injected at each phase returns the domain to where it was', () => {
  const phases: MigrationFaultPhase[] = ['prepare', 'perform', 'finish', 'confirm'];
  for (const phase of phases) {
    for (const persistent of [false, true]) {
      test(`migrate-fail:${phase}${persistent ? ' with --persistent' : ''}`, async () => {
        await runningOnLocal({ faults: { migrateFail: [phase] } });
        await r.ok({ verb: 'suspend', domain: 'vm' });
        const before = await r.state('vm');
        const o = await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst', persistent, undefinesource: persistent });
        expect(o).toMatchObject({
          ok: false,
          rule: 'MIG-PHASES',
          code: 9,
          message: `operation failed: migration failed at phase ${phase}: injected fault migrate-fail:${phase}`,
        });
        const failedFact = (await r.facts('vm')).at(-1);
        expect(failedFact).toMatchObject({ type: 'MigrationFailed', phase });
        // The source is exactly as before: persistent, active, paused, no job.
        expect(await r.state('vm')).toEqual(before);
        expect(topState(await r.state('vm'))).toBe('running');
        // The destination holds nothing (a Confirm failure undid the arrival: destroyed, and undefined if the
        // arrival had defined it).
        const dst = await r.state('vm', 'dst');
        expect(dst.life === 'exists').toBe(false);
        if (phase === 'confirm') {
          expect(types(await r.facts('vm', 'dst'))).toEqual(
            persistent
              ? ['DomainMigratedIn', 'DomainStopped', 'DomainUndefined']
              : ['DomainMigratedIn', 'DomainStopped', 'TransientDomainRemoved'],
          );
        } else {
          expect(await r.facts('vm', 'dst')).toEqual([]);
        }
        expect(await r.driver.activeHosts(UUID)).toEqual(['local']);
        expect((await replayCheck(r.store)).ok).toBe(true);
        // …and it can migrate again once the fault is gone (a new run over the same log).
        const healthy = await rig({ store: r.store });
        await healthy.ok({ verb: 'migrate', domain: 'vm', desthost: 'dst', persistent: true, undefinesource: true });
        expect(await healthy.state('vm', 'dst')).toMatchObject({ life: 'exists', active: true, paused: true });
        await healthy.close();
      });
    }
  }
});

describe('checks', () => {
  test('at Begin, on the source: snapshots, autodestroy, host devices, an inactive domain', async () => {
    await runningOnLocal();
    await r.ok({ verb: 'snapshot-create', domain: 'vm', snapshot: { name: 's1' } });
    expect(await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' })).toMatchObject({
      ok: false,
      rule: 'MIG-SNAPSHOTS',
      code: 55,
      message: 'Requested operation is not valid: cannot migrate domain with 1 snapshots',
    });
    await r.close();

    r = await rig();
    await r.ok({ verb: 'create', config: CONFIG, autodestroy: true });
    expect(await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' })).toMatchObject({
      rule: 'MIG-AUTODESTROY',
      message: 'Requested operation is not valid: domain is marked for auto destroy',
    });
    await r.close();

    await runningOnLocal({}, { ...CONFIG, hostdevs: [{ mode: 'subsystem', type: 'pci' }] });
    expect(await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' })).toMatchObject({
      rule: 'MIG-HOSTDEV',
      code: 84,
      message: "Operation not supported: cannot migrate a domain with <hostdev mode='subsystem' type='pci'>",
    });
    await r.ok({ verb: 'destroy', domain: 'vm' });
    expect(await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' })).toMatchObject({ rule: 'MIG-ACTIVE', code: 55 });
    expect(await r.facts('vm', 'dst')).toEqual([]);
  });

  test('again at Perform: an older source that did not check at Begin is caught there (seed 003)', async () => {
    // The test double plays the older source: between Begin and Prepare, snapshot metadata appears that Begin
    // never looked at (written straight into the log, as a source that skipped the check would have).
    await runningOnLocal({
      wrapDriver: (driver, store) => ({
        name: 'older-source',
        perform: (s, c, d) => driver.perform(s, c, d),
        async migrationPhase(phase: MigrationFaultPhase) {
          if (phase === 'prepare') {
            const snapshot = { name: 'old', parent: null, state: 'running', diskOnly: false, external: false, creationTime: '2026-01-01T00:00:00Z', disks: [], mirrored: false };
            await store.append('domain-local-vm', [{ type: 'SnapshotCreated', data: { snapshot, current: true, redefined: true }, metadata: { commandId: 'older-source', actor: 'old', time: '2026-01-01T00:00:00Z' } }], { expectedRevision: 'any' });
          }
          return undefined;
        },
      }),
    });
    const o = await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' });
    expect(o).toMatchObject({ ok: false, rule: 'MIG-SNAPSHOTS', code: 55, message: 'Requested operation is not valid: cannot migrate domain with 1 snapshots' });
    expect((await r.facts('vm')).at(-1)).toMatchObject({ type: 'MigrationFailed', phase: 'perform', rule: 'MIG-SNAPSHOTS' });
    expect(await r.state('vm')).toMatchObject({ active: true, migration: null });
    expect(await r.facts('vm', 'dst')).toEqual([]);
  });

  test('at Prepare, on the destination: a name or UUID clash there', async () => {
    await runningOnLocal();
    await r.ok({ verb: 'define', host: 'dst', config: { ...CONFIG, uuid: 'someone-else' } });
    const name = await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' });
    expect(name).toMatchObject({ ok: false, rule: 'DEF-NAME', code: 9, message: "operation failed: domain 'vm' already exists with uuid someone-else" });
    expect((await r.facts('vm')).at(-1)).toMatchObject({ type: 'MigrationFailed', phase: 'prepare' });
    expect(topState(await r.state('vm'))).toBe('running');
    await r.ok({ verb: 'undefine', host: 'dst', domain: 'vm' });

    await r.ok({ verb: 'define', host: 'dst', config: { ...CONFIG, name: 'other' } });
    const uuid = await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' });
    expect(uuid).toMatchObject({ ok: false, rule: 'DEF-NAME', message: `operation failed: domain 'other' is already defined with uuid ${UUID}` });
    expect(topState(await r.state('vm'))).toBe('running');
  });

  test("at Prepare, what the XML alone shows: the destination's check refuses host devices", async () => {
    r = await rig();
    // Prepare's check is the coordinator's (MigrationPort.checkIncoming); a client cannot send migrate-incoming.
    const port = r.ledger as unknown as MigrationPort;
    const refusal = await port.checkIncoming({
      verb: 'migrate-incoming',
      host: 'dst',
      source: 'local',
      config: { ...CONFIG, hostdevs: [{ mode: 'subsystem', type: 'pci' }], disks: CONFIG.disks ?? [] },
      persistent: false,
      active: true,
      paused: false,
      meta: { commandId: 'prep/incoming', actor: 'test', time: '2026-11-22T00:00:00Z' },
    } as CommandOf<'migrate-incoming'>);
    expect(refusal).toMatchObject({ rule: 'MIG-HOSTDEV', code: 84 });
    expect(await r.state('vm', 'dst')).toEqual(initialDomainState('dst', 'vm'));
  });

  test('while mirroring, migration is refused (MIG-JOB)', async () => {
    r = await rig();
    await r.ok({ verb: 'create', config: CONFIG });
    await r.ok({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/shared/copy.qcow2' });
    expect(await r.run({ verb: 'migrate', domain: 'vm', desthost: 'dst' })).toMatchObject({
      ok: false,
      rule: 'MIG-JOB',
      message: 'Requested operation is not valid: domain has active block job',
    });
    expect(factsOf(await r.ok({ verb: 'blockjob', domain: 'vm', path: 'vda', abort: true }))).toHaveLength(1);
  });
});
