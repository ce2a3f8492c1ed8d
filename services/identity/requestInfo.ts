// Who sent a request, as the NATS server says it: the `Nats-Request-Info` header.
//
// What the server does with it (test/identity/nats-accounts.int.test.ts proves each point on a real nats-server):
// - On a service imported from another account with `share: true`, the server writes the header with the
//   requester's account and user, replacing whatever the client put there.
// - On a plain connection in the service's own account it adds nothing, and a client's own header reaches the
//   service unchanged: anyone could write `{"acc":"OPS","user":"admin"}`.
// So the header is trusted only when the service is told which accounts import it (`trustedAccounts`) and the
// header names one of them. That is sound only if nobody but the service may publish on `vmledger.cmd.>` inside
// the service's own account (deploy/nats-server.conf denies it): then every request naming an importing account
// really came through that import.
export const REQUEST_INFO_HEADER = 'Nats-Request-Info';

export interface NatsRequester {
  account: string;
  user: string;
}

interface HeaderSource {
  get(name: string): string;
}

/** The account and user of the header, when it is JSON naming both; undefined otherwise. */
export function parseRequestInfo(value: string | undefined): NatsRequester | undefined {
  if (!value) return undefined;
  try {
    const info = JSON.parse(value) as { acc?: unknown; user?: unknown };
    if (typeof info.acc === 'string' && info.acc !== '' && typeof info.user === 'string' && info.user !== '') {
      return { account: info.acc, user: info.user };
    }
  } catch {
    // not JSON: nobody vouched
  }
  return undefined;
}

/** The requester the server vouches for: only through an import from one of `trustedAccounts`. */
export function trustedRequester(headers: HeaderSource | undefined, trustedAccounts: readonly string[]): NatsRequester | undefined {
  if (trustedAccounts.length === 0 || !headers) return undefined;
  const requester = parseRequestInfo(headers.get(REQUEST_INFO_HEADER));
  return requester && trustedAccounts.includes(requester.account) ? requester : undefined;
}
