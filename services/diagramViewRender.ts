// Draws a view of the diagram (services/diagramViews.ts) as Graphviz DOT, SVG or Mermaid.
//
// DOT: composite states and groups of states are clusters (edges to or from a composite end at its border, through
// an anchor point inside it: `compound=true` with lhead/ltail); a state's box lists the verbs that leave it
// unchanged; each edge is one DOT edge with one line per verb. Every node, cluster and edge gets a DOT `id`
// (`vs<n>`, `vc<n>`, `ve<n>`) that Graphviz writes onto its SVG group, so the UI can address them
// (services/ui/viewSvg.ts). The legend, when asked for, is a table in its own cluster.
//
// Mermaid cannot draw an edge between sub-states of different composites, nor reliably one crossing a composite's
// border: such an edge is drawn between the top-level states, pairs that then coincide are merged, and the label
// names the sub-states. Groups are not drawn in Mermaid (a composite there would move edges across its border).
import {
  diagramModel,
  dotString,
  flatten,
  htmlText,
  mermaidId,
  mermaidText,
  renderDiagram,
  renderSvg,
  slug,
  topOf,
  wrapLabel,
  type DiagramFormat,
  type DiagramJson,
} from './diagram';
import { focusView, overviewView, type Change, type FocusSpec, type ViewEdge, type ViewGraph, type ViewLine, type ViewState } from './diagramViews';

export interface ViewRenderOptions {
  direction?: 'LR' | 'TB';
  /** Draw the legend (DOT/SVG: a table; Mermaid: `%%` comments). Default true. */
  legend?: boolean;
  /** The rule texts for the legend. */
  model?: Pick<DiagramJson, 'rules'>;
}

export const CHANGE_STYLE: Record<Change, { color: string; style: string; word: string }> = {
  added: { color: '#1b7f3b', style: 'bold', word: 'added' },
  removed: { color: '#b3261e', style: 'dashed', word: 'removed' },
  reguarded: { color: '#b45f06', style: 'bold', word: 're-guarded' },
};

const UNCHANGED_COLOR = '#555555';
/** Sizes in points; the UI's legibility test measures them in pixels at the page's initial zoom. */
const FONT = { state: 15, box: 12, edge: 12, cluster: 13, legend: 12 } as const;

function boxText(lines: readonly ViewLine[], width: number): string {
  if (lines.length === 0) return '';
  const plain = lines.every((l) => !l.change);
  if (plain) {
    return wrapLabel(`↺ ${lines.map((l) => l.text).join(', ')}`, width)
      .map((t) => `${htmlText(t)}<br align="left"/>`)
      .join('');
  }
  return lines
    .map((l) => {
      const text = wrapLabel(`↺ ${l.text}`, width).map(htmlText).join('<br align="left"/>');
      return l.change ? `<font color="${CHANGE_STYLE[l.change].color}">${text}</font><br align="left"/>` : `${text}<br align="left"/>`;
    })
    .join('');
}

function edgeLabel(e: ViewEdge, width: number): string {
  // A label of short verbs wraps into a few narrow lines; one with guard lists gets wider lines, from one per verb.
  const withRules = e.lines.some((l) => l.text.includes('['));
  const lines = withRules ? e.lines.flatMap((l) => wrapLabel(l.text, width * 2)) : wrapLabel(e.lines.map((l) => l.text).join(', '), width);
  return lines.map(dotString).join('\\n');
}

