// The command service on a real nats-server, over the real ledger on a real SQLite file.
import { join } from 'node:path';

import { jetstreamManager, RetentionPolicy } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm } from '@nats-io/services';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLIENT_VERBS, COORDINATOR_VERBS, VERBS } from '../../machines/commands';
import type { RecordedEvent } from '../../services/eventstore/types';
import { commandJsonSchemas } from '../../services/nats/jsonSchema';
import { commandSubject, eventSubject, QUERY_SUBJECTS, SCHEMA_SUBJECT } from '../../services/nats/protocol';
import { SERVICE_VERSION, startCommandService } from '../../services/nats/service';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import {
  captureLog,
  domainConfig,
  ledgerOnFile,
  rawRequest,
  startStack,
  tempDir,
  waitFor,
  type LedgerOnFile,
  type Stack,
} from './fixtures';

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
let db: LedgerOnFile;
let stack: Stack;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir();
  db = await ledgerOnFile(join(tmp.dir, 'ledger.sqlite'));
  stack = await startStack(server.url, db.ledger);
  nc = stack.clientNc;
});

afterAll(async () => {
  await stack?.stop();
  await db?.close();
  tmp?.remove();
  await server?.stop();
});

const cmd = (verb: (typeof VERBS)[number], body: unknown) => rawRequest(nc, commandSubject(verb), body);

