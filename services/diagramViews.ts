// Views of the machine diagram that a reviewer reads at a glance, built from the diagram model (services/diagram.ts,
// itself read from the machine), never from a list of states or verbs of its own:
//
// - overview: one edge per ordered pair of states carrying the verbs that take it; the edges that leave a state
//   unchanged folded into its box as a list of verbs; where a state reaches every sub-state of a composite by the
//   same verbs (or every sub-state leaves by the same verbs), one edge to (from) the composite; the guards that
//   nearly every edge carries named once in the legend, and each verb's other guards once per verb.
// - focus: the edges of one state (its exits), one verb or one rule id, each verb with its full guard list in the
//   order the guards are checked (libvirt's order, machines/verbs.ts).
// - diff: the newer machine as an overview with the edges added, removed and re-guarded since an older export drawn
//   apart, each kind in its own colour and style.
//
// renderView (services/diagramViewRender.ts) draws a view as DOT, SVG or Mermaid.
import { diffDiagrams, flatten, type DiagramEdge, type DiagramJson, type DiagramState } from './diagram';

export type ViewKind = 'overview' | 'focus' | 'diff';
export type Change = 'added' | 'removed' | 'reguarded';

/** One verb on an edge or in a state's box. */
export interface ViewLine {
  verb: string;
  /** The guards shown with the verb (overview: none, or those that differ from the legend's; focus: all). */
  rules: string[];
  /** What is drawn: `verb`, or `verb [RULE, …]`, with a note (`→ running|paused`). */
  text: string;
  /** The machine edges the line stands for. */
  edgeIds: string[];
  change?: Change;
}

export interface ViewState {
  path: string;
  key: string;
  type: DiagramState['type'];
  description?: string;
  group?: string;
  /** Verbs that leave the state unchanged (or move between its own sub-states), drawn inside its box. */
  stays: ViewLine[];
  children: ViewState[];
}

export interface ViewEdge {
  /** `from->to`: unique within a view, except in a diff, where each kind of change has its own edge. */
  id: string;
  from: string;
  to: string;
  lines: ViewLine[];
  /** Every machine edge drawn by this one. */
  edgeIds: string[];
  verbs: string[];
  /** Every rule guarding one of its machine edges. */
  rules: string[];
  change?: Change;
}

export interface CommonRule {
  id: string;
  /** Verbs whose edges do not carry it. */
  except: string[];
}

export interface ViewLegend {
  /** Rules that most edges carry: named here once, on no label. */
  common: CommonRule[];
  /** Each verb's other guards, in the order they are checked. */
  verbs: { verb: string; rules: string[] }[];
  /** Diff views: how each change is drawn. */
  changes?: { change: Change; count: number }[];
}

export interface ViewGraph {
  kind: 'vmledger-diagram-view';
  view: ViewKind;
  title: string;
  initial: string;
  /** The states drawn (a tree; a composite is kept when one of its sub-states is drawn). */
  states: ViewState[];
  edges: ViewEdge[];
  legend: ViewLegend;
  /** Focus views: what was picked, and the machine edges shown. */
  focus?: FocusSpec;
}

export interface FocusSpec {
  state?: string;
  verb?: string;
  rule?: string;
}

// ---------------------------------------------------------------------------------------------------

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Rules carried by at least half of the edges, in the order they are first checked. */
export function commonRules(model: DiagramJson): CommonRule[] {
  const count = new Map<string, number>();
  for (const e of model.edges) for (const r of new Set(e.rules)) count.set(r, (count.get(r) ?? 0) + 1);
  const verbs = [...new Set(model.edges.map((e) => e.event))];
  const common = [...count].filter(([, n]) => n * 2 >= model.edges.length).map(([id]) => id);
  const firstIndex = (id: string) => Math.min(...model.edges.map((e) => (e.rules.includes(id) ? e.rules.indexOf(id) : Infinity)));
  return common
    .sort((a, b) => firstIndex(a) - firstIndex(b))
    .map((id) => ({ id, except: verbs.filter((v) => model.edges.some((e) => e.event === v && !e.rules.includes(id))) }));
}

