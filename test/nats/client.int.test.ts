// The typed client (services/client.ts) and the remote ledger (services/nats/remoteLedger.ts) against the real
// service, ledger and SQLite file.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { VERBS } from '../../machines/commands';
import { createVmledgerClient, VmledgerRequestError, type PublishedFact, type VmledgerClient } from '../../services/client';
import type { Ledger } from '../../services/ledger-types';
import { createRemoteLedger } from '../../services/nats/remoteLedger';
import { startCommandService } from '../../services/nats/service';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { captureLog, connectLikeProduction, domainConfig, ledgerOnFile, startStack, tempDir, waitFor, type LedgerOnFile, type Stack } from './fixtures';

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
let db: LedgerOnFile;
let stack: Stack;
let client: VmledgerClient;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir();
  db = await ledgerOnFile(join(tmp.dir, 'ledger.sqlite'));
  stack = await startStack(server.url, db.ledger);
  client = stack.client;
});

afterAll(async () => {
  await stack?.stop();
  await db?.close();
  tmp?.remove();
  await server?.stop();
});

describe('typed client', () => {
  it('has one method per verb, and command(verb, args) with the verb-specific fields', async () => {
    expect(Object.keys(client.commands).sort()).toEqual([...VERBS].sort());

    const def = await client.command('define', { config: domainConfig('typed-1') });
    expect(def).toMatchObject({ ok: true, command: 'define', domain: 'typed-1', revision: 0 });
    expect(await client.commands.start({ domain: 'typed-1' })).toMatchObject({ ok: true, revision: 1 });
    expect(await client.commands['snapshot-create']({ domain: 'typed-1', snapshot: { name: 'snap' } })).toMatchObject({ ok: true });
    expect(await client.commands.destroy({ domain: 'typed-1' })).toMatchObject({ ok: true });
    const refused = await client.command('undefine', { domain: 'typed-1' });
    expect(refused).toMatchObject({ ok: false, rule: 'UND-SNAPSHOTS', code: 55 });
    expect(await client.command('undefine', { domain: 'typed-1', snapshotsMetadata: true })).toMatchObject({ ok: true });
    expect(await client.execute({ verb: 'start', domain: 'typed-1' })).toMatchObject({ ok: false, rule: 'DOM-NOTFOUND' });

    // Type-level: wrong fields do not compile (checked by tsc; never run).
    const typeChecks = async () => {
      // @ts-expect-error -- 'domian' is not a field of undefine
      await client.command('undefine', { domian: 'x' });
      // @ts-expect-error -- snapshot-delete needs snapshotname
      await client.commands['snapshot-delete']({ domain: 'x' });
      // @ts-expect-error -- no such verb
      await client.command('reticulate', { domain: 'x' });
      // @ts-expect-error -- flags are booleans
      await client.command('undefine', { domain: 'x', snapshotsMetadata: 'yes' });
    };
    void typeChecks;
  });

  it('queries: listDomains, loadDomain, snapshotTree, recall, schemas; query errors throw VmledgerRequestError', async () => {
    await client.command('define', { host: 'qh', config: domainConfig('typed-q') });
    await client.command('snapshot-create', { host: 'qh', domain: 'typed-q', snapshot: { name: 'root' }, meta: { commandId: 'typed-q-snap' } });
    expect((await client.listDomains('qh')).map((d) => d.name)).toEqual(['typed-q']);
    const loaded = await client.loadDomain('qh', 'typed-q');
    expect(loaded).toMatchObject({ revision: 1, state: { current: 'root' } });
    const tree = await client.snapshotTree('qh', 'typed-q');
    expect(tree.roots.map((n) => n.name)).toEqual(['root']);
    await expect(client.snapshotTree('qh', 'nobody')).rejects.toBeInstanceOf(VmledgerRequestError);
    await expect(client.snapshotTree('qh', 'nobody')).rejects.toMatchObject({ rule: 'DOM-NOTFOUND', code: 42 });
    expect(await client.recall('typed-q-snap')).toMatchObject({ ok: true, duplicate: true, commandId: 'typed-q-snap' });
    expect(await client.recall('unknown-id')).toBeUndefined();
    expect(Object.keys(await client.schemas('start'))).toEqual(['start']);
  });

  it('subscribe(host, domain) sees that domain’s facts only; subscribe() sees all', async () => {
    const mine = client.subscribe('sub-host', 'sub.dom');
    const all = client.subscribe();
    await mine.ready();
    const got: PublishedFact[] = [];
    const gotAll: PublishedFact[] = [];
    void (async () => {
      for await (const f of mine) got.push(f);
    })();
    void (async () => {
      for await (const f of all) gotAll.push(f);
    })();
    await client.command('define', { host: 'sub-host', config: domainConfig('sub.dom'), meta: { commandId: 'sub-1' } });
    await client.command('define', { host: 'sub-host', config: domainConfig('other'), meta: { commandId: 'sub-2' } });
    await client.command('start', { host: 'sub-host', domain: 'sub.dom', meta: { commandId: 'sub-3' } });
    await waitFor(() => got.length >= 2 && gotAll.length >= 3, 5_000, 'facts');
    mine.unsubscribe();
    all.unsubscribe();
    expect(got.map((f) => [f.host, f.domain, f.msgId, f.event.type])).toEqual([
      ['sub-host', 'sub.dom', 'sub-1:0', 'DomainDefined'],
      ['sub-host', 'sub.dom', 'sub-3:0', 'DomainStarted'],
    ]);
    expect(gotAll.map((f) => f.msgId)).toEqual(['sub-1:0', 'sub-2:0', 'sub-3:0']);
  });

  it('retries a timed-out command with the same commandId: one set of facts, the first outcome', async () => {
    // The only service instance's ledger stalls on its first call: the client's first attempt times out; the
    // retry (same bytes, same commandId) is answered; the stalled call, when it runs, finds the command done.
    await stack.service.stop();
    let calls = 0;
    const stalling: Ledger = {
      get store() {
        return db.ledger.store;
      },
      async execute(input) {
        calls++;
        if (calls === 1) await new Promise((r) => setTimeout(r, 1_500));
        return db.ledger.execute(input);
      },
      loadDomain: (h, n) => db.ledger.loadDomain(h, n),
      listDomains: (h) => db.ledger.listDomains(h),
      queryDomains: (q) => db.ledger.queryDomains(q),
      recall: (id) => db.ledger.recall(id),
      close: async () => {},
    };
    const serviceNc = await connectLikeProduction(server.url, 'stalling');
    const service = await startCommandService({ ledger: stalling, nc: serviceNc, log: captureLog().log });
    try {
      await client.command('define', { config: domainConfig('retry-1') });
      calls = 0;
      const impatient = createVmledgerClient(stack.clientNc, { timeoutMs: 500, retries: 3 });
      const out = await impatient.command('start', { domain: 'retry-1' });
      expect(out).toMatchObject({ ok: true });
      expect(calls).toBeGreaterThanOrEqual(2);
      await waitFor(() => service.inFlight() === 0, 5_000, 'the stalled call to finish');
      const facts = [];
      for await (const e of db.store.readStream('domain-local-retry-1')) facts.push(e);
      expect(facts.map((e) => e.type)).toEqual(['DomainDefined', 'DomainStarted']);
      expect(facts[1]!.metadata.commandId).toBe(out.commandId);
      // The stalled first attempt, when it finally ran, got the first outcome back.
      expect(await db.ledger.recall(out.commandId)).toMatchObject({ ok: true, revision: 1 });
    } finally {
      await service.stop();
      await serviceNc.close();
      await stack.stop();
      stack = await startStack(server.url, db.ledger);
      client = stack.client;
    }
  });
});

