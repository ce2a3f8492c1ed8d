// The diagram views in `vmledger ui`, in Debian's chromium at 1500×1000 (needs /usr/bin/chromium):
// - the overview, as the page first shows it: every label at least 10 px high, no two edges joining the same ordered
//   pair of states, every machine edge on an edge or in a state's box;
// - the focus on mirroring: exactly its exits, as the machine has them, each verb with its rule ids in order;
// - a refused step of a recorded history: the edge it would have taken, marked, with the rule that blocked it.
// Screenshots go to a temp dir (their paths are printed).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { machineEdges, machineStates, type MachineEdge } from '../machines/machineGraph';
import { GUARDS_BY_VERB } from '../machines/verbs';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore } from '../services/eventstore/types';
import { createLedger } from '../services/ledger';
import type { Ledger } from '../services/ledger-types';
import { startUiServer, type UiServer } from '../services/ui/server';
import { closeUiTest, launchChromium, type Browser } from './support/chromium';

const VIEWPORT = { width: 1500, height: 1000 };
const CONFIG = { name: 'test', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', disks: [{ target: 'vda', source: '/guest/diskimage1' }] };
const HISTORY: Record<string, unknown>[] = [
  { verb: 'define', config: CONFIG },
  { verb: 'start', domain: 'test' },
  { verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } },
  { verb: 'destroy', domain: 'test' },
  { verb: 'undefine', domain: 'test' }, // refused: UND-SNAPSHOTS
];
const REFUSED_STEP = 5;

let dir: string;
let shots: string;
let store: EventStore;
let ledger: Ledger;
let ui: UiServer;
let browser: Browser;
let page: Page;
const problems: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-diagram-ui-'));
  shots = mkdtempSync(join(tmpdir(), 'vmledger-diagram-screenshots-'));
  store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  ledger = createLedger(store);
  let n = 0;
  for (const command of HISTORY) {
    n++;
    const meta = { commandId: `d-${n}`, actor: 'reviewer', time: new Date(Date.UTC(2026, 0, 5, 9, n)).toISOString() };
    await ledger.execute({ host: 'local', ...command, meta } as CommandInput);
  }
  ui = await startUiServer({ store, port: 0, host: '127.0.0.1' });
  browser = await launchChromium(VIEWPORT);
  page = await browser.context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
});

afterAll(() => closeUiTest({ browser, ui, ledger, store, dir }));

/** Heights (px, as drawn) of every text of the main diagram, with the text. */
function labelHeights(p: Page): Promise<{ text: string; height: number }[]> {
  return p.locator('#diagram svg').evaluate((svg) =>
    [...svg.querySelectorAll('text')]
      .filter((t) => (t.textContent ?? '').trim() !== '' && !t.closest('.layout'))
      .map((t) => ({ text: t.textContent ?? '', height: t.getBoundingClientRect().height })),
  );
}

interface DrawnEdge {
  from: string;
  to: string;
  edges: string[];
  label: string;
}

function drawnEdges(p: Page): Promise<DrawnEdge[]> {
  return p.locator('#diagram svg .edge.transition').evaluateAll((els) =>
    els.map((e) => ({
      from: e.getAttribute('data-from') ?? '',
      to: e.getAttribute('data-to') ?? '',
      edges: (e.getAttribute('data-edges') ?? '').split(' ').filter(Boolean),
      label: [...e.querySelectorAll('text')].map((t) => t.textContent ?? '').join(' ').replace(/\s+/g, ' ').trim(),
    })),
  );
}

/** The exits of a state as the machine has them: edges from it or an ancestor to a state outside it. */
function exitsOf(state: string, edges: readonly MachineEdge[]): MachineEdge[] {
  const inside = (p: string) => p === state || p.startsWith(`${state}.`);
  const ancestors = state.split('.').map((_, i, parts) => parts.slice(0, i + 1).join('.'));
  return edges.filter((e) => (inside(e.from) || ancestors.includes(e.from)) && !e.targetless && !inside(e.to));
}

