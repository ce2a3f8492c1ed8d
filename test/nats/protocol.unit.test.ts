// Subject encoding and matching (services/nats/protocol.ts), connection settings (services/nats/config.ts), and
// the nats-server test harness's own error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  connectNats,
  natsConfigFromEnv,
  natsConnectionOptions,
  NatsUnreachableError,
  outageBackoff,
  redactUrl,
} from '../../services/nats/config';
import {
  decodeSubjectToken,
  encodeSubjectToken,
  eventSubject,
  eventSubjectFilter,
  parseEventSubject,
  snapshotTree,
  subjectsCollide,
} from '../../services/nats/protocol';
import { initialDomainState } from '../../machines/model';
import { findNatsServer, NATS_SERVER_NOT_FOUND } from '../support/natsServer';

describe('subject tokens', () => {
  it('leave ordinary names alone and encode separators, wildcards and whitespace', () => {
    expect(encodeSubjectToken('vm-1_web')).toBe('vm-1_web');
    expect(encodeSubjectToken('web.example.com')).toBe('web%2Eexample%2Ecom');
    expect(encodeSubjectToken('a*b>c')).toBe('a%2Ab%3Ec');
    expect(encodeSubjectToken('my vm\t')).toBe('my%20vm%09');
    expect(encodeSubjectToken('100%')).toBe('100%25');
    expect(encodeSubjectToken('ünï')).toBe('%C3%BCn%C3%AF');
    expect(() => encodeSubjectToken('')).toThrow(/empty/);
    expect(encodeSubjectToken('a\uD800b')).toBe('a%EF%BF%BDb');
    expect(eventSubject('local', 'web.example.com')).toBe('vmledger.evt.local.web%2Eexample%2Ecom');
    expect(eventSubjectFilter()).toBe('vmledger.evt.*.*');
    expect(eventSubjectFilter('h.1')).toBe('vmledger.evt.h%2E1.*');
    expect(eventSubjectFilter(undefined, 'd')).toBe('vmledger.evt.*.d');
  });

  it('round-trip any name into exactly one safe token', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }), fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }), (host, domain) => {
        const h = encodeSubjectToken(host);
        const d = encodeSubjectToken(domain);
        for (const t of [h, d]) expect(t).toMatch(/^[A-Za-z0-9_%-]+$/);
        expect(decodeSubjectToken(h)).toBe(host);
        const subject = eventSubject(host, domain);
        expect(subject.split('.')).toHaveLength(4);
        expect(parseEventSubject(subject)).toEqual({ host, domain });
      }),
      { numRuns: 300 },
    );
  });

  it('collide as NATS matches wildcards', () => {
    expect(subjectsCollide('vmledger.cmd.>', 'vmledger.cmd.start')).toBe(true);
    expect(subjectsCollide('vmledger.>', 'vmledger.query.domain')).toBe(true);
    expect(subjectsCollide('>', 'vmledger.schema')).toBe(true);
    expect(subjectsCollide('vmledger.*.start', 'vmledger.cmd.start')).toBe(true);
    expect(subjectsCollide('vmledger.evt.>', 'vmledger.cmd.start')).toBe(false);
    expect(subjectsCollide('vmledger.cmd', 'vmledger.cmd.start')).toBe(false);
    expect(subjectsCollide('vmledger.cmd.*', 'vmledger.cmd.start.x')).toBe(false);
    expect(subjectsCollide('vmledger.schema', 'vmledger.schema')).toBe(true);
  });
});

describe('snapshotTree', () => {
  it('nests children under parents and survives a parent loop from --redefine', () => {
    const snap = (name: string, parent: string | null) => ({
      name,
      parent,
      state: 'shutoff' as const,
      diskOnly: false,
      external: false,
      creationTime: '2024-01-01T00:00:00Z',
      disks: [],
      mirrored: false,
    });
    const state = {
      ...initialDomainState('local', 'vm'),
      life: 'exists' as const,
      snapshots: { a: snap('a', null), b: snap('b', 'a'), x: snap('x', 'y'), y: snap('y', 'x') },
      current: 'b',
    };
    const tree = snapshotTree(state, 7);
    const names = (ns: { name: string; children: unknown[] }[]): unknown => ns.map((n) => [n.name, names(n.children as never)]);
    expect(names(tree.roots)).toEqual([['a', [['b', []]]], ['x', [['y', []]]]]);
    expect(tree).toMatchObject({ current: 'b', revision: 7, host: 'local', domain: 'vm' });
  });
});

