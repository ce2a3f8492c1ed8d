// Makes the Graphviz SVG of the machine diagram addressable from a page: every state node, composite state
// (cluster) and edge gets an id, classes and data attributes, so the UI can highlight the current state, the edge a
// command took, the edges a rule refused, and the edges a diff added, removed or re-guarded.
//
// Graphviz writes one top-level group per node, edge and cluster:
//
//   <g id="node5" class="node"><title>running.paused</title> …
//   <g id="clust1" class="cluster"><title>cluster_running</title> …
//   <g id="edge7" class="edge"><title>inactive&#45;&gt;running.running</title><g id="a_edge7"><a xlink:title="inactive:start:0 (outcome running.running)"> …
//
// Node titles are state paths (`running.*` is a composite's anchor point); an edge is known by its tooltip, which
// services/diagram.ts sets to the machine edge id (`from:event:index`), so two edges between the same states on
// different events stay distinct.
import { slug, type DiagramEdge, type DiagramJson, type DiagramState } from '../diagram';

export interface AnnotateOptions {
  /** Prefixed to every id in the SVG, so that two diagrams can live in one page. Default `m-`. */
  idPrefix?: string;
  /** Extra classes per machine edge id (e.g. `diff-added`). */
  edgeClasses?: ReadonlyMap<string, string[]>;
  /** Accessible name of the diagram. */
  title?: string;
}

export interface AnnotatedSvg {
  svg: string;
  /** State paths found as nodes or clusters. */
  states: string[];
  /** Machine edge ids found. */
  edges: string[];
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (whole, code: string) => {
    if (code.startsWith('#x')) return String.fromCodePoint(parseInt(code.slice(2), 16));
    if (code.startsWith('#')) return String.fromCodePoint(parseInt(code.slice(1), 10));
    return ENTITIES[code] ?? whole;
  });
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export { slug };

function flatten(states: readonly DiagramState[]): DiagramState[] {
  return states.flatMap((s) => [s, ...flatten(s.children)]);
}

const GROUP = /<g id="(node|edge|clust)(\d+)" class="(node|edge|cluster)">/g;

/**
 * Annotates a Graphviz SVG rendered from `model` (renderDiagram('svg', { model })). Returns the SVG without its
 * XML prolog and doctype, ready to be inlined into HTML or served as image/svg+xml.
 */
export function annotateDiagramSvg(svg: string, model: DiagramJson, options: AnnotateOptions = {}): AnnotatedSvg {
  const prefix = options.idPrefix ?? 'm-';
  const allStates = flatten(model.states);
  const statePaths = new Set(allStates.map((s) => s.path));
  const descriptions = new Map(allStates.filter((s) => s.description).map((s) => [s.path, s.description!]));
  const edgesById = new Map<string, DiagramEdge>(model.edges.map((e) => [e.id, e]));
  const foundStates: string[] = [];
  const foundEdges: string[] = [];

  // Drop the prolog, the doctype and Graphviz's comments (they repeat titles and may hold `--`).
  let body = svg.slice(Math.max(0, svg.indexOf('<svg')));
  body = body.replace(/<!--[\s\S]*?-->\n?/g, '');

  const matches = [...body.matchAll(GROUP)];
  let out = '';
  let last = 0;
  matches.forEach((m, i) => {
    const start = m.index;
    const end = i + 1 < matches.length ? matches[i + 1]!.index : body.length;
    const segment = body.slice(start + m[0].length, end);
    out += body.slice(last, start);
    last = start + m[0].length;
    const title = decodeEntities(/^\s*<title>([^<]*)<\/title>/.exec(segment)?.[1] ?? '');
    const kind = m[1];
    if (kind === 'node') {
      if (statePaths.has(title)) {
        foundStates.push(title);
        out += `<g id="state-${slug(title)}" class="node state" data-state="${escapeXml(title)}">`;
      } else if (title.endsWith('.*') && statePaths.has(title.slice(0, -2))) {
        out += `<g id="anchor-${slug(title.slice(0, -2))}" class="node anchor" data-anchor-of="${escapeXml(title.slice(0, -2))}">`;
      } else if (title === '[*]') {
        out += `<g id="initial" class="node initial">`;
      } else {
        out += `<g id="node-${slug(title)}" class="node other">`;
      }
    } else if (kind === 'clust') {
      const path = title.startsWith('cluster_') ? title.slice('cluster_'.length) : '';
      if (statePaths.has(path)) {
        foundStates.push(path);
        out += `<g id="state-${slug(path)}" class="cluster state composite" data-state="${escapeXml(path)}">`;
        // `cluster_running` is Graphviz's name; the reader wants the state and what it means.
        const described = descriptions.get(path);
        out += segment.replace(/^(\s*)<title>[^<]*<\/title>/, (_w, space: string) => `${space}<title>${escapeXml(described ? `${path}: ${described}` : path)}</title>`);
        last = end;
      } else {
        out += `<g id="cluster-${slug(path || title)}" class="cluster other">`;
      }
    } else {
      const tooltip = /xlink:title="([^"]*)"/.exec(segment)?.[1];
      const edgeId = tooltip === undefined ? undefined : decodeEntities(tooltip).split(' ')[0];
      const edge = edgeId === undefined ? undefined : edgesById.get(edgeId);
      if (edge) {
        foundEdges.push(edge.id);
        const classes = ['edge', 'transition', ...(edge.targetless ? ['targetless'] : []), ...(options.edgeClasses?.get(edge.id) ?? [])];
        out +=
          `<g id="edge-${slug(edge.id)}" class="${classes.join(' ')}" data-edge="${escapeXml(edge.id)}" data-edges="${escapeXml(edge.id)}" data-from="${escapeXml(edge.from)}"` +
          ` data-to="${escapeXml(edge.to)}" data-event="${escapeXml(edge.event)}" data-rules="${escapeXml(edge.rules.join(' '))}">`;
        // A readable title for the whole edge (Graphviz's is `tail->head`, which repeats for parallel edges).
        const readable = `${edge.label}: ${edge.from} → ${edge.targetless ? `${edge.from} (stays)` : edge.to}`;
        out += segment.replace(/^(\s*)<title>[^<]*<\/title>/, (_w, space: string) => `${space}<title>${escapeXml(readable)}</title>`);
        last = end;
      } else {
        out += `<g id="edge-other-${m[2]}" class="edge other">`;
      }
    }
  });
  out += body.slice(last);

  // Root element: accessible name, a class for the page's CSS; Graphviz's pt size stays (the page scales it).
  const title = options.title ?? 'State diagram of the domain machine';
  out = out.replace(/<svg\b([^>]*)>/, (_w, attrs: string) => `<svg${attrs} class="machine-diagram" role="img" aria-label="${escapeXml(title)}">`);
  // Prefix every id so that several diagrams can share a page.
  out = out.replace(/ id="([^"]+)"/g, (_w, id: string) => ` id="${prefix}${id}"`);
  return { svg: out, states: foundStates, edges: foundEdges };
}
