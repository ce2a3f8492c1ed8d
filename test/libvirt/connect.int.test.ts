// `--connect URI` / `-c URI` on the command line (one-shot and shell) and on `serve`, against a private libvirtd:
// accepted commands are performed on libvirt; over NATS, define takes the domain XML itself (`xml`).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { runServe, type RunningServe } from '../../services/nats/serve';
import { createLogger } from '../../services/log';
import { runVmledger } from '../support/cli';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { describeLibvirt, useLibvirtd } from './daemon';

// Each test starts several `vmledger` processes (seconds each on a loaded machine): generous bounds.
const SLOW = 240_000;

describeLibvirt('--connect: vmledger in front of libvirt on the command line and in serve', () => {
  const lv = useLibvirtd();
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'vmledger-connect-'));
    expect(lv.current.virsh(['capabilities']).status).toBe(0);
  }, 180_000);
  afterAll(() => {
    for (const n of ['cli1', 'cli2', 'cli3', 'nats1']) {
      lv.current.virsh(['destroy', n]);
      lv.current.virsh(['undefine', n, '--snapshots-metadata']);
    }
    rmSync(work, { recursive: true, force: true });
  });

  const guest = (name: string) => {
    const file = join(work, `${name}.xml`);
    writeFileSync(file, lv.current.domainXml(name, lv.current.image(`${name}.qcow2`)));
    return file;
  };

  it('one-shot commands with --connect and -c, the ledger persisted between them', async () => {
    const store = `sqlite:${join(work, 'cli.sqlite')}`;
    const xml = guest('cli1');
    const define = await runVmledger(['--connect', lv.current.qemuUri, '--store', store, 'define', xml], work);
    expect(define.stderr).toBe('');
    expect(define.stdout).toBe(`Domain 'cli1' defined from ${xml}\n\n`);
    expect(lv.current.virsh(['domstate', 'cli1']).stdout.trim()).toBe('shut off');
    const start = await runVmledger(['-c', lv.current.qemuUri, '--store', store, 'start', 'cli1'], work);
    expect(start.stdout).toBe("Domain 'cli1' started\n\n");
    expect(lv.current.virsh(['domstate', 'cli1']).stdout.trim()).toBe('running');
    // Refused by the rules: virsh's own text, and libvirt never asked.
    const calls = lv.current.apiCalls().length;
    const again = await runVmledger(['-c', lv.current.qemuUri, '--store', store, 'start', 'cli1'], work);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('error: Domain is already active\n');
    expect(lv.current.apiCalls().filter((c) => c.api === 'virDomainCreate' || c.api === 'virDomainCreateWithFlags')).toHaveLength(1);
    expect(lv.current.apiCalls().length).toBe(calls);
    const destroy = await runVmledger(['-c', lv.current.qemuUri, '--store', store, 'destroy', 'cli1'], work);
    expect(destroy.stdout).toBe("Domain 'cli1' destroyed\n\n");
    expect(lv.current.virsh(['domstate', 'cli1']).stdout.trim()).toBe('shut off');
  }, SLOW);

  it('a command libvirt refuses is audited with its text, and counted as a disagreement', async () => {
    const store = `sqlite:${join(work, 'audit.sqlite')}`;
    const xml = guest('cli3');
    expect((await runVmledger(['-c', lv.current.qemuUri, '--store', store, 'define', xml], work)).code).toBe(0);
    rmSync(join(lv.current.imagesDir, 'cli3.qcow2'));
    const start = await runVmledger(['-c', lv.current.qemuUri, '--store', store, '--json', 'start', 'cli3'], work);
    expect(start.code).toBe(1);
    const report = JSON.parse(start.stdout) as { ok: boolean; rule: string; code: number; message: string };
    expect(report).toMatchObject({ ok: false, rule: 'LIBVIRT' });
    expect(report.message).toContain('cli3.qcow2');
    expect(lv.current.virsh(['domstate', 'cli3']).stdout.trim()).toBe('shut off');
    const audit = await runVmledger(['audit', '--store', store], work);
    expect(audit.code).toBe(0);
    const row = audit.stdout.split('\n').find((l) => /\bstart\b/.test(l) && l.includes('LIBVIRT'));
    expect(row, audit.stdout).toBeDefined();
    expect(row).toContain(report.message);
    expect(audit.stdout).toContain('note: 1 command(s) the rules accepted were refused by libvirt');
    expect((await runVmledger(['-c', lv.current.qemuUri, '--store', store, 'undefine', 'cli3'], work)).code).toBe(0);
  }, SLOW);

  it('shell -c runs a script on one connection', async () => {
    const xml = guest('cli2');
    const r = await runVmledger(
      ['--store', 'memory', 'shell', '-c', lv.current.qemuUri, '-e', `define ${xml}; start cli2; snapshot-create-as cli2 s1; destroy cli2; undefine cli2 --snapshots-metadata`],
      work,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Domain snapshot s1 created");
    expect(lv.current.virsh(['domstate', 'cli2']).status).not.toBe(0);
  }, SLOW);

  it('refuses --connect with --nats, and a URI that is none', async () => {
    const both = await runVmledger(['--nats', 'nats://127.0.0.1:1', '-c', lv.current.qemuUri, 'list'], work);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/^error: --connect and --nats do not go together/);
    const bad = await runVmledger(['-c', 'not a uri', '--store', 'memory', 'list'], work);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("error: invalid libvirt URI 'not a uri': expected DRIVER[+TRANSPORT]://[HOST]/PATH, e.g. qemu:///system\n");
  }, SLOW);

  it('refuses a plain --connect URI beside local=URI2 at start-up of the CLI and of serve; the same URI both ways is one', async () => {
    const other = 'qemu+unix:///session?socket=/nonexistent/libvirt-sock';
    const message =
      `--connect: the default host 'local' is given two libvirt connections ('${lv.current.qemuUri}', without a host, and 'local=${other}'): ` +
      'give one of them, and the other hosts theirs as HOST=URI';
    const cli = await runVmledger(['-c', lv.current.qemuUri, '-c', `local=${other}`, '--store', 'memory', 'list'], work);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toBe(`error: ${message}\n`);
    // serve names it before anything is opened: NATS here is unreachable, and never tried.
    const serve = await runVmledger(['serve', '--store', 'memory', '--nats', 'nats://127.0.0.1:1', '-c', `local=${other}`, '-c', lv.current.qemuUri], work);
    expect(serve.code).toBe(1);
    expect(serve.stderr).toBe(`vmledger serve: ${message}\n`);
    const same = await runVmledger(['-c', lv.current.qemuUri, '-c', `local=${lv.current.qemuUri}`, '--store', 'memory', 'list'], work);
    expect(same.stderr).toBe('');
    expect(same.code).toBe(0);
  }, SLOW);

  it('serve --connect: define over NATS with the domain XML itself, then start', async () => {
    let nats: NatsServerHandle | undefined;
    let serving: RunningServe | undefined;
    let nc: NatsConnection | undefined;
    try {
      nats = await startNatsServer();
      serving = await runServe({ store: 'memory', natsUrl: nats.url, connect: lv.current.qemuUri, handleSignals: false, log: createLogger({ level: 'silent' }) });
      nc = await connect({ servers: nats.url });
      const xml = readFileSync(guest('nats1'), 'utf8');
      const ask = async (verb: string, body: unknown) => JSON.parse(new TextDecoder().decode((await nc!.request(`vmledger.cmd.${verb}`, JSON.stringify(body), { timeout: 60_000 })).data));
      const defined = await ask('define', { xml });
      expect(defined).toMatchObject({ ok: true, domain: 'nats1' });
      expect(lv.current.virsh(['domstate', 'nats1']).stdout.trim()).toBe('shut off');
      // libvirt holds the XML the client sent (its memory size, which the rules' config does not model).
      expect(lv.current.virsh(['dumpxml', 'nats1']).stdout).toContain("<memory unit='KiB'>65536</memory>");
      expect((await ask('start', { domain: 'nats1' })).ok).toBe(true);
      expect(lv.current.virsh(['domstate', 'nats1']).stdout.trim()).toBe('running');
      const mismatch = await ask('define', { xml, config: { name: 'other', uuid: 'x', disks: [] } });
      expect(mismatch).toMatchObject({ ok: false, rule: 'VALIDATION' });
      expect(mismatch.message).toContain("config.name 'other' and the xml's <name> 'nats1' differ");
      expect((await ask('destroy', { domain: 'nats1' })).ok).toBe(true);
    } finally {
      await nc?.close();
      await serving?.stop();
      await nats?.stop();
    }
  }, SLOW);
});