export function renderViewDot(view: ViewGraph, options: ViewRenderOptions = {}): string {
  const all = flatten(view.states as never) as unknown as ViewState[];
  const composite = new Set(all.filter((s) => s.children.length > 0).map((s) => s.path));
  const idOf = (path: string) => `-${slug(path)}`;
  const anchor = (path: string) => `"${path}.*"`;
  const out: string[] = [
    'digraph domain {',
    `  graph [rankdir=${options.direction ?? 'LR'}, fontname="Helvetica", fontsize=${FONT.cluster}, nodesep=0.25, ranksep=0.45, margin=0.1, pad=0.1];`,
    `  node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", color="#7a869a", fontname="Helvetica", fontsize=${FONT.state}, margin="0.08,0.04"];`,
    `  edge [fontname="Helvetica", fontsize=${FONT.edge}, color="${UNCHANGED_COLOR}", fontcolor="#333333", arrowsize=0.7];`,
  ];
  if (all.some((s) => s.path === view.initial)) out.push('  "[*]" [shape=circle, style=filled, fillcolor=black, label="", width=0.16];');
  const label = (s: ViewState, width: number) => {
    const title = s.children.length > 0 ? `<font point-size="${FONT.cluster}"><b>${htmlText(s.key)}</b></font>` : `<b>${htmlText(s.key)}</b>`;
    const box = boxText(s.stays, width);
    return box ? `<${title}<br/><font point-size="${FONT.box}">${box}</font>>` : `<${title}>`;
  };
  const declare = (s: ViewState, indent: string): void => {
    if (s.children.length === 0) {
      const attrs = [`id="vs${idOf(s.path)}"`, `label=${label(s, 26)}`];
      if (s.description) attrs.push(`tooltip="${dotString(`${s.path}: ${s.description}`)}"`);
      if (s.type === 'final') attrs.push('peripheries=2');
      out.push(`${indent}${JSON.stringify(s.path)} [${attrs.join(', ')}];`);
      return;
    }
    out.push(`${indent}subgraph "cluster_${s.path}" {`);
    out.push(`${indent}  id="vc${idOf(s.path)}"; label=""; style="rounded"; color="#7a869a"; margin=6;`);
    if (s.description) out.push(`${indent}  tooltip="${dotString(`${s.path}: ${s.description}`)}";`);
    // The composite's header (its name and what leaves it unchanged) is a node: its edges start and end there, so
    // Graphviz places their labels itself (lhead/ltail clipping would leave them where the uncut edge ran).
    out.push(`${indent}  ${anchor(s.path)} [id="vh${idOf(s.path)}", shape=plain, style="", label=${label(s, 30)}, tooltip="${dotString(`${s.path}: any of its sub-states`)}"];`);
    for (const child of s.children) declare(child, indent + '  ');
    // The header above (before, left to right) its sub-states.
    for (const child of s.children)
      out.push(`${indent}  ${anchor(s.path)} -> ${composite.has(child.path) ? anchor(child.path) : JSON.stringify(child.path)} [id="vi${idOf(child.path)}", style=invis];`);
    out.push(`${indent}}`);
  };
  // Top-level states of one group share a box; the others stand alone.
  const groups = new Map<string, ViewState[]>();
  for (const s of view.states) if (s.group) groups.set(s.group, [...(groups.get(s.group) ?? []), s]);
  let g = 0;
  for (const s of view.states) {
    if (!s.group) declare(s, '  ');
    else if (groups.get(s.group)![0] === s) {
      out.push(`  subgraph "cluster_group_${g++}" {`);
      out.push(`    id="vg${g - 1}"; label="${dotString(s.group)}"; labeljust=l; style="dashed,rounded"; color="#9aa5b8"; fontcolor="#555555";`);
      for (const member of groups.get(s.group)!) declare(member, '    ');
      out.push('  }');
    }
  }
  if (all.some((s) => s.path === view.initial)) out.push(`  "[*]" -> ${JSON.stringify(view.initial)};`);
  view.edges.forEach((e, i) => {
    const tail = composite.has(e.from) ? anchor(e.from) : JSON.stringify(e.from);
    const head = composite.has(e.to) ? anchor(e.to) : JSON.stringify(e.to);
    const attrs = [`id="ve${i}"`, `label="${edgeLabel(e, 20)}"`, `tooltip="${dotString(e.id)}"`];
    if (e.change) {
      const st = CHANGE_STYLE[e.change];
      attrs.push(`color="${st.color}"`, `fontcolor="${st.color}"`, `style=${st.style}`, 'penwidth=2.2');
    }
    out.push(`  ${tail} -> ${head} [${attrs.join(', ')}];`);
  });
  if (options.legend !== false) {
    const legend = legendDot(view, options);
    out.push(...legend);
    // After the final states (rightmost in LR, lowest in TB) rather than before the initial one.
    if (legend.length > 0) for (const s of all) if (s.type === 'final') out.push(`  ${JSON.stringify(s.path)} -> legend [style=invis];`);
  }
  out.push('}');
  return out.join('\n') + '\n';
}

