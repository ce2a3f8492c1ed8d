// `vmledger reconcile` and `vmledger adopt` against a real libvirtd (qemu, TCG): what plain `virsh` did behind
// vmledger's back while no `serve` listened is found, printed (domain, what, ledger, libvirt) and recorded as
// facts of actor `libvirt`; an adopted domain's snapshots protect it from its first command (UND-SNAPSHOTS,
// MIG-SNAPSHOTS); running either twice changes nothing; replay stays clean.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { runVmledger } from '../support/cli';
import { describeLibvirt, useLibvirtd } from './daemon';

const SLOW = 240_000;

describeLibvirt('reconcile and adopt against a real libvirtd', () => {
  const lv = useLibvirtd();
  let work: string;
  const names = ['rc1', 'ad1', 'ad2'];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'vmledger-reconcile-'));
    expect(lv.current.virsh(['capabilities']).status).toBe(0);
  }, 180_000);
  afterAll(() => {
    for (const n of names) {
      lv.current.virsh(['destroy', n]);
      lv.current.virsh(['undefine', n, '--snapshots-metadata', '--managed-save']);
    }
    rmSync(work, { recursive: true, force: true });
  });

  const guest = (name: string) => {
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, lv.current.domainXml(name, lv.current.image(`${name}.qcow2`)));
    return xml;
  };
  const virsh = (...args: string[]) => {
    const r = lv.current.virsh(args);
    expect(r.status, `virsh ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const vmledger = (store: string, ...args: string[]) => runVmledger(['-c', lv.current.qemuUri, '--store', store, ...args], work);
  const ok = async (store: string, ...args: string[]) => {
    const r = await vmledger(store, ...args);
    expect(r.stderr, args.join(' ')).toBe('');
    expect(r.code, args.join(' ')).toBe(0);
    return r.stdout;
  };
  const reconcile = async (store: string, ...flags: string[]) => {
    const r = await runVmledger(['reconcile', '-c', lv.current.qemuUri, '--store', store, '--json', ...flags], work);
    expect(r.stderr).toBe('');
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { domain: string; what: string; ledger: string; libvirt: string; recorded?: boolean; commandId?: string });
  };

  it(
    'destroy, start, snapshot-create-as and undefine behind its back are found and recorded by reconcile',
    async () => {
      const store = `sqlite:${join(work, 'rc.sqlite')}`;
      await ok(store, 'define', guest('rc1'));
      await ok(store, 'start', 'rc1');

      // 1. virsh destroy: --dry-run only prints it, reconcile records it as libvirt's own destroy.
      virsh('destroy', 'rc1');
      const dry = await reconcile(store, '--dry-run');
      expect(dry).toEqual([{ domain: 'rc1', what: 'state', ledger: 'running', libvirt: 'shut off (destroyed)' }]);
      expect((await ok(store, 'domstate', 'rc1')).trim()).toBe('running');
      // Two processes reconciling at once record the destroy once (the same command id: domain, revision, verb).
      const [first, second] = await Promise.all([reconcile(store), reconcile(store)]);
      expect([...first, ...second].filter((f) => f.recorded).map((f) => f.commandId)).toHaveLength(first.length + second.length);
      expect(new Set([...first, ...second].map((f) => f.commandId)).size).toBe(1);
      expect((await ok(store, 'domstate', 'rc1')).trim()).toBe('shut off');
      virsh('start', 'rc1');
      await reconcile(store);
      virsh('destroy', 'rc1');
      const human = await runVmledger(['reconcile', '-c', lv.current.qemuUri, '--store', store], work);
      expect(human.stdout).toMatch(/rc1\s+state\s+running\s+shut off \(destroyed\)\s+recorded/);
      expect((await ok(store, 'domstate', 'rc1')).trim()).toBe('shut off');
      expect(await reconcile(store)).toEqual([]);

      // 2. virsh start, then a snapshot of the running guest.
      virsh('start', 'rc1');
      virsh('snapshot-create-as', 'rc1', 'live1');
      const found = await reconcile(store);
      // libvirt's reason after the snapshot's own pause is `unpaused`: running all the same.
      expect(found.map((f) => [f.what, f.ledger, f.libvirt.replace(/ \((booted|unpaused)\)$/, ''), f.recorded])).toEqual([
        ['state', 'shut off', 'running', true],
        ['snapshot live1', 'none', 'current', true],
      ]);
      expect((await ok(store, 'snapshot-current', 'rc1', '--name')).trim()).toBe('live1');

      // 3. destroy and a snapshot of the shut-off domain, then undefine with the snapshots' metadata.
      virsh('destroy', 'rc1');
      virsh('snapshot-create-as', 'rc1', 'off1');
      expect((await reconcile(store)).map((f) => f.what)).toEqual(['state', 'snapshot off1']);
      expect((await ok(store, 'snapshot-list', 'rc1', '--name')).split('\n').filter(Boolean).sort()).toEqual(['live1', 'off1']);
      virsh('undefine', 'rc1', '--snapshots-metadata');
      expect((await reconcile(store)).map((f) => [f.what, f.ledger, f.libvirt])).toEqual([['undefined', 'defined', 'gone']]);
      expect((await vmledger(store, 'domstate', 'rc1')).stderr).toContain("failed to get domain 'rc1'");
      expect(await reconcile(store)).toEqual([]);

      // Who did it: libvirt, marked out-of-band; and replay re-decides every one of them cleanly.
      const audit = await runVmledger(['audit', 'rc1', '--store', store, '--json'], work);
      const entries = JSON.parse(audit.stdout) as { actor: string; verb: string; commandId: string }[];
      const byLibvirt = entries.filter((e) => e.actor === 'libvirt');
      expect(byLibvirt.map((e) => e.verb)).toEqual(['destroy', 'start', 'destroy', 'start', 'snapshot-create', 'destroy', 'snapshot-create', 'undefine']);
      expect(byLibvirt.every((e) => e.commandId.startsWith('libvirt/'))).toBe(true);
      const replay = await runVmledger(['replay', '--store', store], work);
      expect(replay.code, replay.stdout + replay.stderr).toBe(0);
    },
    SLOW,
  );

  it(
    'adopt imports definition, state and the whole snapshot tree; the rules then protect the domain; twice changes nothing',
    async () => {
      const store = `sqlite:${join(work, 'ad.sqlite')}`;
      virsh('define', guest('ad1'));
      virsh('snapshot-create-as', 'ad1', 'base');
      virsh('snapshot-create-as', 'ad1', 'mid');
      virsh('snapshot-create-as', 'ad1', 'top');
      virsh('snapshot-current', 'ad1', 'mid');
      virsh('define', guest('ad2'));
      virsh('start', 'ad2');

      const adopted = await runVmledger(['adopt', '-c', lv.current.qemuUri, '--store', store], work);
      expect(adopted.stderr).toBe('');
      expect(adopted.code).toBe(0);
      expect(adopted.stdout).toMatch(/ad1\s+defined/);
      expect(adopted.stdout).toMatch(/ad2\s+state\s+shut off\s+running \(booted\)\s+recorded/);

      expect((await ok(store, 'domstate', 'ad2')).trim()).toBe('running');
      expect((await ok(store, 'snapshot-current', 'ad1', '--name')).trim()).toBe('mid');
      expect((await ok(store, 'snapshot-parent', 'ad1', 'top')).trim()).toBe('mid');
      expect((await ok(store, 'snapshot-parent', 'ad1', 'mid')).trim()).toBe('base');
      const uuid = (text: string) => /^UUID:\s+(\S+)/m.exec(text)?.[1];
      expect(uuid(await ok(store, 'dominfo', 'ad1'))).toBe(uuid(virsh('dominfo', 'ad1')));

      // Protected from the first command: refused by the rules, never seen by libvirt.
      const undefine = await vmledger(store, '--json', 'undefine', 'ad1');
      expect(JSON.parse(undefine.stdout)).toMatchObject({ ok: false, rule: 'UND-SNAPSHOTS', message: 'Requested operation is not valid: cannot delete inactive domain with 3 snapshots' });
      virsh('snapshot-create-as', 'ad2', 'r1');
      expect((await reconcile(store)).map((f) => f.what)).toEqual(['snapshot r1']);
      const migrate = await vmledger(store, '--json', 'migrate', 'ad2', 'qemu+ssh://elsewhere/system');
      expect(JSON.parse(migrate.stdout)).toMatchObject({ ok: false, rule: 'MIG-SNAPSHOTS', message: 'Requested operation is not valid: cannot migrate domain with 1 snapshots' });
      expect(lv.current.apiCalls().filter((c) => /Undefine|Migrate/.test(c.api) && /name=ad[12],/.test(c.line))).toEqual([]);

      // Twice: nothing differs any more.
      const again = await runVmledger(['adopt', '-c', lv.current.qemuUri, '--store', store], work);
      expect(again.stdout.trim()).toBe('no differences');
      const replay = await runVmledger(['replay', '--store', store], work);
      expect(replay.code, replay.stdout + replay.stderr).toBe(0);
    },
    SLOW,
  );
});
