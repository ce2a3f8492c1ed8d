// The state diagram of the domain machine, generated from the machine itself (never drawn by hand):
// its states and sub-states, every edge labelled `verb [RULE-ID, …]` with the verb's guards in the order
// they are checked, and a legend quoting every rule of machines/rules.ts. Rules that label no edge (the
// effects: SD-TREE, TRANSIENT-QUIT, …) are listed in the legend as "non-edge rules".
//
// Formats: Mermaid `stateDiagram-v2`, Graphviz DOT (a cluster per composite state), JSON (the model every
// renderer draws from, and what `diffDiagrams` compares), and SVG rendered offline from the DOT with
// @hpcc-js/wasm-graphviz.
import { machineEdges, machineStates, type MachineEdge, type MachineStateInfo } from '../machines/machineGraph';
import type { Target } from '../machines/states';
import { RULES, type RuleEntry } from '../machines/rules';

export type DiagramFormat = 'mermaid' | 'dot' | 'json' | 'svg';

export interface DiagramState {
  /** Dotted path in the machine (`running.paused`). */
  path: string;
  key: string;
  type: 'atomic' | 'compound' | 'final';
  description?: string;
  /** States of one group are drawn in one box (machine `meta.group`, e.g. the job states). */
  group?: string;
  children: DiagramState[];
}

export interface DiagramEdge {
  id: string;
  from: string;
  to: string;
  event: string;
  rules: string[];
  outcome?: Target;
  targetless: boolean;
  /** `verb [RULE-ID, …]` */
  label: string;
}

export interface DiagramRule {
  id: string;
  section: string;
  kind: RuleEntry['kind'];
  text: string;
  /** Whether some edge is guarded by it; if not, the legend lists it among the non-edge rules. */
  onEdges: boolean;
}

export interface DiagramJson {
  kind: 'vmledger-domain-diagram';
  version: 1;
  initial: string;
  states: DiagramState[];
  edges: DiagramEdge[];
  rules: DiagramRule[];
  /** Rule ids of the catalog that guard no edge. */
  nonEdgeRules: string[];
  /** Guard ids on edges that machines/rules.ts does not know (the catalog is behind the code). */
  uncataloguedRules: string[];
}

export interface DiagramOptions {
  /** Layout direction. Default `LR`. */
  direction?: 'LR' | 'TB';
  /**
   * The rule legend. `true` (default): DOT/SVG draw it as a table; Mermaid, which has no legend, carries it
   * as `%%` comments. `'note'`: Mermaid draws it as a note instead. `false`: no legend.
   */
  legend?: boolean | 'note';
  /** DOT/SVG: wrap edge labels after this many characters. Default 44. */
  wrap?: number;
  /** Draw this model instead of the current machine (e.g. an older JSON export, for a side-by-side review). */
  model?: DiagramJson;
}

// ---------------------------------------------------------------------------------------------------
// The model

export function edgeLabel(e: Pick<MachineEdge, 'event' | 'rules'>): string {
  return `${e.event} [${e.rules.join(', ')}]`;
}

/** The diagram as data: the machine's states and edges, and the rule catalog. */
export function diagramModel(
  edges: readonly MachineEdge[] = machineEdges(),
  states: readonly MachineStateInfo[] = machineStates(),
  rules: readonly RuleEntry[] = RULES,
): DiagramJson {
  const onEdges = new Set(edges.flatMap((e) => e.rules));
  const known = new Set(rules.map((r) => r.id));
  const tree = (parent: string | null): DiagramState[] =>
    states
      .filter((s) => s.parent === parent)
      .map((s) => ({
        path: s.path,
        key: s.key,
        type: s.type,
        ...(s.description ? { description: s.description } : {}),
        ...(s.group ? { group: s.group } : {}),
        children: tree(s.path),
      }));
  return {
    kind: 'vmledger-domain-diagram',
    version: 1,
    initial: states[0]?.path ?? 'undefined',
    states: tree(null),
    edges: edges.map((e) => ({
      id: e.id,
      from: e.from,
      to: e.to,
      event: e.event,
      rules: [...e.rules],
      ...(e.outcome ? { outcome: e.outcome } : {}),
      targetless: e.targetless,
      label: edgeLabel(e),
    })),
    rules: rules.map((r) => ({ id: r.id, section: r.section, kind: r.kind, text: r.text, onEdges: onEdges.has(r.id) })),
    nonEdgeRules: rules.filter((r) => !onEdges.has(r.id)).map((r) => r.id),
    uncataloguedRules: [...onEdges].filter((id) => !known.has(id)).sort(),
  };
}

