// The views of the diagram (services/diagramViews.ts), checked against the machine's own edges: the overview draws
// each machine edge exactly once (on an edge or in a box) with one edge per ordered pair of states; a focus shows
// exactly the edges it names; a diff view tags exactly the changed edges.
import { describe, expect, it } from 'vitest';

import { machineEdges, machineStates, type MachineEdge } from '../machines/machineGraph';
import { diagramModel } from '../services/diagram';
import { renderViewDot } from '../services/diagramViewRender';
import { commonRules, diffView, focusedEdges, focusView, overviewView, parseFocus, type ViewGraph, type ViewState } from '../services/diagramViews';

const model = diagramModel();
const edges = machineEdges();
const flat = (states: readonly ViewState[]): ViewState[] => states.flatMap((s) => [s, ...flat(s.children)]);
const inside = (path: string, state: string) => path === state || path.startsWith(`${state}.`);
const shownIds = (v: ViewGraph) => [...v.edges.flatMap((e) => e.edgeIds), ...flat(v.states).flatMap((s) => s.stays.flatMap((l) => l.edgeIds))];

describe('the overview', () => {
  const view = overviewView(model);

  it('has one edge per ordered pair of states', () => {
    const pairs = view.edges.map((e) => `${e.from} -> ${e.to}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    expect(view.edges.length).toBeLessThan(edges.length / 2);
    for (const e of view.edges) expect(e.from).not.toBe(e.to);
  });

  it('draws every machine edge exactly once: on an edge, or in the box of the state it keeps', () => {
    expect(shownIds(view).sort()).toEqual(edges.map((e) => e.id).sort());
    for (const s of flat(view.states))
      for (const line of s.stays)
        for (const id of line.edgeIds) {
          const e = edges.find((x) => x.id === id)!;
          expect(e.from, id).toBe(s.path);
          // In the box: it keeps the state, or (a composite's) it moves between the composite's own sub-states.
          expect(e.targetless || inside(e.to, s.path), id).toBe(true);
        }
  });

  it('joins a composite by one edge only where every sub-state is reached (or left) by the same verbs', () => {
    const states = machineStates();
    for (const e of view.edges) {
      const members = e.edgeIds.map((id) => edges.find((x) => x.id === id)!);
      for (const m of members) {
        expect(inside(m.from, e.from), m.id).toBe(true);
        expect(inside(m.to, e.to), m.id).toBe(true);
      }
      const to = states.find((s) => s.path === e.to)!;
      if (to.type === 'compound' && members.every((m) => m.to !== e.to)) {
        for (const child of to.children) for (const verb of e.verbs) expect(members.some((m) => m.to === child && m.event === verb), `${e.id} ${verb} ${child}`).toBe(true);
      }
    }
  });

  it('names the guards most edges carry once, in the legend, and on no label', () => {
    const onHalf = [...new Set(edges.flatMap((e) => e.rules))].filter((r) => edges.filter((e) => e.rules.includes(r)).length * 2 >= edges.length);
    expect(view.legend.common.map((c) => c.id).sort()).toEqual(onHalf.sort());
    expect(onHalf.length).toBeGreaterThan(0);
    for (const c of commonRules(model)) {
      expect(c.except.sort()).toEqual([...new Set(edges.filter((e) => !e.rules.includes(c.id)).map((e) => e.event))].sort());
    }
    const labels = [...view.edges.flatMap((e) => e.lines), ...flat(view.states).flatMap((s) => s.stays)].map((l) => l.text);
    for (const text of labels) for (const id of onHalf) expect(text).not.toContain(id);
    // Each verb's other guards, once, as its edges carry them (in the order they are checked).
    for (const v of view.legend.verbs) {
      const first = edges.find((e) => e.event === v.verb)!;
      expect(v.rules).toEqual(first.rules.filter((r) => !onHalf.includes(r)));
    }
  });

  it('puts the states of one machine group in one DOT cluster, and every view edge in the DOT', () => {
    const dot = renderViewDot(view, { model });
    const groups = [...new Set(machineStates().flatMap((s) => (s.group ? [s.group] : [])))];
    expect(groups.length).toBeGreaterThan(0);
    for (const g of groups) expect(dot).toContain(`label="${g}"`);
    view.edges.forEach((_, i) => expect(dot).toContain(`id="ve${i}"`));
    expect((dot.match(/\{/g) ?? []).length).toBe((dot.match(/\}/g) ?? []).length);
  });
});

describe('a focus', () => {
  const exits = (state: string): MachineEdge[] => {
    const ancestors = state.split('.').map((_, i, p) => p.slice(0, i + 1).join('.'));
    return edges.filter((e) => (inside(e.from, state) || ancestors.includes(e.from)) && !e.targetless && !inside(e.to, state));
  };

  it('on a state shows exactly its exits (its own, its sub-states’ and its ancestors’), with every guard', () => {
    for (const s of machineStates()) {
      const view = focusView(model, { state: s.path });
      expect(view.edges.flatMap((e) => e.edgeIds).sort(), s.path).toEqual(exits(s.path).map((e) => e.id).sort());
      for (const e of view.edges)
        for (const line of e.lines) {
          const m = edges.find((x) => x.id === line.edgeIds[0])!;
          expect(line.text).toBe(`${m.event} [${m.rules.join(', ')}]`);
        }
    }
  });

  it('on a verb or a rule shows exactly its edges', () => {
    for (const verb of ['reboot', 'destroy', 'snapshot-delete']) {
      const view = focusView(model, { verb });
      expect(shownIds(view).sort()).toEqual(edges.filter((e) => e.event === verb).map((e) => e.id).sort());
    }
    const view = focusView(model, { rule: 'MIR-END' });
    expect(shownIds(view).sort()).toEqual(edges.filter((e) => e.rules.includes('MIR-END')).map((e) => e.id).sort());
    expect(focusedEdges(model, { rule: 'MIR-END' }).length).toBeGreaterThan(0);
  });

  it('reads what to focus on, and says what it does not know', () => {
    expect(parseFocus(model, 'mirroring')).toEqual({ state: 'mirroring' });
    expect(parseFocus(model, 'blockjob')).toEqual({ verb: 'blockjob' });
    expect(parseFocus(model, 'UND-SNAPSHOTS')).toEqual({ rule: 'UND-SNAPSHOTS' });
    expect(() => parseFocus(model, 'nowhere')).toThrow(/nothing to focus on called 'nowhere'/);
    const effect = model.nonEdgeRules[0]!;
    expect(() => parseFocus(model, effect)).toThrow(new RegExp(`rule ${effect} guards no edge`));
  });
});

describe('a diff view', () => {
  it('tags exactly the added, removed and re-guarded edges, and draws each apart', () => {
    const older = diagramModel();
    const added = older.edges.find((e) => e.id === 'inactive:start:0')!;
    older.edges = older.edges.filter((e) => e !== added);
    const reguarded = older.edges.find((e) => e.from === 'inactive' && e.event === 'undefine')!;
    reguarded.rules = reguarded.rules.slice(1);
    older.edges.push({ id: 'gone:resurrect:0', from: 'inactive', to: 'gone', event: 'resurrect', rules: ['DOM-NOTFOUND'], targetless: false, label: '' });
    const view = diffView(older, model);
    const tagged = (change: string) => view.edges.filter((e) => e.change === change).flatMap((e) => e.edgeIds);
    expect(tagged('added')).toEqual([added.id]);
    expect(tagged('reguarded')).toEqual([reguarded.id]);
    expect(tagged('removed')).toEqual(['removed:gone:resurrect:0']);
    expect(view.legend.changes).toEqual([
      { change: 'added', count: 1 },
      { change: 'removed', count: 1 },
      { change: 'reguarded', count: 1 },
    ]);
    // Every edge of the newer machine is drawn once, the removed one besides; unchanged pairs stay one edge each.
    expect(shownIds(view).sort()).toEqual([...edges.map((e) => e.id), 'removed:gone:resurrect:0'].sort());
    const plain = view.edges.filter((e) => !e.change).map((e) => `${e.from} -> ${e.to}`);
    expect(new Set(plain).size).toBe(plain.length);
  });
});