function legendDot(view: ViewGraph, options: ViewRenderOptions): string[] {
  const rules = new Map((options.model?.rules ?? []).map((r) => [r.id, r.text]));
  const rows: string[] = [];
  const cell = (text: string) => `<td align="left" balign="left">${wrapLabel(text, 56).map(htmlText).join('<br/>')}</td>`;
  const section = (title: string) => rows.push(`<tr><td colspan="2" align="left" bgcolor="#e3e8f2"><b>${htmlText(title)}</b></td></tr>`);
  const { legend } = view;
  if (legend.changes) {
    section('Changes');
    for (const c of legend.changes) {
      const st = CHANGE_STYLE[c.change];
      rows.push(`<tr><td align="left"><font color="${st.color}"><b>${st.style === 'dashed' ? '- - -' : '━━━'} ${st.word}</b></font></td>${cell(`${c.count} edge(s); ${c.change === 'added' ? '+' : c.change === 'removed' ? '−' : '~'} verb [guards]`)}</tr>`);
    }
  }
  if (legend.common.length > 0) {
    section('Guards named once (checked first, on no label)');
    for (const c of legend.common) {
      const text = `${rules.get(c.id) ?? ''}${c.except.length ? ` (every verb but ${c.except.join(', ')})` : ' (every verb)'}`;
      rows.push(`<tr><td align="left" valign="top"><b>${htmlText(c.id)}</b></td>${cell(text)}</tr>`);
    }
  }
  if (legend.verbs.length > 0) {
    section('Each verb’s other guards, in the order they are checked');
    for (const v of legend.verbs) rows.push(`<tr><td align="left" valign="top"><b>${htmlText(v.verb)}</b></td>${cell(v.rules.join(', ') || '—')}</tr>`);
  }
  if (rows.length === 0) return [];
  return [
    '  subgraph cluster_legend {',
    `    label="Legend"; style="rounded"; color="#aaaaaa"; fontsize=${FONT.legend};`,
    `    legend [shape=plaintext, style="", fontsize=${FONT.legend}, label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">${rows.join('')}</table>>];`,
    '  }',
  ];
}

export async function renderViewSvg(view: ViewGraph, options: ViewRenderOptions = {}): Promise<string> {
  return renderSvg(renderViewDot(view, options));
}

// Mermaid -------------------------------------------------------------------------------------------

function mermaidEnds(e: ViewEdge): { from: string; to: string; note: string } {
  const inside = e.from.includes('.') && e.to.includes('.') && topOf(e.from) === topOf(e.to);
  if (inside) return { from: e.from, to: e.to, note: '' };
  const parts: string[] = [];
  if (e.from !== topOf(e.from)) parts.push(`from ${e.from}`);
  if (e.to !== topOf(e.to)) parts.push(`to ${e.to}`);
  return { from: topOf(e.from), to: topOf(e.to), note: parts.length ? ` (${parts.join(', ')})` : '' };
}

