// Mirroring (docs/rules.md §6, seed 002): mirrored snapshots ended by --mirror-pivot / --mirror-abort, block copies
// ended by blockjob --pivot / --abort, readiness reported by the hypervisor (guest-event blockjob-ready), and
// MIR-PARTIAL: a multi-disk pivot that fails part way.
import { afterEach, describe, expect, test } from 'vitest';

import type { Fact } from '../../machines/events';
import { topState } from '../../machines/model';
import { createMemoryEventStore, type EventStore } from '../../services/eventstore/index';
import { OVERLAY_SIZE } from '../../services/drivers/simulated';
import { disk, factsOf, rig, type Rig, type RigOptions } from './harness';

let rigs: Rig[] = [];
let stores: EventStore[] = [];
afterEach(async () => {
  for (const r of rigs) await r.close();
  for (const s of stores) await s.close();
  rigs = [];
  stores = [];
});

function sharedStore(): EventStore {
  const store = createMemoryEventStore();
  stores.push(store);
  return store;
}

async function make(options: RigOptions): Promise<Rig> {
  const r = await rig(options);
  rigs.push(r);
  return r;
}

const types = (facts: Fact[]) => facts.map((f) => f.type);

describe('block copy (MIR-COPY, MIR-END)', () => {
  const config = { name: 'vm', uuid: 'uuid-vm', disks: [disk('vda', '/data/vda.qcow2')] };
  const world: RigOptions['world'] = {
    storage: [{ path: '/data' }, { path: '/ro', readonly: true }],
    images: [{ path: '/data/base.img', size: 2_000_000, format: 'raw' }, { path: '/data/vda.qcow2', size: 500_000, backing: 'base.img' }],
  };

  async function transientCopying(options: Omit<RigOptions, 'world'> = {}) {
    const r = await make({ world, ...options });
    await r.ok({ verb: 'create', config });
    await r.ok({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2' });
    return r;
  }

  test("the ledger runs the hypervisor's report: right after blockcopy the copy is ready, as actor hypervisor", async () => {
    const r = await transientCopying();
    expect((await r.state('vm')).blockJobs.vda?.phase).toBe('ready');
    // Nothing left for the caller to report; the report is a command of its own with the driver's deterministic id.
    expect(await r.driver.pendingGuestEvents()).toEqual([]);
    expect(await r.flush()).toBe(0);
    const events = [];
    for await (const e of r.store.readStream('domain-local-vm')) events.push(e);
    const ready = events.find((e) => e.type === 'BlockJobReady')!;
    const started = events.find((e) => e.type === 'BlockJobStarted')!;
    expect(ready.metadata).toMatchObject({ actor: 'hypervisor', commandId: `hv/ready-domain-local-vm-vda-${started.position}` });
    expect(ready.metadata.command).toMatchObject({ verb: 'guest-event', event: 'blockjob-ready', disk: 'vda' });
    // So the caller can pivot at once.
    await r.ok({ verb: 'blockjob', domain: 'vm', path: 'vda', pivot: true });
    expect((await r.state('vm')).config!.disks[0]!.source).toBe('/data/copy.qcow2');
  });

  test('copying → ready (reported by the caller, hypervisorReports off) → pivot: the disk runs on the flattened copy', async () => {
    const r = await transientCopying({ ledger: { hypervisorReports: false } });
    expect(topState(await r.state('vm'))).toBe('mirroring');
    expect(await r.driver.image('/data/copy.qcow2')).toEqual({ path: '/data/copy.qcow2', size: 2_500_000, format: 'qcow2', backing: undefined });

    const early = await r.run({ verb: 'blockjob', domain: 'vm', path: 'vda', pivot: true });
    expect(early).toMatchObject({ ok: false, rule: 'MIR-END', code: 83, message: "block copy still active: block job 'vda' not ready for pivot yet" });

    expect(await r.driver.pendingGuestEvents()).toMatchObject([{ verb: 'guest-event', event: 'blockjob-ready', domain: 'vm', disk: 'vda' }]);
    expect(await r.flush()).toBe(1);
    expect((await r.state('vm')).blockJobs.vda?.phase).toBe('ready');
    expect(await r.flush()).toBe(0);

    const pivot = await r.ok({ verb: 'blockjob', domain: 'vm', path: 'vda', pivot: true });
    expect(factsOf(pivot)).toEqual([
      { type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/data/copy.qcow2' },
      { type: 'BackingChainChanged', disk: 'vda', chain: ['/data/copy.qcow2'] },
    ]);
    const s = await r.state('vm');
    expect(topState(s)).toBe('transient');
    expect(s.config!.disks[0]!.source).toBe('/data/copy.qcow2');
    expect(await r.driver.diskChain('local', 'vm', 'vda')).toEqual(['/data/copy.qcow2']);
  });

  test('abort: the disk stays on its source; the copy is left behind', async () => {
    const r = await transientCopying();
    const abort = await r.ok({ verb: 'blockjob', domain: 'vm', path: 'vda', abort: true });
    expect(factsOf(abort)).toEqual([{ type: 'BlockJobEnded', disk: 'vda', outcome: 'abort', source: '/data/vda.qcow2' }]);
    expect(topState(await r.state('vm'))).toBe('transient');
    expect(await r.driver.diskChain('local', 'vm', 'vda')).toEqual(['/data/vda.qcow2', '/data/base.img']);
    expect(await r.driver.image('/data/copy.qcow2')).toBeDefined();
  });

  test('a destination on read-only storage is refused up front (MIR-COPY, code 9)', async () => {
    const r = await make({ world });
    await r.ok({ verb: 'create', config });
    const o = await r.run({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/ro/copy.qcow2' });
    expect(o).toMatchObject({
      ok: false,
      rule: 'MIR-COPY',
      code: 9,
      message: "operation failed: block copy of disk 'vda' into '/ro/copy.qcow2' failed: Read-only file system",
    });
    expect(topState(await r.state('vm'))).toBe('transient');
  });

  test('an existing destination without --reuse-external is refused (67); --shallow copies only the top', async () => {
    const r = await make({ world });
    await r.ok({ verb: 'create', config });
    const o = await r.run({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/base.img' });
    expect(o).toMatchObject({ ok: false, rule: 'MIR-COPY', code: 67 });
    await r.ok({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/shallow.qcow2', shallow: true });
    expect(await r.driver.image('/data/shallow.qcow2')).toEqual({ path: '/data/shallow.qcow2', size: 500_000, format: 'qcow2', backing: '/data/base.img' });
  });

  test('a persistent domain needs --transient-job (MIR-COPY, 55)', async () => {
    const r = await make({ world });
    await r.ok({ verb: 'define', config });
    await r.ok({ verb: 'start', domain: 'vm' });
    const o = await r.run({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2' });
    expect(o).toMatchObject({ ok: false, rule: 'MIR-COPY', code: 55, message: 'Requested operation is not valid: domain is not transient' });
  });

  test('blockpull: the machine refuses an inactive domain (ACT-REQ), an unknown disk and a busy one (MIR-BLOCKS)', async () => {
    const r = await make({ world });
    await r.ok({ verb: 'define', config });
    expect(await r.run({ verb: 'blockpull', domain: 'vm', path: 'vda' })).toMatchObject({
      ok: false,
      rule: 'ACT-REQ',
      code: 55,
      message: 'Requested operation is not valid: domain is not running',
    });
    await r.ok({ verb: 'start', domain: 'vm' });
    expect(await r.run({ verb: 'blockpull', domain: 'vm', path: 'vdz' })).toMatchObject({
      ok: false,
      rule: 'MIR-BLOCKS',
      code: 8,
      message: "invalid argument: disk 'vdz' not found in domain",
    });
    await r.ok({ verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/data/copy.qcow2', transientJob: true });
    expect(await r.run({ verb: 'blockpull', domain: 'vm', path: 'vda' })).toMatchObject({
      ok: false,
      rule: 'MIR-BLOCKS',
      code: 83,
      message: "block copy still active: disk 'vda' already in active block job",
    });
  });

  test('mirror-never-ready: nothing is reported, a reported readiness is not recorded, pivot stays refused, abort works', async () => {
    const r = await transientCopying({ faults: { mirrorNeverReady: true } });
    expect(await r.driver.pendingGuestEvents()).toEqual([]);
    expect(await r.flush()).toBe(0);
    const claimed = await r.ok({ verb: 'guest-event', domain: 'vm', event: 'blockjob-ready', disk: 'vda' });
    expect(claimed.events).toEqual([]);
    expect((await r.state('vm')).blockJobs.vda?.phase).toBe('copying');
    expect(await r.run({ verb: 'blockjob', domain: 'vm', path: 'vda', pivot: true })).toMatchObject({ ok: false, rule: 'MIR-END', code: 83 });
    await r.ok({ verb: 'blockjob', domain: 'vm', path: 'vda', abort: true });
    expect(topState(await r.state('vm'))).toBe('transient');
  });
});

describe('mirrored snapshots (MIR-CREATE, MIR-END, MIR-PARTIAL)', () => {
  const config = { name: 'vm', uuid: 'uuid-vm', disks: [disk('vda', '/s1/vda.qcow2'), disk('vdb', '/s1/vdb.qcow2')] };
  const world: RigOptions['world'] = { storage: [{ path: '/s1' }, { path: '/s2' }] };
  const mirroredSnapshot = {
    verb: 'snapshot-create' as const,
    domain: 'vm',
    diskOnly: true,
    reuseExternal: true,
    snapshot: {
      name: 'mig',
      disks: [
        { target: 'vda', snapshot: 'external' as const, file: '/s1/vda.mig', mirror: '/s2/vda.qcow2' },
        { target: 'vdb', snapshot: 'external' as const, file: '/s1/vdb.mig', mirror: '/s2/vdb.qcow2' },
      ],
    },
  };

  /** Two disks mirrored to /s2 with pre-created files whose backing names are relative; both mirrors ready. */
  async function mirroredAndReady(options: Omit<RigOptions, 'world'> = {}) {
    const r = await make({ world, ...options });
    await r.ok({ verb: 'define', config });
    await r.ok({ verb: 'start', domain: 'vm' });
    for (const d of ['vda', 'vdb']) {
      await r.driver.createImage({ path: `/s1/${d}.mig`, size: OVERLAY_SIZE, backing: `${d}.qcow2` });
      await r.driver.createImage({ path: `/s2/${d}.qcow2`, size: OVERLAY_SIZE, backing: `${d}.base` });
    }
    const created = await r.ok(mirroredSnapshot);
    expect(types(factsOf(created))).toEqual(['SnapshotCreated', 'SnapshotDisksChanged', 'BlockJobStarted', 'BlockJobStarted']);
    // The ledger ran the hypervisor's reports right after the snapshot: both mirrors are ready, nothing is left.
    const jobs = (await r.state('vm')).blockJobs;
    expect([jobs.vda?.phase, jobs.vdb?.phase]).toEqual(['ready', 'ready']);
    expect(await r.flush()).toBe(0);
    return r;
  }

  test('MIR-PARTIAL: the second reopen fails (its backing file is not there yet); vda is reopened, vdb keeps mirroring', async () => {
    const r = await mirroredAndReady();
    // Only vda's backing file has been copied to /s2.
    await r.driver.createImage({ path: '/s2/vda.base' });
    const o = await r.ok({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorPivot: true });
    expect(factsOf(o)).toEqual([
      { type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/s2/vda.qcow2' },
      { type: 'BackingChainChanged', disk: 'vda', chain: ['/s2/vda.qcow2', '/s2/vda.base'] },
      {
        type: 'BlockJobEndFailed',
        disk: 'vdb',
        outcome: 'pivot',
        error: "operation failed: block job 'vdb' failed while pivoting: Could not open backing file: Could not open '/s2/vdb.base': No such file or directory",
      },
    ]);
    let s = await r.state('vm');
    expect(topState(s)).toBe('mirroring');
    expect(Object.keys(s.blockJobs)).toEqual(['vdb']);
    expect(s.snapshots.mig).toBeDefined(); // still the current mirrored snapshot, for the rest
    expect(s.config!.disks.map((d) => d.source)).toEqual(['/s2/vda.qcow2', '/s1/vdb.mig']);

    // Once the file is there, the same command finishes the rest.
    await r.driver.createImage({ path: '/s2/vdb.base' });
    const rest = await r.ok({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorPivot: true });
    expect(types(factsOf(rest))).toEqual(['BlockJobEnded', 'BackingChainChanged', 'SnapshotsDeleted']);
    s = await r.state('vm');
    expect(topState(s)).toBe('running');
    expect(s.config!.disks.map((d) => d.source)).toEqual(['/s2/vda.qcow2', '/s2/vdb.qcow2']);
  });

  test('MIR-PARTIAL with fail-disk:2: the events say which disk was reopened on which side', async () => {
    // Faults are per run: the mirrors are set up by a healthy run, the pivot is tried by a run with the fault.
    const store = sharedStore();
    const setup = await mirroredAndReady({ store });
    for (const d of ['vda', 'vdb']) await setup.driver.createImage({ path: `/s2/${d}.base` });
    const r = await make({ world, store, faults: { failDisk: 2 } });
    const o = await r.ok({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorAbort: true });
    expect(factsOf(o)).toEqual([
      { type: 'BlockJobEnded', disk: 'vda', outcome: 'abort', source: '/s1/vda.mig' },
      { type: 'BlockJobEndFailed', disk: 'vdb', outcome: 'abort', error: "operation failed: block job 'vdb' failed while aborting: Input/output error" },
    ]);
    expect(topState(await r.state('vm'))).toBe('mirroring');
    // The same log under a run without the fault: the rest is ended (faults are configuration, not facts).
    const healthy = await make({ world, store });
    expect((await healthy.driver.domain('local', 'vm'))?.blockJobs).toHaveProperty('vdb');
    const rest = await healthy.ok({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorAbort: true });
    expect(types(factsOf(rest))).toEqual(['BlockJobEnded', 'SnapshotsDeleted']);
    expect(topState(await healthy.state('vm'))).toBe('running');
  });

  test('the first disk failing changes nothing: refused with BJ-7 text', async () => {
    const store = sharedStore();
    await mirroredAndReady({ store });
    const r = await make({ world, store, faults: { failDisk: 1 } });
    const before = await r.facts('vm');
    const o = await r.run({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorPivot: true });
    expect(o).toMatchObject({ ok: false, rule: 'MIR-END', code: 9, message: "operation failed: block job 'vda' failed while pivoting: Input/output error" });
    expect(await r.facts('vm')).toEqual(before);
  });

  test('--mirror-abort: both disks stay on their new overlays in /s1; the mirrors are left behind', async () => {
    const r = await mirroredAndReady();
    const o = await r.ok({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorAbort: true });
    expect(types(factsOf(o))).toEqual(['BlockJobEnded', 'BlockJobEnded', 'SnapshotsDeleted']);
    expect(await r.driver.diskChain('local', 'vm', 'vdb')).toEqual(['/s1/vdb.mig', '/s1/vdb.qcow2']);
  });

  test('MIR-END texts: the mirrored snapshot needs a mirror flag; pivot before ready is 83', async () => {
    const r = await make({ world, ledger: { hypervisorReports: false } });
    await r.ok({ verb: 'define', config });
    await r.ok({ verb: 'start', domain: 'vm' });
    await r.ok({ ...mirroredSnapshot, reuseExternal: false });
    expect(await r.run({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig' })).toMatchObject({
      ok: false,
      rule: 'MIR-END',
      code: 55,
      message: "Requested operation is not valid: mirrored snapshot 'mig' must be deleted with --mirror-pivot or --mirror-abort",
    });
    expect(await r.run({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorPivot: true })).toMatchObject({
      ok: false,
      rule: 'MIR-END',
      code: 83,
      message: "block copy still active: block job 'vda' not ready for pivot yet",
    });
    expect(await r.run({ verb: 'snapshot-delete', domain: 'vm', snapshotname: 'mig', mirrorPivot: true, mirrorAbort: true })).toMatchObject({
      ok: false,
      rule: 'MIR-EXCL',
      code: 8,
      message: 'delete mirror flags are mutually exclusive',
    });
    // Created by qemu itself, the mirror backs onto the old image by its absolute name (seed 002's warning).
    expect(await r.driver.image('/s2/vda.qcow2')).toMatchObject({ backing: '/s1/vda.qcow2' });
  });
});
