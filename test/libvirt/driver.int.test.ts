// vmledger in front of a real libvirtd (qemu driver, tiny TCG guests): every accepted command is performed on
// libvirt, and after each one `virsh -c URI` (a separate process) shows the state vmledger recorded. A command
// the rules refuse never reaches libvirt (its API log says so); one libvirt refuses leaves the ledger unchanged
// and is audited with libvirt's text.
import { afterEach, beforeAll, expect, it } from 'vitest';

import { domainStream } from '../../machines/model';
import { EFFECT_INTENDED, EFFECT_SETTLED } from '../../projections/log';
import type { CommandReport } from '../../services/virsh/session';
import { describeLibvirt, useLibvirtd } from './daemon';
import { vmledgerOn, type VmledgerOnLibvirt } from './session';

describeLibvirt('the libvirt driver against a real libvirtd (qemu, TCG)', () => {
  const lv = useLibvirtd();
  let vm: VmledgerOnLibvirt;
  let names: string[] = [];

  beforeAll(() => {
    // The first connection to the qemu driver probes its capabilities (seconds); pay it once, before the tests.
    expect(lv.current.virsh(['capabilities']).status).toBe(0);
  }, 180_000);

  afterEach(async () => {
    // Guests are destroyed promptly: two cores are shared with other work.
    for (const n of names) {
      lv.current.virsh(['destroy', n]);
      lv.current.virsh(['undefine', n, '--snapshots-metadata', '--managed-save']);
    }
    names = [];
    await vm?.close();
  });

  const open = (...domains: string[]) => {
    vm = vmledgerOn(lv.current, lv.current.qemuUri, { shutdownWaitMs: 2000 });
    names.push(...domains);
    return vm;
  };

  /** Runs one command through vmledger and requires it to succeed. */
  const ok = async (line: string): Promise<CommandReport> => {
    const reports = await vm.run(line);
    const last = reports.at(-1)!;
    expect(last.stderr, `${line}: ${last.stderr}`).toBe('');
    expect(last.ok, line).toBe(true);
    return last;
  };

  /** What libvirt says (a fresh virsh), and what vmledger recorded, for the domain's state. */
  const states = async (name: string) => {
    const libvirt = lv.current.virsh(['domstate', name]);
    const ours = (await vm.run(`domstate ${name}`)).at(-1)!;
    return { libvirt: libvirt.status === 0 ? libvirt.stdout.trim() : 'gone', vmledger: ours.ok ? ours.stdout.trim() : 'gone' };
  };
  const expectSameState = async (name: string, expected: string) => {
    expect(await states(name)).toEqual({ libvirt: expected, vmledger: expected });
  };
  const snapshotNames = (name: string) =>
    lv.current
      .virsh(['snapshot-list', name, '--name'])
      .stdout.split('\n')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .sort();
  const libvirtSource = (name: string) => lv.current.virsh(['domblklist', name]).stdout.trim().split(/\s+/)[1];
  const ourSource = async (name: string) => (await vm.state(name)).config?.disks[0]?.source;

  it('lifecycle: define, start, suspend, resume, destroy, undefine', async () => {
    open('life1');
    const xml = vm.guest('life1');
    await ok(`define ${xml}`);
    await expectSameState('life1', 'shut off');
    // The UUID vmledger recorded is the one libvirt holds.
    expect(lv.current.virsh(['domuuid', 'life1']).stdout.trim()).toBe((await vm.state('life1')).config?.uuid);
    await ok('start life1');
    await expectSameState('life1', 'running');
    await ok('suspend life1');
    await expectSameState('life1', 'paused');
    await ok('resume life1');
    await expectSameState('life1', 'running');
    await ok('destroy life1');
    await expectSameState('life1', 'shut off');
    await ok('undefine life1');
    await expectSameState('life1', 'gone');
  }, 180_000);

  it('snapshots: internal, disk-only (the overlay libvirt made is what vmledger records), revert', async () => {
    open('snap1');
    await ok(`define ${vm.guest('snap1')}`);
    await ok('snapshot-create-as snap1 offline1');
    await ok('start snap1');
    await ok('snapshot-create-as snap1 live1');
    expect(snapshotNames('snap1')).toEqual(['live1', 'offline1']);
    await ok('snapshot-create-as snap1 disk1 --disk-only');
    expect(snapshotNames('snap1')).toEqual(['disk1', 'live1', 'offline1']);
    const overlay = libvirtSource('snap1');
    expect(overlay).toMatch(/snap1\.disk1$/);
    expect(await ourSource('snap1')).toBe(overlay);
    // libvirt 9 cannot revert to an internal snapshot once the disk has an external overlay: the refusal is libvirt's.
    const revert = (await vm.run('snapshot-revert snap1 live1')).at(-1)!;
    if (!revert.ok) {
      expect(revert.json.rule).toBe('LIBVIRT');
      expect(revert.stderr).toMatch(/^error: Failed to revert snapshot live1\nerror: /);
      await expectSameState('snap1', 'running');
    } else await expectSameState('snap1', 'running');
    await ok('destroy snap1');
    await expectSameState('snap1', 'shut off');
  }, 180_000);

  it('snapshot-revert to an internal snapshot: offline and running', async () => {
    open('rev1');
    await ok(`define ${vm.guest('rev1')}`);
    await ok('snapshot-create-as rev1 off');
    await ok('start rev1');
    await ok('snapshot-create-as rev1 on');
    await ok('snapshot-revert rev1 off');
    await expectSameState('rev1', 'shut off');
    await ok('snapshot-revert rev1 on');
    await expectSameState('rev1', 'running');
    expect(lv.current.virsh(['snapshot-current', 'rev1', '--name']).stdout.trim()).toBe('on');
    expect((await vm.run('snapshot-current rev1 --name')).at(-1)!.stdout.trim()).toBe('on');
    await ok('destroy rev1');
  }, 180_000);

  it('undefine is refused while snapshots exist (libvirt never asked), then --snapshots-metadata', async () => {
    open('und1');
    await ok(`define ${vm.guest('und1')}`);
    await ok('snapshot-create-as und1 s1');
    const before = lv.current.apiCalls().filter((c) => c.api === 'virDomainUndefineFlags').length;
    const refused = (await vm.run('undefine und1')).at(-1)!;
    expect(refused.ok).toBe(false);
    expect(refused.json.rule).toBe('UND-SNAPSHOTS');
    expect(refused.stderr).toBe(
      "error: Failed to undefine domain 'und1'\nerror: Requested operation is not valid: cannot delete inactive domain with 1 snapshots\n",
    );
    expect(lv.current.apiCalls().filter((c) => c.api === 'virDomainUndefineFlags').length).toBe(before);
    await expectSameState('und1', 'shut off');
    await ok('undefine und1 --snapshots-metadata');
    await expectSameState('und1', 'gone');
    expect(lv.current.apiCalls().filter((c) => c.api === 'virDomainUndefineFlags' && c.line.includes('name=und1'))).toHaveLength(1);
  }, 180_000);

  it("a transient domain's snapshot metadata goes with it", async () => {
    open('tr1');
    await ok(`create ${vm.guest('tr1')}`);
    await expectSameState('tr1', 'running');
    await ok('snapshot-create-as tr1 s1');
    expect(snapshotNames('tr1')).toEqual(['s1']);
    await ok('destroy tr1');
    await expectSameState('tr1', 'gone');
    // Same name again: no snapshot metadata survived on libvirt's side either.
    await ok(`create ${vm.guest('tr1')}`);
    expect(snapshotNames('tr1')).toEqual([]);
    expect((await vm.run('snapshot-list tr1 --name')).at(-1)!.stdout.trim()).toBe('');
    await ok('destroy tr1');
  }, 180_000);

  it('managedsave, then start restores it', async () => {
    open('ms1');
    await ok(`define ${vm.guest('ms1')}`);
    await ok('start ms1');
    await ok('managedsave ms1');
    await expectSameState('ms1', 'shut off');
    expect(lv.current.virsh(['dominfo', 'ms1']).stdout).toMatch(/Managed save:\s+yes/);
    expect((await vm.run('dominfo ms1')).at(-1)!.stdout).toMatch(/Managed save:\s+yes/);
    await ok('start ms1');
    await expectSameState('ms1', 'running');
    expect(lv.current.virsh(['dominfo', 'ms1']).stdout).toMatch(/Managed save:\s+no/);
    await ok('destroy ms1');
  }, 180_000);

  it('blockcopy --transient-job → ready → blockjob --pivot, and another → --abort', async () => {
    open('bc1');
    await ok(`define ${vm.guest('bc1')}`);
    await ok('start bc1');
    const original = libvirtSource('bc1')!;
    const copy = `${lv.current.imagesDir}/bc1-copy.qcow2`;
    await ok(`blockcopy bc1 vda ${copy} --transient-job`);
    // vmledger recorded the readiness libvirt reported (actor hypervisor) before answering.
    const state = await vm.state('bc1');
    expect(state.blockJobs.vda).toMatchObject({ kind: 'copy', phase: 'ready', destination: copy });
    expect(lv.current.virsh(['blockjob', 'bc1', 'vda', '--info']).stderr).toContain('Block Copy: [100 %]');
    await ok('blockjob bc1 vda --pivot');
    expect(libvirtSource('bc1')).toBe(copy);
    expect(await ourSource('bc1')).toBe(copy);
    expect((await vm.state('bc1')).blockJobs).toEqual({});

    const second = `${lv.current.imagesDir}/bc1-second.qcow2`;
    await ok(`blockcopy bc1 vda ${second} --transient-job`);
    await ok('blockjob bc1 vda --abort');
    expect(libvirtSource('bc1')).toBe(copy);
    expect(await ourSource('bc1')).toBe(copy);
    const info = lv.current.virsh(['blockjob', 'bc1', 'vda', '--info']);
    expect(info.status).toBe(0);
    expect(`${info.stdout}${info.stderr}`).not.toContain('Block Copy');
    expect(original).not.toBe(copy);
    await ok('destroy bc1');
  }, 180_000);

  it('blockcopy --wait --pivot and --finish, as virsh prints them', async () => {
    open('bc2');
    await ok(`define ${vm.guest('bc2')}`);
    await ok('start bc2');
    const pivoted = `${lv.current.imagesDir}/bc2-p.qcow2`;
    expect((await ok(`blockcopy bc2 vda ${pivoted} --transient-job --pivot`)).stdout).toBe('\nSuccessfully pivoted\n');
    expect(libvirtSource('bc2')).toBe(pivoted);
    const finished = `${lv.current.imagesDir}/bc2-f.qcow2`;
    expect((await ok(`blockcopy bc2 vda ${finished} --transient-job --finish`)).stdout).toBe('\nSuccessfully copied\n');
    expect(libvirtSource('bc2')).toBe(pivoted);
    expect(await ourSource('bc2')).toBe(pivoted);
    await ok('destroy bc2');
  }, 180_000);

  it('shutdown is recorded only once libvirt shows the guest off: a guest without an OS never powers off', async () => {
    open('sd1');
    await ok(`define ${vm.guest('sd1')}`);
    await ok('start sd1');
    const refused = (await vm.run('shutdown sd1')).at(-1)!;
    expect(refused).toMatchObject({ ok: false, json: { rule: 'LIBVIRT', code: 68 } });
    expect(refused.stderr).toMatch(/did not shut down within 2000 ms/);
    await expectSameState('sd1', 'running');
    await ok('destroy sd1');
    await expectSameState('sd1', 'shut off');
  }, 180_000);

  it('a command libvirt refuses leaves the ledger unchanged and is audited with its text', async () => {
    open('bad1');
    const xml = vm.guest('bad1');
    await ok(`define ${xml}`);
    // The disk disappears behind vmledger's back: the rules accept start, qemu cannot open the image.
    const { rmSync } = await import('node:fs');
    rmSync(`${lv.current.imagesDir}/bad1.qcow2`);
    const before = await vm.ledger.loadDomain('local', 'bad1');
    const refused = (await vm.run('start bad1')).at(-1)!;
    expect(refused.ok).toBe(false);
    expect(refused.json.rule).toBe('LIBVIRT');
    expect(refused.stderr).toMatch(/^error: Failed to start domain 'bad1'\nerror: .*bad1\.qcow2/);
    const after = await vm.ledger.loadDomain('local', 'bad1');
    expect(after.state).toEqual(before.state);
    // Only the exactly-once bookkeeping of the attempt (its intent and settlement), no fact about the domain.
    const added: string[] = [];
    for await (const e of vm.ledger.store.readStream(domainStream('local', 'bad1'))) if (e.revision > before.revision) added.push(e.type);
    expect(added.filter((t) => t !== EFFECT_INTENDED && t !== EFFECT_SETTLED)).toEqual([]);
    await expectSameState('bad1', 'shut off');
    expect(vm.driver.disagreements).toHaveLength(1);
    expect(vm.driver.disagreements[0]).toMatchObject({ verb: 'start', domain: 'bad1' });
    // The audit trail holds the refusal with libvirt's own message.
    const outcome = await vm.ledger.recall(refused.json.commandId!);
    expect(outcome).toMatchObject({ ok: false, rule: 'LIBVIRT', message: vm.driver.disagreements[0]!.message });
  }, 180_000);
});
