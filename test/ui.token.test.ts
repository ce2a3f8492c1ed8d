// `vmledger ui` off loopback needs a token; on loopback it needs none unless one is given. Real HTTP on a real
// listening socket (bound to 0.0.0.0, reached through 127.0.0.1 only).
import { request } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openEventStore } from '../services/eventstore/index';
import type { EventStore } from '../services/eventstore/types';
import { startUiServer, type UiServer } from '../services/ui/server';
import { UI_TOKEN_COOKIE } from '../services/ui/token';

let store: EventStore;
let ui: UiServer;
const TOKEN = 'a-long-random-token-for-the-test';

beforeAll(async () => {
  store = await openEventStore('memory');
  ui = await startUiServer({ store, port: 0, host: '0.0.0.0', token: TOKEN });
});

afterAll(async () => {
  await ui?.close();
  await store?.close();
});

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ui.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the UI token', () => {
  it('refuses to bind a non-loopback address without a token', async () => {
    await expect(startUiServer({ store, port: 0, host: '0.0.0.0' })).rejects.toThrow(
      "binding 0.0.0.0 (not loopback) exposes the ledger's history to the network: give a token (--token, or $VMLEDGER_UI_TOKEN)",
    );
  });

  it('answers 401 without the token or with a wrong one, for the page and the API alike', async () => {
    for (const path of ['/', '/api/domains', '/api/rules']) {
      const none = await get(path);
      expect(none.status, path).toBe(401);
      expect(JSON.parse(none.body).error).toMatch(/needs its token/);
      expect((await get(path, { authorization: 'Bearer wrong' })).status, path).toBe(401);
      expect((await get(`${path}?token=wrong`)).status, path).toBe(401);
    }
  });

  it('takes the token as a bearer header, or in the link, which sets the cookie the page then sends', async () => {
    const bearer = await get('/api/domains', { authorization: `Bearer ${TOKEN}` });
    expect(bearer.status).toBe(200);
    expect(JSON.parse(bearer.body)).toMatchObject({ domains: [] });
    const link = await get(`/?token=${TOKEN}`);
    expect(link.status).toBe(200);
    const cookie = String(link.headers['set-cookie']);
    expect(cookie).toContain(`${UI_TOKEN_COOKIE}=${TOKEN}`);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect((await get('/api/rules', { cookie: cookie.split(';')[0]! })).status).toBe(200);
  });
});
