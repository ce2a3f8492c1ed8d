// The UI's domain picker on a fleet larger than one page: 600 domains on three hosts, recorded through the real
// ledger on a SQLite file, searched in Debian's chromium by name, host and state. The picker never lists more
// than the server's page (50), says how many it found, and a state that does not exist is refused by name.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore } from '../services/eventstore/types';
import { createLedger } from '../services/ledger';
import type { Ledger } from '../services/ledger-types';
import { startUiServer, type UiServer } from '../services/ui/server';
import { closeUiTest, launchChromium, type Browser } from './support/chromium';

const HOSTS = ['east', 'north', 'west'];
const PER_HOST = 200;

let dir: string;
let store: EventStore;
let ledger: Ledger;
let ui: UiServer;
let browser: Browser | undefined;
let page: Page;

const name = (i: number) => `vm-${String(i).padStart(4, '0')}`;
const uuid = (h: number, i: number) => `00000000-0000-4000-8${h}00-${String(i).padStart(12, '0')}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-ui-search-'));
  store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  ledger = createLedger(store);
  let n = 0;
  const meta = () => ({ commandId: `c-${++n}`, actor: 'test', time: '2026-01-05T09:00:00Z' });
  await Promise.all(
    HOSTS.map(async (host, h) => {
      for (let i = 0; i < PER_HOST; i++) {
        await ledger.execute({ verb: 'define', host, config: { name: name(i), uuid: uuid(h, i) }, meta: meta() });
        // Every tenth domain of a host runs; on `west`, vm-0010 is paused too.
        if (i % 10 === 0) await ledger.execute({ verb: 'start', host, domain: name(i), meta: meta() });
      }
    }),
  );
  await ledger.execute({ verb: 'suspend', host: 'west', domain: name(10), meta: meta() });
  ui = await startUiServer({ store, port: 0, host: '127.0.0.1' });
  browser = await launchChromium({ width: 1280, height: 720 });
  page = await browser.context.newPage();
}, 120_000);

afterAll(() => closeUiTest({ browser, ui, ledger, store, dir }));

const options = () => page.locator('#domain-picker option').allTextContents();

describe('the domain picker', () => {
  it('shows the first page of every domain and how many there are', async () => {
    await page.goto(ui.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    const shown = await options();
    expect(shown).toHaveLength(51);
    expect(shown.slice(0, 3)).toEqual(['Choose a domain…', 'vm-0000 on east — running, running', 'vm-0001 on east — inactive']);
    expect(await page.locator('#domain-count').textContent()).toBe(`the first 50 of ${(HOSTS.length * PER_HOST).toLocaleString('en-US')} domains found: refine the search`);
    expect(await page.locator('#domain-host option').allTextContents()).toEqual(['any host', ...HOSTS]);
  });

  it('searches by name, host and state', async () => {
    await page.fill('#domain-search', 'vm-019');
    await expect.poll(options).toHaveLength(1 + HOSTS.length * 10);
    await page.selectOption('#domain-host', 'west');
    await expect.poll(options).toEqual([
      'Choose a domain…',
      ...Array.from({ length: 10 }, (_, i) => `vm-019${i} on west — ${i === 0 ? 'running, running' : 'inactive'}`),
    ]);
    await page.fill('#domain-search', '');
    await page.selectOption('#domain-state', 'paused');
    await expect.poll(options).toEqual(['Choose a domain…', 'vm-0010 on west — running, paused']);
    expect(await page.locator('#domain-count').textContent()).toBe('');
    await page.selectOption('#domain-host', '');
    await page.selectOption('#domain-state', 'running');
    // 60 running (the machine's running state holds its paused sub-state, so west's vm-0010 too): the first 50.
    await expect.poll(() => page.locator('#domain-count').textContent()).toBe('the first 50 of 60 domains found: refine the search');
    expect((await options()).slice(1).every((o) => /— running, (running|paused)$/.test(o))).toBe(true);
    expect(await options()).toHaveLength(51);
    await page.fill('#domain-search', 'no-such-domain');
    await expect.poll(options).toEqual(['No domain matches the search']);
  });

  it('opens the history of a domain found by the search', async () => {
    await page.fill('#domain-search', 'vm-0010');
    await page.selectOption('#domain-state', '');
    await page.selectOption('#domain-host', 'west');
    await expect.poll(options).toEqual(['Choose a domain…', 'vm-0010 on west — running, paused']);
    await page.selectOption('#domain-picker', 'west/vm-0010');
    await page.waitForSelector('#steps button[data-step="3"]');
    expect(await page.locator('#steps li').count()).toBe(4);
  });

  it('refuses a state or a limit that does not exist, by name', async () => {
    const bad = await fetch(new URL('/api/domains?state=sleeping', ui.url));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("unknown state 'sleeping'");
    const limit = await fetch(new URL('/api/domains?limit=0', ui.url));
    expect(limit.status).toBe(400);
    expect(await limit.text()).toContain('limit must be an integer from 1 to 1000');
  });
});
