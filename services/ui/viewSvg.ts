// Makes the Graphviz SVG of a diagram view (services/diagramViewRender.ts) addressable from the page, as svg.ts does
// for the full diagram: renderViewDot gives every node, cluster and edge a DOT id, which Graphviz writes onto its
// group (`<g id="ve3" class="edge">`); this turns them into the ids, classes and data attributes the page uses.
//
//   vs-<state>  a state's box           → class "node state", data-state, data-stays (the machine edges in its box)
//   vh-<state>  a composite's header    → class "node state-header", data-state-header, data-stays
//   vc-<state>  a composite's cluster   → class "cluster state composite", data-state
//   vg<n>       a group of states       → class "cluster group"
//   ve<n>       the view's n-th edge    → class "edge transition" (+ "diff diff-added" …), data-edge (the view edge),
//                                         data-edges (its machine edges), data-from, data-to, data-verbs, data-rules
//   vi-<state>  layout-only edges       → class "edge layout"
import { flatten, slug } from '../diagram';
import type { ViewGraph, ViewState } from '../diagramViews';
import { decodeEntities, escapeXml } from './svg';

const GROUP = /<g id="([^"]+)" class="(node|edge|cluster)">/g;

const DIFF_CLASS = { added: 'diff-added', removed: 'diff-removed', reguarded: 'diff-reguarded' } as const;

export interface AnnotatedView {
  svg: string;
  /** State paths found as boxes or clusters. */
  states: string[];
  /** View edge ids found. */
  edges: string[];
}

export function annotateViewSvg(svg: string, view: ViewGraph, options: { idPrefix?: string; title?: string } = {}): AnnotatedView {
  const prefix = options.idPrefix ?? 'm-';
  const states = new Map((flatten(view.states as never) as unknown as ViewState[]).map((s) => [slug(s.path), s]));
  const found = { states: [] as string[], edges: [] as string[] };
  let body = svg.slice(Math.max(0, svg.indexOf('<svg')));
  body = body.replace(/<!--[\s\S]*?-->\n?/g, '');

  const retitle = (segment: string, title: string) => segment.replace(/^(\s*)<title>[^<]*<\/title>/, (_w, sp: string) => `${sp}<title>${escapeXml(title)}</title>`);
  const matches = [...body.matchAll(GROUP)];
  let out = '';
  let last = 0;
  matches.forEach((m, i) => {
    const end = i + 1 < matches.length ? matches[i + 1]!.index : body.length;
    let segment = body.slice(m.index + m[0].length, end);
    out += body.slice(last, m.index);
    last = end;
    const id = decodeEntities(m[1]!); // Graphviz writes '-' as &#45;
    const kind = /^(vs|vh|vc|vg|ve|vi)(.*)$/.exec(id);
    const state = kind && ['vs', 'vh', 'vc'].includes(kind[1]!) ? states.get(kind[2]!.slice(1)) : undefined;
    const stays = (s: ViewState) => escapeXml(s.stays.flatMap((l) => l.edgeIds).join(' '));
    let open: string;
    if (state && kind![1] === 'vs') {
      found.states.push(state.path);
      open = `<g id="state-${slug(state.path)}" class="node state" data-state="${escapeXml(state.path)}" data-stays="${stays(state)}">`;
      segment = retitle(segment, state.description ? `${state.path}: ${state.description}` : state.path);
    } else if (state && kind![1] === 'vh') {
      open = `<g id="header-${slug(state.path)}" class="node state-header" data-state-header="${escapeXml(state.path)}" data-stays="${stays(state)}">`;
      segment = retitle(segment, `${state.path}: its sub-states' common edges start and end here`);
    } else if (state && kind![1] === 'vc') {
      found.states.push(state.path);
      open = `<g id="state-${slug(state.path)}" class="cluster state composite" data-state="${escapeXml(state.path)}">`;
      segment = retitle(segment, state.description ? `${state.path}: ${state.description}` : state.path);
    } else if (kind && kind[1] === 'vg') {
      open = `<g id="group-${kind[2]}" class="cluster group">`;
    } else if (kind && kind[1] === 've' && view.edges[Number(kind[2])]) {
      const e = view.edges[Number(kind[2])]!;
      found.edges.push(e.id);
      const classes = ['edge', 'transition', 'view-edge', ...(e.change ? ['diff', DIFF_CLASS[e.change]] : [])];
      open =
        `<g id="edge-${slug(e.id)}" class="${classes.join(' ')}" data-edge="${escapeXml(e.id)}" data-edges="${escapeXml(e.edgeIds.join(' '))}"` +
        ` data-from="${escapeXml(e.from)}" data-to="${escapeXml(e.to)}" data-verbs="${escapeXml(e.verbs.join(' '))}" data-rules="${escapeXml(e.rules.join(' '))}">`;
      segment = retitle(segment, `${e.from} → ${e.to}: ${e.lines.map((l) => l.text).join('; ')}`);
    } else if (kind && kind[1] === 'vi') {
      open = `<g id="layout-${kind[2]!.slice(1)}" class="edge layout" aria-hidden="true">`;
    } else {
      const title = decodeEntities(/^\s*<title>([^<]*)<\/title>/.exec(segment)?.[1] ?? '');
      open = title === '[*]' ? '<g id="initial" class="node initial">' : `<g id="other-${slug(id)}" class="${m[2]} other">`;
    }
    out += open + segment;
  });
  out += body.slice(last);
  const title = options.title ?? view.title;
  out = out.replace(/<svg\b([^>]*)>/, (_w, attrs: string) => `<svg${attrs} class="machine-diagram view-${view.view}" role="img" aria-label="${escapeXml(title)}">`);
  out = out.replace(/ id="([^"]+)"/g, (_w, id: string) => ` id="${prefix}${id}"`);
  return { svg: out, ...found };
}
