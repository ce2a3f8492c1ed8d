// SC-ATOMIC (docs/rules.md §5, seed 001): a two-disk external snapshot whose second file lies on read-only storage.
// With --atomic nothing changes; without it the hypervisor's capability decides: a transactional one (the
// default, as the seed says drivers should prefer) is atomic anyway, one without transactions records exactly
// which disks changed.
import { afterEach, describe, expect, test } from 'vitest';

import type { Fact } from '../../machines/events';
import { disk, factsOf, rig, type Rig, type RigOptions } from './harness';

const CONFIG = { name: 'vm', uuid: 'uuid-vm', disks: [disk('vda', '/data/vda.qcow2'), disk('vdb', '/data/vdb.qcow2')] };
const WORLD: RigOptions['world'] = { storage: [{ path: '/data' }, { path: '/ro', readonly: true }] };

/** `snapshot-create-as vm s1 --disk-only --diskspec vda,file=… --diskspec vdb,file=…` */
function twoDiskSnapshot(second: string, flags: { atomic?: boolean; reuseExternal?: boolean; halt?: boolean } = {}) {
  return {
    verb: 'snapshot-create' as const,
    domain: 'vm',
    diskOnly: true,
    ...flags,
    snapshot: {
      name: 's1',
      disks: [
        { target: 'vda', snapshot: 'external' as const, file: '/data/vda.s1' },
        { target: 'vdb', snapshot: 'external' as const, file: second },
      ],
    },
  };
}

let r: Rig;
afterEach(async () => r?.close());

async function running(options: RigOptions = {}): Promise<Rig> {
  r = await rig({ world: WORLD, ...options });
  await r.ok({ verb: 'define', config: CONFIG });
  await r.ok({ verb: 'start', domain: 'vm' });
  return r;
}

async function expectNothingChanged(before: Fact[]) {
  expect(await r.facts('vm')).toEqual(before);
  const s = await r.state('vm');
  expect(s.snapshots).toEqual({});
  expect(s.current).toBeNull();
  expect(s.config!.disks.map((d) => d.source)).toEqual(['/data/vda.qcow2', '/data/vdb.qcow2']);
  expect(await r.driver.image('/data/vda.s1')).toBeUndefined();
  expect(await r.driver.image('/ro/vdb.s1')).toBeUndefined();
  expect(await r.driver.diskChain('local', 'vm', 'vda')).toEqual(['/data/vda.qcow2']);
}

const RO_MESSAGE = "operation failed: failed to create external snapshot of disk 'vdb' in '/ro/vdb.s1': Read-only file system";

describe('SC-ATOMIC: second file on read-only storage', () => {
  test('--atomic: refused, naming the disk and the file, and nothing changed', async () => {
    await running();
    const before = await r.facts('vm');
    const o = await r.run(twoDiskSnapshot('/ro/vdb.s1', { atomic: true }));
    expect(o).toMatchObject({ ok: false, rule: 'SC-ATOMIC', code: 9, codeName: 'VIR_ERR_OPERATION_FAILED', message: RO_MESSAGE });
    expect(o.events).toEqual([]);
    await expectNothingChanged(before);
  });

  test('without --atomic, transactional hypervisor (default): atomic anyway, refused and nothing changed', async () => {
    await running();
    const before = await r.facts('vm');
    const o = await r.run(twoDiskSnapshot('/ro/vdb.s1'));
    expect(o).toMatchObject({ ok: false, rule: 'SC-ATOMIC', code: 9, message: RO_MESSAGE });
    await expectNothingChanged(before);
  });

  test('without --atomic, no-transaction hypervisor: a partial snapshot, recorded disk by disk', async () => {
    await running({ faults: { noTransaction: true } });
    const o = await r.run(twoDiskSnapshot('/ro/vdb.s1'));
    expect(o.ok).toBe(true);
    const facts = factsOf(o);
    expect(facts.map((f) => f.type)).toEqual(['SnapshotCreated', 'SnapshotDisksChanged']);
    expect(facts[1]).toEqual({
      type: 'SnapshotDisksChanged',
      snapshot: 's1',
      disks: [
        { target: 'vda', changed: true, file: '/data/vda.s1' },
        { target: 'vdb', changed: false, file: '/ro/vdb.s1', error: RO_MESSAGE },
      ],
    });
    // The snapshot is recorded as it really is: it covers vda only.
    const created = facts[0] as Extract<Fact, { type: 'SnapshotCreated' }>;
    expect(created.snapshot.disks).toEqual([
      { target: 'vda', snapshot: 'external', file: '/data/vda.s1' },
      { target: 'vdb', snapshot: 'no' },
    ]);
    const s = await r.state('vm');
    expect(s.current).toBe('s1');
    expect(s.config!.disks.map((d) => d.source)).toEqual(['/data/vda.s1', '/data/vdb.qcow2']);
    // On the hypervisor: vda runs on the new overlay backed by its old image; vdb is untouched.
    expect(await r.driver.diskChain('local', 'vm', 'vda')).toEqual(['/data/vda.s1', '/data/vda.qcow2']);
    expect(await r.driver.diskChain('local', 'vm', 'vdb')).toEqual(['/data/vdb.qcow2']);
    expect(await r.driver.image('/ro/vdb.s1')).toBeUndefined();
  });

  test('--atomic on a no-transaction hypervisor: outright failure up front (84), nothing changed', async () => {
    await running({ faults: { noTransaction: true } });
    const before = await r.facts('vm');
    const o = await r.run(twoDiskSnapshot('/ro/vdb.s1', { atomic: true }));
    expect(o).toMatchObject({
      ok: false,
      rule: 'SC-ATOMIC',
      code: 84,
      message: 'Operation not supported: atomic live snapshot of multiple disks is unsupported',
    });
    await expectNothingChanged(before);
  });

  test('no-transaction: when the first disk fails, nothing changed, so the command is refused', async () => {
    await running({ faults: { noTransaction: true, readonly: ['/data'] } });
    const before = await r.facts('vm');
    const o = await r.run(twoDiskSnapshot('/data/vdb.s1'));
    expect(o).toMatchObject({
      ok: false,
      rule: 'SC-ATOMIC',
      code: 9,
      message: "operation failed: failed to create external snapshot of disk 'vda' in '/data/vda.s1': Read-only file system",
    });
    expect(await r.facts('vm')).toEqual(before);
  });

  test('no-transaction with --halt: a partial snapshot does not halt the domain (the command failed)', async () => {
    await running({ faults: { noTransaction: true } });
    const o = await r.run(twoDiskSnapshot('/ro/vdb.s1', { halt: true }));
    expect(factsOf(o).map((f) => f.type)).toEqual(['SnapshotCreated', 'SnapshotDisksChanged']);
    expect((await r.state('vm')).active).toBe(true);
  });
});