describe('commands by request/reply', () => {
  it('accepts a command sent without verb or meta, and replies with the facts and the revision', async () => {
    const { reply, headers } = await cmd('define', { config: domainConfig('accept-1') });
    expect(reply).toMatchObject({ ok: true, command: 'define', host: 'local', domain: 'accept-1', revision: 0 });
    const events = reply.events as RecordedEvent[];
    expect(events.map((e) => e.type)).toEqual(['DomainDefined']);
    // meta was filled in by the service: a random command id, the time of receipt, and the actor `nats`.
    expect(reply.commandId).toMatch(/^[0-9a-f-]{36}$/);
    expect(events[0]!.metadata.actor).toBe('nats');
    expect(Date.now() - Date.parse(events[0]!.metadata.time)).toBeLessThan(60_000);
    expect(headers['Nats-Service-Error-Code']).toBeUndefined();

    // Core NATS does not say who sent a request: an actor named in the body is kept as a claim, never as the actor.
    const started = await cmd('start', { verb: 'start', domain: 'accept-1', meta: { actor: 'alice' } });
    expect(started.reply).toMatchObject({ ok: true, command: 'start', revision: 1 });
    const startedFact = (started.reply.events as RecordedEvent[])[0]!;
    expect(startedFact.metadata.actor).toBe('nats');
    expect((startedFact.metadata.command as { meta: { auth: unknown } }).meta.auth).toEqual({ unauthenticated: true, claimedActor: 'alice' });
  });

  it('refuses by rule with libvirt code, name and message, and appends nothing', async () => {
    const head = await db.store.headPosition();
    const { reply, headers } = await cmd('start', { domain: 'no-such-domain' });
    expect(reply).toMatchObject({
      ok: false,
      rule: 'DOM-NOTFOUND',
      code: 42,
      codeName: 'VIR_ERR_NO_DOMAIN',
      message: "Domain not found: no domain with matching name 'no-such-domain'",
      events: [],
    });
    // A rule refusal is an answer, not a service error.
    expect(headers['Nats-Service-Error-Code']).toBeUndefined();
    const domainFacts: RecordedEvent[] = [];
    for await (const e of db.store.readAll(head)) if (e.stream.startsWith('domain-')) domainFacts.push(e);
    expect(domainFacts).toEqual([]);

    await cmd('define', { config: domainConfig('refuse-1') });
    await cmd('snapshot-create', { domain: 'refuse-1', snapshot: { name: 's1' } });
    const und = await cmd('undefine', { domain: 'refuse-1' });
    expect(und.reply).toMatchObject({
      ok: false,
      rule: 'UND-SNAPSHOTS',
      code: 55,
      codeName: 'VIR_ERR_OPERATION_INVALID',
      message: 'Requested operation is not valid: cannot delete inactive domain with 1 snapshots',
    });
    const und2 = await cmd('undefine', { domain: 'refuse-1', snapshotsMetadata: true });
    expect(und2.reply).toMatchObject({ ok: true });
  });

  it('refuses malformed JSON and schema errors as VALIDATION (code 8), naming the field', async () => {
    const bad = await cmd('start', '{"domain": ');
    expect(bad.reply).toMatchObject({ ok: false, rule: 'VALIDATION', code: 8, codeName: 'VIR_ERR_INVALID_ARG', command: 'start' });
    expect(bad.reply.message).toMatch(/not valid JSON/);
    expect(bad.headers['Nats-Service-Error-Code']).toBe('400');

    const notObject = await cmd('start', '[1,2]');
    expect(notObject.reply.message).toMatch(/must be a JSON object/);

    const missing = await cmd('start', {});
    expect(missing.reply).toMatchObject({ ok: false, rule: 'VALIDATION', code: 8 });
    expect(missing.reply.message).toMatch(/domain: Required/);
    expect(missing.headers['Nats-Service-Error-Code']).toBe('400');

    const empty = await cmd('start', { domain: '' });
    expect(empty.reply.message).toMatch(/domain: must not be empty/);

    const badTime = await cmd('start', { domain: 'x', meta: { time: 'yesterday' } });
    expect(badTime.reply.message).toMatch(/meta\.time/);

    const badFlag = await cmd('undefine', { domain: 'x', snapshotsMetadata: 'yes' });
    expect(badFlag.reply.message).toMatch(/snapshotsMetadata/);

    const nested = await cmd('define', { config: { name: 'n', uuid: 'u', disks: [{ target: '' }] } });
    expect(nested.reply.message).toMatch(/config\.disks\.0\.target/);

    const wrongVerb = await cmd('start', { verb: 'destroy', domain: 'x' });
    expect(wrongVerb.reply).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(wrongVerb.reply.message).toMatch(/verb: "destroy" in the body does not match the subject vmledger\.cmd\.start/);
  });

  it('refuses a body over the limit (256 KiB by default) with a clear error', async () => {
    const big = { domain: 'x', padding: 'p'.repeat(300 * 1024) };
    const { reply, headers } = await cmd('start', big);
    expect(reply).toMatchObject({ ok: false, rule: 'PAYLOAD-SIZE', code: 8, codeName: 'VIR_ERR_INVALID_ARG', domain: '' });
    expect(reply.message).toMatch(/request body is \d+ bytes; vmledger\.cmd\.start accepts at most 262144 bytes \(256 KiB\)/);
    expect(headers['Nats-Service-Error-Code']).toBe('413');
    // Just under the limit is read (and then refused on its merits: a field no schema knows, named).
    const fits = await cmd('start', { domain: 'no-such-domain', padding: 'p'.repeat(200 * 1024) });
    expect(fits.reply).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(fits.reply.message).toContain('padding');
  });

  it('returns the first outcome for a retried command id, and appends nothing', async () => {
    await cmd('define', { config: domainConfig('idem-1') });
    const body = { domain: 'idem-1', meta: { commandId: 'idem-1-start', time: '2024-05-01T10:00:00Z', actor: 'bob' } };
    const first = await cmd('start', body);
    expect(first.reply).toMatchObject({ ok: true, revision: 1 });
    const head = await db.store.headPosition();
    const again = await cmd('start', body);
    expect(again.reply).toMatchObject({ ok: true, duplicate: true, revision: 1, commandId: 'idem-1-start' });
    expect((again.reply.events as RecordedEvent[]).map((e) => e.position)).toEqual((first.reply.events as RecordedEvent[]).map((e) => e.position));
    expect(await db.store.headPosition()).toBe(head);
    // A new id is a new command: refused now, since the domain is running.
    const fresh = await cmd('start', { ...body, meta: { ...body.meta, commandId: 'idem-1-start-2' } });
    expect(fresh.reply).toMatchObject({ ok: false, rule: 'STA-ACTIVE' });
  });
});

