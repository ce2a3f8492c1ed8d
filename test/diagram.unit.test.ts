// The diagram is generated from the machine: every state and every guarded edge is drawn, every rule of
// docs/rules.md is either on an edge or in the legend's non-edge rules, and diffDiagrams reports what a change
// to the machine did to its edges.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { machineEdges, machineStates, type MachineEdge } from '../machines/machineGraph';
import { RULES } from '../machines/rules';
import {
  diagramModel,
  diffDiagrams,
  loadGraphviz,
  renderDiagram,
  type DiagramEdge,
  type DiagramJson,
} from '../services/diagram';

const RULES_MD = readFileSync(new URL('../docs/rules.md', import.meta.url), 'utf8');
/** Rule ids of docs/rules.md: the first cell of its table rows. */
const SPEC_RULE_IDS = [...RULES_MD.matchAll(/^\|\s*([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\s*\|/gm)].map((m) => m[1]!);

const edges = machineEdges();
const states = machineStates();
const label = (e: Pick<MachineEdge, 'event' | 'rules'>) => `${e.event} [${e.rules.join(', ')}]`;
const top = (path: string) => path.split('.')[0]!;

describe('the machine the diagram is drawn from', () => {
  it('has the states of docs/rules.md §1, with running and transient split into running and paused', () => {
    expect(states.map((s) => s.path)).toEqual([
      'undefined',
      'inactive',
      'running',
      'running.running',
      'running.paused',
      'transient',
      'transient.running',
      'transient.paused',
      'migrating',
      'mirroring',
      'gone',
    ]);
    expect(states.find((s) => s.path === 'gone')?.type).toBe('final');
  });

  it('reads docs/rules.md', () => {
    expect(SPEC_RULE_IDS.length).toBeGreaterThan(40);
    expect(SPEC_RULE_IDS).toContain('TRANSIENT-QUIT');
  });
});

describe('Mermaid', () => {
  const mermaid = renderDiagram('mermaid');
  const lines = mermaid.split('\n').map((l) => l.trim());

  it('is a stateDiagram-v2 with every state, the composite ones nested', () => {
    expect(lines[0]).toBe('stateDiagram-v2');
    for (const s of states) {
      const id = `s_${s.path.replace('.', '_')}`;
      const declaration = lines.find((l) => l.startsWith(`state "${s.key}`) && (l.endsWith(` as ${id}`) || l.endsWith(` as ${id} {`)));
      expect(declaration, s.path).toBeDefined();
      if (s.type === 'compound') expect(declaration!.endsWith('{'), s.path).toBe(true);
    }
    expect(lines).toContain('[*] --> s_undefined');
    expect(lines).toContain('s_gone --> [*]');
  });

  it('draws every guarded edge once, labelled `verb [RULE-ID, …]`', () => {
    const edgeLines = lines.filter((l) => / --> s_\w+ : /.test(l));
    expect(edgeLines).toHaveLength(edges.length);
    for (const e of edges) {
      // Inside a composite when both ends are its sub-states; otherwise between top-level states (Mermaid
      // cannot cross a composite's border) with the sub-states named in the label.
      const inside = e.from.includes('.') && e.to.includes('.') && top(e.from) === top(e.to);
      const [from, to] = inside ? [e.from, e.to] : [top(e.from), top(e.to)];
      const prefix = `s_${from.replace('.', '_')} --> s_${to.replace('.', '_')} : ${label(e)}`;
      const matches = edgeLines.filter((l) => l === prefix || l.startsWith(`${prefix} (`));
      const lifted = [e.from !== from ? `from ${e.from}` : '', e.to !== to ? `to ${e.to}` : ''].filter(Boolean);
      const exact = lifted.length > 0 ? `${prefix} (${lifted.join(', ')})` : prefix;
      expect(matches, `${e.id}`).toContain(exact);
    }
  });

  it('quotes every rule of the catalog in its legend, the non-edge rules apart', () => {
    const legend = mermaid.slice(mermaid.indexOf('%% Legend'));
    const nonEdge = legend.slice(legend.indexOf('%% Non-edge rules'));
    for (const r of RULES) expect(legend, r.id).toContain(`%% ${r.id}`);
    for (const id of diagramModel().nonEdgeRules) expect(nonEdge, id).toContain(`%% ${id} (`);
    expect(renderDiagram('mermaid', { legend: 'note' })).toMatch(/note left of s_undefined[\s\S]*TRANSIENT-QUIT[\s\S]*end note/);
  });
});

/** `"tail" -> "head" [label="…", …]` lines of a DOT source, labels unwrapped. */
function dotEdges(dot: string): { tail: string; head: string; label: string }[] {
  return [...dot.matchAll(/^\s*"([^"]+)" -> "([^"]+)"(?: \[label="((?:[^"\\]|\\.)*)")?/gm)].map((m) => ({
    tail: m[1]!,
    head: m[2]!,
    label: (m[3] ?? '').replace(/\\n/g, ' ').replace(/\\(.)/g, '$1'),
  }));
}