/** An id-safe form of a state path or edge id (`running.paused` → `running-paused`). */
export function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]+/g, '-');
}

export function flatten(states: readonly DiagramState[]): DiagramState[] {
  return states.flatMap((s) => [s, ...flatten(s.children)]);
}

/** The top-level state a path belongs to (`running.paused` → `running`). */
export function topOf(path: string): string {
  return path.split('.')[0]!;
}

// ---------------------------------------------------------------------------------------------------
// Rendering

export function renderDiagram(format: 'svg', options?: DiagramOptions): Promise<string>;
export function renderDiagram(format: 'mermaid' | 'dot' | 'json', options?: DiagramOptions): string;
export function renderDiagram(format: DiagramFormat, options?: DiagramOptions): string | Promise<string>;
export function renderDiagram(format: DiagramFormat, options: DiagramOptions = {}): string | Promise<string> {
  const model = options.model ?? diagramModel();
  switch (format) {
    case 'json':
      return JSON.stringify(model, null, 2);
    case 'mermaid':
      return renderMermaid(model, options);
    case 'dot':
      return renderDot(model, options);
    case 'svg':
      return renderSvg(renderDot(model, options));
  }
}

// Mermaid -------------------------------------------------------------------------------------------

export function mermaidId(path: string): string {
  return `s_${path.replace(/[^A-Za-z0-9]/g, '_')}`;
}

