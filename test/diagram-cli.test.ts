// `vmledger diagram`, `vmledger diagram-diff` and `vmledger ui` on the command line: through the real executable
// (bin/vmledger.mjs → entries/cli.ts → services/cli/main.ts, which loads services/diagram-cli.ts), and in-process
// for the diff text.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { machineStates } from '../machines/machineGraph';
import { diagramModel, diffDiagrams, renderDiagram, type DiagramEdge, type DiagramJson } from '../services/diagram';
import { formatDiagramDiff, registerDiagramCommands } from '../services/diagram-cli';
import { renderDiagramView } from '../services/diagramViewRender';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { createLedger } from '../services/ledger';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'vmledger.mjs');

/** A test that starts the executable several times: each start can take many seconds on a loaded machine. */
const CLI_RUNS_TIMEOUT = 240_000;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-diagram-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `vmledger …args` as a user runs it: the executable, in the repository, nothing from the environment's store. */
function vmledger(args: string[]) {
  const run = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, VMLEDGER_STORE: '' },
    timeout: 60_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function edge(model: DiagramJson, from: string, event: string): DiagramEdge {
  const found = model.edges.find((e) => e.from === from && e.event === event);
  if (!found) throw new Error(`the machine has no ${event} edge from ${from}`);
  return found;
}

/**
 * An "older version" of the current machine: one edge missing (so it is added now), one edge the machine never had
 * (removed now), one edge without a rule (re-guarded now), one edge with its rules in another order, and one
 * rule's text changed.
 */
function olderModel(): { older: DiagramJson; added: DiagramEdge; reguarded: DiagramEdge; reordered: DiagramEdge } {
  const older = diagramModel();
  const added = edge(older, 'inactive', 'start');
  const reguarded = edge(older, 'inactive', 'undefine');
  const reordered = edge(older, 'running.running', 'shutdown');
  older.edges = older.edges.filter((e) => e !== added);
  reguarded.rules = reguarded.rules.filter((r) => r !== 'UND-SNAPSHOTS');
  reordered.rules = [...reordered.rules].reverse();
  older.edges.push({ id: 'gone:resurrect:0', from: 'gone', to: 'inactive', event: 'resurrect', rules: ['DOM-NOTFOUND'], targetless: false, label: 'resurrect [DOM-NOTFOUND]' });
  older.rules = older.rules.map((r) => (r.id === 'UND-ATOMIC' ? { ...r, text: 'an older wording' } : r));
  const now = diagramModel();
  return { older, added: edge(now, 'inactive', 'start'), reguarded: edge(now, 'inactive', 'undefine'), reordered: edge(now, 'running.running', 'shutdown') };
}