/** Each verb's guards other than the common ones (as its first edge has them). */
function verbRules(model: DiagramJson, common: ReadonlySet<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of model.edges) if (!out.has(e.event)) out.set(e.event, e.rules.filter((r) => !common.has(r)));
  return out;
}

function legendOf(model: DiagramJson): ViewLegend {
  const common = commonRules(model);
  const ids = new Set(common.map((c) => c.id));
  return { common, verbs: [...verbRules(model, ids)].map(([verb, rules]) => ({ verb, rules })) };
}

type LineOf = (e: DiagramEdge) => Omit<ViewLine, 'edgeIds'>;

/** Overview lines: the verb alone when its guards are the legend's; else the guards that differ. */
function overviewLine(model: DiagramJson): LineOf {
  const common = new Set(commonRules(model).map((c) => c.id));
  const perVerb = verbRules(model, common);
  return (e) => {
    const own = e.rules.filter((r) => !common.has(r));
    const usual = sameList(own, perVerb.get(e.event) ?? []);
    return { verb: e.event, rules: usual ? [] : own, text: usual ? e.event : `${e.event} [${own.join(', ')}]` };
  };
}

const fullLine: LineOf = (e) => ({ verb: e.event, rules: [...e.rules], text: `${e.event} [${e.rules.join(', ')}]` });

interface Tree {
  byPath: Map<string, DiagramState>;
  parent: Map<string, string | null>;
}

function treeOf(model: DiagramJson): Tree {
  const byPath = new Map<string, DiagramState>();
  const parent = new Map<string, string | null>();
  const walk = (list: readonly DiagramState[], up: string | null) => {
    for (const s of list) {
      byPath.set(s.path, s);
      parent.set(s.path, up);
      walk(s.children, s.path);
    }
  };
  walk(model.states, null);
  return { byPath, parent };
}

/** The path and its ancestors, innermost first. */
function lineage(tree: Tree, path: string): string[] {
  const out: string[] = [];
  for (let p: string | null | undefined = path; p; p = tree.parent.get(p)) out.push(p);
  return out;
}

const within = (tree: Tree, path: string, ancestor: string) => lineage(tree, path).includes(ancestor);

/** Adds a line to a list, merging it into an equal one (same text and change). */
function addLine(lines: ViewLine[], line: ViewLine): void {
  const same = lines.find((l) => l.text === line.text && l.change === line.change);
  if (same) same.edgeIds.push(...line.edgeIds.filter((id) => !same.edgeIds.includes(id)));
  else lines.push({ ...line, edgeIds: [...line.edgeIds] });
}

const linesKey = (lines: readonly ViewLine[]) =>
  lines
    .map((l) => `${l.change ?? ''}:${l.text}`)
    .sort()
    .join('\n');

interface Pair {
  from: string;
  to: string;
  change?: Change;
  lines: ViewLine[];
}

const pairKey = (from: string, to: string, change?: Change) => `${from}\u0000${to}\u0000${change ?? ''}`;

/**
 * Folds edges into pairs and boxes. `lineOf` says how a verb is written; `change` tags an edge in a diff. An
 * unchanged edge that ends where it starts (or a composite's edge into its own sub-states, once collapsed) goes into
 * the box.
 */
