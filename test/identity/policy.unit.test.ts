// The policy file: what it accepts, how it names a mistake, and how grants match (permissions, hosts, domains).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createUser } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';

import { CommandSchema } from '../../machines/commands';
import { permissionsOf } from '../../services/identity/permissions';
import { authorize, globMatch, loadPolicyFile, parsePolicy } from '../../services/identity/policy';
import { runServe } from '../../services/nats/serve';

const command = (input: Record<string, unknown>) =>
  CommandSchema.parse({ host: 'h1', domain: 'web1', meta: { commandId: 'c', time: '2026-01-01T00:00:00Z' }, ...input });

describe('the policy file', () => {
  it('names every mistake with its path', () => {
    expect(() =>
      parsePolicy({
        identity: { keys: { alice: 'not-a-key' } },
        roles: { op: [{ allow: ['domain.fly'] }] },
        actors: { alice: ['operator'] },
        extra: 1,
      }),
    ).toThrow(
      /^invalid policy: identity\.keys\.alice: must be a user public nkey .*; roles\.op\.0\.allow\.0: 'domain\.fly' matches no permission; .*; \(top level\): Unrecognized key: "extra"/,
    );
    const kp = createUser();
    expect(() => parsePolicy({ identity: { keys: { a: kp.getPublicKey(), b: kp.getPublicKey() } } })).toThrow(
      "invalid policy: identity.keys.b: the same key is already the key of 'a'",
    );
    expect(() => parsePolicy({ roles: {}, actors: { alice: ['operator'] } })).toThrow("invalid policy: actors.alice.0: role 'operator' is not defined in roles");
  });

  it('a policy without roles checks nothing; with roles everything not granted is denied', () => {
    const open = parsePolicy({});
    expect(authorize(open, { actor: 'x', authenticated: false }, ['domain.delete'], { host: 'h', domain: 'd' })).toBeUndefined();
    const closed = parsePolicy({ roles: { admin: [{ allow: ['*'] }] }, actors: { root: ['admin'] } });
    expect(authorize(closed, { actor: 'root', authenticated: true }, ['storage_vol.delete'], { host: 'h', domain: 'd' })).toBeUndefined();
    // The name alone is no identity: an unauthenticated requester called 'root' has no role.
    expect(authorize(closed, { actor: 'root', authenticated: false }, ['domain.read'], { host: 'h', domain: 'd' })).toMatchObject({
      rule: 'ACCESS-DENIED',
      code: 88,
      message: "access denied: unauthenticated requester (recorded as 'root') (no role) lacks permission 'domain.read' on domain 'd' on host 'h'",
    });
  });

  it('grants match permission, host and domain patterns', () => {
    const p = parsePolicy({
      roles: { web: [{ allow: ['domain.st*'], hosts: ['h1', 'edge-*'], domains: ['web-*'] }] },
      actors: { alice: ['web'] },
    });
    const alice = { actor: 'alice', authenticated: true };
    expect(authorize(p, alice, ['domain.start', 'domain.stop'], { host: 'edge-3', domain: 'web-a' })).toBeUndefined();
    expect(authorize(p, alice, ['domain.start'], { host: 'h2', domain: 'web-a' })?.message).toContain("on domain 'web-a' on host 'h2'");
    expect(authorize(p, alice, ['domain.start'], { host: 'h1', domain: 'db-a' })?.rule).toBe('ACCESS-DENIED');
    expect(authorize(p, alice, ['domain.snapshot'], { host: 'h1', domain: 'web-a' })?.message).toContain("'domain.snapshot'");
    expect(globMatch('domain.*', 'domain.start')).toBe(true);
    expect(globMatch('domain.*', 'storage_vol.delete')).toBe(false);
    expect(globMatch('a.b', 'aXb')).toBe(false); // a dot is a dot, not any character
  });

  it('undefine needs storage_vol permissions only when it removes or wipes storage', () => {
    expect(permissionsOf(command({ verb: 'undefine' }))).toEqual(['domain.delete']);
    expect(permissionsOf(command({ verb: 'undefine', removeAllStorage: true }))).toEqual(['domain.delete', 'storage_vol.delete']);
    expect(permissionsOf(command({ verb: 'undefine', storage: ['vda'], wipeStorage: true }))).toEqual(['domain.delete', 'storage_vol.delete', 'storage_vol.data_write']);
    expect(permissionsOf(command({ verb: 'snapshot-revert', snapshotname: 's' }))).toEqual(['domain.snapshot']);
  });
});

describe('vmledger serve --policy FILE', () => {
  it('loads the shipped policy, and stops at a bad one before it connects to NATS or opens a store', async () => {
    expect(loadPolicyFile('deploy/policy.json').actors).toEqual({ carol: ['auditor'], alice: ['operator'], root: ['admin'] });
    const dir = mkdtempSync(join(tmpdir(), 'vmledger-policy-'));
    try {
      const bad = join(dir, 'policy.json');
      writeFileSync(bad, JSON.stringify({ roles: { op: [{ allow: [] }] } }));
      const store = join(dir, 'never.sqlite');
      await expect(runServe({ policy: bad, store: `sqlite:${store}`, natsUrl: 'nats://127.0.0.1:1', handleSignals: false })).rejects.toThrow(
        `invalid policy file ${bad}: roles.op.0.allow: Too small: expected array to have >=1 items`,
      );
      writeFileSync(bad, '{ not json');
      await expect(runServe({ policy: bad, store: `sqlite:${store}`, natsUrl: 'nats://127.0.0.1:1', handleSignals: false })).rejects.toThrow(
        /^the policy file .* is not valid JSON: /,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
