// `vmledger diagram --format mermaid` drawn by mermaid itself: the mermaid package, loaded into Debian's chromium,
// parses and renders what the CLI prints (the overview, every edge, a focus and a diff picture) without an error,
// and the picture has every state and one arrow per transition line. Needs /usr/bin/chromium.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { diagramModel } from '../services/diagram';
import { launchChromium, type Browser } from './support/chromium';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MERMAID = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');

let dir: string;
let browser: Browser;
let page: Page;
const problems: string[] = [];

function vmledger(args: string[]): string {
  const run = spawnSync(process.execPath, [join(ROOT, 'bin', 'vmledger.mjs'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return run.stdout;
}

interface Rendered {
  error?: string;
  svg: string;
  texts: string[];
  transitions: number;
}

/** mermaid.parse, then mermaid.render, in the page; the drawn SVG's texts and transition paths. */
async function render(text: string): Promise<Rendered> {
  return page.evaluate(async (source) => {
    const mermaid = (globalThis as unknown as { mermaid: { parse(t: string): Promise<unknown>; render(id: string, t: string): Promise<{ svg: string }> } }).mermaid;
    try {
      await mermaid.parse(source);
      const { svg } = await mermaid.render(`d${Math.random().toString(36).slice(2)}`, source);
      // The test is compiled without the DOM's types: what it uses of the page's document, typed here.
      type El = { innerHTML: string; textContent: string | null; querySelectorAll(s: string): ArrayLike<El> };
      const doc = (globalThis as unknown as { document: { createElement(tag: string): El; body: { append(el: El): void } } }).document;
      const host = doc.createElement('div');
      host.innerHTML = svg;
      doc.body.append(host);
      const texts = Array.from(host.querySelectorAll('text, span, p')).map((e) => e.textContent ?? '');
      const transitions = host.querySelectorAll('path.transition').length;
      return { svg, texts, transitions };
    } catch (error) {
      return { error: String((error as Error)?.message ?? error), svg: '', texts: [], transitions: 0 };
    }
  }, text);
}

/** Lines of a Mermaid state diagram that draw an arrow (`a --> b`). */
const arrows = (text: string) => text.split('\n').filter((l) => / --> /.test(l));
/** The state names it declares (`state "name" as id`, composite titles up to their first space). */
const stateNames = (text: string) => [...text.matchAll(/^\s*state "([^" ]+)/gm)].map((m) => m[1]!);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-mermaid-'));
  browser = await launchChromium({ width: 1500, height: 1000 });
  page = await browser.context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ path: MERMAID });
  await page.evaluate(() =>
    (globalThis as unknown as { mermaid: { initialize(c: object): void } }).mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' }),
  );
});

afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mermaid renders what `vmledger diagram --format mermaid` prints', () => {
  // [name, what the CLI prints, whether mermaid draws every arrow line]. The full edge list has many parallel edges
  // and loops inside composites, of which mermaid's layout draws only some (82 of 115 with today's machine): one
  // reason the overview, with one edge per pair of states, is the default.
  const cases: [string, () => string, boolean?][] = [
    ['the overview (default)', () => vmledger(['diagram', '--format', 'mermaid'])],
    ['every edge (--view full)', () => vmledger(['diagram', '--format', 'mermaid', '--view', 'full']), false],
    ['the focus on mirroring', () => vmledger(['diagram', '--format', 'mermaid', '--focus', 'mirroring'])],
    ['the focus on a rule', () => vmledger(['diagram', '--format', 'mermaid', '--focus', 'UND-SNAPSHOTS'])],
    [
      'a diff picture',
      () => {
        const older = diagramModel();
        older.edges = older.edges.filter((e) => e.id !== 'inactive:start:0');
        writeFileSync(join(dir, 'older.json'), JSON.stringify(older));
        return vmledger(['diagram-diff', 'older.json', '--format', 'mermaid']);
      },
    ],
  ];

  for (const [name, produce, everyArrow = true] of cases) {
    it(`${name}: parses and draws${everyArrow ? ', every state and one arrow per transition line' : ', every state'}`, async () => {
      const text = produce();
      expect(text.startsWith('stateDiagram-v2\n')).toBe(true);
      const drawn = await render(text);
      expect(drawn.error).toBeUndefined();
      expect(drawn.svg).toContain('<svg');
      expect(drawn.svg).not.toMatch(/Syntax error/i);
      const shown = drawn.texts.join('\n');
      for (const state of stateNames(text)) expect(shown, state).toContain(state);
      // Every `a --> b` line is one transition path, the [*] arrows included.
      if (everyArrow) expect(drawn.transitions).toBe(arrows(text).length);
      else expect(drawn.transitions).toBeGreaterThan(0);
      expect(problems).toEqual([]);
    }, 180_000); // one start of the executable and one mermaid layout: slow on a loaded machine
  }
});