function build(
  model: DiagramJson,
  edges: readonly { edge: DiagramEdge; change?: Change }[],
  lineOf: LineOf,
): { pairs: Pair[]; stays: Map<string, ViewLine[]> } {
  const tree = treeOf(model);
  const stays = new Map<string, ViewLine[]>();
  const stay = (path: string, line: ViewLine) => addLineTo(stays, path, line);
  let pairs = new Map<string, Pair>();
  const put = (map: Map<string, Pair>, from: string, to: string, change: Change | undefined, lines: readonly ViewLine[]) => {
    const k = pairKey(from, to, change);
    if (!map.has(k)) map.set(k, { from, to, ...(change ? { change } : {}), lines: [] });
    for (const l of lines) addLine(map.get(k)!.lines, l);
  };
  for (const { edge, change } of edges) {
    const line: ViewLine = { ...lineOf(edge), edgeIds: [edge.id], ...(change ? { change } : {}) };
    // A changed edge that keeps its state is drawn as a loop, so that the change shows as an edge in its colour.
    if ((edge.targetless || edge.from === edge.to) && !change) stay(edge.from, line);
    else put(pairs, edge.from, edge.targetless ? edge.from : edge.to, change, [line]);
  }

  // Collapse: a source reaching every sub-state of a composite by the same lines gets one edge to the composite
  // (and the same for every sub-state leaving for one target). Innermost composites first, so that nesting folds.
  const composites = flatten(model.states)
    .filter((s) => s.children.length > 0)
    .sort((a, b) => b.path.split('.').length - a.path.split('.').length);
  for (const c of composites) {
    const kids = c.children.map((k) => k.path);
    const next = new Map<string, Pair>();
    const used = new Set<string>();
    const byGroup = (side: 'from' | 'to') => {
      const groups = new Map<string, Pair[]>();
      for (const p of pairs.values()) {
        if (!kids.includes(p[side])) continue;
        const other = side === 'to' ? p.from : p.to;
        const g = `${other}\u0000${p.change ?? ''}`;
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g)!.push(p);
      }
      return groups;
    };
    for (const side of ['to', 'from'] as const) {
      for (const group of byGroup(side).values()) {
        const members = group.filter((p) => !used.has(pairKey(p.from, p.to, p.change)));
        if (members.length !== kids.length || new Set(members.map((p) => p[side])).size !== kids.length) continue;
        if (new Set(members.map((p) => linesKey(p.lines))).size !== 1) continue;
        for (const p of members) used.add(pairKey(p.from, p.to, p.change));
        const p0 = members[0]!;
        const merged = p0.lines.map((l) => ({ ...l, edgeIds: members.flatMap((p) => p.lines.find((x) => x.text === l.text)?.edgeIds ?? []) }));
        const from = side === 'to' ? p0.from : c.path;
        const to = side === 'to' ? c.path : p0.to;
        if (within(tree, from, c.path) && within(tree, to, c.path)) {
          // Into its own sub-states (snapshot-revert of a running domain): it stays inside the composite.
          const names = c.children.map((k) => k.key).join('|');
          for (const l of merged) stay(c.path, { ...l, text: `${l.text} → ${names}` });
        } else put(next, from, to, p0.change, merged);
      }
    }
    for (const [k, p] of pairs) if (!used.has(k)) put(next, p.from, p.to, p.change, p.lines);
    pairs = next;
  }
  return { pairs: [...pairs.values()], stays };
}

function viewEdges(pairs: readonly Pair[], model: DiagramJson): ViewEdge[] {
  const byId = new Map(model.edges.map((e) => [e.id, e]));
  return pairs.map((p) => {
    const edgeIds = [...new Set(p.lines.flatMap((l) => l.edgeIds))];
    return {
      id: `${p.from}->${p.to}${p.change ? `:${p.change}` : ''}`,
      from: p.from,
      to: p.to,
      lines: p.lines,
      edgeIds,
      verbs: [...new Set(p.lines.map((l) => l.verb))],
      rules: [...new Set(edgeIds.flatMap((id) => byId.get(id)?.rules ?? []))],
      ...(p.change ? { change: p.change } : {}),
    };
  });
}

/** The model's state tree with each state's box lines; `keep` limits it to some states (and their ancestors). */
function viewStates(model: DiagramJson, stays: ReadonlyMap<string, ViewLine[]>, keep?: ReadonlySet<string>): ViewState[] {
  const tree = treeOf(model);
  const wanted = keep ? new Set([...keep].flatMap((p) => lineage(tree, p))) : undefined;
  const map = (list: readonly DiagramState[]): ViewState[] =>
    list
      .filter((s) => !wanted || wanted.has(s.path))
      .map((s) => ({
        ...s,
        stays: stays.get(s.path) ?? [],
        // A drawn composite keeps only the sub-states the view needs (all of them when nothing is picked).
        children: map(s.children),
      }));
  return map(model.states);
}

