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
  /**
   * A client's guest-event in front of a hypervisor that reports what guests do itself (a real libvirt:
   * HypervisorDriver.reportsGuestEvents): it would record a power-off or a crash libvirt never reported.
   */
  hypervisorReports: 'HYPERVISOR-REPORTS',
} as const;

const ALL: ReadonlySet<string> = new Set(Object.values(IDENTITY_RULES));

export function isIdentityRule(rule: string): boolean {
  return ALL.has(rule);
}

/** libvirt's VIR_ERR_ACCESS_DENIED (88): `access denied: …`. */
export function accessDenied(rule: string, text: string): Refusal {
  return refusal(rule, 'VIR_ERR_ACCESS_DENIED', text);
}

/** The refusal of a client's guest-event where only the hypervisor reports what a guest did (undefined for other verbs). */
export function hypervisorReportsOnly(command: { verb: string }): Refusal | undefined {
  if (command.verb !== 'guest-event') return undefined;
  return refusal(
    IDENTITY_RULES.hypervisorReports,
    'VIR_ERR_OPERATION_DENIED',
    `'guest-event' is libvirt's own report here: what a guest does is recorded from libvirt (the watch of 'serve --connect', 'vmledger reconcile'), not sent by a client`,
  );
}