describe('DOT', () => {
  const dot = renderDiagram('dot');

  it('has every state, the composite ones as clusters', () => {
    for (const s of states) {
      if (s.type === 'compound') expect(dot, s.path).toContain(`subgraph "cluster_${s.path}" {`);
      else expect(dot, s.path).toMatch(new RegExp(`^\\s*"${s.path.replace('.', '\\.')}" \\[label="${s.key}"`, 'm'));
    }
  });

  it('draws every guarded edge, from the cluster when the edge is a composite state’s', () => {
    const drawn = dotEdges(dot);
    expect(drawn.filter((d) => d.tail !== '[*]')).toHaveLength(edges.length);
    for (const e of edges) {
      const compound = (p: string) => states.find((s) => s.path === p)?.type === 'compound';
      const tail = compound(e.from) ? `${e.from}.*` : e.from;
      const head = e.targetless ? tail : e.to;
      expect(drawn, e.id).toContainEqual({ tail, head, label: label(e) });
    }
  });

  it('quotes every rule of the catalog in its legend table, the non-edge rules apart', () => {
    const legend = dot.slice(dot.indexOf('subgraph cluster_legend'));
    const nonEdge = legend.slice(legend.indexOf('Non-edge rules'));
    for (const r of RULES) expect(legend, r.id).toContain(`<b>${r.id}</b>`);
    for (const id of diagramModel().nonEdgeRules) expect(nonEdge, id).toContain(`<b>${id}</b>`);
  });

  it('is syntactically sane: balanced braces, brackets and quotes', () => {
    // Strip the HTML-like legend label and quoted strings, then count what is left.
    const bare = dot.replace(/label=<<table[\s\S]*?<\/table>>/g, 'label=""').replace(/"(?:[^"\\]|\\.)*"/g, '""');
    expect((bare.match(/\{/g) ?? []).length).toBe((bare.match(/\}/g) ?? []).length);
    expect((bare.match(/\[/g) ?? []).length).toBe((bare.match(/\]/g) ?? []).length);
    expect(bare).not.toContain('"""');
    expect(dot.trimEnd().endsWith('}')).toBe(true);
  });

  it('renders to SVG with Graphviz (wasm, offline): every edge and cluster drawn', async () => {
    const svg = await renderDiagram('svg');
    expect(svg).toContain('<svg');
    expect((svg.match(/class="edge"/g) ?? []).length).toBe(edges.length + 1); // + the initial arrow
    expect((svg.match(/class="cluster"/g) ?? []).length).toBe(states.filter((s) => s.type === 'compound').length + 1); // + legend
    const text = svg.replace(/&#45;/g, '-'); // Graphviz writes '-' as an entity
    for (const r of RULES) expect(text, r.id).toContain(r.id);
    const graphviz = await loadGraphviz();
    expect(() => graphviz.dot('digraph { a -> }')).toThrow(/syntax error/);
  });
});

