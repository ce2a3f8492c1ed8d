// The UI's access token. Bound to loopback, the UI answers only loopback names (server.ts); bound to anything
// else it is reachable from the network, so it requires a token: `Authorization: Bearer TOKEN`, or `?token=TOKEN`
// in the URL (the printed link; the answer sets an HttpOnly, SameSite=Strict cookie so that the page's own
// requests carry it), or that cookie.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const UI_TOKEN_COOKIE = 'vmledger_ui_token';

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A fresh random token (what `vmledger ui --host ADDRESS` prints when none is given). */
export function newUiToken(): string {
  return randomBytes(24).toString('base64url');
}

/** The token a request presents, and whether it came in the URL (then the answer sets the cookie). */
export function presentedToken(req: IncomingMessage, url: URL): { token?: string; fromQuery: boolean } {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return { token: auth.slice('Bearer '.length).trim(), fromQuery: false };
  const query = url.searchParams.get('token');
  if (query !== null) return { token: query, fromQuery: true };
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === UI_TOKEN_COOKIE) return { token: decodeURIComponent(value.join('=')), fromQuery: false };
  }
  return { fromQuery: false };
}

/** Constant-time comparison (of digests, so lengths do not leak either). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(expected), digest(given));
}

export function tokenCookie(token: string): string {
  return `${UI_TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
}
