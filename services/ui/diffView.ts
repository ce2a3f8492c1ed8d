// The reviewer's diff of two versions of the machine diagram: the diff itself (services/diagram.ts diffDiagrams),
// a row per change for a table, and one SVG that draws the newer machine as an overview plus the removed edges, each
// changed edge drawn apart in its colour and marked with a class (`diff-added`, `diff-removed`, `diff-reguarded`).
import { z } from 'zod';

import { diagramModel, diffDiagrams, type DiagramDiff, type DiagramJson, type DiagramState } from '../diagram';
import { renderViewSvg } from '../diagramViewRender';
import { diffView, REMOVED_PREFIX } from '../diagramViews';
import { annotateViewSvg } from './viewSvg';

// What an uploaded export must look like before it is compared (diffDiagrams trusts its input's shape).
const DiagramStateSchema: z.ZodType<DiagramState> = z.lazy(() =>
  z.object({
    path: z.string(),
    key: z.string(),
    type: z.enum(['atomic', 'compound', 'final']),
    description: z.string().optional(),
    group: z.string().optional(),
    children: z.array(DiagramStateSchema),
  }),
);

const DiagramEdgeSchema = z.looseObject({
  id: z.string(),
  from: z.string(),
  to: z.string(),
  event: z.string(),
  rules: z.array(z.string()),
  outcome: z.string().optional(),
  targetless: z.boolean(),
  label: z.string(),
});

export const DiagramJsonSchema = z.looseObject({
  kind: z.literal('vmledger-domain-diagram', { error: 'not a vmledger domain diagram (expected the JSON of `vmledger diagram --format json`)' }),
  version: z.number(),
  initial: z.string(),
  states: z.array(DiagramStateSchema),
  edges: z.array(DiagramEdgeSchema),
  rules: z.array(z.looseObject({ id: z.string(), section: z.string(), kind: z.string(), text: z.string(), onEdges: z.boolean() })),
  nonEdgeRules: z.array(z.string()).default([]),
  uncataloguedRules: z.array(z.string()).default([]),
});

/** Parses and checks a diagram export (text or already parsed); the error names what is wrong. */
export function parseDiagramJson(input: unknown, what = 'the diagram'): DiagramJson {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch {
      throw new Error(`${what} is not JSON (expected the output of \`vmledger diagram --format json\`)`);
    }
  }
  const parsed = DiagramJsonSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new Error(`${what} is not a vmledger diagram export${where}: ${issue.message}`);
  }
  return parsed.data as unknown as DiagramJson;
}

export type DiffChange = 'added' | 'removed' | 're-guarded';

export interface DiffRow {
  change: DiffChange;
  /** The machine edge id in the diff SVG (`removed:…` for a removed edge); null when it could not be drawn. */
  edge: string | null;
  from: string;
  to: string;
  event: string;
  before: string[] | null;
  after: string[] | null;
  note: string;
}

export interface DiffView {
  diff: DiagramDiff;
  rows: DiffRow[];
  /** The newer machine with the removed edges drawn in, changed edges marked. */
  svg: string;
  summary: { added: number; removed: number; reguarded: number; unchanged: number };
}


function flatPaths(states: readonly DiagramState[]): Set<string> {
  const out = new Set<string>();
  const walk = (list: readonly DiagramState[]) => {
    for (const s of list) {
      out.add(s.path);
      walk(s.children);
    }
  };
  walk(states);
  return out;
}

const key = (e: { from: string; to: string; event: string }) => `${e.from}\u0000${e.event}\u0000${e.to}`;

/** Why an edge was re-guarded, in words. */
export function reguardNote(r: DiagramDiff['reguarded'][number]): string {
  const parts: string[] = [];
  if (r.rulesAdded.length > 0) parts.push(`+${r.rulesAdded.join(', +')}`);
  if (r.rulesRemoved.length > 0) parts.push(`-${r.rulesRemoved.join(', -')}`);
  if (r.reordered) parts.push('same rules, new order (another rule now wins)');
  if (r.outcomeBefore !== r.outcomeAfter && (r.outcomeBefore !== undefined || r.outcomeAfter !== undefined)) {
    parts.push(`outcome ${r.outcomeBefore ?? '—'} → ${r.outcomeAfter ?? '—'}`);
  }
  return parts.join('; ');
}

/** Compares `older` with `newer` (default: the current machine) for the UI. */
export async function buildDiffView(older: DiagramJson, newer: DiagramJson = diagramModel()): Promise<DiffView> {
  const diff = diffDiagrams(older, newer);
  const states = flatPaths(newer.states);
  const drawable = diff.removed.filter((e) => states.has(e.from) && states.has(e.to));
  const byKey = new Map<string, string[]>();
  for (const e of newer.edges) byKey.set(key(e), [...(byKey.get(key(e)) ?? []), e.id]);
  const reguardedIds = diff.reguarded.map((r) => byKey.get(key(r)) ?? []);

  const rows: DiffRow[] = [
    ...diff.added.map((e): DiffRow => ({ change: 'added', edge: e.id, from: e.from, to: e.to, event: e.event, before: null, after: e.rules, note: e.outcome ? `outcome ${e.outcome}` : '' })),
    ...diff.removed.map((e): DiffRow => ({
      change: 'removed',
      edge: drawable.includes(e) ? `${REMOVED_PREFIX}${e.id}` : null,
      from: e.from,
      to: e.to,
      event: e.event,
      before: e.rules,
      after: null,
      note: drawable.includes(e) ? '' : 'its state is gone from the newer machine (not drawn)',
    })),
    ...diff.reguarded.map((r, i): DiffRow => ({
      change: 're-guarded',
      edge: reguardedIds[i]![0] ?? null,
      from: r.from,
      to: r.to,
      event: r.event,
      before: r.before,
      after: r.after,
      note: reguardNote(r),
    })),
  ];

  // The picture: the newer machine as an overview, each changed edge drawn apart in its colour and style.
  const graph = diffView(older, newer);
  const rendered = await renderViewSvg(graph, { model: newer, legend: false });
  const { svg } = annotateViewSvg(rendered, graph, { idPrefix: 'd-', title: 'State diagram: changes against the other version' });
  return {
    diff,
    rows,
    svg,
    summary: { added: diff.added.length, removed: diff.removed.length, reguarded: diff.reguarded.length, unchanged: diff.unchanged },
  };
}
