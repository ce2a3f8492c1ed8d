// What the NATS service calls (services/nats/service.ts): for a command, who sent it (actor.ts) and the check the
// ledger runs on the validated command before deciding it (identity refusal first, then the policy); for a query,
// whether the requester may read what it asks for.
import type { Command } from '../../machines/commands';
import { commandDomainName } from '../../machines/commands';
import type { Refusal } from '../../machines/errors';
import { DEFAULT_HOST } from '../../machines/model';
import { QUERY_SUBJECTS } from '../nats/protocol';
import { resolveIdentity } from './actor';
import { permissionsOf } from './permissions';
import { authorize, type Policy, type Principal } from './policy';
import { trustedRequester } from './requestInfo';

interface HeaderSource {
  get(name: string): string;
}

export interface AccessControl {
  /**
   * `body`: the request body with `verb` set, before the service fills commandId and time. Returns the meta to
   * record (actor and auth set) and the admission check for the ledger.
   */
  command(body: Record<string, unknown>, headers: HeaderSource | undefined): { meta: Record<string, unknown>; admit: (command: Command) => Refusal | undefined };
  /** A query on `host` (every host: undefined) and `domain` (any: undefined): undefined when allowed. */
  query(headers: HeaderSource | undefined, permission: string, host: string | undefined, domain: string | undefined): Refusal | undefined;
}

/** The access control of a policy (a service without a policy file gets `defaultAccess`). */
export function accessControl(policy: Policy): AccessControl {
  const { identity } = policy;
  const principalOf = (headers: HeaderSource | undefined): Principal => {
    const requester = trustedRequester(headers, identity.trustedAccounts);
    return requester ? { actor: requester.user, authenticated: true } : { actor: identity.defaultActor, authenticated: false };
  };
  return {
    command(body, headers) {
      const resolved = resolveIdentity(body, trustedRequester(headers, identity.trustedAccounts), identity);
      const admit = (command: Command): Refusal | undefined =>
        resolved.refusal ??
        authorize(policy, resolved.principal, permissionsOf(command), { host: command.host, domain: commandDomainName(command) });
      return { meta: resolved.meta, admit };
    },
    query(headers, permission, host, domain) {
      return authorize(policy, principalOf(headers), [permission], { host: host ?? '*', ...(domain !== undefined ? { domain } : {}) });
    },
  };
}

/** No policy file: nobody is trusted by header, no keys, nothing checked; the actor is `defaultActor`. */
export function defaultAccess(defaultActor = 'nats'): AccessControl {
  return accessControl({ identity: { trustedAccounts: [], keys: {}, requireSignatures: false, defaultActor }, actors: {}, unauthenticated: [] });
}

/** The permission a query subject needs, and where: listing, the audit and recall need `connect.search_domains`, the rest `domain.read`. */
export function queryAccess(access: AccessControl, subject: string, data: Uint8Array, headers: HeaderSource | undefined): Refusal | undefined {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = data.length === 0 ? {} : JSON.parse(new TextDecoder().decode(data));
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // unreadable: the endpoint names what is wrong once access is settled
  }
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  if (subject === QUERY_SUBJECTS.domain || subject === QUERY_SUBJECTS.snapshots) {
    return access.query(headers, 'domain.read', str(body.host) ?? DEFAULT_HOST, str(body.domain) ?? '');
  }
  if (subject === QUERY_SUBJECTS.domains) return access.query(headers, 'connect.search_domains', str(body.host), undefined);
  if (subject === QUERY_SUBJECTS.command) return access.query(headers, 'connect.search_domains', undefined, undefined);
  if (subject === QUERY_SUBJECTS.audit) return access.query(headers, 'connect.search_domains', str(body.host), undefined);
  return undefined;
}
