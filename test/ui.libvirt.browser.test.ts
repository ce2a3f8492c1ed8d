// The UI's history in Chromium shows what libvirt did on its own apart from the commands sent to vmledger, with
// its source: a domain defined and started by commands, then destroyed behind vmledger's back (recorded the way
// `serve --connect` records an event: recordObserved, actor libvirt, meta.observed), then undefined by reconcile.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore } from '../services/eventstore/types';
import { createLedger, recordObserved } from '../services/ledger';
import type { Ledger } from '../services/ledger-types';
import { startUiServer, type UiServer } from '../services/ui/server';
import { closeUiTest, launchChromium, type Browser } from './support/chromium';

const CONFIG = { name: 'web', uuid: '6695eb01-f6a4-8304-79aa-97f2502e1940', disks: [{ target: 'vda', source: '/guest/web.qcow2' }] };
const EVENT_LINE = "2026-12-01 19:23:26.813+0000: event 'lifecycle' for domain 'web': Stopped Destroyed";

let dir: string;
let store: EventStore;
let ledger: Ledger;
let ui: UiServer;
let browser: Browser | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-ui-libvirt-'));
  store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  ledger = createLedger(store);
  const meta = (id: string, minute: number) => ({ commandId: id, actor: 'alice', time: new Date(Date.UTC(2026, 11, 1, 19, minute)).toISOString() });
  expect((await ledger.execute({ verb: 'define', host: 'local', config: CONFIG, meta: meta('c1', 1) } as CommandInput)).ok).toBe(true);
  expect((await ledger.execute({ verb: 'start', host: 'local', domain: 'web', meta: meta('c2', 2) } as CommandInput)).ok).toBe(true);
  const observed = (id: string, source: string, detail: string, minute: number) => ({
    ...meta(id, minute),
    actor: 'libvirt',
    observed: { source, detail },
  });
  const destroyed = await recordObserved(ledger, { verb: 'destroy', host: 'local', domain: 'web', meta: observed('libvirt/destroy/local/web@1', 'event', EVENT_LINE, 3) });
  expect(destroyed.ok).toBe(true);
  const undefined_ = await recordObserved(ledger, {
    verb: 'undefine',
    host: 'local',
    domain: 'web',
    meta: observed('libvirt/undefine/local/web@2', 'reconcile', 'undefined: defined -> gone', 4),
  });
  expect(undefined_.ok).toBe(true);
  ui = await startUiServer({ store, port: 0, host: '127.0.0.1' });
});

afterAll(() => closeUiTest({ browser, ui, ledger, store, dir }));

it('marks the facts that came from libvirt apart from the commands, with their source', async () => {
  browser = await launchChromium({ width: 1400, height: 1000 });
  const page = await browser.context.newPage();
  await page.goto(ui.url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  await page.selectOption('#domain-picker', 'local/web');
  await page.waitForSelector('#steps button[data-step="4"]');

  const kinds = await page.locator('#steps button').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
  expect(kinds).toEqual(['initial', 'command', 'command', 'libvirt', 'libvirt']);
  expect(await page.locator('#steps button[data-step="1"] [data-testid="step-source"]').count()).toBe(0);
  expect(await page.locator('#steps button[data-step="3"] [data-testid="step-source"]').textContent()).toBe('libvirt · event');
  expect(await page.locator('#steps button[data-step="4"] [data-testid="step-source"]').textContent()).toBe('libvirt · reconcile');

  await page.click('#steps button[data-step="3"]');
  await expect.poll(() => page.locator('#step-count').textContent()).toBe('Step 3 of 4');
  const source = (await page.locator('[data-testid="source"]').textContent()) ?? '';
  expect(source).toContain('from libvirt');
  expect(source).toContain('heard by event');
  expect(source).toContain('Stopped Destroyed');
  expect(await page.locator('[data-testid="step-state"]').textContent()).toBe('inactive');
  expect(await page.locator('dd').allTextContents()).toContain('libvirt'); // the actor

  await page.click('#steps button[data-step="2"]');
  await expect.poll(() => page.locator('#step-count').textContent()).toBe('Step 2 of 4');
  expect(await page.locator('[data-testid="source"]').count()).toBe(0);
}, 120_000);