/** Mermaid entity codes: `#` first, then what would end the line or be read as markup. */
export function mermaidText(text: string): string {
  return text.replace(/#/g, '#35;').replace(/;/g, '#59;').replace(/</g, '#lt;').replace(/>/g, '#gt;').replace(/\n/g, ' ');
}

/**
 * Mermaid cannot draw a transition between sub-states of different composite states (a documented
 * limitation), nor reliably one that crosses a composite's border. So an edge is drawn inside a composite
 * only when both ends are its sub-states; any other edge is drawn between top-level states, and its label
 * names the sub-states it really leaves or enters.
 */
function mermaidEndpoints(e: DiagramEdge): { from: string; to: string; inside: boolean; note: string } {
  const inside = e.from.includes('.') && e.to.includes('.') && topOf(e.from) === topOf(e.to);
  if (inside) return { from: e.from, to: e.to, inside, note: '' };
  const parts: string[] = [];
  if (e.from !== topOf(e.from)) parts.push(`from ${e.from}`);
  if (e.to !== topOf(e.to)) parts.push(`to ${e.to}`);
  return { from: topOf(e.from), to: topOf(e.to), inside, note: parts.length > 0 ? ` (${parts.join(', ')})` : '' };
}

/** The Mermaid line of one edge. */
export function mermaidEdgeLine(e: DiagramEdge): string {
  const { from, to, note } = mermaidEndpoints(e);
  return `${mermaidId(from)} --> ${mermaidId(to)} : ${mermaidText(e.label + note)}`;
}

function renderMermaid(model: DiagramJson, options: DiagramOptions): string {
  const out: string[] = ['stateDiagram-v2', `  direction ${options.direction ?? 'LR'}`];
  const declare = (s: DiagramState, indent: string): void => {
    const id = mermaidId(s.path);
    if (s.children.length === 0) {
      out.push(`${indent}state "${s.key}" as ${id}`);
      if (s.description) out.push(`${indent}${id} : ${mermaidText(s.description)}`);
      return;
    }
    out.push(`${indent}state "${s.key}${s.description ? ` (${mermaidText(s.description)})` : ''}" as ${id} {`);
    for (const child of s.children) declare(child, indent + '  ');
    for (const e of model.edges) {
      const ends = mermaidEndpoints(e);
      if (ends.inside && topOf(ends.from) === s.path) out.push(`${indent}  ${mermaidEdgeLine(e)}`);
    }
    out.push(`${indent}}`);
  };
  for (const s of model.states) declare(s, '  ');

  out.push(`  [*] --> ${mermaidId(model.initial)}`);
  for (const s of flatten(model.states)) if (s.type === 'final') out.push(`  ${mermaidId(s.path)} --> [*]`);
  for (const e of model.edges) if (!mermaidEndpoints(e).inside) out.push(`  ${mermaidEdgeLine(e)}`);

  if (options.legend !== false) {
    const entries = legendEntries(model);
    if (options.legend === 'note') {
      out.push(`  note left of ${mermaidId(model.initial)}`);
      for (const line of entries) out.push(`    ${mermaidText(line)}`);
      out.push('  end note');
    } else {
      out.push('  %% Legend (Mermaid has no legend element): every rule id and its text.');
      for (const line of entries) out.push(`  %% ${line.replace(/\n/g, ' ')}`);
    }
  }
  return out.join('\n') + '\n';
}

/** The legend as lines: rules on edges, then the non-edge rules, then ids the catalog lacks. */
function legendEntries(model: DiagramJson): string[] {
  const lines: string[] = ['Rules on edges:'];
  for (const r of model.rules.filter((r) => r.onEdges)) lines.push(`${r.id}: ${r.text}`);
  lines.push('Non-edge rules (they shape the facts of accepted commands, or guard no edge):');
  for (const r of model.rules.filter((r) => !r.onEdges)) lines.push(`${r.id} (${r.kind}): ${r.text}`);
  if (model.uncataloguedRules.length > 0) {
    lines.push('On edges but missing from machines/rules.ts:');
    for (const id of model.uncataloguedRules) lines.push(`${id}: (no catalog entry)`);
  }
  return lines;
}

// DOT -----------------------------------------------------------------------------------------------

function dotId(path: string): string {
  return `"${path}"`;
}

/** The invisible-ish point inside a composite's cluster that its own edges start from. */
function anchorId(path: string): string {
  return `"${path}.*"`;
}

export function dotString(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

export function htmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Breaks a label after a comma or space so that no line is much longer than `width`. */
export function wrapLabel(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/(?<=[, ])/)) {
    if (line.length > 0 && (line + word).trimEnd().length > width) {
      lines.push(line.trimEnd());
      line = word.trimStart();
    } else line += word;
  }
  if (line.trim().length > 0) lines.push(line.trimEnd());
  return lines;
}