describe('the legend and docs/rules.md', () => {
  const model = diagramModel();
  const onEdges = new Set(edges.flatMap((e) => e.rules));

  it('puts every rule id of docs/rules.md on some edge or among the non-edge rules', () => {
    for (const id of SPEC_RULE_IDS) {
      const placed = onEdges.has(id) || model.nonEdgeRules.includes(id);
      expect(placed, `${id} is neither on an edge nor in the non-edge legend`).toBe(true);
    }
  });

  it('lists as non-edge rules exactly the catalog rules no edge uses, and names guard ids the catalog lacks', () => {
    expect(model.nonEdgeRules).toEqual(RULES.filter((r) => !onEdges.has(r.id)).map((r) => r.id));
    expect(model.uncataloguedRules).toEqual([...onEdges].filter((id) => !RULES.some((r) => r.id === id)).sort());
    // Those are drawn too, so the legend still explains every label on the picture.
    for (const id of model.uncataloguedRules) expect(renderDiagram('dot')).toContain(`<b>${id}</b>`);
  });
});

describe('JSON and diffDiagrams', () => {
  const json = renderDiagram('json');
  const model = JSON.parse(json) as DiagramJson;

  it('exports states (nested), edges and rules', () => {
    expect(model).toEqual(diagramModel());
    expect(model.states.find((s) => s.path === 'running')?.children.map((c) => c.path)).toEqual(['running.running', 'running.paused']);
    expect(model.edges).toHaveLength(edges.length);
    expect(model.rules.map((r) => r.id)).toEqual(RULES.map((r) => r.id));
  });

  it('renders a given model, e.g. an older export', () => {
    const older: DiagramJson = { ...model, edges: model.edges.slice(0, 3) };
    expect(renderDiagram('mermaid', { model: older }).split('\n').filter((l) => / --> s_\w+ : /.test(l))).toHaveLength(3);
  });

  it('finds an added, a removed and a re-guarded edge in a hand-modified copy', () => {
    const copy = structuredClone(model);
    const removed = copy.edges.find((e) => e.from === 'inactive' && e.event === 'undefine')!;
    copy.edges = copy.edges.filter((e) => e !== removed);
    const reguarded = copy.edges.find((e) => e.from === 'running' && e.event === 'destroy')!;
    reguarded.rules = ['DOM-NOTFOUND', 'ACT-REQ', 'JOB-BUSY', 'MS-MIRROR']; // JOB-BUSY moved, MIR-END → MS-MIRROR
    const added: DiagramEdge = { id: 'gone:define:0', from: 'gone', to: 'inactive', event: 'define', rules: ['DEF-NAME'], targetless: false, label: 'define [DEF-NAME]' };
    copy.edges.push(added);
    copy.states = [...copy.states, { path: 'crashed', key: 'crashed', type: 'atomic', children: [] }];
    copy.rules = copy.rules.map((r) => (r.id === 'SD-TREE' ? { ...r, text: r.text + ' (amended)' } : r));

    const diff = diffDiagrams(json, JSON.stringify(copy));
    expect(diff.added).toEqual([added]);
    expect(diff.removed).toEqual([removed]);
    expect(diff.reguarded).toEqual([
      {
        from: 'running',
        to: 'inactive',
        event: 'destroy',
        before: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-END'],
        after: ['DOM-NOTFOUND', 'ACT-REQ', 'JOB-BUSY', 'MS-MIRROR'],
        rulesAdded: ['MS-MIRROR'],
        rulesRemoved: ['MIR-END'],
        reordered: false,
      },
    ]);
    expect(diff.unchanged).toBe(model.edges.length - 2);
    expect(diff.statesAdded).toEqual(['crashed']);
    expect(diff.rulesChanged).toEqual(['SD-TREE']);

    // The same rules in another order: another rule wins when several would refuse.
    const swapped = structuredClone(model);
    const e = swapped.edges.find((x) => x.from === 'running' && x.event === 'destroy')!;
    e.rules = [e.rules[1]!, e.rules[0]!, ...e.rules.slice(2)];
    expect(diffDiagrams(model, swapped).reguarded[0]).toMatchObject({ reordered: true, rulesAdded: [], rulesRemoved: [] });
    expect(diffDiagrams(model, model)).toMatchObject({ added: [], removed: [], reguarded: [], unchanged: model.edges.length });
  });

  it('refuses what is not a diagram export', () => {
    expect(() => diffDiagrams('{"edges": []}', json)).toThrow(/not a vmledger domain diagram/);
  });
});
