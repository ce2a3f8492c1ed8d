// Settling an effect whose result was never recorded, against a real libvirtd: the driver tells from libvirt's
// state alone whether the command happened, and performs nothing itself (libvirtd's API log shows no change).
import { afterEach, beforeAll, expect, it } from 'vitest';

import { decide } from '../../machines/decide';
import { command as parseCommand, type CommandSpec } from '../support/given';
import { describeLibvirt, useLibvirtd } from './daemon';
import { vmledgerOn, type VmledgerOnLibvirt } from './session';

const MUTATING = /^vir(Domain(Create|Destroy|Suspend|Resume|Define|Undefine|Snapshot(Create|Delete)|ManagedSave|BlockCopy|BlockJobAbort)\w*)$/;

describeLibvirt('settling an open effect against libvirt', () => {
  const lv = useLibvirtd();
  let vm: VmledgerOnLibvirt;
  beforeAll(() => {
    expect(lv.current.virsh(['capabilities']).status).toBe(0);
  }, 180_000);
  afterEach(async () => {
    lv.current.virsh(['destroy', 'set1']);
    lv.current.virsh(['undefine', 'set1', '--snapshots-metadata']);
    await vm?.close();
  });

  /** The intent the ledger would have recorded for this command on the domain as vmledger has it now. */
  const intentOf = async (input: CommandSpec) => {
    const command = parseCommand(input, new Date().toISOString());
    const state = await vm.state('set1');
    const decision = decide(state, command);
    if (!decision.ok) throw new Error(decision.refusal.message);
    return { command, state, decided: decision.facts };
  };
  const mutatingCalls = () => lv.current.apiCalls().filter((c) => MUTATING.test(c.api)).length;

  it('start: performed when libvirt runs the domain, not performed when it does not', async () => {
    vm = vmledgerOn(lv.current);
    expect((await vm.run(`define ${vm.guest('set1')}`)).at(-1)!.ok).toBe(true);
    const intent = await intentOf({ verb: 'start', domain: 'set1' });

    const calls = mutatingCalls();
    expect(await vm.driver.settle(intent)).toEqual({ performed: false });
    expect(mutatingCalls()).toBe(calls);

    // The process died after libvirt started it: the start happened.
    expect(lv.current.virsh(['start', 'set1']).status).toBe(0);
    const settled = await vm.driver.settle(intent);
    expect(settled).toEqual({ performed: true, result: { facts: intent.decided } });
    expect(mutatingCalls()).toBe(calls + 1);
  }, 180_000);

  it('snapshot-create and undefine: read from snapshot-list and the domain list', async () => {
    vm = vmledgerOn(lv.current);
    expect((await vm.run(`define ${vm.guest('set1')}`)).at(-1)!.ok).toBe(true);
    const snap = await intentOf({ verb: 'snapshot-create', domain: 'set1', snapshot: { name: 's1', disks: [] } });
    expect(await vm.driver.settle(snap)).toEqual({ performed: false });
    expect(lv.current.virsh(['snapshot-create-as', 'set1', 's1']).status).toBe(0);
    expect((await vm.driver.settle(snap)).performed).toBe(true);

    // (vmledger never recorded s1: drop it on libvirt's side so the domain is as vmledger has it again.)
    expect(lv.current.virsh(['snapshot-delete', 'set1', 's1']).status).toBe(0);
    const undefine = await intentOf({ verb: 'undefine', domain: 'set1' });
    expect(await vm.driver.settle(undefine)).toEqual({ performed: false });
    expect(lv.current.virsh(['undefine', 'set1']).status).toBe(0);
    expect((await vm.driver.settle(undefine)).performed).toBe(true);
  }, 180_000);

  it('neither state: left open with a message naming both', async () => {
    vm = vmledgerOn(lv.current);
    expect((await vm.run(`define ${vm.guest('set1')}`)).at(-1)!.ok).toBe(true);
    const suspend = await intentOf({ verb: 'start', domain: 'set1', paused: true });
    // Started, but running rather than paused: neither before nor after.
    expect(lv.current.virsh(['start', 'set1']).status).toBe(0);
    await expect(vm.driver.settle(suspend)).rejects.toThrow(/cannot settle start set1 .*libvirt shows/);
  }, 180_000);
});