// ---------------------------------------------------------------------------------------------------

export function overviewView(model: DiagramJson): ViewGraph {
  const { pairs, stays } = build(
    model,
    model.edges.map((edge) => ({ edge })),
    overviewLine(model),
  );
  return {
    kind: 'vmledger-diagram-view',
    view: 'overview',
    title: 'Overview: one edge per pair of states, the verbs that keep a state inside its box',
    initial: model.initial,
    states: viewStates(model, stays),
    edges: viewEdges(pairs, model),
    legend: legendOf(model),
  };
}

/** Why a focus cannot be drawn, in words: an unknown state, verb or rule. */
export function checkFocus(model: DiagramJson, focus: FocusSpec): void {
  const picked = [focus.state, focus.verb, focus.rule].filter((x) => x !== undefined && x !== '');
  if (picked.length !== 1) throw new Error('pick exactly one of a state, a verb or a rule id to focus on');
  const tree = treeOf(model);
  if (focus.state && !tree.byPath.has(focus.state))
    throw new Error(`no state '${focus.state}' in the machine (states: ${[...tree.byPath.keys()].join(', ')})`);
  if (focus.verb && !model.edges.some((e) => e.event === focus.verb))
    throw new Error(`no edge takes the verb '${focus.verb}' (verbs: ${[...new Set(model.edges.map((e) => e.event))].join(', ')})`);
  if (focus.rule && !model.edges.some((e) => e.rules.includes(focus.rule!)))
    throw new Error(
      model.rules.some((r) => r.id === focus.rule)
        ? `rule ${focus.rule} guards no edge (it shapes the facts of accepted commands)`
        : `no rule '${focus.rule}' in the catalog`,
    );
}

/** The machine edges a focus shows: a state's exits (its own and its ancestors'), a verb's or a rule's edges. */
export function focusedEdges(model: DiagramJson, focus: FocusSpec): DiagramEdge[] {
  checkFocus(model, focus);
  const tree = treeOf(model);
  if (focus.verb) return model.edges.filter((e) => e.event === focus.verb);
  if (focus.rule) return model.edges.filter((e) => e.rules.includes(focus.rule!));
  const s = focus.state!;
  // A composite's exits leave it from any of its sub-states; a sub-state's exits include its parent's.
  return model.edges.filter(
    (e) => (within(tree, e.from, s) || lineage(tree, s).includes(e.from)) && !e.targetless && !within(tree, e.to, s),
  );
}

export function focusView(model: DiagramJson, focus: FocusSpec): ViewGraph {
  const shown = focusedEdges(model, focus);
  const tree = treeOf(model);
  // A state's box lists what leaves it unchanged (verbs only: the exits are the point); a verb or rule shows all.
  const boxEdges = focus.state
    ? model.edges.filter((e) => (e.targetless || e.from === e.to) && lineage(tree, focus.state!).includes(e.from))
    : [];
  const overview = overviewLine(model);
  const { pairs, stays } = build(model, shown.map((edge) => ({ edge })), fullLine);
  for (const e of boxEdges) addLineTo(stays, focus.state!, { ...overview(e), edgeIds: [e.id] });
  const keep = new Set<string>([...pairs.flatMap((p) => [p.from, p.to]), ...stays.keys(), ...(focus.state ? [focus.state] : [])]);
  const what = focus.state ? `the exits of ${focus.state}` : focus.verb ? `the edges of ${focus.verb}` : `the edges guarded by ${focus.rule}`;
  return {
    kind: 'vmledger-diagram-view',
    view: 'focus',
    title: `Focus: ${what}, each verb with its guards in the order they are checked`,
    initial: model.initial,
    states: viewStates(model, stays, keep),
    edges: viewEdges(pairs, model),
    legend: { common: [], verbs: [] },
    focus,
  };
}

