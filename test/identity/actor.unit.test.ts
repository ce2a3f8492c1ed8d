// Actor resolution on its own: requireSignatures, a signed command missing what it must carry, a client's own
// meta.auth, and what is kept of a claim.
import { createUser } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';

import { resolveIdentity, type IdentityConfig } from '../../services/identity/actor';
import { signCommand } from '../../services/identity/signature';

const alice = createUser();
const config: IdentityConfig = { defaultActor: 'nats', keys: { alice: alice.getPublicKey() }, requireSignatures: true };
const body = (meta: Record<string, unknown>) => ({ verb: 'start', host: 'h1', domain: 'web1', meta });
const META = { commandId: 'c-1', time: '2026-01-01T00:00:00Z' };

describe('resolveIdentity', () => {
  it('with requireSignatures, refuses an unsigned command even from a vouched NATS user', () => {
    const r = resolveIdentity(body({ ...META }), { account: 'OPS', user: 'alice' }, config);
    expect(r.refusal).toMatchObject({ rule: 'AUTH-SIGNATURE', code: 88 });
    expect(r.refusal!.message).toMatch(/^access denied: this service accepts only signed commands/);
    expect(r.meta).toMatchObject({ actor: 'alice', auth: { natsAccount: 'OPS', natsUser: 'alice' } });
  });

  it('accepts a signed one as the key\'s actor, and replaces a meta.auth the client wrote', () => {
    const signed = signCommand(body({ ...META }), alice) as unknown as Record<string, unknown>;
    const forgedAuth = { ...signed, meta: { ...(signed.meta as object), auth: { signer: 'UFAKE', natsUser: 'root' } } };
    const r = resolveIdentity(forgedAuth, undefined, config);
    expect(r.refusal).toBeUndefined();
    expect(r.meta).toMatchObject({ actor: 'alice', auth: { signer: alice.getPublicKey() } });
    expect((r.meta.auth as Record<string, unknown>).natsUser).toBeUndefined();
    expect(r.principal).toEqual({ actor: 'alice', authenticated: true });
  });

  it('refuses a signed command without the commandId it was signed with, and drops its signature from the record', () => {
    const signed = signCommand(body({ ...META }), alice) as unknown as { meta: Record<string, unknown> };
    const { commandId: _c, ...meta } = signed.meta;
    const r = resolveIdentity({ ...signed, meta }, undefined, config);
    expect(r.refusal?.message).toBe(
      'access denied: cannot verify the signature: the command is not valid as signed (meta.commandId); sign it with its commandId and time set',
    );
    expect(r.meta.signature).toBeUndefined();
    expect(r.meta).toMatchObject({ actor: 'nats', auth: { unauthenticated: true } });
  });
});