describe('other disk faults', () => {
  test('full storage: the overlay cannot be created (No space left on device)', async () => {
    await running({ faults: { full: ['/full'] } });
    const o = await r.run(twoDiskSnapshot('/full/vdb.s1', { atomic: true }));
    expect(o).toMatchObject({
      ok: false,
      rule: 'SC-ATOMIC',
      code: 9,
      message: "operation failed: failed to create external snapshot of disk 'vdb' in '/full/vdb.s1': No space left on device",
    });
  });

  test('a storage location whose capacity is used up counts as full', async () => {
    await running({ world: { storage: [{ path: '/data' }, { path: '/small', capacity: 100_000 }] } });
    const o = await r.run(twoDiskSnapshot('/small/vdb.s1'));
    expect(o).toMatchObject({ ok: false, rule: 'SC-ATOMIC', message: expect.stringContaining('No space left on device') });
  });

  test('fail-disk:2 on a no-transaction hypervisor: partial, with the I/O error on vdb', async () => {
    await running({ faults: { noTransaction: true, failDisk: 2 } });
    const o = await r.run(twoDiskSnapshot('/data/vdb.s1'));
    const changed = factsOf(o).find((f) => f.type === 'SnapshotDisksChanged');
    expect(changed).toMatchObject({
      disks: [
        { target: 'vda', changed: true },
        { target: 'vdb', changed: false, error: "operation failed: failed to create external snapshot of disk 'vdb' in '/data/vdb.s1': Input/output error" },
      ],
    });
  });

  test('fail-disk:2 on a transactional hypervisor: refused, nothing changed', async () => {
    await running({ faults: { failDisk: 2 } });
    const before = await r.facts('vm');
    const o = await r.run(twoDiskSnapshot('/data/vdb.s1'));
    expect(o).toMatchObject({ ok: false, rule: 'SC-ATOMIC', code: 9, message: expect.stringContaining("disk 'vdb'") });
    expect(await r.facts('vm')).toEqual(before);
  });

  test('without --reuse-external the overlay must not exist yet; with it, it must', async () => {
    await running({ world: { ...WORLD, images: [{ path: '/data/vdb.s1', backing: 'vdb.qcow2' }] } });
    const exists = await r.run(twoDiskSnapshot('/data/vdb.s1'));
    expect(exists).toMatchObject({
      ok: false,
      rule: 'SC-ATOMIC',
      code: 67,
      message: 'unsupported configuration: external snapshot file for disk vdb already exists and is not a block device: /data/vdb.s1',
    });
    const missing = await r.run(twoDiskSnapshot('/data/vdb.s1', { reuseExternal: true }));
    expect(missing).toMatchObject({
      ok: false,
      rule: 'SC-ATOMIC',
      code: 9,
      message: 'operation failed: missing existing file for disk vda: /data/vda.s1: No such file or directory',
    });
  });

  test('success: every disk on its overlay, backed by its old image', async () => {
    await running();
    const o = await r.ok(twoDiskSnapshot('/data/vdb.s1'));
    expect(factsOf(o).find((f) => f.type === 'SnapshotDisksChanged')).toEqual({
      type: 'SnapshotDisksChanged',
      snapshot: 's1',
      disks: [
        { target: 'vda', changed: true, file: '/data/vda.s1' },
        { target: 'vdb', changed: true, file: '/data/vdb.s1' },
      ],
    });
    expect(await r.driver.diskChain('local', 'vm', 'vdb')).toEqual(['/data/vdb.s1', '/data/vdb.qcow2']);
  });
});