function renderDot(model: DiagramJson, options: DiagramOptions): string {
  const wrap = options.wrap ?? 44;
  const all = flatten(model.states);
  const composite = new Set(all.filter((s) => s.children.length > 0).map((s) => s.path));
  const out: string[] = [
    'digraph domain {',
    `  graph [rankdir=${options.direction ?? 'LR'}, compound=true, fontname="Helvetica", fontsize=11, nodesep=0.4, ranksep=0.9, newrank=true];`,
    '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=8, color="#555555", arrowsize=0.7];',
    '  "[*]" [shape=circle, style=filled, fillcolor=black, label="", width=0.18];',
  ];

  const declare = (s: DiagramState, indent: string): void => {
    if (s.children.length === 0) {
      const attrs = [`label="${dotString(s.key)}"`];
      if (s.description) attrs.push(`tooltip="${dotString(`${s.path}: ${s.description}`)}"`);
      if (s.type === 'final') attrs.push('peripheries=2');
      out.push(`${indent}${dotId(s.path)} [${attrs.join(', ')}];`);
      return;
    }
    out.push(`${indent}subgraph "cluster_${s.path}" {`);
    out.push(`${indent}  label="${dotString(s.key)}${s.description ? `\\n(${dotString(s.description)})` : ''}"; style="rounded"; color="#7a869a"; fontsize=11;`);
    out.push(`${indent}  ${anchorId(s.path)} [shape=point, width=0.06, label="", tooltip="${dotString(`any sub-state of ${s.path}`)}"];`);
    for (const child of s.children) declare(child, indent + '  ');
    out.push(`${indent}}`);
  };
  for (const s of model.states) declare(s, '  ');

  out.push(`  "[*]" -> ${dotId(model.initial)};`);
  for (const e of model.edges) {
    const fromComposite = composite.has(e.from);
    const tail = fromComposite ? anchorId(e.from) : dotId(e.from);
    const head = e.targetless ? tail : composite.has(e.to) ? anchorId(e.to) : dotId(e.to);
    const label = wrapLabel(e.label, wrap).map(dotString).join('\\n');
    const attrs = [`label="${label}"`, `tooltip="${dotString(`${e.id}${e.outcome ? ` (outcome ${e.outcome})` : ''}`)}"`];
    if (fromComposite && !e.targetless && topOf(e.to) !== e.from) attrs.push(`ltail="cluster_${e.from}"`);
    if (e.targetless) attrs.push('style=dashed');
    out.push(`  ${tail} -> ${head} [${attrs.join(', ')}];`);
  }

  if (options.legend !== false) {
    const rows: string[] = [];
    const section = (title: string) => rows.push(`<tr><td colspan="2" align="left" bgcolor="#e3e8f2"><b>${htmlText(title)}</b></td></tr>`);
    const row = (id: string, text: string) =>
      rows.push(`<tr><td align="left" valign="top"><b>${htmlText(id)}</b></td><td align="left" balign="left">${wrapLabel(text, 100).map(htmlText).join('<br/>')}</td></tr>`);
    section('Rules on edges');
    for (const r of model.rules.filter((r) => r.onEdges)) row(r.id, r.text);
    section('Non-edge rules');
    for (const r of model.rules.filter((r) => !r.onEdges)) row(r.id, `(${r.kind}) ${r.text}`);
    if (model.uncataloguedRules.length > 0) {
      section('On edges but missing from machines/rules.ts');
      for (const id of model.uncataloguedRules) row(id, '(no catalog entry)');
    }
    out.push('  subgraph cluster_legend {');
    out.push('    label="Legend"; style="rounded"; color="#aaaaaa";');
    out.push(`    legend [shape=plaintext, style="", label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">${rows.join('')}</table>>];`);
    out.push('  }');
  }
  out.push('}');
  return out.join('\n') + '\n';
}

// SVG -----------------------------------------------------------------------------------------------

interface GraphvizLike {
  dot(source: string): string;
}
let graphviz: Promise<GraphvizLike> | undefined;

/** Graphviz compiled to WebAssembly: no `dot` binary, no network. Loaded on first use. */
export async function loadGraphviz(): Promise<GraphvizLike> {
  graphviz ??= import('@hpcc-js/wasm-graphviz')
    .then(({ Graphviz }) => Graphviz.load())
    .catch((err: unknown) => {
      graphviz = undefined;
      throw new Error(`SVG rendering needs @hpcc-js/wasm-graphviz (npm install @hpcc-js/wasm-graphviz): ${String(err)}`);
    });
  return graphviz;
}

export async function renderSvg(dot: string): Promise<string> {
  return (await loadGraphviz()).dot(dot);
}

// ---------------------------------------------------------------------------------------------------
// Diff, for the reviewer

export interface ReguardedEdge {
  from: string;
  to: string;
  event: string;
  before: string[];
  after: string[];
  rulesAdded: string[];
  rulesRemoved: string[];
  /** Same rules, another order: another rule now wins when several would refuse (docs/rules.md §4). */
  reordered: boolean;
  outcomeBefore?: string;
  outcomeAfter?: string;
}