describe('queries', () => {
  it('lists domains, loads one, and shows its snapshot tree', async () => {
    await cmd('define', { host: 'h1', config: domainConfig('q-1') });
    await cmd('define', { host: 'h1', config: domainConfig('q-2') });
    await cmd('snapshot-create', { host: 'h1', domain: 'q-1', snapshot: { name: 'a' } });
    await cmd('snapshot-create', { host: 'h1', domain: 'q-1', snapshot: { name: 'b' } });
    await cmd('snapshot-revert', { host: 'h1', domain: 'q-1', snapshotname: 'a' });
    await cmd('snapshot-create', { host: 'h1', domain: 'q-1', snapshot: { name: 'c' } });

    const list = await rawRequest(nc, QUERY_SUBJECTS.domains, { host: 'h1', all: true });
    expect(list.reply.ok).toBe(true);
    expect((list.reply.domains as { name: string }[]).map((d) => d.name).sort()).toEqual(['q-1', 'q-2']);
    // An empty body lists the active domains of every host (virsh's default), `all` the inactive ones too.
    await cmd('start', { host: 'h1', domain: 'q-2' });
    const active = await rawRequest(nc, QUERY_SUBJECTS.domains, new Uint8Array());
    expect((active.reply.domains as { host: string; name: string }[]).filter((d) => d.host === 'h1')).toMatchObject([{ name: 'q-2', id: 1, state: 'running' }]);
    const all = await rawRequest(nc, QUERY_SUBJECTS.domains, { all: true });
    expect((all.reply.domains as { host: string }[]).some((d) => d.host === 'local')).toBe(true);

    const one = await rawRequest(nc, QUERY_SUBJECTS.domain, { host: 'h1', domain: 'q-1' });
    expect(one.reply).toMatchObject({ ok: true, revision: 4, state: { name: 'q-1', host: 'h1', life: 'exists', current: 'c' } });
    const none = await rawRequest(nc, QUERY_SUBJECTS.domain, { host: 'h1', domain: 'nobody' });
    expect(none.reply).toMatchObject({ ok: true, revision: -1, state: { life: 'none' } });

    const tree = await rawRequest(nc, QUERY_SUBJECTS.snapshots, { host: 'h1', domain: 'q-1' });
    expect(tree.reply).toMatchObject({ ok: true, host: 'h1', domain: 'q-1', current: 'c', revision: 4 });
    const shape = (n: { name: string; current: boolean; children: unknown[] }): unknown => ({
      name: n.name,
      current: n.current,
      children: (n.children as (typeof n)[]).map(shape),
    });
    expect((tree.reply.roots as never[]).map(shape)).toEqual([
      {
        name: 'a',
        current: false,
        children: [
          { name: 'b', current: false, children: [] },
          { name: 'c', current: true, children: [] },
        ],
      },
    ]);

    const missing = await rawRequest(nc, QUERY_SUBJECTS.snapshots, { host: 'h1', domain: 'nobody' });
    expect(missing.reply).toMatchObject({ ok: false, rule: 'DOM-NOTFOUND', code: 42 });

    const invalid = await rawRequest(nc, QUERY_SUBJECTS.domain, { host: 'h1' });
    expect(invalid.reply).toMatchObject({ ok: false, rule: 'VALIDATION', code: 8 });
    expect(invalid.reply.message).toMatch(/domain: Required/);
  });

  it('recalls the first outcome of a command id', async () => {
    const { reply } = await cmd('define', { config: domainConfig('recall-1'), meta: { commandId: 'recall-1-define' } });
    const recalled = await rawRequest(nc, QUERY_SUBJECTS.command, { commandId: 'recall-1-define' });
    expect(recalled.reply).toMatchObject({ ok: true, outcome: { ok: true, commandId: 'recall-1-define', revision: reply.revision } });
    const unknown = await rawRequest(nc, QUERY_SUBJECTS.command, { commandId: 'never-sent' });
    expect(unknown.reply).toEqual({ ok: true, outcome: null });
  });

  it('serves the JSON Schema of every command on vmledger.schema', async () => {
    const all = await rawRequest(nc, SCHEMA_SUBJECT, new Uint8Array());
    expect(Object.keys(all.reply.schemas as object).sort()).toEqual([...CLIENT_VERBS].sort());
    expect(all.reply.schemas).toEqual(commandJsonSchemas());
    // A coordinator verb has no subject, so no schema: the query names the field and the verbs there are.
    const coordinator = await rawRequest(nc, SCHEMA_SUBJECT, { verb: 'migrate-phase' });
    expect(coordinator.reply).toMatchObject({ ok: false });
    expect(String(coordinator.reply.message)).toMatch(/verb/);
    const one = await rawRequest(nc, SCHEMA_SUBJECT, { verb: 'undefine', form: 'command' });
    expect(Object.keys(one.reply.schemas as object)).toEqual(['undefine']);
    expect((one.reply.schemas as Record<string, { required: string[] }>).undefine!.required).toEqual(expect.arrayContaining(['verb', 'meta', 'domain']));
  });
});

