// Who did it, provably: a real nats-server run with the shipped deploy/nats-server.conf (accounts VMLEDGER, OPS,
// AUDIT), the vmledger service on a real SQLite ledger with the shipped deploy/policy.json (plus signing keys
// made here), and clients connected as alice (operator), root (admin) and carol (auditor).
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { createUser, type KeyPair } from '@nats-io/nkeys';
import {
  headers as natsHeaders,
  PermissionViolationError,
  RequestError,
  usernamePasswordAuthenticator,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Verb } from '../../machines/commands';
import { auditEntries } from '../../projections/queries';
import { actorText } from '../../services/audit-cli';
import { createVmledgerClient } from '../../services/client';
import type { EventStore } from '../../services/eventstore/types';
import { accessControl } from '../../services/identity/access';
import { parsePolicy, type Policy } from '../../services/identity/policy';
import { REQUEST_INFO_HEADER } from '../../services/identity/requestInfo';
import { signCommand } from '../../services/identity/signature';
import { commandSubject, QUERY_SUBJECTS } from '../../services/nats/protocol';
import { startCommandService, type CommandService } from '../../services/nats/service';
import { replayCheck } from '../../services/replay';
import { runVmledger } from '../support/cli';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { captureLog, domainConfig, ledgerOnFile, rawRequest, tempDir, type LedgerOnFile } from '../nats/fixtures';

const ROOT = resolve(import.meta.dirname, '../..');
const PASSWORDS = { VMLEDGER_SERVICE_PASS: 'svc-secret', ALICE_PASS: 'alice-secret', ROOT_PASS: 'root-secret', CAROL_PASS: 'carol-secret' };

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
let db: LedgerOnFile;
let service: CommandService;
let serviceNc: NatsConnection;
const conns: NatsConnection[] = [];
let alice: NatsConnection;
let root: NatsConnection;
let carol: NatsConnection;
const keys: { root: KeyPair; alice: KeyPair; carol: KeyPair } = { root: createUser(), alice: createUser(), carol: createUser() };
const stranger = createUser();
let policy: Policy;

const as = async (user: string, password: string): Promise<NatsConnection> => {
  const nc = await connect({ servers: server.url, authenticator: usernamePasswordAuthenticator(user, password), name: `test-${user}` });
  conns.push(nc);
  return nc;
};

beforeAll(async () => {
  Object.assign(process.env, PASSWORDS); // nats-server reads the $VARIABLES of its config from its environment
  server = await startNatsServer({ args: ['-c', join(ROOT, 'deploy/nats-server.conf')] });
  tmp = tempDir('vmledger-identity-');
  db = await ledgerOnFile(join(tmp.dir, 'ledger.sqlite'));
  const shipped = JSON.parse(readFileSync(join(ROOT, 'deploy/policy.json'), 'utf8')) as { identity: Record<string, unknown> };
  policy = parsePolicy({
    ...shipped,
    identity: { ...shipped.identity, keys: Object.fromEntries(Object.entries(keys).map(([actor, kp]) => [actor, kp.getPublicKey()])) },
  });
  serviceNc = await as('vmledger', PASSWORDS.VMLEDGER_SERVICE_PASS);
  service = await startCommandService({ ledger: db.ledger, nc: serviceNc, access: accessControl(policy), log: captureLog().log });
  alice = await as('alice', PASSWORDS.ALICE_PASS);
  root = await as('root', PASSWORDS.ROOT_PASS);
  carol = await as('carol', PASSWORDS.CAROL_PASS);
});

afterAll(async () => {
  await service?.stop();
  for (const nc of conns) await nc.close().catch(() => {});
  await db?.close();
  tmp?.remove();
  await server?.stop();
});

const send = (nc: NatsConnection, verb: Verb, body: Record<string, unknown>, headers?: Record<string, string>) => {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(headers ?? {})) h.set(k, v);
  return nc
    .request(commandSubject(verb), new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000, headers: h })
    .then((m) => JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown> & { events: { metadata: Record<string, unknown> }[] });
};