describe('remote ledger', () => {
  it('implements execute, loadDomain, queryDomains and recall over NATS, like the local ledger', async () => {
    const remote = createRemoteLedger(stack.clientNc);
    expect(remote.remote).toBe(true);
    const def = await remote.execute({
      verb: 'define',
      config: domainConfig('remote-1'),
      meta: { commandId: 'remote-1-define', time: '2024-01-01T00:00:00Z', actor: 'shell' },
    });
    expect(def).toMatchObject({ ok: true, revision: 0 });
    expect(await remote.loadDomain('local', 'remote-1')).toEqual(await db.ledger.loadDomain('local', 'remote-1'));
    expect(await remote.queryDomains({ host: 'local', all: true })).toEqual(await db.ledger.queryDomains({ host: 'local', all: true }));
    expect(await remote.recall('remote-1-define')).toEqual(await db.ledger.recall('remote-1-define'));
    expect(await remote.execute({ verb: 'frobnicate' })).toMatchObject({ ok: false, rule: 'VALIDATION', code: 8 });
    expect(await remote.execute({ verb: 'start' })).toMatchObject({ ok: false, rule: 'VALIDATION', message: expect.stringMatching(/domain/) });
    expect(await remote.execute({ verb: 'start', domain: 'nobody' })).toMatchObject({ ok: false, rule: 'DOM-NOTFOUND' });
    await remote.close();
    expect(stack.clientNc.isClosed()).toBe(false);
  });
});