describe('NATS configuration', () => {
  it('reads NATS_* with defaults; overrides win', () => {
    expect(natsConfigFromEnv({})).toEqual({ servers: ['nats://127.0.0.1:4222'] });
    const env = {
      NATS_URL: 'nats://a:4222, nats://b:4222',
      NATS_USER: 'svc',
      NATS_PASSWORD: 'pw',
      NATS_TOKEN: 't0k',
      NATS_TLS_CA: '/ca.pem',
    };
    expect(natsConfigFromEnv(env)).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222'],
      user: 'svc',
      password: 'pw',
      token: 't0k',
      tlsCa: '/ca.pem',
    });
    expect(natsConfigFromEnv(env, { url: 'nats://c:1' }).servers).toEqual(['nats://c:1']);
    expect(() => natsConfigFromEnv({ NATS_PASSWORD: 'x' })).toThrow(/NATS_PASSWORD is set but NATS_USER is not/);
    expect(() => natsConfigFromEnv({ NATS_TLS_CERT: '/c.pem' })).toThrow(/NATS_TLS_CERT and NATS_TLS_KEY go together/);
  });

  it('builds reconnect-forever options with authenticators and TLS, and names unreadable files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmledger-config-'));
    try {
      const o = natsConnectionOptions(natsConfigFromEnv({ NATS_USER: 'u', NATS_PASSWORD: 'p' }));
      expect(o).toMatchObject({ maxReconnectAttempts: -1, waitOnFirstConnect: false, servers: ['nats://127.0.0.1:4222'] });
      expect(typeof o.authenticator).toBe('function');
      expect(typeof o.reconnectDelayHandler).toBe('function');
      expect(o.tls).toBeUndefined();

      const seedFile = join(dir, 'seed');
      writeFileSync(seedFile, 'SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\n');
      const withSeed = natsConnectionOptions(natsConfigFromEnv({ NATS_NKEY_SEED_FILE: seedFile, NATS_TOKEN: 't' }));
      expect(Array.isArray(withSeed.authenticator)).toBe(true);

      const tls = natsConnectionOptions(natsConfigFromEnv({ NATS_TLS_CA: '/ca.pem', NATS_TLS_CERT: '/c.pem', NATS_TLS_KEY: '/k.pem' }));
      expect(tls.tls).toEqual({ caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' });
      expect(natsConnectionOptions(natsConfigFromEnv({ NATS_URL: 'tls://x:4222' })).tls).toEqual({});

      expect(() => natsConnectionOptions(natsConfigFromEnv({ NATS_CREDS_FILE: join(dir, 'missing.creds') }))).toThrow(
        /^NATS_CREDS_FILE=.*missing\.creds: cannot read the file: ENOENT/,
      );
      const notSeed = join(dir, 'notseed');
      writeFileSync(notSeed, 'hello');
      expect(() => natsConnectionOptions(natsConfigFromEnv({ NATS_NKEY_SEED_FILE: notSeed }))).toThrow(/does not hold an nkey seed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('backs off longer as an outage goes on, within bounds', () => {
    const delay = outageBackoff(100, 1_000);
    const first = delay();
    expect(first).toBeGreaterThanOrEqual(100);
    expect(first).toBeLessThanOrEqual(120);
  });

  it('fails the first connection with a message that says what to do', async () => {
    const error = await connectNats(natsConnectionOptions(natsConfigFromEnv({}, { url: 'nats://127.0.0.1:1' }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsUnreachableError);
    expect((error as Error).message).toBe(
      "cannot reach NATS at nats://127.0.0.1:1: connection refused (connect ECONNREFUSED 127.0.0.1:1). Start one with 'nats-server -js' (or 'docker compose up nats'), or set NATS_URL.",
    );
    expect(redactUrl('nats://svc:secret@host:4222')).toBe('nats://svc:***@host:4222');
  });
});

describe('nats-server harness', () => {
  it('says how to install nats-server when it is not on PATH', () => {
    expect(() => findNatsServer({ PATH: '' }, [])).toThrow(NATS_SERVER_NOT_FOUND);
    expect(NATS_SERVER_NOT_FOUND).toBe("nats-server not found on PATH: install it with 'apt-get install nats-server'");
    expect(() => findNatsServer({ NATS_SERVER_BIN: '/nonexistent/nats-server' }, [])).toThrow(/NATS_SERVER_BIN=/);
    expect(findNatsServer()).toMatch(/nats-server$/);
  });
});