describe('discovery', () => {
  it('$SRV.PING, INFO and STATS list the service, every verb endpoint and the queue group', async () => {
    const svc = new Svcm(nc).client();
    const pings = [];
    for await (const p of await svc.ping('vmledger')) pings.push(p);
    expect(pings.map((p) => p.id)).toContain(stack.service.id);
    expect(pings.find((p) => p.id === stack.service.id)).toMatchObject({ name: 'vmledger', version: SERVICE_VERSION });

    const infos = [];
    for await (const i of await svc.info('vmledger')) infos.push(i);
    const info = infos.find((i) => i.id === stack.service.id)!;
    const subjects = info.endpoints.map((e) => e.subject);
    for (const verb of CLIENT_VERBS) expect(subjects).toContain(`vmledger.cmd.${verb}`);
    // The migration coordinator's steps are not open to clients (issue 14).
    for (const verb of COORDINATOR_VERBS) expect(subjects).not.toContain(`vmledger.cmd.${verb}`);
    expect(subjects).toEqual(expect.arrayContaining(Object.values(QUERY_SUBJECTS)));
    expect(subjects).toContain('vmledger.schema');
    expect(new Set(info.endpoints.map((e) => e.queue_group))).toEqual(new Set(['vmledger']));

    const stats = [];
    for await (const s of await svc.stats('vmledger')) stats.push(s);
    const mine = stats.find((s) => s.id === stack.service.id)!;
    const define = mine.endpoints!.find((e) => e.subject === 'vmledger.cmd.define')!;
    expect(define.num_requests).toBeGreaterThan(0);
  });
});

describe('facts on vmledger.evt.<host>.<domain>', () => {
  it('publishes each fact after it is durable, with Nats-Msg-Id = commandId:index, on an encoded subject', async () => {
    const watcher = await connect({ servers: server.url });
    try {
      const seen: { subject: string; msgId: string; event: RecordedEvent; durable: boolean }[] = [];
      watcher.subscribe('vmledger.evt.>', {
        callback: (_err, msg) => {
          const event = JSON.parse(new TextDecoder().decode(msg.data)) as RecordedEvent;
          // Durable before published: the fact is already in the store when the message arrives.
          void (async () => {
            let durable = false;
            for await (const e of db.store.readStream(event.stream, event.revision)) {
              durable = e.position === event.position;
              break;
            }
            seen.push({ subject: msg.subject, msgId: msg.headers?.get('Nats-Msg-Id') ?? '', event, durable });
          })();
        },
      });
      await watcher.flush();

      const name = 'web.example.com';
      const def = await cmd('define', { host: 'rack 1', config: domainConfig(name), meta: { commandId: 'evt-define' } });
      expect(def.reply.ok).toBe(true);
      const start = await cmd('start', { host: 'rack 1', domain: name, meta: { commandId: 'evt-start' } });
      expect(start.reply.ok).toBe(true);
      const destroy = await cmd('destroy', { host: 'rack 1', domain: name, meta: { commandId: 'evt-destroy' } });
      expect(destroy.reply.ok).toBe(true);
      // A refusal publishes nothing.
      await cmd('resume', { host: 'rack 1', domain: name, meta: { commandId: 'evt-refused' } });

      await waitFor(() => seen.length >= 3, 5_000, 'three facts');
      await new Promise((r) => setTimeout(r, 200));
      const subject = eventSubject('rack 1', name);
      expect(subject).toBe('vmledger.evt.rack%201.web%2Eexample%2Ecom');
      expect(seen.map((s) => [s.subject, s.msgId, s.event.type, s.durable])).toEqual([
        [subject, 'evt-define:0', 'DomainDefined', true],
        [subject, 'evt-start:0', 'DomainStarted', true],
        [subject, 'evt-destroy:0', 'DomainStopped', true],
      ]);

      // Nothing captures the fact subjects (no stream was created by the service).
      const jsm = await jetstreamManager(nc);
      const streams = await jsm.streams.list().next();
      expect(streams.filter((s) => (s.config.subjects ?? []).some((p) => p.startsWith('vmledger')))).toEqual([]);
    } finally {
      await watcher.close();
    }
  });

  it('refuses to start when a JetStream stream captures a request subject, but allows one on the facts', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'SWALLOW', subjects: ['vmledger.cmd.>'], retention: RetentionPolicy.Limits });
    try {
      await expect(startCommandService({ ledger: db.ledger, nc, log: captureLog().log })).rejects.toThrow(
        /stream 'SWALLOW' captures 'vmledger\.cmd\.>', which includes vmledger\.cmd\.define/,
      );
    } finally {
      await jsm.streams.delete('SWALLOW');
    }
    await jsm.streams.add({ name: 'FACTS', subjects: ['vmledger.evt.>'] });
    try {
      const other = await startCommandService({ ledger: db.ledger, nc, log: captureLog().log });
      await other.stop();
    } finally {
      await jsm.streams.delete('FACTS');
    }
  });
});
