// `vmledger serve --connect` hears what libvirt does on its own (a real libvirtd, tiny TCG guests, serve as its own
// process on a private nats-server): a guest that powers itself off, plain `virsh` behind vmledger's back, and
// libvirtd killed and started again. Each is in the ledger as facts of actor `libvirt` within the bound.
//
// The bound, 2 s, is the functional one (Nova's power-state sync runs every 10 minutes). What it takes here:
// the event line reaches serve within milliseconds, the compare reads the domain with about six virsh commands on
// a long-lived child (~1 ms each) and appends once to SQLite; the test sees it through a NATS query polled every
// 25 ms after its own virsh process returned (~20–50 ms). That is well under half a second even on two loaded
// cores. A snapshot of a shut-off domain raises no event and waits for the snapshot poll (every 1 s): at most
// about 1.1 s. So 2 s leaves a margin either way; the latencies measured are printed for the report.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { domainStream } from '../../machines/model';
import { createVmledgerClient, type VmledgerClient } from '../../services/client';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import { parseDomainXml } from '../../services/xml';
import { VMLEDGER_BIN, runVmledger } from '../support/cli';
import { libvirtBinaries } from '../support/libvirtd';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { poweroffGuestXml, poweroffImage } from '../support/poweroffGuest';
import { describeLibvirt, useLibvirtd } from './daemon';

const SLOW = 240_000;
/** The functional bound for a fact from libvirt to be in the ledger (see the margin reasoning above). */
const BOUND_MS = 2000;
const run = promisify(execFile);

