// `vmledger ui` in a real browser: Debian's chromium driven by playwright-core over a SQLite ledger whose history was
// recorded through the real ledger. It steps through one domain's history and checks, at every step, which state
// the diagram highlights; a refused command must show its rule at the state where it was refused. A screenshot of
// the refused step goes to a temp dir (its path is printed).
//
// Needs /usr/bin/chromium (apt-get install -y chromium; .ci/run installs it). Without it this test fails, on purpose.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { machineEdges, machineStates } from '../machines/machineGraph';
import { RULES } from '../machines/rules';
import { diagramModel } from '../services/diagram';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { EventStore } from '../services/eventstore/types';
import { createLedger } from '../services/ledger';
import type { CommandOutcome, Ledger } from '../services/ledger-types';
import { startUiServer, type UiServer } from '../services/ui/server';
import { CHROMIUM, CHROMIUM_ARGS } from './support/chromium';

const CONFIG = {
  name: 'test',
  uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f',
  disks: [{ target: 'vda', source: '/guest/diskimage1' }],
};

/** The recorded history, and what the page must highlight after each command (step 0: before the first). */
const HISTORY: { command: Record<string, unknown>; leaf: string; refusedBy?: string }[] = [
  { command: { verb: 'define', config: CONFIG }, leaf: 'inactive' },
  { command: { verb: 'start', domain: 'test' }, leaf: 'running.running' },
  { command: { verb: 'snapshot-create', domain: 'test', snapshot: { name: 's1' } }, leaf: 'running.running' },
  { command: { verb: 'destroy', domain: 'test' }, leaf: 'inactive' },
  { command: { verb: 'undefine', domain: 'test' }, leaf: 'inactive', refusedBy: 'UND-SNAPSHOTS' },
  { command: { verb: 'undefine', domain: 'test', snapshotsMetadata: true }, leaf: 'gone' },
];
const EXPECTED_LEAVES = ['undefined', ...HISTORY.map((h) => h.leaf)];

let dir: string;
let shotDir: string;
let store: EventStore;
let ledger: Ledger;
let ui: UiServer;
let context: BrowserContext | undefined;
let outcomes: CommandOutcome[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-ui-test-'));
  shotDir = mkdtempSync(join(tmpdir(), 'vmledger-ui-screenshots-'));
  store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  ledger = createLedger(store);
  outcomes = [];
  let n = 0;
  for (const { command } of HISTORY) {
    n++;
    const meta = { commandId: `ui-${n}`, actor: 'reviewer', time: new Date(Date.UTC(2026, 0, 5, 9, n)).toISOString() };
    outcomes.push(await ledger.execute({ host: 'local', ...command, meta } as CommandInput));
  }
  // Another domain, so the picker has a choice to make.
  await ledger.execute({
    verb: 'define',
    host: 'local',
    config: { name: 'web', uuid: '11111111-2222-3333-4444-555555555555' },
    meta: { commandId: 'ui-web', actor: 'reviewer', time: '2026-01-05T10:00:00Z' },
  } as CommandInput);
  ui = await startUiServer({ store, port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await ui?.close();
  await ledger?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the recorded history', () => {
  it('is what the page will show: five commands accepted, the first undefine refused by UND-SNAPSHOTS', () => {
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.rule))).toEqual(['ok', 'ok', 'ok', 'ok', 'UND-SNAPSHOTS', 'ok']);
  });
});