describe('vmledger diagram', () => {
  it('prints the overview in Mermaid by default: the diagram generated from the machine', () => {
    const run = vmledger(['diagram']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(renderDiagramView('mermaid'));
    expect(run.stdout.startsWith('stateDiagram-v2\n')).toBe(true);
    // Every edge with its guards on request.
    expect(vmledger(['diagram', '--view', 'full']).stdout).toBe(renderDiagram('mermaid'));
  }, CLI_RUNS_TIMEOUT);

  it('prints Graphviz DOT and the JSON model with --format', () => {
    const dot = vmledger(['diagram', '--format', 'dot']);
    expect(dot.status).toBe(0);
    expect(dot.stdout).toBe(renderDiagramView('dot'));
    expect(dot.stdout).toMatch(/^digraph domain \{/);

    const json = vmledger(['diagram', '--format', 'json']);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(diagramModel());
  });

  it('renders SVG offline into --output, every state drawn', () => {
    const file = join(dir, 'diagram.svg');
    const run = vmledger(['diagram', '--format', 'svg', '--output', file]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('');
    const svg = readFileSync(file, 'utf8');
    expect(svg).toContain('<svg');
    for (const s of machineStates()) {
      const title = s.type === 'compound' ? `cluster_${s.path}` : s.path;
      expect(svg, s.path).toContain(`<title>${title}</title>`);
    }
    expect(svg).toContain('UND&#45;SNAPSHOTS'); // the legend and the edge labels (Graphviz writes '-' as &#45;)
  });

  it('focuses on a state, a verb or a rule id with --focus, and says what it does not know', () => {
    const run = vmledger(['diagram', '--format', 'dot', '--focus', 'mirroring']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(renderDiagramView('dot', { view: 'focus', focus: { state: 'mirroring' } }));
    // Every exit of mirroring is on it with its guards, nothing else leaves another state.
    const exits = diagramModel().edges.filter((e) => e.from === 'mirroring' && !e.targetless && e.to !== 'mirroring');
    const unwrapped = run.stdout.replace(/\\n/g, ' ');
    for (const e of exits) expect(unwrapped, e.id).toContain(`${e.event} [${e.rules.join(', ')}]`);
    const tails = [...run.stdout.matchAll(/^\s*"([^"]+)" -> "[^"]+" \[id="ve/gm)].map((m) => m[1]);
    expect(tails.length).toBeGreaterThan(0);
    expect(new Set(tails)).toEqual(new Set(['mirroring']));
    const bad = vmledger(['diagram', '--focus', 'nowhere']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/nothing to focus on called 'nowhere': give a state \(undefined, inactive, /);
    expect(vmledger(['diagram', '--view', 'focus']).stderr).toMatch(/--view focus needs --focus/);
  }, CLI_RUNS_TIMEOUT);

  it('refuses an unknown format in one line', () => {
    const run = vmledger(['diagram', '--format', 'png']);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/argument 'png' is invalid\. Allowed choices are mermaid, dot, svg, json/);
    expect(run.stdout).toBe('');
  });
});

describe('vmledger diagram-diff', () => {
  it('lists the edges added, removed and re-guarded since an older export', () => {
    const { older, added, reguarded, reordered } = olderModel();
    const file = join(dir, 'older.json');
    writeFileSync(file, JSON.stringify(older, null, 2));
    const run = vmledger(['diagram-diff', file]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = run.stdout;
    expect(out).toContain(`diagram-diff: ${file} → the current machine`);
    expect(out).toMatch(/^1 added, 1 removed, 2 re-guarded, \d+ unchanged edges$/m);
    expect(out).toContain(`Edges added:\n  + inactive --start--> ${added.to}  [${added.rules.join(', ')}]`);
    expect(out).toContain('Edges removed:\n  - gone --resurrect--> inactive  [DOM-NOTFOUND]');
    expect(out).toContain(`  ~ inactive --undefine--> ${reguarded.to}  +UND-SNAPSHOTS`);
    expect(out).toContain(`      after:  [${reguarded.rules.join(', ')}]`);
    expect(out).toContain(`  ~ running.running --shutdown--> ${reordered.to}  same rules, new order (another rule now wins)`);
    expect(out).toContain('Rule catalog:\n  ~ UND-ATOMIC (new text)');
  });

  it('draws the diff on the overview with --format: each change in its colour, with a legend', () => {
    const { older, added, reguarded } = olderModel();
    const oldFile = join(dir, 'older-picture.json');
    writeFileSync(oldFile, JSON.stringify(older));
    const run = vmledger(['diagram-diff', oldFile, '--format', 'dot']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const line = (e: DiagramEdge) => run.stdout.split('\n').find((l) => l.includes(`label="`) && l.replace(/\\n/g, ' ').includes(`${e.event} [${e.rules.join(', ')}]`));
    expect(line(added)).toMatch(/color="#1b7f3b".*style=bold/);
    expect(line(reguarded)).toMatch(/color="#b45f06"/);
    expect(run.stdout).toMatch(/style=dashed, penwidth/); // the removed edge
    expect(run.stdout).toContain('Changes</b>');
    const svg = join(dir, 'diff.svg');
    expect(vmledger(['diagram-diff', oldFile, '--format', 'svg', '-o', svg]).status).toBe(0);
    expect(readFileSync(svg, 'utf8')).toContain('stroke="#1b7f3b"');
  }, CLI_RUNS_TIMEOUT);

  it('compares two files; --json is the diff; --exit-code says whether they differ', () => {
    const { older } = olderModel();
    const oldFile = join(dir, 'a.json');
    const newFile = join(dir, 'b.json');
    writeFileSync(oldFile, JSON.stringify(older));
    writeFileSync(newFile, renderDiagram('json'));

    const json = vmledger(['diagram-diff', oldFile, newFile, '--json']);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(JSON.stringify(diffDiagrams(older, diagramModel()))));

    expect(vmledger(['diagram-diff', oldFile, newFile, '--exit-code']).status).toBe(1);
    const same = vmledger(['diagram-diff', newFile, '--exit-code']);
    expect(same.status).toBe(0);
    expect(same.stdout).toMatch(/^diagram-diff: .* → the current machine\nno differences \(\d+ edges unchanged\)\n$/);
  });

  it('says in one line what is wrong with a file', () => {
    const missing = vmledger(['diagram-diff', join(dir, 'nope.json')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^error: cannot read the older export '.*nope\.json': ENOENT\n$/);

    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, 'stateDiagram-v2\n');
    const bad = vmledger(['diagram-diff', notJson]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^error: '.*not\.json' is not JSON/);

    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify({ kind: 'something-else', edges: [] }));
    const wrong = vmledger(['diagram-diff', other]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/is not a vmledger diagram export/);
  });
});

describe('formatDiagramDiff and registerDiagramCommands (in-process)', () => {
  it('formats each kind of change with its sign', () => {
    const { older } = olderModel();
    const text = formatDiagramDiff(diffDiagrams(older, diagramModel()), { old: 'v1.json', new: 'v2.json' });
    const lines = text.split('\n');
    expect(lines[0]).toBe('diagram-diff: v1.json → v2.json');
    expect(lines.filter((l) => l.startsWith('  + '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('  - '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('  ~ '))).toHaveLength(3); // two edges and one rule text
  });

  it('adds diagram, diagram-diff and ui to a program, writing where it is told', async () => {
    let stdout = '';
    const codes: number[] = [];
    const program = registerDiagramCommands(new Command('vmledger').exitOverride(), {
      stdout: { write: (t: string) => (stdout += t) },
      exit: (code) => codes.push(code),
    });
    expect(program.commands.map((c) => c.name())).toEqual(['diagram', 'diagram-diff', 'ui']);
    await program.parseAsync(['node', 'vmledger', 'diagram', '--format', 'mermaid', '--direction', 'TB', '--no-legend']);
    expect(stdout).toBe(renderDiagramView('mermaid', { direction: 'TB', legend: false }));
    expect(stdout).not.toContain('%%');
    expect(codes).toEqual([0]);
  });
});

describe('vmledger ui', () => {
  it('serves the page for a ledger on a free loopback port until it is stopped', async () => {
    const file = join(dir, 'ledger.sqlite');
    const store = openSqliteEventStore(file);
    const ledger = createLedger(store);
    const meta = (n: number) => ({ commandId: `c${n}`, actor: 'cli-test', time: `2026-02-01T10:0${n}:00Z` });
    await ledger.execute({ verb: 'define', host: 'local', config: { name: 'vm1', uuid: 'aaaaaaaa-0000-0000-0000-000000000001' }, meta: meta(1) } as CommandInput);
    await ledger.execute({ verb: 'start', host: 'local', domain: 'vm1', meta: meta(2) } as CommandInput);
    await ledger.close();
    await store.close();

    const child = spawn(process.execPath, [BIN, 'ui', '--store', `sqlite:${file}`, '--port', '0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          const m = /vmledger ui: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`vmledger ui exited (${code}) before listening: ${stderr}`)));
      });
      const { domains } = (await (await fetch(new URL('/api/domains', url))).json()) as { domains: { name: string; state: string; runState: string }[] };
      expect(domains).toEqual([expect.objectContaining({ name: 'vm1', state: 'running', runState: 'running' })]);
      const page = await (await fetch(url)).text();
      expect(page).toContain('<title>vmledger');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });

  it('refuses a store that does not exist, in one line', () => {
    const run = vmledger(['ui', '--store', `sqlite:${join(dir, 'missing.sqlite')}`, '--port', '0']);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^error: no ledger at '.*missing\.sqlite'/);
  });

  it('checks --port', () => {
    const run = vmledger(['ui', '--port', 'eighty']);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe("error: --port must be 0–65535, got 'eighty'\n");
  });
});
