// Seed 002's live storage migration, end to end through the ledger (createLedger + the simulated hypervisor over
// a real SQLite file), as one walk-through:
//
//   vda is open on /path1/to/old.qcow2, whose base is /path1/to/common
//   $ qemu-img create -f qcow2 -o backing_file=old.qcow2 -o backing_fmt=qcow2 /path1/to/old.migrate
//   $ qemu-img create -f qcow2 -o backing_file=old.qcow2 -o backing_fmt=qcow2 /path2/to/new.qcow2
//   $ virsh snapshot-create-as $dom migrate --reuse-external \
//       --diskspec vda,file=/path1/to/old.migrate,mirror=/path2/to/new.qcow2
//   $ cp /path1/to/common /path1/to/old.qcow2 /path2/to
//   $ virsh snapshot-delete $dom migrate --mirror-pivot     → new.qcow2's relative name opens /path2/to/old.qcow2
//   $ virsh blockpull $dom vda --base /path2/to/common      → new.qcow2 directly backed by /path2/to/common
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { topState } from '../../machines/model';
import { createSimulatedDriver, OVERLAY_SIZE, type SimulatedWorldInput } from '../../services/drivers/simulated';
import { openSqliteEventStore } from '../../services/eventstore/index';
import { replayCheck } from '../../services/replay';
import { disk, factsOf, rig } from './harness';