describe('the ui server', () => {
  const get = (path: string, init?: RequestInit) => fetch(new URL(path, ui.url), init);

  it('binds loopback and serves the page with its own assets only', async () => {
    expect(ui.host).toBe('127.0.0.1');
    const res = await get('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//); // nothing from a CDN: the page works offline
    for (const asset of ['/app.js', '/app.css']) expect((await get(asset)).status).toBe(200);
  });

  it('serves the diagram with every state and every edge addressable', async () => {
    const res = await get('/api/diagram.svg?view=full');
    expect(res.headers.get('content-type')).toContain('image/svg+xml');
    const svg = await res.text();
    for (const s of machineStates()) expect(svg, s.path).toContain(`data-state="${s.path}"`);
    const edges = machineEdges();
    const drawn = [...svg.matchAll(/data-edge="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(drawn)).toEqual(new Set(edges.map((e) => e.id)));
    // The overview (the default): every machine edge on a drawn edge or in a state's box.
    const overview = await (await get('/api/diagram.svg')).text();
    for (const s of machineStates()) expect(overview, s.path).toContain(`data-state="${s.path}"`);
    const shown = [...overview.matchAll(/data-(?:edges|stays)="([^"]*)"/g)].flatMap((m) => m[1]!.split(' ').filter(Boolean));
    expect(shown.sort()).toEqual(edges.map((e) => e.id).sort());
    expect((await get('/api/diagram.svg?view=sideways')).status).toBe(400);
    expect((await get('/api/diagram.svg?focus=nowhere')).status).toBe(400);
  });

  it('serves the rule catalog, the domains (gone ones too) and a history per domain', async () => {
    const { rules } = (await (await get('/api/rules')).json()) as { rules: { id: string; section: string; kind: string; text: string }[] };
    expect(rules.map((r) => r.id)).toEqual(RULES.map((r) => r.id));
    const { domains } = (await (await get('/api/domains')).json()) as { domains: { name: string; state: string }[] };
    expect(domains.map((d) => [d.name, d.state])).toEqual([
      ['test', 'gone'],
      ['web', 'inactive'],
    ]);
    const history = (await (await get('/api/history?host=local&domain=test')).json()) as {
      steps: { after: { leaf: string }; outcome: string | null; rule?: string; line: string }[];
    };
    expect(history.steps.map((s) => s.after.leaf)).toEqual(EXPECTED_LEAVES);
    expect(history.steps[5]).toMatchObject({ outcome: 'refused', rule: 'UND-SNAPSHOTS', line: 'undefine test' });
    expect(history.steps[6]!.line).toBe('undefine test --snapshots-metadata');
    expect((await get('/api/history?domain=nope')).status).toBe(404);
    expect((await get('/api/history')).status).toBe(400);
  });

  it('diffs an uploaded export, and refuses what is not one', async () => {
    const older = diagramModel();
    older.edges = older.edges.filter((e) => e.id !== 'inactive:start:0');
    const res = await get('/api/diff', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(older) });
    expect(res.status).toBe(200);
    const view = (await res.json()) as { summary: { added: number }; rows: { change: string; edge: string }[]; svg: string };
    expect(view.summary.added).toBe(1);
    expect(view.rows).toEqual([expect.objectContaining({ change: 'added', edge: 'inactive:start:0' })]);
    expect(view.svg).toMatch(/class="edge transition view-edge diff diff-added" data-edge="[^"]+" data-edges="inactive:start:0"/);
    const bad = await get('/api/diff', { method: 'POST', body: '{"kind":"something else"}' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/not a vmledger diagram/);
  });

  it('answers only requests addressed to a loopback name, and only GET outside /api/diff', async () => {
    // fetch() will not send another Host header; node:http will.
    const rebinding = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: ui.port, path: '/api/domains', headers: { host: `attacker.example:${ui.port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(rebinding).toBe(421);
    expect((await get('/api/domains', { headers: { host: `localhost:${ui.port}` } })).status).toBe(200);
    expect((await get('/api/domains', { method: 'POST', body: '{}' })).status).toBe(405);
    expect((await get('/nope')).status).toBe(404);
  });
});

describe('the page in chromium', () => {
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: the UI test drives Debian's chromium. Install it with ` +
          '`apt-get update && apt-get install -y chromium` (CI: .ci/run installs it).',
      );
    }
    // A fresh profile per run: no cache, no state from another run.
    const profile = mkdtempSync(join(dir, 'chromium-profile-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1440, height: 1000 },
    });
    page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(ui.url) && !r.url().startsWith('data:')) problems.push(`request outside the server: ${r.url()}`);
    });
  });

  it('loads the diagram, the rules and the domains', async () => {
    await page.goto(ui.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    expect(await page.locator('#diagram svg [data-state]').count()).toBe(machineStates().length);
    expect(await page.locator('#rule-table tbody tr').count()).toBe(RULES.length);
    const options = await page.locator('#domain-picker option').allTextContents();
    expect(options).toEqual(['Choose a domain…', 'test on local — gone', 'web on local — inactive']);
  });

  it('steps through the history of test, highlighting the state after each command', async () => {
    await page.selectOption('#domain-picker', 'local/test');
    await page.waitForSelector(`#steps button[data-step="${HISTORY.length}"]`);
    expect(await page.locator('#steps li').count()).toBe(HISTORY.length + 1);

    const seen: string[] = [];
    for (let step = 0; step < EXPECTED_LEAVES.length; step++) {
      if (step > 0) await page.click('#next');
      const expected = EXPECTED_LEAVES[step]!;
      await expect.poll(() => page.locator('#step-count').textContent()).toBe(`Step ${step} of ${HISTORY.length}`);

      // Exactly one state node is current, and it is the expected one.
      const current = page.locator('#diagram svg .state.current');
      expect(await current.count(), `step ${step}`).toBe(1);
      const highlighted = (await current.getAttribute('data-state'))!;
      seen.push(highlighted);
      expect(highlighted, `step ${step}`).toBe(expected);
      expect(await page.locator('[data-testid="step-state"]').textContent()).toBe(expected);
      expect(await page.locator('#steps button[aria-current="step"]').getAttribute('data-step')).toBe(String(step));
      // A sub-state's composite is marked too (running.running lies inside running).
      const top = expected.split('.')[0]!;
      expect(await page.locator('#diagram svg .cluster.current-parent').count()).toBe(top === expected ? 0 : 1);
      if (top !== expected) expect(await page.locator('#diagram svg .cluster.current-parent').getAttribute('data-state')).toBe(top);

      const refusedBy = HISTORY[step - 1]?.refusedBy;
      const badge = (await page.locator('#diagram svg .step-badge').textContent()) ?? '';
      if (refusedBy) {
        // Refused: shown at the state where it was refused, with its rule id, in the panel and on the diagram.
        expect(await page.locator('#diagram svg .state.refused').getAttribute('data-state')).toBe(expected);
        expect(await page.locator('[data-testid="refusal-rule"]').textContent()).toBe(refusedBy);
        expect(await page.locator('[data-testid="refusal"]').textContent()).toContain('cannot delete inactive domain with 1 snapshots');
        expect(badge).toContain(refusedBy);
        const refusedEdges = page.locator('#diagram svg .edge.refused-edge');
        expect(await refusedEdges.count()).toBeGreaterThan(0);
        for (const rules of await refusedEdges.evaluateAll((els) => els.map((e) => e.getAttribute('data-rules') ?? ''))) {
          expect(rules.split(' ')).toContain(refusedBy);
        }
        expect(await page.locator('#diagram svg .edge.taken').count()).toBe(0);
        expect(await page.locator(`#steps button[data-step="${step}"]`).textContent()).toContain(refusedBy);
        const shot = join(shotDir, `ui-step${step}-refused-${refusedBy}.png`);
        await page.screenshot({ path: shot });
        console.log(`ui screenshot (step ${step}, refused by ${refusedBy}): ${shot}`);
      } else {
        expect(await page.locator('#diagram svg .state.refused').count()).toBe(0);
        expect(badge).toContain(expected);
        if (step > 0) {
          // The edge the command took ends where the domain now is (or at its composite); one that keeps the state
          // is listed in the box of the state (or of its composite), which is marked instead.
          const taken = page.locator('#diagram svg .taken');
          expect(await taken.count(), `step ${step}`).toBe(1);
          const [to, box] = await taken.evaluate((e) => [e.getAttribute('data-to'), e.getAttribute('data-state') ?? e.getAttribute('data-state-header')]);
          const at = (path: string | null) => path !== null && (expected === path || expected.startsWith(`${path}.`));
          expect(to !== null ? at(to) : at(box), `step ${step}: ${to ?? box}`).toBe(true);
        }
      }
    }
    expect(seen).toEqual(['undefined', 'inactive', 'running.running', 'running.running', 'inactive', 'inactive', 'gone']);
    expect(await page.locator('#next').isDisabled()).toBe(true);

    // Back one step, with the button and with the keyboard.
    await page.click('#prev');
    await expect.poll(() => page.locator('#diagram svg .state.current').getAttribute('data-state')).toBe('inactive');
    await page.locator('#steps button[data-step="5"]').focus();
    await page.keyboard.press('ArrowLeft');
    await expect.poll(() => page.locator('#step-count').textContent()).toBe(`Step 4 of ${HISTORY.length}`);
    await page.click('#steps button[data-step="6"]');
    await expect.poll(() => page.locator('#diagram svg .state.current').getAttribute('data-state')).toBe('gone');
    const shot = join(shotDir, 'ui-step6-gone.png');
    await page.screenshot({ path: shot });
    console.log(`ui screenshot (step 6, gone): ${shot}`);
  });

  it('shows the edges a rule guards', async () => {
    await page.click('#rule-table tr[data-rule="UND-SNAPSHOTS"] button');
    // The overview's edges that carry one of the rule's machine edges (a box's verbs are not drawn as edges).
    const hits = await page.locator('#diagram svg .edge.rule-hit').evaluateAll((els) =>
      els.map((e) => ({ edges: (e.getAttribute('data-edges') ?? '').split(' '), rules: (e.getAttribute('data-rules') ?? '').split(' ') })),
    );
    const expected = machineEdges().filter((e) => e.rules.includes('UND-SNAPSHOTS') && !e.targetless).map((e) => e.id);
    expect(hits.length).toBeGreaterThan(0);
    for (const h of hits) expect(h.rules).toContain('UND-SNAPSHOTS');
    expect(hits.flatMap((h) => h.edges).filter((id) => expected.includes(id)).sort()).toEqual(expected.sort());
    expect(await page.locator('#rule-status').textContent()).toContain('UND-SNAPSHOTS');
  });

  it('diffs an uploaded export: a table of changed edges and the edges marked in a diagram', async () => {
    const older = diagramModel();
    const added = 'inactive:start:0';
    const reguarded = older.edges.find((e) => e.id === 'inactive:undefine:0')!;
    older.edges = older.edges.filter((e) => e.id !== added);
    reguarded.rules = reguarded.rules.filter((r) => r !== 'UND-SNAPSHOTS');
    older.edges.push({ id: 'migrating:suspend:0', from: 'migrating', to: 'migrating', event: 'suspend', rules: ['DOM-NOTFOUND'], targetless: true, label: 'suspend [DOM-NOTFOUND]' });

    await page.setInputFiles('#diff-file', { name: 'older.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(older)) });
    await page.click('#diff-run');
    await page.waitForSelector('#diff-result:not([hidden])');
    expect(await page.locator('#diff-status').textContent()).toContain('1 added, 1 removed, 1 re-guarded');
    const rows = await page.locator('#diff-table tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent)),
    );
    expect(rows).toEqual([
      ['added', 'start', 'inactive', 'running.running'],
      ['removed', 'suspend', 'migrating', 'migrating'],
      ['re-guarded', 'undefine', 'inactive', 'gone'],
    ]);
    const marked = async (cls: string) => page.locator(`#diff-diagram svg .edge.${cls}`).evaluateAll((els) => els.map((e) => e.getAttribute('data-edges')));
    expect(await marked('diff-added')).toEqual([added]);
    expect(await marked('diff-removed')).toEqual(['removed:migrating:suspend:0']);
    expect(await marked('diff-reguarded')).toEqual(['inactive:undefine:0']);

    await page.locator('#diff-table tbody tr.removed').click();
    expect(await page.locator('#diff-diagram svg .edge.selected').getAttribute('data-edges')).toBe('removed:migrating:suspend:0');
    const shot = join(shotDir, 'ui-diff.png');
    await page.locator('#diff').screenshot({ path: shot });
    console.log(`ui screenshot (diff view): ${shot}`);

    // Something that is not an export: a readable error, no result (and the browser logs the 400, as it should).
    const logged = problems.length;
    await page.setInputFiles('#diff-file', []);
    await page.fill('#diff-text', '{"hello": "world"}');
    await page.click('#diff-run');
    await expect.poll(() => page.locator('#diff-status').textContent()).toMatch(/Could not compare: .*not a vmledger diagram/);
    expect(await page.locator('#diff-result').isHidden()).toBe(true);
    expect(problems.splice(logged).every((p) => p.includes('status of 400'))).toBe(true);
  });

  it('made no request outside the server and logged no error', () => {
    expect(problems).toEqual([]);
  });
});
