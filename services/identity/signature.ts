// Signed commands: an Ed25519 signature in the NATS nkeys format (a user key pair, `SU…` seed, `U…` public key)
// over the command's signed form, carried in `meta.signature = { key, sig }` and stored with the command, so it is
// inside the hash chain and `vmledger replay` verifies it again.
//
// The signed form is the canonical JSON (services/factHash.ts) of the command as the ledger validates it
// (CommandSchema, defaults applied), without `meta.signature`, `meta.auth` (the service's own attestation),
// `meta.actor` (the service names the actor from the key: see actor.ts) and `meta.correlationId` (a grouping the
// migration saga fills in). A client signs what it sends: the
// command with its commandId and time already set (signCommand does all of this).
import { createPrivateKey, createPublicKey, sign as ed25519Sign, verify as ed25519Verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';

import { CommandSchema, type Command } from '../../machines/commands';
import { canonicalJson } from '../factHash';

export interface CommandSignature {
  /** The signer's public nkey (`U…`). */
  key: string;
  /** Base64 of the 64-byte Ed25519 signature. */
  sig: string;
}

const USER_SEED = /\bSU[A-Z2-7]{56}\b/;

/** The bytes a signature covers (see the header). */
export function signedForm(command: { meta?: unknown }): Uint8Array {
  const meta = { ...((command.meta as Record<string, unknown> | undefined) ?? {}) };
  delete meta.signature;
  delete meta.auth;
  delete meta.actor;
  delete meta.correlationId; // a migration saga sets it on its Begin step (services/migration.ts)
  return new TextEncoder().encode(canonicalJson({ ...command, meta }));
}

/**
 * The command, validated, signed by `signer`: what a client sends. Throws a ZodError for an invalid command (it
 * could not be signed in the form the service checks). `meta.actor` is sent only if the caller gave one.
 */
export function signCommand(input: unknown, signer: KeyPair): Command {
  const command = CommandSchema.parse(input);
  const given = (input as { meta?: { actor?: unknown } }).meta?.actor;
  const { actor: _actor, signature: _old, auth: _auth, ...meta } = command.meta;
  const unsigned = { ...command, meta: given === undefined ? meta : { ...meta, actor: command.meta.actor } };
  const { key, publicKey } = privateKeyOf(signer);
  const sig = ed25519Sign(null, signedForm(unsigned), key).toString('base64');
  return { ...unsigned, meta: { ...unsigned.meta, signature: { key: publicKey, sig } } } as Command;
}

export type SignatureCheck = { ok: true; key: string } | { ok: false; key?: string; reason: string };

/** Verifies `meta.signature` of a validated (or stored) command over its signed form. */
export function verifyCommandSignature(command: { meta?: unknown }): SignatureCheck {
  const signature = (command.meta as { signature?: Partial<CommandSignature> } | undefined)?.signature;
  if (!signature || typeof signature.key !== 'string' || typeof signature.sig !== 'string') {
    return { ok: false, reason: 'the command carries no signature' };
  }
  const { key, sig } = signature;
  let publicKey: KeyPair;
  try {
    publicKey = fromPublic(key);
  } catch (error) {
    return { ok: false, key, reason: `'${key}' is not a public nkey (${(error as Error).message})` };
  }
  if (!key.startsWith('U')) return { ok: false, key, reason: `'${key}' is not a user nkey (it starts with 'U')` };
  const bytes = Buffer.from(sig, 'base64');
  if (bytes.length !== 64 || bytes.toString('base64') !== sig) {
    return { ok: false, key, reason: 'the signature is not 64 bytes of base64' };
  }
  let valid = false;
  try {
    valid = ed25519Verify(null, signedForm(command), publicKeyOf(key, publicKey), bytes);
  } catch {
    valid = false;
  }
  return valid ? { ok: true, key } : { ok: false, key, reason: `the signature of key ${key} does not match the command (the command or its signature was changed)` };
}

/** A signing key from a file holding a user nkey seed (`SU…`, as `nk -gen user` writes it, or a `.creds` file). */
export function readSigningKey(path: string): KeyPair {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the signing key ${path}: ${(error as Error).message}`);
  }
  const seed = USER_SEED.exec(text)?.[0];
  if (!seed) throw new Error(`${path} holds no user nkey seed (a line starting 'SU', e.g. from 'vmledger keygen')`);
  try {
    return fromSeed(new TextEncoder().encode(seed));
  } catch (error) {
    throw new Error(`${path}: the nkey seed is not valid (${(error as Error).message})`);
  }
}

/** Whether a string is a user public nkey (`U…`, checksum included). */
export function isUserPublicKey(key: string): boolean {
  if (!/^U[A-Z2-7]{55}$/.test(key)) return false;
  try {
    fromPublic(key);
    return true;
  } catch {
    return false;
  }
}

// The Ed25519 arithmetic is Node's (OpenSSL): the same signatures as nkeys' own (Ed25519 is deterministic; the unit
// test compares them byte for byte), about a hundred times faster than its pure-JS tweetnacl, which matters
// for a service verifying every command and a replay verifying every stored one. nkeys does the key format.

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding, as nkeys encodes keys and seeds. */
function base32Decode(text: string): Buffer {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const index = BASE32.indexOf(ch);
    if (index < 0) throw new Error(`not base32: '${ch}'`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

const publicKeys = new Map<string, KeyObject>();
const MAX_CACHED_KEYS = 10_000;

/** Node's key for a user public nkey that `fromPublic` accepted (prefix byte, 32 key bytes, CRC-16). */
function publicKeyOf(key: string, checked: KeyPair): KeyObject {
  let object = publicKeys.get(key);
  if (!object) {
    if (checked.getPublicKey() !== key) throw new Error('unchecked key');
    const raw = base32Decode(key).subarray(1, 33);
    object = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.clear();
    publicKeys.set(key, object);
  }
  return object;
}

const privateKeys = new WeakMap<KeyPair, { key: KeyObject; publicKey: string }>();

/**
 * Node's key for a user nkey pair, from its seed (two prefix bytes, the 32-byte Ed25519 seed, CRC-16), and its
 * public nkey (which nkeys derives anew, slowly, on every call).
 */
function privateKeyOf(signer: KeyPair): { key: KeyObject; publicKey: string } {
  let cached = privateKeys.get(signer);
  if (!cached) {
    const seed = base32Decode(new TextDecoder().decode(signer.getSeed())).subarray(2, 34);
    const publicKey = signer.getPublicKey();
    const publicRaw = base32Decode(publicKey).subarray(1, 33);
    const key = createPrivateKey({
      key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: publicRaw.toString('base64url') },
      format: 'jwk',
    });
    cached = { key, publicKey };
    privateKeys.set(signer, cached);
  }
  return cached;
}