const entryOf = async (store: EventStore, commandId: string) => (await auditEntries(store)).find((e) => e.commandId === commandId);
let ids = 0;
const id = (what: string) => `${what}-${++ids}`;
const meta = (what: string, extra: Record<string, unknown> = {}) => ({ commandId: id(what), time: new Date().toISOString(), ...extra });

describe('what nats-server does with Nats-Request-Info', () => {
  it('on an import with share: true, the server writes the requester in, replacing a header the client forged', async () => {
    // A probe responder inside the export (vmledger.cmd.>) sees the request exactly as the service would.
    const seen: (string[] | undefined)[] = [];
    const sub = serviceNc.subscribe(commandSubject('define').replace('define', 'probe'), {
      callback: (_err, msg) => {
        seen.push(msg.headers?.values(REQUEST_INFO_HEADER));
        msg.respond('{}');
      },
    });
    await serviceNc.flush();
    const h = natsHeaders();
    h.set(REQUEST_INFO_HEADER, JSON.stringify({ acc: 'OPS', user: 'root' }));
    await alice.request('vmledger.cmd.probe', new Uint8Array(), { timeout: 10_000, headers: h });
    await alice.request('vmledger.cmd.probe', new Uint8Array(), { timeout: 10_000 });
    sub.unsubscribe();
    expect(seen).toHaveLength(2);
    for (const values of seen) {
      expect(values).toHaveLength(1); // one header, the server's: not the forged one beside it
      expect(JSON.parse(values![0]!)).toMatchObject({ acc: 'OPS', user: 'alice' });
    }
  });

  it('on a plain connection in one account the header reaches the responder as the client wrote it', async () => {
    const plain = await startNatsServer();
    try {
      const a = await connect({ servers: plain.url });
      const b = await connect({ servers: plain.url });
      const seen: string[] = [];
      b.subscribe('probe', {
        callback: (_e, m) => {
          seen.push(m.headers?.get(REQUEST_INFO_HEADER) ?? '');
          m.respond('{}');
        },
      });
      await b.flush();
      const h = natsHeaders();
      const forged = JSON.stringify({ acc: 'OPS', user: 'root' });
      h.set(REQUEST_INFO_HEADER, forged);
      await a.request('probe', new Uint8Array(), { timeout: 10_000, headers: h });
      expect(seen).toEqual([forged]);

      // So a service that trusts no account records the default actor, unauthenticated, whatever the header says.
      const plainDb = await ledgerOnFile(join(tmp.dir, 'plain.sqlite'));
      const svc = await startCommandService({ ledger: plainDb.ledger, nc: b, log: captureLog().log });
      const reply = await send(a, 'define', { config: domainConfig('plain-1'), meta: meta('plain', { actor: 'root@ceo-office' }) }, { [REQUEST_INFO_HEADER]: forged });
      expect(reply.ok).toBe(true);
      expect(reply.events[0]!.metadata.actor).toBe('nats');
      const entry = await entryOf(plainDb.store, reply.commandId as string);
      expect(entry?.auth).toEqual({ unauthenticated: true, claimedActor: 'root@ceo-office' });
      expect(actorText(entry!)).toBe("nats (unauthenticated, claimed 'root@ceo-office')");
      const audit = await runVmledger(['audit', '--store', `sqlite:${plainDb.file}`], tmp.dir);
      expect(audit.stdout).toMatch(/ nats \(unauthenticated, claimed 'root@ceo-office'\)\s+define\s+local\/plain-1\s+accepted/);
      await svc.stop();
      await a.close();
      await b.close();
      await plainDb.close();
    } finally {
      await plain.stop();
    }
  });
});

