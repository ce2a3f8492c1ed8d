// Paged audit and snapshot queries on a server with a small max_payload (8 KiB): no reply is larger than that,
// the typed client and `vmledger --nats URL audit` / `snapshot-list` page through to every entry and snapshot,
// and a filter value that does not exist is named.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { QUERY_SUBJECTS } from '../../services/nats/protocol';
import { auditEntries } from '../../projections/queries';
import { runVmledger } from '../support/cli';
import type { NatsServerHandle } from '../support/natsServer';
import { domainConfig, ledgerOnFile, rawRequest, startServerWithMaxPayload, startStack, tempDir, type LedgerOnFile, type Stack } from './fixtures';

const MAX_PAYLOAD = 8 * 1024;
const DOMAINS = 40;
const SNAPSHOTS = 150;

describe('paged audit and snapshot queries', () => {
  let server: NatsServerHandle;
  let db: LedgerOnFile;
  let stack: Stack;
  const tmp = tempDir('vmledger-paging-audit-');

  beforeAll(async () => {
    server = await startServerWithMaxPayload(tmp.dir, MAX_PAYLOAD);
    db = await ledgerOnFile(join(tmp.dir, 'service.sqlite'));
    for (let i = 0; i < DOMAINS; i++) {
      const name = `vm-${String(i).padStart(3, '0')}`;
      await db.ledger.execute({ verb: 'define', config: domainConfig(name), meta: meta(`def-${name}`) });
      await db.ledger.execute({ verb: 'start', domain: name, meta: meta(`start-${name}`) });
      await db.ledger.execute({ verb: 'resume', domain: name, meta: meta(`resume-${name}`) }); // refused: already running
    }
    // One domain with many snapshots: its whole state is far larger than one reply.
    for (let i = 0; i < SNAPSHOTS; i++) {
      await db.ledger.execute({ verb: 'snapshot-create', domain: 'vm-000', snapshot: { name: `snap-${String(i).padStart(3, '0')}`, description: 'd'.repeat(60) }, meta: meta(`snap-${i}`) });
    }
    stack = await startStack(server.url, db.ledger);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await db?.close();
    await server?.stop();
    tmp.remove();
  });

  it('audit: every reply fits max_payload; the client pages through to the same entries as the local audit', async () => {
    expect(stack.clientNc.info?.max_payload).toBe(MAX_PAYLOAD);
    const first = await stack.clientNc.request(QUERY_SUBJECTS.audit, new TextEncoder().encode('{}'), { timeout: 10_000 });
    expect(first.data.length).toBeLessThanOrEqual(MAX_PAYLOAD);
    const page = JSON.parse(new TextDecoder().decode(first.data)) as { entries: unknown[]; next: string | null };
    expect(page.next).not.toBeNull();

    const local = await auditEntries(db.store, {});
    expect(local).toHaveLength(DOMAINS * 3 + SNAPSHOTS);
    expect(await stack.client.auditEntries()).toEqual(local);
    // Filters and count: as the local audit gives them (count without since: the latest ones).
    expect(await stack.client.auditEntries({ domain: 'vm-007' })).toEqual(await auditEntries(db.store, { domain: 'vm-007' }));
    expect(await stack.client.auditEntries({ outcome: 'refused' })).toEqual(await auditEntries(db.store, { outcome: 'refused' }));
    expect(await stack.client.auditEntries({ count: 25 })).toEqual(await auditEntries(db.store, { limit: 25 }));
    expect(await stack.client.auditEntries({ since: 30, count: 25 })).toEqual(await auditEntries(db.store, { since: { position: 30 }, limit: 25 }));

    // A small page limit gives the same list, four at a time.
    let cursor: string | undefined;
    const paged = [];
    for (;;) {
      const p = await stack.client.queryAudit({ domain: 'vm-000', limit: 4, ...(cursor ? { cursor } : {}) });
      expect(p.entries.length).toBeLessThanOrEqual(4);
      paged.push(...p.entries);
      if (!p.next) break;
      cursor = p.next;
    }
    expect(paged).toEqual(await auditEntries(db.store, { domain: 'vm-000' }));
  });

  it('audit: a domain, host or outcome that does not exist, a field or a cursor is named', async () => {
    const domain = await rawRequest(stack.clientNc, QUERY_SUBJECTS.audit, { domain: 'ghost' });
    expect(domain.reply).toMatchObject({ ok: false, rule: 'VALIDATION', code: 8 });
    expect(domain.reply.message).toBe("invalid audit query: domain: no domain 'ghost' in the audit log");
    expect(domain.headers['Nats-Service-Error-Code']).toBe('400');
    const host = await rawRequest(stack.clientNc, QUERY_SUBJECTS.audit, { host: 'nowhere' });
    expect(host.reply.message).toBe("invalid audit query: host: no host 'nowhere' in the audit log");
    const outcome = await rawRequest(stack.clientNc, QUERY_SUBJECTS.audit, { outcome: 'maybe' });
    expect(outcome.reply).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(outcome.reply.message).toMatch(/^invalid audit query: outcome: .*"accepted"\|"refused"|^invalid audit query: outcome: .*accepted.*refused/);
    const field = await rawRequest(stack.clientNc, QUERY_SUBJECTS.audit, { colour: 'red' });
    expect(field.reply.message).toMatch(/^invalid audit query: .*colour/);
    const cursor = await rawRequest(stack.clientNc, QUERY_SUBJECTS.audit, { cursor: 'not-a-cursor' });
    expect(cursor.reply.message).toMatch(/cursor: "not-a-cursor" is not a cursor/);
    // A domain that exists but has nothing after `since` is an empty answer, not an error.
    expect(await stack.client.auditEntries({ domain: 'vm-001', since: 100_000 })).toEqual([]);
  });

  it('snapshots: every reply fits max_payload; the client pages through to every snapshot and the whole tree', async () => {
    const first = await stack.clientNc.request(QUERY_SUBJECTS.snapshots, new TextEncoder().encode('{"domain":"vm-000"}'), { timeout: 10_000 });
    expect(first.data.length).toBeLessThanOrEqual(MAX_PAYLOAD);
    const page = JSON.parse(new TextDecoder().decode(first.data)) as { snapshots: unknown[]; next: string | null; roots?: unknown };
    expect(page.next).not.toBeNull();
    expect(page.roots).toBeUndefined();

    const { state } = await db.ledger.loadDomain('local', 'vm-000');
    const list = await stack.client.listSnapshots('local', 'vm-000');
    expect(list.snapshots.map((s) => s.name)).toEqual(Object.keys(state.snapshots).sort());
    expect(list.current).toBe(state.current);
    expect(list.snapshots.filter((s) => s.current).map((s) => s.name)).toEqual([state.current]);
    // The tree, built from the pages, is the one a single reply gives for a small domain: a chain here.
    const tree = await stack.client.snapshotTree('local', 'vm-000');
    let depth = 0;
    for (let nodes = tree.roots; nodes.length > 0; nodes = nodes[0]!.children) depth++;
    expect(depth).toBe(SNAPSHOTS);
    // A domain whose snapshots fit one reply still gets the tree in it.
    const small = await rawRequest(stack.clientNc, QUERY_SUBJECTS.snapshots, { domain: 'vm-001' });
    expect(small.reply).toMatchObject({ ok: true, snapshots: [], next: null, roots: [] });
    const missing = await rawRequest(stack.clientNc, QUERY_SUBJECTS.snapshots, { domain: 'ghost' });
    expect(missing.reply).toMatchObject({ ok: false, rule: 'DOM-NOTFOUND', code: 42 });
  });

  it('`vmledger --nats URL audit` and `snapshot-list` print what the local store prints', async () => {
    for (const args of [['audit'], ['audit', 'vm-003', '--limit', '2'], ['snapshot-list', 'vm-000'], ['snapshot-list', 'vm-000', '--tree']]) {
      const remote = await runVmledger(['--nats', server.url, ...args], tmp.dir);
      expect(remote.stderr, args.join(' ')).toBe('');
      const local = await runVmledger(['--store', `sqlite:${db.file}`, ...args], tmp.dir);
      expect(local.stderr, args.join(' ')).toBe('');
      expect(remote.stdout, args.join(' ')).toBe(local.stdout);
    }
    const ghost = await runVmledger(['--nats', server.url, 'audit', 'ghost'], tmp.dir);
    expect(ghost.stderr).toMatch(/no domain 'ghost' in the audit log/);
  });
});

function meta(commandId: string) {
  return { commandId, time: '2026-01-01T00:00:00Z', actor: 'test' };
}
