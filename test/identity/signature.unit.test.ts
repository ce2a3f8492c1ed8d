// Signatures in the NATS nkeys format: made with Node's Ed25519, byte for byte what nkeys itself makes, and
// verified both ways; what the signed form covers and leaves out.
import { createUser, fromPublic, fromSeed } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';

import { signCommand, signedForm, verifyCommandSignature } from '../../services/identity/signature';

const input = { verb: 'undefine', host: 'h1', domain: 'web1', removeAllStorage: true, meta: { commandId: 'u-1', time: '2026-01-01T00:00:00Z' } };

describe('command signatures', () => {
  it('are exactly the signatures nkeys makes, and each side verifies the other', () => {
    for (let i = 0; i < 5; i++) {
      const kp = createUser();
      const signed = signCommand({ ...input, meta: { ...input.meta, commandId: `u-${i}` } }, kp);
      const sig = Buffer.from(signed.meta.signature!.sig, 'base64');
      expect(signed.meta.signature!.key).toBe(kp.getPublicKey());
      expect(Buffer.from(kp.sign(signedForm(signed))).equals(sig)).toBe(true);
      expect(fromPublic(kp.getPublicKey()).verify(signedForm(signed), sig)).toBe(true);
      expect(verifyCommandSignature(signed)).toEqual({ ok: true, key: kp.getPublicKey() });
      // The same key read back from its seed signs the same way.
      expect(signCommand({ ...input, meta: { ...input.meta, commandId: `u-${i}` } }, fromSeed(kp.getSeed())).meta.signature).toEqual(signed.meta.signature);
    }
  });

  it('cover every field of the command but actor, auth, correlation id and the signature itself', () => {
    const kp = createUser();
    const signed = signCommand(input, kp);
    expect(signed.meta.actor).toBeUndefined(); // not given: not sent (the service names the actor)
    const withService = { ...signed, meta: { ...signed.meta, actor: 'root', correlationId: 'saga', auth: { signer: kp.getPublicKey() } } };
    expect(verifyCommandSignature(withService).ok).toBe(true);
    for (const changed of [
      { ...signed, removeAllStorage: false },
      { ...signed, host: 'h2' },
      { ...signed, meta: { ...signed.meta, time: '2026-01-01T00:00:01Z' } },
      { ...signed, meta: { ...signed.meta, commandId: 'u-2' } },
    ]) {
      expect(verifyCommandSignature(changed)).toMatchObject({ ok: false, reason: `the signature of key ${kp.getPublicKey()} does not match the command (the command or its signature was changed)` });
    }
    expect(verifyCommandSignature({ ...signed, meta: { ...signed.meta, signature: { key: 'UNOTAKEY', sig: signed.meta.signature!.sig } } })).toMatchObject({ ok: false, reason: expect.stringMatching(/^'UNOTAKEY' is not a public nkey/) });
    expect(verifyCommandSignature({ ...signed, meta: { ...signed.meta, signature: { key: kp.getPublicKey(), sig: 'c2hvcnQ=' } } })).toMatchObject({ ok: false, reason: 'the signature is not 64 bytes of base64' });
  });
});