const dir = mkdtempSync(join(tmpdir(), 'vmledger-seed002-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WORLD: SimulatedWorldInput = {
  storage: [{ path: '/path1' }, { path: '/path2' }],
  images: [
    { path: '/path1/to/common', size: 4_000_000, format: 'raw' },
    { path: '/path1/to/old.qcow2', size: 1_000_000, backing: 'common' },
  ],
};

test('seed 002: live storage migration by a mirrored snapshot, pivot, then blockpull --base', async () => {
  const file = join(dir, 'ledger.sqlite');
  const store = openSqliteEventStore(file);
  const r = await rig({ store, world: WORLD });
  const dom = 'guest';
  await r.ok({ verb: 'define', config: { name: dom, uuid: 'uuid-guest', disks: [disk('vda', '/path1/to/old.qcow2')] } });
  await r.ok({ verb: 'start', domain: dom });
  expect(await r.driver.diskChain('local', dom, 'vda')).toEqual(['/path1/to/old.qcow2', '/path1/to/common']);

  // Pre-create both files with a relative backing name.
  await r.driver.createImage({ path: '/path1/to/old.migrate', size: OVERLAY_SIZE, backing: 'old.qcow2' });
  await r.driver.createImage({ path: '/path2/to/new.qcow2', size: OVERLAY_SIZE, backing: 'old.qcow2' });

  // The mirrored snapshot: vda read-write on old.migrate, mirrored to new.qcow2.
  const snap = await r.ok({
    verb: 'snapshot-create',
    domain: dom,
    diskOnly: true,
    reuseExternal: true,
    snapshot: { name: 'migrate', disks: [{ target: 'vda', snapshot: 'external', file: '/path1/to/old.migrate', mirror: '/path2/to/new.qcow2' }] },
  });
  expect(factsOf(snap).slice(1)).toEqual([
    { type: 'SnapshotDisksChanged', snapshot: 'migrate', disks: [{ target: 'vda', changed: true, file: '/path1/to/old.migrate' }] },
    { type: 'BlockJobStarted', job: { disk: 'vda', kind: 'snapshot-mirror', phase: 'copying', destination: '/path2/to/new.qcow2', snapshot: 'migrate' } },
  ]);
  expect(topState(await r.state(dom))).toBe('mirroring');
  expect(await r.driver.diskChain('local', dom, 'vda')).toEqual(['/path1/to/old.migrate', '/path1/to/old.qcow2', '/path1/to/common']);
  // The relative name is still intact in the mirror's header.
  expect(await r.driver.image('/path2/to/new.qcow2')).toMatchObject({ backing: 'old.qcow2' });
  // MIR-BLOCKS while mirroring: no save, no migration.
  expect(await r.run({ verb: 'managedsave', domain: dom })).toMatchObject({ ok: false, rule: 'MS-MIRROR', code: 55 });

  // The hypervisor reported the mirror ready (the ledger ran its report after the snapshot): nothing left to report.
  expect(await r.flush()).toBe(0);
  expect((await r.state(dom)).blockJobs.vda?.phase).toBe('ready');

  // Pivoting before the backing files are copied fails and changes nothing: new.qcow2 names old.qcow2 in /path2.
  const tooEarly = await r.run({ verb: 'snapshot-delete', domain: dom, snapshotname: 'migrate', mirrorPivot: true });
  expect(tooEarly).toMatchObject({
    ok: false,
    rule: 'MIR-END',
    code: 9,
    message: "operation failed: block job 'vda' failed while pivoting: Could not open backing file: Could not open '/path2/to/old.qcow2': No such file or directory",
  });
  expect(topState(await r.state(dom))).toBe('mirroring');

  // $ cp /path1/to/common /path1/to/old.qcow2 /path2/to
  await r.driver.copyImages([
    { from: '/path1/to/common', to: '/path2/to/common' },
    { from: '/path1/to/old.qcow2', to: '/path2/to/old.qcow2' },
  ]);

  // The pivot rereads new.qcow2's header and opens /path2/to/old.qcow2 (and its relative base) as the backing chain.
  const pivot = await r.ok({ verb: 'snapshot-delete', domain: dom, snapshotname: 'migrate', mirrorPivot: true });
  expect(factsOf(pivot)).toEqual([
    { type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/path2/to/new.qcow2' },
    { type: 'BackingChainChanged', disk: 'vda', chain: ['/path2/to/new.qcow2', '/path2/to/old.qcow2', '/path2/to/common'] },
    { type: 'SnapshotsDeleted', deleted: ['migrate'], reparented: [], current: null, metadataOnly: false },
  ]);
  let s = await r.state(dom);
  expect(topState(s)).toBe('running');
  expect(s.snapshots).toEqual({});
  expect(s.config!.disks[0]!.source).toBe('/path2/to/new.qcow2');
  const afterPivot = await r.driver.diskChain('local', dom, 'vda');
  expect(afterPivot).toEqual(['/path2/to/new.qcow2', '/path2/to/old.qcow2', '/path2/to/common']);
  expect(afterPivot.some((p) => p.startsWith('/path1/'))).toBe(false); // /path1 is no longer in use

  // A base outside the chain is refused by the hypervisor (DRV-BLOCKPULL, 8).
  expect(await r.run({ verb: 'blockpull', domain: dom, path: 'vda', base: '/path1/to/common' })).toMatchObject({
    ok: false,
    rule: 'DRV-BLOCKPULL',
    code: 8,
    message: "invalid argument: could not find image '/path1/to/common' beneath '/path2/to/new.qcow2' in chain for 'vda'",
  });

  // $ virsh blockpull $dom vda --base /path2/to/common
  const pull = await r.ok({ verb: 'blockpull', domain: dom, path: 'vda', base: '/path2/to/common' });
  expect(factsOf(pull)).toEqual([
    { type: 'BlockJobStarted', job: { disk: 'vda', kind: 'pull', phase: 'copying' } },
    { type: 'BackingChainChanged', disk: 'vda', chain: ['/path2/to/new.qcow2', '/path2/to/common'] },
    { type: 'BlockJobEnded', disk: 'vda', outcome: 'completed', source: '/path2/to/new.qcow2' },
  ]);
  s = await r.state(dom);
  expect(topState(s)).toBe('running');
  expect(s.blockJobs).toEqual({});
  expect(await r.driver.diskChain('local', dom, 'vda')).toEqual(['/path2/to/new.qcow2', '/path2/to/common']);
  // qemu wrote the base's name into the top's header and pulled old.qcow2's data into it.
  expect(await r.driver.image('/path2/to/new.qcow2')).toEqual({
    path: '/path2/to/new.qcow2',
    size: OVERLAY_SIZE + 1_000_000,
    format: 'qcow2',
    backing: '/path2/to/common',
  });

  await r.close();
  await store.close();

  // Replay: a new process over the same file rebuilds the same world from the log (configuration + facts).
  const reopened = openSqliteEventStore(file);
  const replayed = createSimulatedDriver({ store: reopened, world: WORLD });
  expect(await replayed.diskChain('local', dom, 'vda')).toEqual(['/path2/to/new.qcow2', '/path2/to/common']);
  expect(await replayed.image('/path2/to/new.qcow2')).toMatchObject({ backing: '/path2/to/common', size: OVERLAY_SIZE + 1_000_000 });
  expect(await replayed.image('/path1/to/old.migrate')).toMatchObject({ backing: 'old.qcow2' });
  expect(await replayed.pendingGuestEvents()).toEqual([]);
  // The audit replay accepts the log: every decision is one today's machine takes, hash chains intact.
  const audit = await replayCheck(reopened);
  expect(audit.violations).toEqual([]);
  expect(audit.tampered).toEqual([]);
  expect(audit.ok).toBe(true);
  await reopened.close();
});