describe('the recorded actor is the authenticated one', () => {
  it('records the NATS user of every command that came through the import, whatever header the client sent', async () => {
    const forged = { [REQUEST_INFO_HEADER]: JSON.stringify({ acc: 'OPS', user: 'root' }) };
    const defined = await send(alice, 'define', { host: 'h1', config: domainConfig('web1'), meta: meta('define') }, forged);
    const started = await send(alice, 'start', { host: 'h1', domain: 'web1', meta: meta('start', { actor: 'alice' }) });
    expect([defined.ok, started.ok]).toEqual([true, true]);
    for (const reply of [defined, started]) {
      expect(reply.events[0]!.metadata.actor).toBe('alice');
      const entry = await entryOf(db.store, reply.commandId as string);
      expect(entry).toMatchObject({ actor: 'alice', auth: { natsAccount: 'OPS', natsUser: 'alice' }, outcome: 'accepted' });
      expect(actorText(entry!)).toBe('alice (nats OPS/alice)');
    }
  });

  it('refuses a command naming another actor, records the refusal as the authenticated user, and changes nothing', async () => {
    const before = await db.ledger.loadDomain('h1', 'web1');
    const reply = await send(alice, 'destroy', { host: 'h1', domain: 'web1', meta: meta('forge', { actor: 'root@ceo-office' }) });
    expect(reply).toMatchObject({ ok: false, rule: 'AUTH-ACTOR', code: 88, codeName: 'VIR_ERR_ACCESS_DENIED' });
    expect(reply.message).toBe(
      "access denied: the command names actor 'root@ceo-office', but NATS (user 'alice' of account 'OPS') authenticates 'alice'; omit meta.actor or send your own",
    );
    expect((await db.ledger.loadDomain('h1', 'web1')).revision).toBe(before.revision);
    const entry = await entryOf(db.store, reply.commandId as string);
    expect(entry).toMatchObject({ actor: 'alice', outcome: 'refused', rule: 'AUTH-ACTOR', auth: { natsUser: 'alice', claimedActor: 'root@ceo-office' } });
    // Nowhere in the audit is the forged name the actor.
    expect((await auditEntries(db.store)).some((e) => e.actor === 'root@ceo-office')).toBe(false);
  });

  it('a user whose publish permissions exclude vmledger.cmd.> gets a permissions violation from the server', async () => {
    const error = await carol.request(commandSubject('start'), new TextEncoder().encode('{"domain":"web1","host":"h1"}'), { timeout: 5_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestError);
    expect((error as RequestError).cause).toBeInstanceOf(PermissionViolationError);
    expect((error as RequestError).cause).toMatchObject({ operation: 'publish', subject: 'vmledger.cmd.start' });
  });
});

describe('signed commands', () => {
  it('records a signed command with its verified signer, even when another NATS user relays it', async () => {
    const client = createVmledgerClient(root, { signWith: keys.root });
    const own = await client.command('define', { host: 'h2', config: domainConfig('db2') });
    expect(own.ok).toBe(true);
    const relayed = await send(alice, 'start', signCommand({ verb: 'start', host: 'h2', domain: 'db2', meta: meta('relay') }, keys.root) as never);
    expect(relayed.ok).toBe(true);
    expect(relayed.events[0]!.metadata.actor).toBe('root');
    const entry = await entryOf(db.store, relayed.commandId as string);
    expect(entry).toMatchObject({ actor: 'root', auth: { signer: keys.root.getPublicKey(), natsUser: 'alice', natsAccount: 'OPS' } });
    expect(actorText(entry!)).toBe(`root (signed ${keys.root.getPublicKey().slice(0, 8)}…, nats OPS/alice)`);
  });

  it('refuses a tampered body, a tampered signature and an unknown key, changing nothing', async () => {
    const signed = signCommand({ verb: 'destroy', host: 'h2', domain: 'db2', meta: meta('tamper') }, keys.root);
    const before = await db.ledger.loadDomain('h2', 'db2');
    const body = { ...signed, domain: 'web1', host: 'h1' };
    const sigBytes = Buffer.from(signed.meta.signature!.sig, 'base64');
    sigBytes[5] = sigBytes[5]! ^ 0x01;
    const badSig = { ...signed, meta: { ...signed.meta, commandId: id('badsig'), signature: { ...signed.meta.signature!, sig: sigBytes.toString('base64') } } };
    const unknown = signCommand({ verb: 'destroy', host: 'h2', domain: 'db2', meta: meta('stranger') }, stranger);
    for (const [what, input] of [['body', body], ['signature', badSig], ['key', unknown]] as const) {
      const reply = await send(alice, 'destroy', input as never);
      expect(reply, what).toMatchObject({ ok: false, rule: 'AUTH-SIGNATURE', code: 88 });
      expect(reply.message, what).toMatch(what === 'key' ? /^access denied: key U\w+ is not the key of any actor/ : /^access denied: the signature of key U\w+ does not match the command/);
    }
    expect((await db.ledger.loadDomain('h2', 'db2')).revision).toBe(before.revision);
    expect((await db.ledger.loadDomain('h1', 'web1')).state.active).toBe(true);
  });
});

describe('the policy, for three roles', () => {
  it('auditor: may list and read domains, never command (signed by carol, a command is denied by policy)', async () => {
    const domains = await rawRequest(carol, QUERY_SUBJECTS.domains, { host: 'h1' });
    expect(domains.reply).toMatchObject({ ok: true });
    expect((domains.reply.domains as { name: string }[]).map((d) => d.name)).toContain('web1');
    const one = await rawRequest(carol, QUERY_SUBJECTS.domain, { host: 'h1', domain: 'web1' });
    expect(one.reply).toMatchObject({ ok: true, state: { name: 'web1' } });

    const before = await db.ledger.loadDomain('h1', 'web1');
    const denied = await send(alice, 'destroy', signCommand({ verb: 'destroy', host: 'h1', domain: 'web1', meta: meta('carol') }, keys.carol) as never);
    expect(denied).toMatchObject({ ok: false, rule: 'ACCESS-DENIED', code: 88, codeName: 'VIR_ERR_ACCESS_DENIED' });
    expect(denied.message).toBe("access denied: actor 'carol' (roles: auditor) lacks permission 'domain.stop' on domain 'web1' on host 'h1'");
    expect((await db.ledger.loadDomain('h1', 'web1')).revision).toBe(before.revision);
    expect(await entryOf(db.store, denied.commandId as string)).toMatchObject({ actor: 'carol', outcome: 'refused', rule: 'ACCESS-DENIED' });
  });

  it('operator: lifecycle on h1 only; undefine --remove-all-storage is denied and changes nothing', async () => {
    const stopped = await send(alice, 'destroy', { host: 'h1', domain: 'web1', meta: meta('op-destroy') });
    expect(stopped).toMatchObject({ ok: true });
    const head = await db.store.headPosition();
    const onH2 = await send(alice, 'start', { host: 'h2', domain: 'db2', meta: meta('op-h2') });
    expect(onH2).toMatchObject({ ok: false, rule: 'ACCESS-DENIED', code: 88 });
    expect(onH2.message).toBe("access denied: actor 'alice' (roles: operator) lacks permission 'domain.stop' on domain 'db2' on host 'h2'".replace('domain.stop', 'domain.start'));
    const wipe = await send(alice, 'undefine', { host: 'h1', domain: 'web1', removeAllStorage: true, meta: meta('op-wipe') });
    expect(wipe).toMatchObject({ ok: false, rule: 'ACCESS-DENIED' });
    expect(wipe.message).toContain("lacks permission 'storage_vol.delete' on domain 'web1' on host 'h1'");
    // Denied: only the two refusal records were appended; both domains are as they were.
    expect(await db.store.headPosition()).toBe(head + 2);
    expect((await db.ledger.loadDomain('h1', 'web1')).state).toMatchObject({ life: 'exists', active: false });
    expect((await db.ledger.loadDomain('h2', 'db2')).state.active).toBe(true);
    const queried = await rawRequest(alice, QUERY_SUBJECTS.domain, { host: 'h2', domain: 'db2' });
    expect(queried.reply).toMatchObject({ ok: true });
  });

  it('admin: may undefine --remove-all-storage, on any host', async () => {
    const wiped = await send(root, 'undefine', { host: 'h1', domain: 'web1', removeAllStorage: true, meta: meta('admin-wipe') });
    expect(wiped).toMatchObject({ ok: true });
    expect((await db.ledger.loadDomain('h1', 'web1')).state.life).not.toBe('exists');
    const elsewhere = await send(root, 'destroy', { host: 'h2', domain: 'db2', meta: meta('admin-h2') });
    expect(elsewhere).toMatchObject({ ok: true });
  });

  it('a requester nobody vouches for gets no role: its query and its command are denied, the command recorded as unauthenticated', async () => {
    // A plain server (no accounts): the service trusts no header there, so every requester is unauthenticated.
    const plain = await startNatsServer();
    const plainDb = await ledgerOnFile(join(tmp.dir, 'plain-policy.sqlite'));
    const nc = await connect({ servers: plain.url });
    const svc = await startCommandService({ ledger: plainDb.ledger, nc, access: accessControl(policy), log: captureLog().log });
    try {
      const listed = await rawRequest(nc, QUERY_SUBJECTS.domains, {});
      expect(listed.reply).toMatchObject({ ok: false, rule: 'ACCESS-DENIED', code: 88, codeName: 'VIR_ERR_ACCESS_DENIED' });
      expect(listed.reply.message).toBe("access denied: unauthenticated requester (recorded as 'nats') (no role) lacks permission 'connect.search_domains' on host '*'");
      expect(listed.headers['Nats-Service-Error-Code']).toBe('403');
      const forged = JSON.stringify({ acc: 'OPS', user: 'root' }); // names a trusted account, but nobody in it sent it...
      const defined = await send(nc, 'define', { config: domainConfig('plain-2'), meta: meta('plain-define', { actor: 'root' }) }, { [REQUEST_INFO_HEADER]: forged });
      // ...and here it is believed: which is why deploy/nats-server.conf lets only the service publish in its account.
      expect(defined).toMatchObject({ ok: true });
      const anonymous = await send(nc, 'start', { domain: 'plain-2', meta: meta('plain-start') });
      expect(anonymous).toMatchObject({ ok: false, rule: 'ACCESS-DENIED', code: 88 });
      expect(await plainDb.store.headPosition()).toBe(2); // the define, and the refusal record
      expect(await entryOf(plainDb.store, anonymous.commandId as string)).toMatchObject({ actor: 'nats', auth: { unauthenticated: true }, outcome: 'refused' });
    } finally {
      await svc.stop();
      await nc.close();
      await plainDb.close();
      await plain.stop();
    }
  });

  it('the CLI over NATS sends no actor of its own, and signs with --sign-with: recorded as alice, then as root', async () => {
    const seed = join(tmp.dir, 'root.seed');
    writeFileSync(seed, new TextDecoder().decode(keys.root.getSeed()), { mode: 0o600 });
    Object.assign(process.env, { NATS_USER: 'alice', NATS_PASSWORD: PASSWORDS.ALICE_PASS }); // the CLI child's credentials
    try {
      const base = ['--nats', server.url, '--host', 'h1', '--json'];
      const defined = await runVmledger([...base, 'define', join(ROOT, 'examples/web1.xml')], tmp.dir);
      expect(defined.code, defined.stderr).toBe(0);
      const signed = await runVmledger([...base, '--sign-with', seed, 'start', 'web1'], tmp.dir);
      expect(signed.code, signed.stderr).toBe(0);
      const entries = await auditEntries(db.store, { host: 'h1', domain: 'web1' });
      expect(entries.slice(-2).map(actorText)).toEqual(['alice (nats OPS/alice)', `root (signed ${keys.root.getPublicKey().slice(0, 8)}…, nats OPS/alice)`]);
    } finally {
      delete process.env.NATS_USER;
      delete process.env.NATS_PASSWORD;
    }
  });

  it('replay re-checks all of it clean: identity refusals are not domain decisions, every signature verifies', async () => {
    const summary = await replayCheck(db.store, { anchor: false });
    expect(summary.tampered).toEqual([]);
    expect(summary.violations).toEqual([]);
    expect(summary.refusalDrift).toEqual([]);
  });
});