describeLibvirt('serve --connect records what libvirt does on its own', () => {
  const lv = useLibvirtd();
  let work: string;
  let nats: NatsServerHandle;
  let serve: ChildProcess;
  let serveLog = '';
  let nc: NatsConnection;
  let client: VmledgerClient;
  let store: string;
  const latencies: Record<string, number> = {};
  const names = ['po1', 'ob1', 'ob2', 'cr1', 'bj1', 'pw1', 'rs2', 'hb1', 'hb2', 'ux1'];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'vmledger-events-'));
    expect(lv.current.virsh(['capabilities']).status).toBe(0);
    nats = await startNatsServer();
    store = join(work, 'serve.sqlite');
    await startServe();
    nc = await connect({ servers: nats.url });
    client = createVmledgerClient(nc);
  }, 180_000);

  afterAll(async () => {
    console.log(`latencies (ms, libvirt done → ledger shows it): ${JSON.stringify(latencies)}`);
    await nc?.close();
    if (serve) await stopServe();
    await nats?.stop();
    for (const n of names) {
      lv.current.virsh(['destroy', n]);
      lv.current.virsh(['undefine', n, '--snapshots-metadata', '--managed-save']);
    }
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  /** `vmledger serve --connect` on the test's libvirtd, as its own process; resolves once it serves. */
  async function startServe() {
    serve = spawn(process.execPath, [VMLEDGER_BIN, 'serve', '--connect', lv.current.qemuUri, '--store', `sqlite:${store}`, '--nats', nats.url], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serve.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()));
    serve.stdout!.on('data', (d: Buffer) => (serveLog += d.toString()));
    await until(() => serveLog.includes('serving '), 60_000, 'serve to start');
  }

  async function stopServe() {
    if (serve.exitCode !== null || serve.signalCode !== null) return;
    const gone = new Promise((resolve) => serve.once('exit', resolve));
    serve.kill('SIGTERM');
    await gone;
  }

  async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
    const start = Date.now();
    while (!(await check())) {
      if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${serveLog.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    return Date.now() - start;
  }

  /** Plain virsh, its own process, behind vmledger's back (asynchronous: serve's events keep flowing meanwhile). */
  const virsh = async (...args: string[]) => run('virsh', ['-q', '-c', lv.current.qemuUri, ...args], { env: { ...process.env, LC_ALL: 'C' } });
  const state = async (name: string, host = 'local') => (await client.loadDomain(host, name)).state;
  /** How long after `act` returned the ledger shows `check`; asserted within the bound. */
  const recorded = async (what: string, act: () => Promise<unknown>, check: () => Promise<boolean>) => {
    await act();
    const ms = await until(check, 30_000, what);
    latencies[what] = ms;
    expect(ms, `${what} took ${ms} ms`).toBeLessThan(BOUND_MS);
  };
  /** How long after libvirt shows a change (polled beside the ledger) the ledger shows it; asserted within the bound. */
  const lagBehindLibvirt = async (what: string, libvirtDone: () => Promise<boolean>, ledgerDone: () => Promise<boolean>) => {
    let libvirtAt = 0;
    let ledgerAt = 0;
    await until(
      async () => {
        if (!libvirtAt && (await libvirtDone())) libvirtAt = Date.now();
        if (!ledgerAt && (await ledgerDone())) ledgerAt = Date.now();
        return libvirtAt > 0 && ledgerAt > 0;
      },
      60_000,
      what,
    );
    latencies[what] = Math.max(0, ledgerAt - libvirtAt);
    expect(latencies[what]).toBeLessThan(BOUND_MS);
  };
  const owner = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
  const qemuImg = () => {
    const b = libvirtBinaries();
    if ('missing' in b) throw new Error('no qemu-img');
    return b.qemuImg;
  };
  const poweroffXml = (name: string, waitMs: number) => poweroffGuestXml(name, poweroffImage(qemuImg(), lv.current.imagesDir, name, waitMs, owner));
  const blankXml = (name: string) => {
    const file = join(work, `${name}.xml`);
    writeFileSync(file, lv.current.domainXml(name, lv.current.image(`${name}.qcow2`)));
    return file;
  };
  /** define/create over NATS with the domain XML, as a libvirt client sends it (the UUID chosen here). */
  const withXml = (xml: string) => ({ config: parseDomainXml(xml, randomUUID), xml });
  const facts = async (name: string, host = 'local') => {
    const s = openSqliteEventStore(store);
    try {
      const out: { type: string; data: Record<string, unknown>; actor: unknown; observed: unknown }[] = [];
      for await (const e of s.readStream(domainStream(host, name), 0)) {
        const command = e.metadata.command as { meta?: { observed?: unknown } } | undefined;
        if (e.type.startsWith('Effect')) continue; // the intent records of vmledger's own commands
        out.push({ type: e.type, data: e.data as Record<string, unknown>, actor: e.metadata.actor, observed: command?.meta?.observed });
      }
      return out;
    } finally {
      await s.close();
    }
  };

  it(
    'a transient guest that powers itself off is recorded stopped, and gone with its snapshot metadata (TRANSIENT-QUIT)',
    async () => {
      const created = await client.commands.create(withXml(poweroffXml('po1', 6000)));
      expect(created.ok, created.message).toBe(true);
      const snap = await client.commands['snapshot-create']({ domain: 'po1', snapshot: { name: 's1', disks: [] } });
      expect(snap.ok, snap.message).toBe(true);
      // libvirt: gone once the guest has powered off.
      await lagBehindLibvirt(
        'guest power-off',
        () => virsh('domstate', 'po1').then(() => false, () => true),
        async () => (await state('po1')).life === 'gone',
      );
      const recordedFacts = await facts('po1');
      const said = serveLog.split('\n').filter((l) => l.includes('po1')).join('\n');
      const last = recordedFacts.slice(-2);
      expect(last.map((f) => f.type)).toEqual(['DomainStopped', 'TransientDomainRemoved']);
      expect(last[0]!.data, said).toMatchObject({ reason: 'shutdown' });
      expect(last[1]!.data).toMatchObject({ snapshotMetadataDiscarded: ['s1'] });
      expect(last[0]!.actor).toBe('libvirt');
      expect(last[0]!.observed).toMatchObject({ source: 'event' });
    },
    SLOW,
  );

  it(
    'virsh start, snapshot-create-as, destroy and undefine behind its back are in the ledger within 2 s; its own commands are not recorded twice',
    async () => {
      const defined = await client.commands.define(withXml(readFileSync(blankXml('ob1'), 'utf8')));
      expect(defined.ok, defined.message).toBe(true);
      await recorded('virsh start', () => virsh('start', 'ob1'), async () => (await state('ob1')).active);
      await recorded('virsh snapshot-create-as (running)', () => virsh('snapshot-create-as', 'ob1', 'live'), async () => 'live' in (await state('ob1')).snapshots);
      await recorded('virsh destroy', () => virsh('destroy', 'ob1'), async () => !(await state('ob1')).active);
      expect((await state('ob1')).reason).toBe('destroyed');
      // No event at all for this one: the snapshot lists are polled.
      await recorded('virsh snapshot-create-as (shut off)', () => virsh('snapshot-create-as', 'ob1', 'off'), async () => 'off' in (await state('ob1')).snapshots);
      expect((await state('ob1')).current).toBe('off');
      await recorded('virsh undefine', () => virsh('undefine', 'ob1', '--snapshots-metadata'), async () => (await state('ob1')).life === 'gone');
      await recorded('virsh define', () => virsh('define', blankXml('ob2')), async () => (await state('ob2')).life === 'exists');

      // vmledger's own start and destroy: libvirt's events for them find nothing to record.
      expect((await client.commands.start({ domain: 'ob2' })).ok).toBe(true);
      expect((await client.commands.destroy({ domain: 'ob2' })).ok).toBe(true);
      await new Promise((r) => setTimeout(r, 1500));
      const ob2 = await facts('ob2');
      expect(ob2.map((f) => [f.type, f.actor === 'libvirt'])).toEqual([
        ['DomainDefined', true],
        ['DomainStarted', false],
        ['DomainStopped', false],
      ]);
      const replay = await runVmledger(['replay', '--store', `sqlite:${store}`], work);
      expect(replay.code, replay.stdout + replay.stderr).toBe(0);
    },
    SLOW,
  );

  it(
    "a client's guest-event crash is refused; a guest whose qemu dies is recorded crashed within 2 s",
    async () => {
      expect((await client.commands.define(withXml(readFileSync(blankXml('cr1'), 'utf8')))).ok).toBe(true);
      expect((await client.commands.start({ domain: 'cr1' })).ok).toBe(true);
      // A client cannot claim it: in front of libvirt, what a guest does is libvirt's to report.
      const claimed = await client.execute({ verb: 'guest-event', domain: 'cr1', event: 'crash' });
      expect(claimed).toMatchObject({ ok: false, rule: 'HYPERVISOR-REPORTS', codeName: 'VIR_ERR_OPERATION_DENIED' });
      expect(claimed.message).toMatch(/^operation forbidden: 'guest-event' is libvirt's own report here/);
      expect((await state('cr1')).active).toBe(true);
      expect((await virsh('domstate', 'cr1')).stdout.trim()).toBe('running');
      // What libvirt did is published like a command's facts, on the domain's subject.
      const published: { type: string }[] = [];
      const sub = nc.subscribe('vmledger.evt.local.cr1');
      void (async () => {
        for await (const m of sub) published.push(JSON.parse(m.string()) as { type: string });
      })();
      await nc.flush();
      const pid = Number(readFileSync(join(lv.current.dir, 'run', 'libvirt', 'qemu', 'run', 'cr1.pid'), 'utf8').trim());
      process.kill(pid, 'SIGKILL');
      // From when libvirt shows it (libvirt itself takes a moment to notice the monitor gone).
      await lagBehindLibvirt(
        'qemu killed (crash)',
        async () => (await virsh('domstate', 'cr1')).stdout.trim() === 'shut off',
        async () => !(await state('cr1')).active,
      );
      expect((await state('cr1')).reason).toBe('crashed');
      expect((await facts('cr1')).at(-1)).toMatchObject({ type: 'DomainStopped', actor: 'libvirt', data: { reason: 'crashed' } });
      await until(() => published.some((e) => e.type === 'DomainStopped'), 5000, 'the crash published on vmledger.evt.local.cr1');
      sub.unsubscribe();
    },
    SLOW,
  );

  it(
    'a block copy started, ready and pivoted behind its back: the job and the disk it ends on are in the ledger within 2 s',
    async () => {
      expect((await client.commands.define(withXml(readFileSync(blankXml('bj1'), 'utf8')))).ok).toBe(true);
      expect((await client.commands.start({ domain: 'bj1' })).ok).toBe(true);
      const dest = join(lv.current.imagesDir, 'bj1-copy.qcow2');
      await recorded(
        'virsh blockcopy --transient-job --wait (ready)',
        () => virsh('blockcopy', 'bj1', 'vda', dest, '--transient-job', '--wait'),
        async () => (await state('bj1')).blockJobs.vda?.phase === 'ready',
      );
      await recorded('virsh blockjob --pivot', () => virsh('blockjob', 'bj1', 'vda', '--pivot'), async () => (await state('bj1')).blockJobs.vda === undefined);
      expect((await state('bj1')).config?.disks[0]?.source).toBe(dest);
      expect((await virsh('domblklist', 'bj1')).stdout).toContain(dest);
    },
    SLOW,
  );

  it(
    "a domain of ledger host 'b', which has no connection of its own (its commands run on the plain --connect), destroyed behind its back is recorded on 'b' within 2 s",
    async () => {
      const defined = await client.commands.define({ host: 'b', ...withXml(readFileSync(blankXml('hb1'), 'utf8')) });
      expect(defined.ok, defined.message).toBe(true);
      expect((await client.commands.start({ host: 'b', domain: 'hb1' })).ok).toBe(true);
      expect((await virsh('domstate', 'hb1')).stdout.trim()).toBe('running');
      await recorded("virsh destroy (host 'b')", () => virsh('destroy', 'hb1'), async () => !(await state('hb1', 'b')).active);
      expect((await state('hb1', 'b')).reason).toBe('destroyed');
      expect((await facts('hb1', 'b')).at(-1)).toMatchObject({ type: 'DomainStopped', actor: 'libvirt', data: { reason: 'destroyed' } });
      // Not looked up under the default host: nothing of hb1 there.
      expect(await facts('hb1')).toEqual([]);
    },
    SLOW,
  );

  it(
    "serve started again: the start-up reconcile takes a domain of host 'b' on the plain --connect for b's, and still reports one no host holds",
    async () => {
      const defined = await client.commands.define({ host: 'b', ...withXml(readFileSync(blankXml('hb2'), 'utf8')) });
      expect(defined.ok, defined.message).toBe(true);
      await stopServe();
      // Behind vmledger's back while nobody listens: a domain no ledger host holds.
      expect((await virsh('define', blankXml('ux1'))).stderr).toBe('');
      const from = serveLog.length;
      await startServe();
      await until(() => /watching libvirt at /.test(serveLog.slice(from)), 60_000, 'the watch to start again');
      const lines = serveLog.slice(from).split('\n');
      const startUp = lines.filter((l) => l.includes('reconcile at start-up')).join('\n');
      // hb2 is host b's (no "local/hb2: not in the ledger (vmledger adopt)"), and compared there: no difference.
      expect(lines.filter((l) => l.includes('hb2')).join('\n')).toBe('');
      expect(startUp).toMatch(/reconcile at start-up: local\/ux1: not in the ledger: ledger gone, libvirt exists \(vmledger adopt\)/);
      expect(await facts('hb2')).toEqual([]);
      expect(await facts('ux1')).toEqual([]);
      expect((await state('hb2', 'b')).life).toBe('exists');
      // The restarted serve still watches b's domains on the plain connection.
      await recorded("virsh start (host 'b', after serve's restart)", () => virsh('start', 'hb2'), async () => (await state('hb2', 'b')).active);
    },
    SLOW,
  );

  it(
    'libvirtd killed and started again under serve: what happened meanwhile is recovered by the resync, and events flow again',
    async () => {
      expect((await client.commands.define(withXml(poweroffXml('pw1', 6000)))).ok).toBe(true);
      expect((await client.commands.define(withXml(readFileSync(blankXml('rs2'), 'utf8')))).ok).toBe(true);
      expect((await client.commands.start({ domain: 'pw1' })).ok).toBe(true);
      await lv.current.kill();
      // The guest powers off (after its 6 s) while no libvirtd hears it; libvirt runs qemu with -no-shutdown, so
      // qemu waits, and the libvirtd started again finds it off and stops it, perhaps before serve has subscribed
      // again. The wait is for the guest's own timer, not a bound on vmledger. 6 s: on a loaded machine the start
      // reply and the kill took more than the 3 s this had first, and libvirt heard the power-off itself.
      await new Promise((r) => setTimeout(r, 10_000));
      // Nobody heard the power-off, so the ledger must still show pw1 running: a stop recorded now is the watch
      // taking a lookup or list that libvirtd's death cut short for the domain stopped or gone. That happened in
      // some loaded full-suite runs (pw1 recorded 'destroyed' while libvirtd was being killed) until observe.ts
      // confirmed virsh's `failed to get domain` with the domain list and took a failed list as no observation;
      // since then it was not seen in 12 runs of this test, 9 of them beside other tests or a second copy. So it
      // fails the test, with what the watch recorded and read (the last fact, serve's lines on pw1) to find why.
      const pw1Lines = serveLog.split('\n').filter((line) => line.includes('pw1'));
      expect(
        (await state('pw1')).active,
        `pw1 recorded stopped before libvirtd came back: ${JSON.stringify((await facts('pw1')).slice(-1))}\n${pw1Lines.join('\n')}`,
      ).toBe(true);
      const spawnedBefore = (serveLog.match(/subscribed again/g) ?? []).length;
      const restartedAt = Date.now();
      await lv.current.start();
      const ms = await until(async () => !(await state('pw1')).active, 60_000, 'the resync to record pw1 stopped');
      latencies['resync after libvirtd restart (from its start)'] = Date.now() - restartedAt;
      expect(ms).toBeGreaterThanOrEqual(0);
      // The respawned child logs its resync 250 ms after its spawn; the restarted libvirtd's own event may have
      // recorded the stop before that.
      await until(() => (serveLog.match(/subscribed again/g) ?? []).length > spawnedBefore, 10_000, 'the event child to subscribe again');
      const pw1 = (await facts('pw1')).at(-1)!;
      expect(pw1).toMatchObject({ type: 'DomainStopped', actor: 'libvirt' });
      expect(pw1.observed).toMatchObject({ source: expect.stringMatching(/^(resync|event)$/) });

      // And the new event child hears the next change.
      await new Promise((r) => setTimeout(r, 2500));
      await recorded('virsh start after the restart', () => virsh('start', 'rs2'), async () => (await state('rs2')).active);
    },
    SLOW,
  );
});