export interface DiagramDiff {
  added: DiagramEdge[];
  removed: DiagramEdge[];
  reguarded: ReguardedEdge[];
  statesAdded: string[];
  statesRemoved: string[];
  /** Catalog changes: ids added, removed, or with another text. */
  rulesAdded: string[];
  rulesRemoved: string[];
  rulesChanged: string[];
  unchanged: number;
}

/** An edge is the same edge when it leaves the same state, on the same event, for the same state. */
function edgeKey(e: Pick<DiagramEdge, 'from' | 'to' | 'event'>): string {
  return `${e.from} --${e.event}--> ${e.to}`;
}

function parseModel(m: DiagramJson | string): DiagramJson {
  const model = typeof m === 'string' ? (JSON.parse(m) as DiagramJson) : m;
  if (model.kind !== 'vmledger-domain-diagram' || !Array.isArray(model.edges) || !Array.isArray(model.states))
    throw new Error('not a vmledger domain diagram (expected the JSON of renderDiagram("json"))');
  return model;
}

export function diffDiagrams(oldJson: DiagramJson | string, newJson: DiagramJson | string): DiagramDiff {
  const before = parseModel(oldJson);
  const after = parseModel(newJson);
  const index = (edges: readonly DiagramEdge[]) => {
    const map = new Map<string, DiagramEdge>();
    for (const e of edges) {
      let key = edgeKey(e);
      for (let n = 2; map.has(key); n++) key = `${edgeKey(e)} #${n}`;
      map.set(key, e);
    }
    return map;
  };
  const old = index(before.edges);
  const cur = index(after.edges);

  const diff: DiagramDiff = {
    added: [],
    removed: [],
    reguarded: [],
    statesAdded: [],
    statesRemoved: [],
    rulesAdded: [],
    rulesRemoved: [],
    rulesChanged: [],
    unchanged: 0,
  };
  for (const [key, e] of cur) {
    const was = old.get(key);
    if (!was) {
      diff.added.push(e);
      continue;
    }
    const sameRules = was.rules.length === e.rules.length && was.rules.every((r, i) => r === e.rules[i]);
    if (sameRules && was.outcome === e.outcome) {
      diff.unchanged++;
      continue;
    }
    const rulesAdded = e.rules.filter((r) => !was.rules.includes(r));
    const rulesRemoved = was.rules.filter((r) => !e.rules.includes(r));
    diff.reguarded.push({
      from: e.from,
      to: e.to,
      event: e.event,
      before: was.rules,
      after: e.rules,
      rulesAdded,
      rulesRemoved,
      reordered: !sameRules && rulesAdded.length === 0 && rulesRemoved.length === 0,
      ...(was.outcome !== e.outcome ? { outcomeBefore: was.outcome, outcomeAfter: e.outcome } : {}),
    });
  }
  for (const [key, e] of old) if (!cur.has(key)) diff.removed.push(e);

  const paths = (m: DiagramJson) => new Set(flatten(m.states).map((s) => s.path));
  const oldPaths = paths(before);
  const newPaths = paths(after);
  diff.statesAdded = [...newPaths].filter((p) => !oldPaths.has(p));
  diff.statesRemoved = [...oldPaths].filter((p) => !newPaths.has(p));

  const oldRules = new Map(before.rules.map((r) => [r.id, r.text]));
  const newRules = new Map(after.rules.map((r) => [r.id, r.text]));
  diff.rulesAdded = [...newRules.keys()].filter((id) => !oldRules.has(id));
  diff.rulesRemoved = [...oldRules.keys()].filter((id) => !newRules.has(id));
  diff.rulesChanged = [...newRules].filter(([id, text]) => oldRules.has(id) && oldRules.get(id) !== text).map(([id]) => id);
  return diff;
}
