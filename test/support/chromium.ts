// Debian's chromium for browser tests, driven by playwright-core: the flags every browser test uses, and a fresh
// profile per launch (no cache, no state from another run). Without /usr/bin/chromium the launch fails, on purpose.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(viewport: { width: number; height: number }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests drive Debian's chromium. Install it with ` +
        '`apt-get update && apt-get install -y chromium` (CI: .ci/run installs it).',
    );
  }
  const profile = mkdtempSync(join(tmpdir(), 'vmledger-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, viewport });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Anything a UI test opened that closes. */
interface Closable {
  close(): Promise<void>;
}

/**
 * The teardown of a test that serves the UI over a store: the browser first (it holds the page's connections to
 * the server), then the UI server, the ledger and the store, and the test's folder. Parts never opened are skipped.
 */
export async function closeUiTest(parts: { browser?: Closable; ui?: Closable; ledger?: Closable; store?: Closable; dir?: string }): Promise<void> {
  await parts.browser?.close();
  await parts.ui?.close();
  await parts.ledger?.close();
  await parts.store?.close();
  if (parts.dir) rmSync(parts.dir, { recursive: true, force: true });
}