/** Adds a line to a state's box. */
function addLineTo(map: Map<string, ViewLine[]>, path: string, line: ViewLine): void {
  if (!map.has(path)) map.set(path, []);
  addLine(map.get(path)!, line);
}

/** Removed edges keep their id behind this prefix in a diff view (they are not edges of the newer machine). */
export const REMOVED_PREFIX = 'removed:';

const edgeKey = (e: { from: string; to: string; event: string }) => `${e.from}\u0000${e.event}\u0000${e.to}`;

/**
 * The newer machine as an overview with the changes since `older` drawn apart: an added edge with its guards, a
 * removed one (when both its states still exist), a re-guarded one with its guards now and what changed.
 */
export function diffView(older: DiagramJson, newer: DiagramJson): ViewGraph {
  const diff = diffDiagrams(older, newer);
  const states = new Set(flatten(newer.states).map((s) => s.path));
  const added = new Set(diff.added.map((e) => e.id));
  const reguarded = new Map(diff.reguarded.map((r) => [edgeKey(r), r]));
  const removed = diff.removed.filter((e) => states.has(e.from) && states.has(e.to)).map((e) => ({ ...e, id: `${REMOVED_PREFIX}${e.id}` }));
  const overview = overviewLine(newer);
  const lineOf: LineOf = (e) => {
    if (added.has(e.id)) return { ...fullLine(e), text: `+ ${fullLine(e).text}` };
    if (e.id.startsWith(REMOVED_PREFIX)) return { ...fullLine(e), text: `− ${fullLine(e).text}` };
    const r = reguarded.get(edgeKey(e));
    if (r) {
      const what = [...r.rulesAdded.map((x) => `+${x}`), ...r.rulesRemoved.map((x) => `−${x}`), ...(r.reordered ? ['new order'] : [])];
      return { ...fullLine(e), text: `~ ${fullLine(e).text}${what.length ? ` (${what.join(' ')})` : ' (outcome)'}` };
    }
    return overview(e);
  };
  const changeOf = (e: DiagramEdge): Change | undefined =>
    added.has(e.id) ? 'added' : e.id.startsWith(REMOVED_PREFIX) ? 'removed' : reguarded.has(edgeKey(e)) ? 'reguarded' : undefined;
  const all = [...newer.edges, ...removed];
  const merged: DiagramJson = { ...newer, edges: all };
  const { pairs, stays } = build(
    merged,
    all.map((edge) => ({ edge, change: changeOf(edge) })),
    lineOf,
  );
  return {
    kind: 'vmledger-diagram-view',
    view: 'diff',
    title: 'Changes against the other version: added, removed and re-guarded edges',
    initial: newer.initial,
    states: viewStates(merged, stays),
    edges: viewEdges(pairs, merged),
    legend: {
      ...legendOf(newer),
      changes: [
        { change: 'added', count: diff.added.length },
        { change: 'removed', count: diff.removed.length },
        { change: 'reguarded', count: diff.reguarded.length },
      ],
    },
  };
}

/** Reads `--focus WHAT`: a state path, a verb or a rule id of the model (the error lists what there is). */
export function parseFocus(model: DiagramJson, what: string): FocusSpec {
  const text = what.trim();
  const tree = treeOf(model);
  const found: FocusSpec[] = [];
  if (tree.byPath.has(text)) found.push({ state: text });
  if (model.edges.some((e) => e.event === text)) found.push({ verb: text });
  if (model.rules.some((r) => r.id === text) || model.edges.some((e) => e.rules.includes(text))) found.push({ rule: text });
  if (found.length === 0)
    throw new Error(
      `nothing to focus on called '${what}': give a state (${[...tree.byPath.keys()].join(', ')}), a verb or a rule id`,
    );
  if (found.length > 1) throw new Error(`'${what}' is both a state and a verb; cannot tell which to focus on`);
  checkFocus(model, found[0]!);
  return found[0]!;
}
