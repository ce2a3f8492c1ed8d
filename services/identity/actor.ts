// Who sent a command, and therefore which actor the ledger records. In order of strength:
//   1. a signature that verifies, by a key the policy names (`identity.keys`): that key's actor;
//   2. the NATS user the server vouches for (requestInfo.ts: an import from a trusted account);
//   3. nobody: the configured default actor, marked `unauthenticated` in the audit.
// A command whose body names an actor other than the authenticated one is refused (AUTH-ACTOR): no delegation,
// so the audit never shows a claim as the actor. A signed command sent by another NATS user is accepted as the
// signer's (the signature is the stronger proof); `meta.auth` records both. Without any identity a claimed actor
// is not an error (older clients send one), but it is kept only as `claimedActor`, never as the actor.
import { CommandSchema } from '../../machines/commands';
import type { Refusal } from '../../machines/errors';
import type { Principal } from './policy';
import type { NatsRequester } from './requestInfo';
import { accessDenied, IDENTITY_RULES } from './rules';
import { verifyCommandSignature } from './signature';

export interface IdentityConfig {
  defaultActor: string;
  /** actor → public nkey */
  keys: Readonly<Record<string, string>>;
  requireSignatures: boolean;
}

export interface ResolvedIdentity {
  /** The body's meta with `actor` and `auth` set by the service (a refused command's signature removed). */
  meta: Record<string, unknown>;
  principal: Principal;
  /** Set when the command must be refused for who sent it (recorded, as every refusal). */
  refusal?: Refusal;
}

type Auth = {
  natsAccount?: string;
  natsUser?: string;
  signer?: string;
  unauthenticated?: true;
  claimedActor?: string;
};

function actorOfKey(config: IdentityConfig, key: string): string | undefined {
  return Object.entries(config.keys).find(([, k]) => k === key)?.[0];
}

/**
 * `body` is the request body with `verb` set; `requester` what the server vouched for. Never throws: an invalid
 * command gets its meta back unchanged but for actor and auth, and the ledger names what is wrong with it.
 */
export function resolveIdentity(body: Record<string, unknown>, requester: NatsRequester | undefined, config: IdentityConfig): ResolvedIdentity {
  const given = (body.meta ?? {}) as Record<string, unknown>;
  const { auth: _clientAuth, ...meta } = given;
  const claimed = typeof given.actor === 'string' ? given.actor : undefined;
  const auth: Auth = requester ? { natsAccount: requester.account, natsUser: requester.user } : {};
  let refusal: Refusal | undefined;
  let signerActor: string | undefined;

  if (meta.signature !== undefined) {
    const parsed = CommandSchema.safeParse(body);
    if (!parsed.success) {
      // Signed as sent: a commandId or time filled in by the service would not be covered.
      const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(top level)'))].join(', ');
      refusal = accessDenied(IDENTITY_RULES.signature, `cannot verify the signature: the command is not valid as signed (${fields}); sign it with its commandId and time set`);
    } else {
      const check = verifyCommandSignature(parsed.data);
      const actor = check.ok ? actorOfKey(config, check.key) : undefined;
      if (!check.ok) refusal = accessDenied(IDENTITY_RULES.signature, check.reason);
      else if (actor === undefined) refusal = accessDenied(IDENTITY_RULES.signature, `key ${check.key} is not the key of any actor this service knows (policy identity.keys)`);
      else {
        signerActor = actor;
        auth.signer = check.key;
      }
    }
  } else if (config.requireSignatures) {
    refusal = accessDenied(IDENTITY_RULES.signature, 'this service accepts only signed commands (sign with --sign-with KEYFILE, or the client\'s signWith option)');
  }

  const authenticated = signerActor ?? requester?.user;
  const actor = authenticated ?? config.defaultActor;
  if (authenticated === undefined) auth.unauthenticated = true;
  if (claimed !== undefined && claimed !== actor) {
    auth.claimedActor = claimed;
    if (authenticated !== undefined && !refusal) {
      const how = signerActor !== undefined ? `the signature of key ${auth.signer}` : `NATS (user '${requester!.user}' of account '${requester!.account}')`;
      refusal = accessDenied(IDENTITY_RULES.actorMismatch, `the command names actor '${claimed}', but ${how} authenticates '${actor}'; omit meta.actor or send your own`);
    }
  }
  const recorded: Record<string, unknown> = { ...meta, actor, auth };
  // A refused command is recorded without a signature that failed (replay verifies every stored signature).
  if (refusal) delete recorded.signature;
  return { meta: recorded, principal: { actor, authenticated: authenticated !== undefined }, ...(refusal ? { refusal } : {}) };
}