export function renderViewMermaid(view: ViewGraph, options: ViewRenderOptions = {}): string {
  const out: string[] = ['stateDiagram-v2', `  direction ${options.direction ?? 'LR'}`];
  // Merge the edges whose drawn ends coincide, one label segment per original edge.
  const drawn = new Map<string, { from: string; to: string; inside: boolean; labels: string[]; change?: Change }>();
  for (const e of view.edges) {
    const ends = mermaidEnds(e);
    const k = `${ends.from}\u0000${ends.to}\u0000${e.change ?? ''}`;
    const text = e.lines.map((l) => l.text).join(', ') + ends.note;
    const d = drawn.get(k);
    if (d) d.labels.push(text);
    else drawn.set(k, { from: ends.from, to: ends.to, inside: ends.note === '' && ends.from !== topOf(ends.from), labels: [text], ...(e.change ? { change: e.change } : {}) });
  }
  const line = (d: { from: string; to: string; labels: string[]; change?: Change }) =>
    `${mermaidId(d.from)} --> ${mermaidId(d.to)} : ${mermaidText(d.labels.join('; '))}`;
  const declare = (s: ViewState, indent: string): void => {
    const id = mermaidId(s.path);
    const stays = s.stays.length ? `↺ ${s.stays.map((l) => l.text).join(', ')}` : '';
    if (s.children.length === 0) {
      out.push(`${indent}state "${s.key}" as ${id}`);
      if (stays) out.push(`${indent}${id} : ${mermaidText(stays)}`);
      return;
    }
    out.push(`${indent}state "${mermaidText(s.key + (stays ? ` — ${stays}` : ''))}" as ${id} {`);
    for (const child of s.children) declare(child, indent + '  ');
    for (const d of drawn.values()) if (d.inside && topOf(d.from) === s.path) out.push(`${indent}  ${line(d)}`);
    out.push(`${indent}}`);
  };
  for (const s of view.states) declare(s, '  ');
  const all = flatten(view.states as never) as unknown as ViewState[];
  if (all.some((s) => s.path === view.initial)) out.push(`  [*] --> ${mermaidId(view.initial)}`);
  for (const s of all) if (s.type === 'final') out.push(`  ${mermaidId(s.path)} --> [*]`);
  for (const d of drawn.values()) if (!d.inside) out.push(`  ${line(d)}`);
  const styled = [...drawn.values()].filter((d) => d.change);
  if (styled.length > 0) {
    // Mermaid styles states, not transitions: the states an edge changed leave from are coloured instead.
    for (const [change, st] of Object.entries(CHANGE_STYLE)) out.push(`  classDef ${change} stroke:${st.color},stroke-width:3px`);
    for (const d of styled) out.push(`  class ${mermaidId(d.from)} ${d.change}`);
  }
  if (options.legend !== false) {
    const rules = new Map((options.model?.rules ?? []).map((r) => [r.id, r.text]));
    out.push(`  %% ${view.title}`);
    for (const c of view.legend.changes ?? []) out.push(`  %% ${CHANGE_STYLE[c.change].word}: ${c.count} edge(s), states they leave from outlined in ${CHANGE_STYLE[c.change].color}`);
    for (const c of view.legend.common)
      out.push(`  %% ${c.id} (named once, on no label${c.except.length ? `; every verb but ${c.except.join(', ')}` : ''}): ${(rules.get(c.id) ?? '').replace(/\n/g, ' ')}`);
    for (const v of view.legend.verbs) out.push(`  %% ${v.verb}: ${v.rules.join(', ') || '—'}`);
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------

export type DiagramView = 'overview' | 'full' | 'focus';

export interface DiagramViewOptions extends ViewRenderOptions {
  view?: DiagramView;
  /** With view `focus`: the state, verb or rule to focus on. */
  focus?: FocusSpec;
  /** Draw this model instead of the current machine. */
  diagram?: DiagramJson;
}

/** The view as a graph; `full` has none (it is the model itself, drawn by services/diagram.ts). */
export function viewGraph(model: DiagramJson, view: Exclude<DiagramView, 'full'>, focus?: FocusSpec): ViewGraph {
  if (view === 'overview') return overviewView(model);
  if (!focus) throw new Error('the focus view needs a state, a verb or a rule id');
  return focusView(model, focus);
}

/**
 * `vmledger diagram`: the overview (default), the full edge list or a focus, as Mermaid, DOT or SVG. JSON is always
 * the model (every view is drawn from it; `diagram-diff` compares it).
 */
export function renderDiagramView(format: DiagramFormat, options: DiagramViewOptions = {}): string | Promise<string> {
  const model = options.diagram ?? diagramModel();
  const view = options.view ?? 'overview';
  if (format === 'json' || view === 'full') {
    return renderDiagram(format, { model, ...(options.direction ? { direction: options.direction } : {}), ...(options.legend === false ? { legend: false } : {}) });
  }
  const graph = viewGraph(model, view, options.focus);
  const opts = { ...options, model };
  if (format === 'mermaid') return renderViewMermaid(graph, opts);
  if (format === 'dot') return renderViewDot(graph, opts);
  return renderViewSvg(graph, opts);
}
