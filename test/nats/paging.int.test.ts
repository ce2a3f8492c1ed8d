// Paged domain queries on a server with a small max_payload (8 KiB): no reply is larger than that, the typed
// client and `vmledger --nats URL list --all` page through to every domain, and bad filters are named.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { QUERY_SUBJECTS } from '../../services/nats/protocol';
import { runVmledger } from '../support/cli';
import type { NatsServerHandle } from '../support/natsServer';
import { domainConfig, ledgerOnFile, rawRequest, startServerWithMaxPayload, startStack, tempDir, type LedgerOnFile, type Stack } from './fixtures';

const MAX_PAYLOAD = 8 * 1024;
const DOMAINS = 300;

describe('paged domain queries', () => {
  let server: NatsServerHandle;
  let db: LedgerOnFile;
  let stack: Stack;
  const tmp = tempDir('vmledger-paging-');

  beforeAll(async () => {
    server = await startServerWithMaxPayload(tmp.dir, MAX_PAYLOAD);
    db = await ledgerOnFile(join(tmp.dir, 'service.sqlite'));
    const names = Array.from({ length: DOMAINS }, (_, i) => `vm-${String(i).padStart(4, '0')}`);
    await Promise.all(names.map((name) => db.ledger.execute({ verb: 'define', config: domainConfig(name), meta: meta(`def-${name}`) })));
    // Every third running, every seventh of those paused, every fifth with a snapshot.
    await Promise.all(names.filter((_, i) => i % 3 === 0).map((name) => db.ledger.execute({ verb: 'start', domain: name, meta: meta(`start-${name}`) })));
    await Promise.all(names.filter((_, i) => i % 21 === 0).map((name) => db.ledger.execute({ verb: 'suspend', domain: name, meta: meta(`suspend-${name}`) })));
    await Promise.all(
      names.filter((_, i) => i % 5 === 0).map((name) => db.ledger.execute({ verb: 'snapshot-create', domain: name, snapshot: { name: 's1' }, meta: meta(`snap-${name}`) })),
    );
    stack = await startStack(server.url, db.ledger);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await db?.close();
    await server?.stop();
    tmp.remove();
  });

  it('cuts every reply to the server max_payload and the client pages through to every domain', async () => {
    expect(stack.clientNc.info?.max_payload).toBe(MAX_PAYLOAD);
    const first = await stack.clientNc.request(QUERY_SUBJECTS.domains, new TextEncoder().encode('{"all":true}'), { timeout: 10_000 });
    expect(first.data.length).toBeLessThanOrEqual(MAX_PAYLOAD);
    const page = JSON.parse(new TextDecoder().decode(first.data)) as { domains: unknown[]; next: string | null };
    expect(page.next).not.toBeNull();
    expect(page.domains.length).toBeLessThan(DOMAINS);

    const all = await stack.client.listDomains({ all: true });
    expect(all.map((d) => d.name)).toEqual(Array.from({ length: DOMAINS }, (_, i) => `vm-${String(i).padStart(4, '0')}`));
    // Ids number the active domains across pages as one list would: 1, 2, 3, … in name order.
    const ids = all.filter((d) => d.id !== null).map((d) => d.id);
    expect(ids).toEqual(Array.from({ length: DOMAINS / 3 }, (_, i) => i + 1));
    expect(all).toEqual((await db.ledger.queryDomains({ all: true })).domains);

    // A small limit gives the same list, seven at a time.
    let cursor: string | undefined;
    const paged = [];
    for (;;) {
      const p = await stack.client.queryDomains({ all: true, limit: 7, ...(cursor ? { cursor } : {}) });
      expect(p.domains.length).toBeLessThanOrEqual(7);
      paged.push(...p.domains);
      if (!p.next) break;
      cursor = p.next;
    }
    expect(paged).toEqual(all);
  });

  it('filters as virsh does, from the host index', async () => {
    const names = async (q: Parameters<typeof stack.client.listDomains>[0]) => (await stack.client.listDomains(q)).map((d) => d.name);
    const running = await names({ state: ['running'] });
    const paused = await names({ state: ['paused'] });
    expect(paused).toHaveLength(Math.ceil(DOMAINS / 21));
    expect(running).toHaveLength(DOMAINS / 3 - paused.length);
    expect(await names({})).toEqual([...running, ...paused].sort());
    expect(await names({ inactive: true })).toHaveLength(DOMAINS - DOMAINS / 3);
    expect(await names({ all: true, snapshot: true })).toHaveLength(DOMAINS / 5);
    expect(await names({ all: true, snapshot: false })).toHaveLength(DOMAINS - DOMAINS / 5);
    expect(await names({ all: true, persistent: false })).toEqual([]);
    expect(await names({ all: true, match: 'VM-012' })).toEqual(Array.from({ length: 10 }, (_, i) => `vm-012${i}`));
    expect(await names({ all: true, uuid: domainConfig('vm-0042').uuid })).toEqual(['vm-0042']);
  });

  it('names a filter value, a field or a cursor that does not exist', async () => {
    const state = await rawRequest(stack.clientNc, QUERY_SUBJECTS.domains, { state: ['running', 'sleeping'] });
    expect(state.reply).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(state.reply.message).toBe('invalid domains query: state.1: unknown state "sleeping" (expected one of running, paused, shutoff, other)');
    expect(state.headers['Nats-Service-Error-Code']).toBe('400');
    const field = await rawRequest(stack.clientNc, QUERY_SUBJECTS.domains, { colour: 'red' });
    expect(field.reply.message).toMatch(/^invalid domains query: .*colour/);
    const cursor = await rawRequest(stack.clientNc, QUERY_SUBJECTS.domains, { cursor: 'not-a-cursor' });
    expect(cursor.reply).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(cursor.reply.message).toMatch(/cursor: "not-a-cursor" is not a cursor/);
    await expect(stack.client.queryDomains({ limit: 0 })).rejects.toMatchObject({ rule: 'VALIDATION', message: expect.stringMatching(/limit/) });
  });

  it('`vmledger --nats URL list --all` prints every domain, as the local store does', async () => {
    const remote = await runVmledger(['--nats', server.url, 'list', '--all'], tmp.dir);
    expect(remote.stderr).toBe('');
    const local = await runVmledger(['--store', `sqlite:${db.file}`, 'list', '--all'], tmp.dir);
    expect(local.stderr).toBe('');
    expect(remote.stdout.split('\n').filter((l) => /vm-\d{4}/.test(l))).toHaveLength(DOMAINS);
    expect(remote.stdout).toBe(local.stdout);
  });
});

function meta(commandId: string) {
  return { commandId, time: '2026-01-01T00:00:00Z', actor: 'test' };
}
