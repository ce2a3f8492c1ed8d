// Two real hosts (issue 17): two private libvirtd daemons, each in its own network namespace with its own host
// UUID, joined by a veth pair, and `vmledger -c a=URI -c b=URI migrate` of a running TCG guest from one to the
// other. libvirt's own view decides: virsh on each daemon, the phases each daemon served (Begin3/Perform3/Confirm3
// on the source, Prepare3/Finish3 on the destination), and the address the migration stream was set up on.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

import { createVmledgerClient } from '../../services/client';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import { runVmledger } from '../support/cli';
import { startLibvirtd, type LibvirtdHandle } from '../support/libvirtd';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { createHostPair, hostPairUnavailable, type HostPair } from '../support/netns';
import { startServe, waitUntil, type ServeProcess } from '../support/serveProcess';
import { describeLibvirt } from './daemon';

const SLOW = 240_000;
const unavailable = hostPairUnavailable();
if (unavailable) console.warn(`SKIPPED: two-host migration tests: ${unavailable}`);
const describeTwoHosts = unavailable ? describe.skip : describeLibvirt;

/** The daemon's debug log (libvirt's API entry points, qemu's migration code). */
function debugLog(lv: LibvirtdHandle): string {
  const file = join(lv.dir, 'api.log');
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/**
 * The migration phases a daemon served for a domain, in order, from its API log: one record per call (its first
 * line, `dom=…` or `dconn=…`, names the domain on the source, `(VM: name=N,`; on the destination only the lines
 * after it do, the destination XML's `<name>` or `destination_name`).
 */
function migrationPhases(lv: LibvirtdHandle, name: string): string[] {
  const text = debugLog(lv);
  const calls: { phase: string; text: string }[] = [];
  for (const record of text.split(/^(?=\d{4}-\d\d-\d\d )/m)) {
    const m = /: virDomainMigrate(\w+)3Params:\d+ : (d?conn=|dom=)?/.exec(record);
    if (!m) continue;
    if (m[2] !== undefined) calls.push({ phase: m[1]!, text: record });
    else if (calls.length > 0) calls.at(-1)!.text += record;
  }
  const names = [`name=${name},`, `<name>${name}</name>`, `(string)${name}\n`];
  return calls.filter((c) => names.some((n) => c.text.includes(n))).map((c) => c.phase);
}

/** Every migration call a daemon served, for any domain (Prepare's first line names none). */
const migrationCalls = (lv: LibvirtdHandle) => lv.apiCalls().filter((c) => /^virDomainMigrate/.test(c.api)).length;

describeTwoHosts('migration between two libvirt hosts in their own network namespaces', () => {
  let pair: HostPair;
  let a: LibvirtdHandle;
  let b: LibvirtdHandle;
  let work: string;
  let store: string;
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const serves: ServeProcess[] = [];
  /** `vmledger` with both hosts' connections, addressing host `host`. */
  const vmledger = (host: 'a' | 'b', ...args: string[]) =>
    runVmledger(['-c', `a=${a.qemuUri}`, '-c', `b=${b.qemuUri}`, '--host', host, '--store', `sqlite:${store}`, ...args], work);
  const guest = (lv: LibvirtdHandle, name: string, withDisk: boolean) => {
    const file = join(work, `${name}.xml`);
    writeFileSync(file, lv.domainXml(name, withDisk ? lv.image(`${name}.qcow2`) : undefined));
    return file;
  };
  const facts = async (host: string, name: string) => {
    const s = openSqliteEventStore(store);
    const types: string[] = [];
    try {
      for await (const e of s.readStream(`domain-${host}-${name}`)) types.push(e.type);
    } finally {
      await s.close();
    }
    return types;
  };

  beforeAll(async () => {
    pair = createHostPair();
    const cacheDir = inject('libvirtCacheDir');
    [a, b] = await Promise.all([
      startLibvirtd({ cacheDir, netns: pair.a.netns, hostUuid: '7c0a8f2e-1d4b-4a51-9e3a-00000000000a', migrationAddress: pair.a.address }),
      startLibvirtd({ cacheDir, netns: pair.b.netns, hostUuid: '7c0a8f2e-1d4b-4a51-9e3a-00000000000b', migrationAddress: pair.b.address }),
    ]);
    work = mkdtempSync(join(tmpdir(), 'vmledger-migrate-'));
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    store = join(work, 'ledger.sqlite');
    // Two hosts to libvirt: each daemon reports its own host UUID.
    expect(a.virsh(['capabilities']).stdout).toContain('<uuid>7c0a8f2e-1d4b-4a51-9e3a-00000000000a</uuid>');
    expect(b.virsh(['capabilities']).stdout).toContain('<uuid>7c0a8f2e-1d4b-4a51-9e3a-00000000000b</uuid>');
  }, 180_000);

  afterAll(async () => {
    for (const s of serves) await s.kill9();
    await nc?.close();
    await nats?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
    pair?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 180_000);

  it('migrates a running guest from host a to host b: facts on both, running on b per libvirt', async () => {
    expect((await vmledger('a', 'define', guest(a, 'mig1', false))).code).toBe(0);
    expect((await vmledger('a', 'start', 'mig1')).code).toBe(0);
    expect(a.virsh(['domstate', 'mig1']).stdout.trim()).toBe('running');

    const migrated = await vmledger('a', 'migrate', '--live', 'mig1', 'b');
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);

    // libvirt: running on b (transient: no --persistent), the source's definition shut off.
    expect(b.virsh(['domstate', 'mig1']).stdout.trim()).toBe('running');
    expect(b.virsh(['dominfo', 'mig1']).stdout).toMatch(/^Persistent:\s+no$/m);
    expect(a.virsh(['domstate', 'mig1']).stdout.trim()).toBe('shut off');
    // Each daemon served its phases of the migration; the stream went to b's address in b's namespace.
    expect(migrationPhases(a, 'mig1')).toEqual(['Begin', 'Perform', 'Confirm']);
    expect(migrationPhases(b, 'mig1')).toEqual(['Prepare', 'Finish']);
    expect(debugLog(b)).toContain(`Setting up incoming migration with URI tcp:${pair.b.address}:`);

    // The ledger: the saga's facts on the source (libvirt's effects each behind an intent: define, start and
    // Perform, the only phase that changes libvirt), the arrival on the destination, and the same states.
    expect(await facts('a', 'mig1')).toEqual([
      'EffectIntended',
      'DomainDefined',
      'EffectIntended',
      'DomainStarted',
      'MigrationStarted',
      'MigrationPhaseReached', // prepare
      'EffectIntended',
      'MigrationPhaseReached', // perform
      'MigrationPhaseReached', // finish
      'MigrationPhaseReached', // confirm
      'DomainMigratedOut',
    ]);
    expect(await facts('b', 'mig1')).toEqual(['DomainMigratedIn']);
    expect((await vmledger('b', 'domstate', 'mig1')).stdout.trim()).toBe('running');
    expect((await vmledger('a', 'domstate', 'mig1')).stdout.trim()).toBe('shut off');
    const replay = await runVmledger(['replay', '--store', `sqlite:${store}`], work);
    expect(replay.code, replay.stdout + replay.stderr).toBe(0);

    // And back: host b's guest is destroyed through its own connection.
    expect((await vmledger('b', 'destroy', 'mig1')).code).toBe(0);
    expect(b.virsh(['list', '--all', '--name']).stdout.trim()).toBe('');
  }, SLOW);

  it('MIG-SNAPSHOTS refuses a guest with snapshots before anything reaches libvirt, as does a host without a connection', async () => {
    expect((await vmledger('a', 'define', guest(a, 'mig2', true))).code).toBe(0);
    expect((await vmledger('a', 'snapshot-create-as', 'mig2', 'before')).code).toBe(0);
    expect((await vmledger('a', 'start', 'mig2')).code).toBe(0);
    const before = [migrationCalls(a), migrationCalls(b)];

    const refused = await vmledger('a', '--json', 'migrate', '--live', 'mig2', 'b');
    expect(refused.code).toBe(1);
    const outcome = JSON.parse(refused.stdout.trim().split('\n').at(-1)!) as { rule: string; code: number; message: string };
    expect(outcome).toMatchObject({ rule: 'MIG-SNAPSHOTS', code: 55, message: 'Requested operation is not valid: cannot migrate domain with 1 snapshots' });

    expect([migrationCalls(a), migrationCalls(b)]).toEqual(before);
    expect(a.virsh(['domstate', 'mig2']).stdout.trim()).toBe('running');
    // A destination host without a connection of its own: refused at Begin too, naming the option to give.
    const nowhere = await vmledger('a', 'snapshot-delete', 'mig2', 'before');
    expect(nowhere.code).toBe(0);
    const unmapped = await vmledger('a', 'migrate', '--live', 'mig2', 'qemu+ssh://c/system');
    expect(unmapped.stderr).toContain("no libvirt connection for destination host 'c': give --connect c=URI");
    expect(unmapped.code).toBe(1);
    expect([migrationCalls(a), migrationCalls(b)]).toEqual(before);
    expect(b.virsh(['domstate', 'mig2']).status).not.toBe(0);
    expect(await facts('b', 'mig2')).toEqual([]);
    await vmledger('a', 'destroy', 'mig2');
  }, SLOW);

  it('a migration libvirt refuses is recorded as a failed Perform with its text; the guest stays on a', async () => {
    // A writable disk on a filesystem libvirt does not know to be shared: libvirt refuses, the rules did not.
    expect((await vmledger('a', 'define', guest(a, 'mig3', true))).code).toBe(0);
    expect((await vmledger('a', 'start', 'mig3')).code).toBe(0);

    const refused = await vmledger('a', '--json', 'migrate', '--live', 'mig3', 'b');
    expect(refused.code).toBe(1);
    const outcome = JSON.parse(refused.stdout.trim().split('\n').at(-1)!) as { rule: string; message: string };
    expect(outcome).toMatchObject({ rule: 'LIBVIRT', message: 'Unsafe migration: Migration without shared storage is unsafe' });
    expect(migrationPhases(a, 'mig3')).toContain('Begin');
    expect(migrationPhases(b, 'mig3')).toEqual([]);

    expect(a.virsh(['domstate', 'mig3']).stdout.trim()).toBe('running');
    expect(b.virsh(['domstate', 'mig3']).status).not.toBe(0);
    expect(await facts('a', 'mig3')).toContain('MigrationFailed');
    expect(await facts('b', 'mig3')).toEqual([]);
    // The job ended: the domain takes commands again, on a.
    expect((await vmledger('a', 'suspend', 'mig3')).code).toBe(0);
    expect(a.virsh(['domstate', 'mig3']).stdout.trim()).toBe('paused');
    const audit = await runVmledger(['audit', '--store', `sqlite:${store}`], work);
    expect(audit.stdout).toContain('Unsafe migration: Migration without shared storage is unsafe');
    await vmledger('a', 'destroy', 'mig3');
  }, SLOW);

  it("Prepare asks the destination's libvirt: a name defined there behind vmledger's back fails the phase, before any migration call", async () => {
    expect((await vmledger('a', 'define', guest(a, 'mig6', false))).code).toBe(0);
    expect((await vmledger('a', 'start', 'mig6')).code).toBe(0);
    // Same name on b, defined with plain virsh (libvirt picks another UUID): the ledger knows nothing of it.
    expect(b.virsh(['define', guest(b, 'mig6', false)]).status).toBe(0);
    const theirs = b.virsh(['domuuid', 'mig6']).stdout.trim();
    const before = [migrationCalls(a), migrationCalls(b)];

    const refused = await vmledger('a', '--json', 'migrate', '--live', 'mig6', 'b');
    expect(refused.code).toBe(1);
    const outcome = JSON.parse(refused.stdout.trim().split('\n').at(-1)!) as { rule: string; message: string };
    expect(outcome).toMatchObject({
      rule: 'MIG-PHASES',
      message: `operation failed: migration failed at phase prepare: domain 'mig6' already exists on host 'b' with uuid ${theirs} (libvirt)`,
    });
    expect([migrationCalls(a), migrationCalls(b)]).toEqual(before);
    expect(a.virsh(['domstate', 'mig6']).stdout.trim()).toBe('running');
    expect(await facts('a', 'mig6')).toContain('MigrationFailed');
    expect(await facts('b', 'mig6')).toEqual([]);
    b.virsh(['undefine', 'mig6']);
    await vmledger('a', 'destroy', 'mig6');
  }, SLOW);

  it("serve with both hosts' connections watches each: a guest destroyed behind its back is recorded stopped on its own host", async () => {
    const serve = await startServe(['-c', `a=${a.qemuUri}`, '-c', `b=${b.qemuUri}`, '--store', `sqlite:${store}`, '--nats', nats.url], work);
    serves.push(serve);
    try {
      await waitUntil(() => /watching libvirt at .* for host 'a'/.test(serve.stderr()) && /watching libvirt at .* for host 'b'/.test(serve.stderr()), 30_000, () => `both watches: ${serve.stderr()}`);
      for (const [host, lv] of [['a', a], ['b', b]] as const) {
        const name = `watched-${host}`;
        expect((await vmledger(host, 'define', guest(lv, name, false))).code).toBe(0);
        expect((await vmledger(host, 'start', name)).code).toBe(0);
        expect(lv.virsh(['destroy', name]).status).toBe(0);
        let recorded: string[] = [];
        await waitUntil(
          async () => (recorded = await facts(host, name)).at(-1) === 'DomainStopped',
          30_000,
          () => `${host}/${name} recorded stopped (facts: ${recorded.join(', ')})\n${serve.stderr()}`,
        );
        // On its own host only: nothing under the default host, nor the other.
        expect(await facts('local', name)).toEqual([]);
        expect(await facts(host === 'a' ? 'b' : 'a', name)).toEqual([]);
      }
    } finally {
      await serve.stop();
    }
  }, SLOW);

  it("serve with host b on the default connection: a guest migrating into b is the saga's to record, not the watch's", async () => {
    // -c a=URI_A -c URI_B: host b has no connection of its own, so the default connection's watch (host 'local') covers it.
    const serve = await startServe(['-c', `a=${a.qemuUri}`, '-c', b.qemuUri, '--store', `sqlite:${store}`, '--nats', nats.url], work);
    serves.push(serve);
    try {
      await waitUntil(
        () => /watching libvirt at .* for host 'local' and every host without a connection of its own/.test(serve.stderr()) && /watching libvirt at .* for host 'a'/.test(serve.stderr()),
        30_000,
        () => `both watches: ${serve.stderr()}`,
      );
      // The event children subscribe within about a second of being spawned, unannounced.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect((await vmledger('a', 'define', guest(a, 'mig7', false))).code).toBe(0);
      expect((await vmledger('a', 'start', 'mig7')).code).toBe(0);
      const migrated = await vmledger('a', 'migrate', '--live', 'mig7', 'b');
      expect(migrated.stderr).toBe('');
      expect(migrated.code).toBe(0);
      expect(b.virsh(['domstate', 'mig7']).stdout.trim()).toBe('running');
      // After the migration the watch takes the guest as b's: destroyed behind vmledger's back, it is recorded there.
      expect(b.virsh(['destroy', 'mig7']).status).toBe(0);
      let recorded: string[] = [];
      await waitUntil(
        async () => (recorded = await facts('b', 'mig7')).includes('DomainStopped'),
        30_000,
        () => `b/mig7 recorded stopped (facts: ${recorded.join(', ')})\n${serve.stderr()}`,
      );
      // The arrival was the saga's alone: nothing recorded by the watch under the default host, nor before it on b.
      expect(recorded[0]).toBe('DomainMigratedIn');
      expect(await facts('local', 'mig7')).toEqual([]);
    } finally {
      await serve.stop();
    }
  }, SLOW);

  // kill -9 of `serve` around Perform, the one step that changes libvirt: the restarted serve settles the intent
  // from what both daemons show, and the client's retry of the same migrate resumes the saga where it stopped.
  it.each([
    ['mig4', 'after-effect', true],
    ['mig5', 'after-intent', false],
  ] as const)('%s: serve killed %s of Perform; the retry finds the guest where libvirt put it (migrated: %s)', async (name, point, migrated) => {
    expect((await vmledger('a', 'define', guest(a, name, false))).code).toBe(0);
    expect((await vmledger('a', 'start', name)).code).toBe(0);
    const serveArgs = ['-c', `a=${a.qemuUri}`, '-c', `b=${b.qemuUri}`, '--store', `sqlite:${store}`, '--nats', nats.url];
    const first = await startServe(serveArgs, work, point);
    serves.push(first);
    const client = createVmledgerClient(nc, { timeoutMs: 5_000, retries: 60, retryDelayMs: 250 });
    const commandId = `migrate-kill9-${name}`;
    const answer = client.execute({ verb: 'migrate', host: 'a', domain: name, desthost: 'b', live: true, meta: { commandId } });
    await first.paused(120_000);
    await first.kill9();
    expect(migrationPhases(a, name)).toEqual(migrated ? ['Begin', 'Perform', 'Confirm'] : []);
    expect(b.virsh(['domstate', name]).stdout.trim()).toBe(migrated ? 'running' : '');

    const second = await startServe(serveArgs, work);
    serves.push(second);
    const outcome = await answer;
    expect(outcome.commandId).toBe(commandId);
    if (migrated) {
      expect(outcome.ok).toBe(true);
      expect(await facts('b', name)).toEqual(['DomainMigratedIn']);
      expect((await client.loadDomain('b', name)).state.active).toBe(true);
    } else {
      expect(outcome).toMatchObject({ ok: false, rule: 'LIBVIRT' });
      expect(outcome.message).toContain('interrupted before libvirt performed it');
      expect(await facts('b', name)).toEqual([]);
      // The job ended: the guest runs on a, free for the next command.
      const { state } = await client.loadDomain('a', name);
      expect(state.active && state.migration === null).toBe(true);
    }
    // libvirt performed it once at most: one Perform on the source, the guest running on one host only.
    expect(migrationPhases(a, name).filter((p) => p === 'Perform')).toHaveLength(migrated ? 1 : 0);
    expect(a.virsh(['domstate', name]).stdout.trim()).toBe(migrated ? 'shut off' : 'running');
    expect(b.virsh(['domstate', name]).status === 0).toBe(migrated);
    await second.stop();
    const replay = await runVmledger(['replay', '--store', `sqlite:${store}`], work);
    expect(replay.code, replay.stdout + replay.stderr).toBe(0);
    await vmledger(migrated ? 'b' : 'a', 'destroy', name);
  }, SLOW);
});