describe('the overview, as the page first shows it at 1500×1000', () => {
  it('fits the diagram panel with every label at least 10 px high', async () => {
    await page.goto(ui.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    expect(await page.locator('body').getAttribute('data-view')).toBe('overview');
    const heights = await labelHeights(page);
    expect(heights.length).toBeGreaterThan(machineStates().length);
    const smallest = heights.reduce((a, b) => (b.height < a.height ? b : a));
    console.log(`overview: ${heights.length} labels, the smallest ${smallest.height.toFixed(1)} px high ('${smallest.text}')`);
    expect(smallest.height, `'${smallest.text}'`).toBeGreaterThanOrEqual(10);
    // No label runs into another state's or edge's label.
    const overlaps = await page.locator('#diagram svg').evaluate((svg) => {
      const texts = [...svg.querySelectorAll('text')].map((t) => ({ text: t.textContent, owner: t.closest('g.node, g.edge, g.cluster'), r: t.getBoundingClientRect() }));
      const out: string[] = [];
      texts.forEach((a, i) =>
        texts.slice(i + 1).forEach((b) => {
          const x = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
          const y = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
          if (a.owner !== b.owner && x > 1 && y > 1) out.push(`'${a.text}' over '${b.text}'`);
        }),
      );
      return out;
    });
    expect(overlaps).toEqual([]);
    // It fits: no scrolling needed to see all of it.
    const fit = await page.locator('#diagram').evaluate((box) => {
      const svg = box.querySelector('svg')!.getBoundingClientRect();
      return { svg: [svg.width, svg.height], box: [box.clientWidth, box.clientHeight] };
    });
    expect(fit.svg[0]).toBeLessThanOrEqual(fit.box[0]);
    expect(fit.svg[1]).toBeLessThanOrEqual(fit.box[1]);
    const shot = join(shots, 'overview-1500x1000.png');
    await page.screenshot({ path: shot });
    console.log(`diagram screenshot (overview at its initial zoom): ${shot}`);
  });

  it('draws no two edges between the same ordered pair of states, and every machine edge on an edge or in a box', async () => {
    const drawn = await drawnEdges(page);
    const pairs = drawn.map((e) => `${e.from} -> ${e.to}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    const stays = await page.locator('#diagram svg [data-stays]').evaluateAll((els) => els.flatMap((e) => (e.getAttribute('data-stays') ?? '').split(' ').filter(Boolean)));
    const shown = [...drawn.flatMap((e) => e.edges), ...stays];
    expect(shown.sort()).toEqual(machineEdges().map((e) => e.id).sort());
    // The guards nearly every edge has are in the legend, on no label.
    const common = await page.locator('#diagram-legend p strong').allTextContents();
    expect(common.length).toBeGreaterThan(0);
    for (const e of drawn) for (const id of common) expect(e.label, `${e.from} -> ${e.to}`).not.toContain(id);
  });
});

describe('the focus on mirroring', () => {
  it('shows exactly its exits, each verb with its rule ids in the order they are checked', async () => {
    await page.selectOption('#diagram-view', 'focus');
    await page.selectOption('#diagram-focus', 'mirroring');
    await page.waitForSelector('body[data-view="focus:mirroring"]', { timeout: 30_000 });
    const exits = exitsOf('mirroring', machineEdges());
    expect(exits.length).toBeGreaterThan(0);
    const drawn = await drawnEdges(page);
    expect(drawn.flatMap((e) => e.edges).sort()).toEqual(exits.map((e) => e.id).sort());
    for (const e of drawn) expect(e.from).toBe('mirroring');
    for (const exit of exits) {
      const on = drawn.find((d) => d.edges.includes(exit.id))!;
      expect(exit.rules).toEqual(GUARDS_BY_VERB[exit.event]); // libvirt's order (machines/verbs.ts)
      expect(on.label, exit.id).toContain(`${exit.event} [${exit.rules.join(', ')}]`);
    }
    // Among them the ways out named by MIR-END (pivot, abort) and the end of a transient domain.
    expect(exits.some((e) => e.rules.includes('MIR-END') && e.to !== 'gone')).toBe(true);
    expect(exits.some((e) => e.to === 'gone')).toBe(true);
    const heights = await labelHeights(page);
    expect(Math.min(...heights.map((h) => h.height))).toBeGreaterThanOrEqual(10);
    const shot = join(shots, 'focus-mirroring.png');
    await page.screenshot({ path: shot });
    console.log(`diagram screenshot (focus on mirroring): ${shot}`);
  });
});

describe('a refused step of a history', () => {
  it('draws the edge the command would have taken, with the rule that blocked it', async () => {
    // A fresh page opened on the domain's history (the page reads #domain= when it loads).
    await page.close();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${ui.url}#domain=${encodeURIComponent('local/test')}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    await page.waitForSelector(`#steps button[data-step="${REFUSED_STEP}"]`);
    await page.click(`#steps button[data-step="${REFUSED_STEP}"]`);
    const history = (await (await fetch(new URL('/api/history?host=local&domain=test', ui.url))).json()) as {
      steps: { rule?: string; verb: string; refusedEdges: string[]; before: { leaf: string } | null }[];
    };
    const step = history.steps[REFUSED_STEP]!;
    expect(step.rule).toBe('UND-SNAPSHOTS');
    expect(step.refusedEdges.length).toBeGreaterThan(0);
    const marked = await page.locator('#diagram svg .edge.refused-edge').evaluateAll((els) =>
      els.map((e) => ({ from: e.getAttribute('data-from'), edges: (e.getAttribute('data-edges') ?? '').split(' ') })),
    );
    expect(marked.length).toBeGreaterThan(0);
    for (const id of step.refusedEdges) expect(marked.some((m) => m.edges.includes(id)), id).toBe(true);
    for (const m of marked) expect(m.from).toBe(step.before!.leaf);
    expect(await page.locator('#diagram svg .edge-badge').textContent()).toBe(`${step.verb} ✗ ${step.rule}`);
    const shot = join(shots, 'refused-step.png');
    await page.screenshot({ path: shot });
    console.log(`diagram screenshot (refused step): ${shot}`);
  });

  it('logged no error in the page', () => {
    expect(problems).toEqual([]);
  });
});
