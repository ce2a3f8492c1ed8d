// Rule ids of refusals that come from who sent a command rather than from the domain machine. They are not in
// machines/rules.ts, which mirrors RULES.md (the domain's rules); like the service's own VALIDATION or STORE-FULL
// they are recorded in `refusals-<host>`, and replay does not re-decide them with the machine (a refusal for
// who asked says nothing about the domain's state).
import { refusal, type Refusal } from '../../machines/errors';

export const IDENTITY_RULES = {
  /** The access policy grants the actor no permission the command needs (libvirt's ACL check). */
  accessDenied: 'ACCESS-DENIED',
  /** The command names an actor other than the one the transport or a signature authenticated. */
  actorMismatch: 'AUTH-ACTOR',
  /** A signature that does not verify, a key the service does not know, or a missing one where required. */
  signature: 'AUTH-SIGNATURE',
} as const;

const ALL: ReadonlySet<string> = new Set(Object.values(IDENTITY_RULES));

export function isIdentityRule(rule: string): boolean {
  return ALL.has(rule);
}

/** libvirt's VIR_ERR_ACCESS_DENIED (88): `access denied: …`. */
export function accessDenied(rule: string, text: string): Refusal {
  return refusal(rule, 'VIR_ERR_ACCESS_DENIED', text);
}
