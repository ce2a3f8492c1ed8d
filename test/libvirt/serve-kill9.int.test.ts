// kill -9 of `vmledger serve --connect URI` between the intent and the result (issue 16), while a client waits for
// its `start`: serve is started again on the same store, and the client's own retry (the same command id) gets the
// outcome the ledger recorded when it settled the intent against libvirt. libvirt's side says what really
// happened: the domain's state per virsh, and how many times the daemon was asked to start it (its API log).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { createVmledgerClient } from '../../services/client';
import { runVmledger } from '../support/cli';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { startServe, type ServeProcess } from '../support/serveProcess';
import { describeLibvirt, useLibvirtd } from './daemon';

const SLOW = 240_000;

describeLibvirt('kill -9 of vmledger serve --connect between the intent and the result', () => {
  const lv = useLibvirtd();
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let work: string;
  const running: ServeProcess[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    work = mkdtempSync(join(tmpdir(), 'vmledger-serve-kill9-'));
  }, 180_000);
  afterAll(async () => {
    for (const s of running) await s.kill9();
    await nc?.close();
    await nats?.stop();
    for (const n of ['sk9a', 'sk9b']) {
      lv.current.virsh(['destroy', n]);
      lv.current.virsh(['undefine', n]);
    }
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it.each([
    ['sk9a', 'after-effect', true],
    ['sk9b', 'after-intent', false],
  ] as const)('%s: serve killed %s; the retry gets the recorded outcome (started: %s), libvirt saw it once at most', async (name, point, happened) => {
    const uri = lv.current.qemuUri;
    const store = `sqlite:${join(work, `${name}.sqlite`)}`;
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, lv.current.domainXml(name, lv.current.image(`${name}.qcow2`)));
    expect((await runVmledger(['-c', uri, '--store', store, 'define', xml], work)).code).toBe(0);
    const starts = () => lv.current.apiCalls().filter((c) => /^virDomainCreate/.test(c.api) && c.line.includes(`name=${name},`)).length;
    const serveArgs = ['--connect', uri, '--store', store, '--nats', nats.url];

    const first = await startServe(serveArgs, work, point);
    running.push(first);
    // The client retries on its own (timeouts, no responders while serve is down), always with the same command id.
    const client = createVmledgerClient(nc, { timeoutMs: 3_000, retries: 60, retryDelayMs: 250 });
    const commandId = `serve-kill9-${name}`;
    const answer = client.execute({ verb: 'start', domain: name, meta: { commandId } });
    await first.paused();
    await first.kill9();

    // libvirt's view while no vmledger runs: the effect happened (after-effect) or not (after-intent).
    expect(lv.current.virsh(['domstate', name]).stdout.trim()).toBe(happened ? 'running' : 'shut off');
    expect(starts()).toBe(happened ? 1 : 0);

    const second = await startServe(serveArgs, work);
    running.push(second);
    const outcome = await answer;
    expect(outcome.commandId).toBe(commandId);
    if (happened) {
      expect(outcome.ok).toBe(true);
      expect(outcome.events.map((e) => e.type)).toEqual(['DomainStarted']);
    } else {
      expect(outcome).toMatchObject({ ok: false, rule: 'JOB-INTERRUPTED' });
    }
    // Asked again, the same recorded outcome; libvirt was asked to start it once at most.
    const again = await client.execute({ verb: 'start', domain: name, meta: { commandId } });
    expect(again.ok).toBe(outcome.ok);
    expect(again.events.map((e) => e.position)).toEqual(outcome.events.map((e) => e.position));
    expect(starts()).toBe(happened ? 1 : 0);
    expect(lv.current.virsh(['domstate', name]).stdout.trim()).toBe(happened ? 'running' : 'shut off');
    const { state } = await client.loadDomain('local', name);
    expect(state.active).toBe(happened);

    await second.stop();
    const replay = await runVmledger(['replay', '--store', store], work);
    expect(replay.code, replay.stdout + replay.stderr).toBe(0);
  }, SLOW);
});
