// The access policy file (`vmledger serve --policy FILE`, or $VMLEDGER_POLICY): who the service believes, which
// keys sign for whom, and who may do what. JSON, validated with zod; every mistake is named with its path.
//
//   {
//     "identity": {
//       "trustedAccounts": ["OPS", "AUDIT"],      // accounts importing the service with share: true (requestInfo.ts)
//       "keys": { "alice": "UA…", "root": "UB…" }, // actor → public nkey of its signing key
//       "requireSignatures": false,                // true: an unsigned command is refused (AUTH-SIGNATURE)
//       "defaultActor": "nats"                     // the actor when nobody vouches (marked unauthenticated)
//     },
//     "roles": {
//       "auditor":  [{ "allow": ["domain.read", "connect.search_domains"] }],
//       "operator": [{ "allow": ["domain.read", "connect.search_domains"] },
//                    { "allow": ["domain.start", "domain.stop", "domain.suspend", "domain.init_control"], "hosts": ["h1"] }],
//       "admin":    [{ "allow": ["*"] }]
//     },
//     "actors": { "carol": ["auditor"], "alice": ["operator"], "root": ["admin"] },
//     "unauthenticated": []                        // roles of a requester nobody vouched for
//   }
//
// A grant allows permission patterns (permissions.ts; `*` matches any run of characters, so `domain.*` is every
// domain permission) on hosts and domains matching its patterns (default `*`). A command is allowed when every
// permission it needs is allowed by some grant of some role of its actor; everything else is denied (libvirt's
// VIR_ERR_ACCESS_DENIED, rule ACCESS-DENIED). Without `roles`, nothing is checked (the identity part still applies).
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import type { Refusal } from '../../machines/errors';
import { PERMISSIONS } from './permissions';
import { accessDenied, IDENTITY_RULES } from './rules';
import { isUserPublicKey } from './signature';

const name = z.string().min(1).max(200);
const pattern = z.string().min(1).max(200);

const permissionPattern = pattern.superRefine((p, ctx) => {
  if (!PERMISSIONS.some((perm) => globMatch(p, perm))) {
    ctx.addIssue({ code: 'custom', message: `'${p}' matches no permission; permissions: ${PERMISSIONS.join(', ')}` });
  }
});

const GrantSchema = z
  .object({
    allow: z.array(permissionPattern).min(1),
    hosts: z.array(pattern).min(1).default(['*']),
    domains: z.array(pattern).min(1).default(['*']),
  })
  .strict();

export const PolicySchema = z
  .object({
    identity: z
      .object({
        trustedAccounts: z.array(name).default([]),
        keys: z.record(name, z.string().refine(isUserPublicKey, 'must be a user public nkey (U…, 56 characters)')).default({}),
        requireSignatures: z.boolean().default(false),
        defaultActor: name.default('nats'),
      })
      .strict()
      .default({ trustedAccounts: [], keys: {}, requireSignatures: false, defaultActor: 'nats' }),
    roles: z.record(name, z.array(GrantSchema)).optional(),
    actors: z.record(name, z.array(name)).default({}),
    unauthenticated: z.array(name).default([]),
  })
  .strict()
  .superRefine((p, ctx) => {
    const roles = p.roles ?? {};
    const known = (role: string) => Object.hasOwn(roles, role);
    for (const [actor, list] of Object.entries(p.actors)) {
      list.forEach((role, i) => {
        if (!known(role)) ctx.addIssue({ code: 'custom', path: ['actors', actor, i], message: `role '${role}' is not defined in roles` });
      });
    }
    p.unauthenticated.forEach((role, i) => {
      if (!known(role)) ctx.addIssue({ code: 'custom', path: ['unauthenticated', i], message: `role '${role}' is not defined in roles` });
    });
    const seen = new Map<string, string>();
    for (const [actor, key] of Object.entries(p.identity.keys)) {
      const other = seen.get(key);
      if (other) ctx.addIssue({ code: 'custom', path: ['identity', 'keys', actor], message: `the same key is already the key of '${other}'` });
      seen.set(key, actor);
    }
  });
export type Policy = z.output<typeof PolicySchema>;

/** Parses a policy; throws an Error naming every bad field (`roles.operator.0.allow.1: …`). */
export function parsePolicy(value: unknown, source = 'policy'): Policy {
  const parsed = PolicySchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(top level)'}: ${i.message}`);
  throw new Error(`invalid ${source}: ${issues.join('; ')}`);
}

export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the policy file ${path}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`the policy file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  return parsePolicy(value, `policy file ${path}`);
}

/** `*` matches any run of characters (dots included); everything else is literal. */
export function globMatch(glob: string, value: string): boolean {
  const re = new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
  return re.test(value);
}

export interface Principal {
  actor: string;
  authenticated: boolean;
}

/** Where a permission is asked for: a host, and a domain (`undefined`: any domain on it, e.g. listing). */
export interface Target {
  host: string;
  domain?: string;
}

/** The roles of a principal (an unauthenticated one gets only `unauthenticated`'s, whatever its name). */
function rolesOf(policy: Policy, who: Principal): string[] {
  if (!who.authenticated) return policy.unauthenticated;
  return Object.hasOwn(policy.actors, who.actor) ? policy.actors[who.actor]! : [];
}

/** Undefined when allowed; else the refusal naming the first permission missing. */
export function authorize(policy: Policy, who: Principal, permissions: readonly string[], target: Target): Refusal | undefined {
  if (policy.roles === undefined) return undefined;
  const roles = rolesOf(policy, who);
  const grants = roles.flatMap((r) => policy.roles![r] ?? []);
  for (const permission of permissions) {
    const allowed = grants.some(
      (g) =>
        g.allow.some((p) => globMatch(p, permission)) &&
        g.hosts.some((h) => globMatch(h, target.host)) &&
        (target.domain === undefined || g.domains.some((d) => globMatch(d, target.domain!))),
    );
    if (!allowed) {
      const where = target.domain === undefined ? `host '${target.host}'` : `domain '${target.domain}' on host '${target.host}'`;
      const whom = who.authenticated ? `actor '${who.actor}'` : `unauthenticated requester (recorded as '${who.actor}')`;
      const held = roles.length > 0 ? `roles: ${roles.join(', ')}` : 'no role';
      return accessDenied(IDENTITY_RULES.accessDenied, `${whom} (${held}) lacks permission '${permission}' on ${where}`);
    }
  }
  return undefined;
}
