// The domain machine (built from the verb table, machines/verbs.ts) decides each command through XState's pure
// transition(); replaying the facts it recorded must give the live state: the machine's own state value and its
// context. decide(), the fast reading of the same table, must give the same decision. A second property: every
// edge of the machine is taken, from each sub-state of a compound source, so none is dead.
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { createActor, type Actor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { CommandSchema, VERBS, type Command, type CommandInput } from '../../machines/commands';
import { decide } from '../../machines/decide';
import {
  commandEvent,
  domainMachine,
  domainSnapshot,
  initialDomainSnapshot,
  LEAF_STATES,
  machineStep,
  runnable,
  type DomainMachineEmitted,
  type DomainMachineSnapshot,
  type LeafState,
} from '../../machines/domainMachine';
import type { Fact } from '../../machines/events';
import { evolveAll } from '../../machines/evolve';
import { GUARDS, type HostView } from '../../machines/guards';
import { edgeTaken, machineEdges, machineStates } from '../../machines/machineGraph';
import { initialDomainState } from '../../machines/model';
import { GUARDS_BY_VERB } from '../../machines/verbs';

const HOST = 'local';
const NAME = 'dom1';
/** Another domain on the host holds UUID `u3` (DEF-NAME). */
const hostView: HostView = { domainNameByUuid: (_host, uuid) => (uuid === 'u3' ? 'other' : undefined) };

// ---------------------------------------------------------------------------------------------------
// Commands: one domain, random verbs and flags, a small snapshot-name set, two or three disks.

const flag = fc.constantFrom(false, false, false, true);
const disksArb = fc.constantFrom(
  [{ target: 'vda', source: '/img/vda.qcow2' }],
  [
    { target: 'vda', source: '/img/vda.qcow2' },
    { target: 'vdb', source: '/img/vdb.qcow2' },
  ],
  [
    { target: 'vda', source: '/img/vda.qcow2' },
    { target: 'vdb', source: '/img/vdb.raw', shareable: true, storage: 'unmanaged' as const },
    { target: 'hdc', device: 'cdrom' as const, readonly: true, source: '/iso/x.iso' },
  ],
);
const configArb = fc.record({
  name: fc.constant(NAME),
  uuid: fc.constantFrom('u1', 'u1', 'u1', 'u1', 'u2', 'u3'),
  disks: disksArb,
  hostdevs: fc.constantFrom([], [], [{ type: 'usb' }], [{ type: 'pci' }]),
});
const snapName = fc.constantFrom('s1', 's2', 's3');
const diskPath = fc.constantFrom('vda', 'vda', 'vdb', '/img/vda.qcow2', 'nope');
const snapshotDefArb = fc.record({
  name: fc.constantFrom<string | undefined>('s1', 's2', 's3', 's1', 's2', 's3', undefined, '.bad', 'a/b'),
  parent: fc.constantFrom<string | undefined>(undefined, 's1', 's2', 's3'),
  state: fc.constantFrom<'running' | 'paused' | 'shutoff' | 'disk-snapshot' | undefined>(undefined, 'running', 'paused', 'shutoff', 'disk-snapshot'),
  disks: fc.constantFrom(
    [],
    [],
    [],
    [{ target: 'vda', snapshot: 'external' as const, mirror: '/mirror/vda' }],
    [{ target: 'vdb', snapshot: 'external' as const, mirror: '/mirror/vdb' }],
    [{ target: 'vdb', snapshot: 'external' as const }],
    [{ target: 'vda', snapshot: 'external' as const, file: '/snap/vda.s' }],
  ),
});
const d = { domain: NAME };

/** A command without its metadata (added in order once the sequence is drawn). */
type Body = Record<string, unknown> & { verb: string };

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ verb: fc.constant('define'), config: configArb }) },
  { weight: 3, arbitrary: fc.record({ verb: fc.constant('create'), config: configArb, paused: flag, autodestroy: flag }) },
  { weight: 5, arbitrary: fc.record({ verb: fc.constant('start'), ...d0(), paused: flag, autodestroy: flag, forceBoot: flag }) },
  { weight: 4, arbitrary: fc.record({ verb: fc.constantFrom('shutdown', 'destroy', 'suspend', 'resume', 'reboot', 'managedsave-remove'), ...d0() }) },
  { weight: 3, arbitrary: fc.record({ verb: fc.constant('managedsave'), ...d0(), running: flag, paused: flag }) },
  { weight: 2, arbitrary: fc.record({ verb: fc.constant('save'), ...d0(), file: fc.constant('/save/dom1'), running: flag, paused: flag }) },
  {
    weight: 3,
    arbitrary: fc.record(
      {
        verb: fc.constant('undefine'),
        ...d0(),
        managedSave: fc.boolean(),
        snapshotsMetadata: fc.boolean(),
        storage: fc.constantFrom(undefined, undefined, undefined, ['vda'], ['vdb', '/iso/x.iso'], ['nope']),
        removeAllStorage: flag,
        wipeStorage: flag,
      },
      { requiredKeys: ['verb', 'domain', 'managedSave', 'snapshotsMetadata', 'removeAllStorage', 'wipeStorage'] },
    ),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      verb: fc.constant('snapshot-create'),
      ...d0(),
      snapshot: snapshotDefArb,
      redefine: flag,
      current: flag,
      noMetadata: flag,
      halt: flag,
      diskOnly: flag,
      quiesce: fc.constantFrom(false, false, false, false, true),
      atomic: flag,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      verb: fc.constant('snapshot-delete'),
      ...d0(),
      snapshotname: snapName,
      children: flag,
      childrenOnly: flag,
      metadata: flag,
      mirrorPivot: flag,
      mirrorAbort: flag,
    }),
  },
  { weight: 3, arbitrary: fc.record({ verb: fc.constant('snapshot-revert'), ...d0(), snapshotname: snapName, running: flag, paused: flag, force: flag }) },
  {
    weight: 3,
    arbitrary: fc.record({
      verb: fc.constant('blockcopy'),
      ...d0(),
      path: diskPath,
      dest: fc.constantFrom('/copy/dest.qcow2', '/copy/dest.qcow2', 'relative.qcow2'),
      transientJob: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ verb: fc.constant('blockjob'), ...d0(), path: diskPath, pivot: fc.boolean(), abort: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ verb: fc.constant('blockpull'), ...d0(), path: diskPath }) },
  {
    weight: 3,
    arbitrary: fc.record({
      verb: fc.constant('migrate'),
      ...d0(),
      desthost: fc.constantFrom('dst', 'dst', 'dst', HOST),
      offline: flag,
      persistent: flag,
      undefinesource: flag,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record(
      {
        verb: fc.constant('migrate-phase'),
        ...d0(),
        phase: fc.constantFrom('prepare', 'perform', 'finish', 'confirm'),
        failed: fc.constantFrom(undefined, undefined, undefined, undefined, 'connection lost'),
      },
      { requiredKeys: ['verb', 'domain', 'phase'] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      verb: fc.constant('migrate-incoming'),
      source: fc.constant('src'),
      config: configArb,
      persistent: fc.boolean(),
      active: fc.boolean(),
      paused: flag,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record(
      {
        verb: fc.constant('guest-event'),
        ...d0(),
        event: fc.constantFrom('poweroff', 'reboot', 'crash', 'blockjob-ready', 'blockjob-ready'),
        disk: fc.constantFrom(undefined, 'vda', 'vdb'),
      },
      { requiredKeys: ['verb', 'domain', 'event'] },
    ),
  },
);

function d0() {
  return { domain: fc.constant(NAME) };
}

/** Multi-step scenarios a uniform draw rarely completes: a whole migration, a block copy, a mirrored snapshot. */
const scenarioArb: fc.Arbitrary<Body[]> = fc.oneof(
  fc
    .record({
      offline: fc.boolean(),
      persistent: fc.constantFrom(true, true, false),
      undefinesource: fc.boolean(),
      upTo: fc.integer({ min: 1, max: 5 }),
      fail: fc.constantFrom(undefined, undefined, 'prepare', 'perform', 'finish', 'confirm'),
      /** Something that happens to the domain while the job holds it. */
      meanwhile: fc.option(
        fc.oneof(
          fc.constant<Body>({ verb: 'destroy', ...d }),
          fc.constant<Body>({ verb: 'destroy', ...d }),
          fc.record({ verb: fc.constant('guest-event'), ...d0(), event: fc.constantFrom('poweroff', 'crash', 'reboot') }),
          fc.record({ verb: fc.constant('define'), config: configArb }),
          fc.record({ verb: fc.constant('migrate-incoming'), source: fc.constant('src'), config: configArb, persistent: fc.boolean(), active: fc.boolean(), paused: flag }),
        ),
        { freq: 3 },
      ),
    })
    .map(({ offline, persistent, undefinesource, upTo, fail, meanwhile }) => [
      { verb: 'migrate', ...d, desthost: 'dst', offline, persistent, undefinesource },
      ...(meanwhile ? [meanwhile] : []),
      ...(['prepare', 'perform', 'finish', 'confirm'] as const)
        .slice(0, upTo - 1)
        .map((phase) => ({ verb: 'migrate-phase', ...d, phase, ...(phase === fail ? { failed: 'link down' } : {}) })),
    ]),
  fc
    .record({ disk: fc.constantFrom('vda', 'vdb'), pivot: fc.boolean(), ready: fc.boolean(), transientJob: fc.boolean() })
    .map(({ disk, pivot, ready, transientJob }) => [
      { verb: 'blockcopy', ...d, path: disk, dest: `/copy/${disk}`, transientJob },
      ...(ready ? [{ verb: 'guest-event', ...d, event: 'blockjob-ready', disk }] : []),
      { verb: 'blockjob', ...d, path: disk, pivot, abort: !pivot },
    ]),
  fc
    .record({ disk: fc.constantFrom('vda', 'vdb'), name: snapName, pivot: fc.boolean(), ready: fc.boolean() })
    .map(({ disk, name, pivot, ready }) => [
      {
        verb: 'snapshot-create',
        ...d,
        diskOnly: true,
        snapshot: { name, disks: [{ target: disk, snapshot: 'external', mirror: `/mirror/${disk}` }] },
      },
      ...(ready ? [{ verb: 'guest-event', ...d, event: 'blockjob-ready', disk }] : []),
      { verb: 'snapshot-delete', ...d, snapshotname: name, mirrorPivot: pivot, mirrorAbort: !pivot },
    ]),
  // A disk-only snapshot of the other disk while one is copied (SC-BUSY-DISK checks only the disks it takes).
  fc.record({ name: snapName, halt: fc.boolean() }).map(({ name, halt }) => [
    { verb: 'blockcopy', ...d, path: 'vda', dest: '/copy/vda', transientJob: true },
    { verb: 'snapshot-create', ...d, halt, diskOnly: true, snapshot: { name, disks: [{ target: 'vdb', snapshot: 'external' }] } },
  ]),
  // An incoming domain that is neither running nor persistent, then whatever starts it.
  fc
    .record({
      incoming: fc.record({ verb: fc.constant('migrate-incoming'), source: fc.constant('src'), config: configArb, persistent: flag, active: flag, paused: flag }),
      next: fc.oneof(
        fc.record({ verb: fc.constant('start'), ...d0(), paused: fc.boolean() }),
        fc.record({ verb: fc.constant('create'), config: configArb, paused: fc.boolean() }),
        fc.record({ verb: fc.constant('migrate-incoming'), source: fc.constant('src'), config: configArb, persistent: flag, active: fc.boolean(), paused: fc.boolean() }),
        fc.record({ name: snapName, running: fc.boolean() }).map(({ name, running }) => ({ verb: 'snapshot-revert', ...d, snapshotname: name, running, paused: !running })),
      ),
      name: snapName,
    })
    .map(({ incoming, next, name }) => [
      incoming,
      ...(next.verb === 'snapshot-revert' ? [{ verb: 'snapshot-create', ...d, snapshot: { name } }] : []),
      next.verb === 'snapshot-revert' ? { ...next, snapshotname: name } : next,
    ]),
  // A snapshot, a change of state, then back to the snapshot (or rid of it).
  fc
    .record({
      name: snapName,
      halt: flag,
      between: fc.constantFrom<Body[]>([], [{ verb: 'destroy', ...d }], [{ verb: 'suspend', ...d }], [{ verb: 'managedsave', ...d }], [{ verb: 'start', ...d }]),
      revert: fc.record({ running: flag, paused: flag, force: flag }),
      remove: fc.record({ children: flag, metadata: flag }),
      deleteIt: fc.boolean(),
    })
    .map(({ name, halt, between, revert, remove, deleteIt }) => [
      { verb: 'snapshot-create', ...d, halt, snapshot: { name } },
      ...between,
      deleteIt ? { verb: 'snapshot-delete', ...d, snapshotname: name, ...remove } : { verb: 'snapshot-revert', ...d, snapshotname: name, ...revert },
    ]),
);

/** Most sequences start with the domain's birth: a command on no domain is refused and teaches little. */
const birthArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ verb: fc.constant('define'), config: configArb }) },
  { weight: 4, arbitrary: fc.record({ verb: fc.constant('create'), config: configArb, paused: flag, autodestroy: flag }) },
  {
    weight: 2,
    arbitrary: fc.record({ verb: fc.constant('migrate-incoming'), source: fc.constant('src'), config: configArb, persistent: fc.boolean(), active: fc.boolean(), paused: fc.boolean() }),
  },
);

const commandsArb: fc.Arbitrary<Command[]> = fc
  .tuple(
    fc.oneof({ weight: 9, arbitrary: birthArb.map((b) => [b]) }, { weight: 1, arbitrary: fc.constant([]) }),
    fc.array(fc.oneof({ weight: 12, arbitrary: bodyArb.map((b) => [b]) }, { weight: 1, arbitrary: scenarioArb }), { minLength: 1, maxLength: 40 }),
  )
  .map(([birth, steps]) => [...birth, ...steps.flat()].map((body, i) => withMeta(body, i)));

// ---------------------------------------------------------------------------------------------------
// The lockstep drive.

/**
 * Runs for the edge coverage, with a fixed seed: the same runs every time. COVERAGE_RUNS=n changes how many;
 * COVERAGE_COUNTS=1 prints how often each edge was taken (from its least visited sub-state).
 */
const COVERAGE_RUNS = Number(process.env.COVERAGE_RUNS ?? 1200);

/** Edge id → the leaf states it was taken from, and how often. */
type Coverage = Map<string, Map<LeafState, number>>;

/** The machine's own state value as a leaf path (`{ running: 'paused' }` is running.paused). */
function leafOf(snapshot: DomainMachineSnapshot): LeafState {
  const v = snapshot.value as string | Record<string, string>;
  const leaf = typeof v === 'string' ? v : Object.entries(v).map(([top, sub]) => `${top}.${sub}`)[0]!;
  if (!(LEAF_STATES as readonly string[]).includes(leaf)) expect.fail(`the machine is in ${JSON.stringify(v)}, which is no leaf state`);
  return leaf as LeafState;
}

function describeStep(c: Command, from: LeafState): string {
  return `${c.verb} from ${from}: ${JSON.stringify({ ...c, meta: undefined })}`;
}

/**
 * One domain driven through the machine, command by command, with every fact it recorded. After each command the
 * facts, replayed from the start with evolve, must give the machine's context, and the state a checkpoint of that
 * context revives to must be the state the machine reached by its own edges.
 */
class Live {
  snapshot = initialDomainSnapshot(HOST, NAME);
  private readonly facts: Fact[] = [];
  private replayed = initialDomainState(HOST, NAME);

  constructor(private readonly coverage?: Coverage) {}

  private actor: Actor<typeof domainMachine> | undefined;
  private emitted: DomainMachineEmitted[] = [];

  /**
   * machineStep through one running actor per domain life instead of XState's `transition()`, which builds an
   * inert actor on every call (about 0.3 ms here): the coverage runs send some 50,000 commands.
   */
  private actorStep(before: DomainMachineSnapshot, c: Command): ReturnType<typeof machineStep> {
    if (!this.actor || before.status === 'done') {
      this.actor = createActor(domainMachine, { snapshot: runnable(before), input: { host: HOST, name: NAME } });
      this.actor.on('*', (e) => this.emitted.push(e));
      this.actor.start();
    }
    this.emitted = [];
    this.actor.send(commandEvent(c, { host: hostView }));
    const [e] = this.emitted;
    if (!e) expect.fail(`no decision from the machine: ${describeStep(c, leafOf(before))}`);
    if (e.type === 'accepted') return { snapshot: this.actor.getSnapshot(), decision: { ok: true, facts: e.facts } };
    return { snapshot: before.status === 'done' ? before : this.actor.getSnapshot(), decision: { ok: false, refusal: e.refusal } };
  }

  get context() {
    return this.snapshot.context;
  }

  apply(c: Command): void {
    const before = this.snapshot;
    const from = leafOf(before);
    const edge = edgeTaken(runnable(before), commandEvent(c, { host: hostView }));
    const { snapshot: after, decision } = this.coverage ? this.actorStep(before, c) : machineStep(before, c, { host: hostView });
    this.snapshot = after;
    // The fast path reads the same table: the same decision, refusal or facts.
    expect(decide(before.context, c, { host: hostView }), `decide() and the machine on ${describeStep(c, from)}`).toEqual(decision);

    if (!decision.ok) {
      // Refused: no accepting edge is taken, nothing changes.
      if (edge !== undefined) expect.fail(`refused by ${decision.refusal.rule}, yet edge ${edge} was taken: ${describeStep(c, from)}`);
      if (!isDeepStrictEqual(after.value, before.value) || after.context !== before.context)
        expect.fail(`refused by ${decision.refusal.rule}, yet the machine moved to ${JSON.stringify(after.value)}: ${describeStep(c, from)}`);
      return;
    }

    if (edge === undefined) expect.fail(`accepted, but no accepting edge was taken: ${describeStep(c, from)}`);
    this.facts.push(...decision.facts);
    // The coverage runs (many, long) fold only the new facts onto the last replayed state: the same fold, faster.
    const replayed = this.coverage ? evolveAll(this.replayed, decision.facts) : evolveAll(initialDomainState(HOST, NAME), this.facts);
    this.replayed = replayed;
    if (!isDeepStrictEqual(after.context, replayed)) expect(after.context, `context after ${describeStep(c, from)}`).toEqual(replayed);
    const revived = domainSnapshot(replayed);
    if (!isDeepStrictEqual(after.value, revived.value))
      expect.fail(`the machine took edge ${edge} to ${JSON.stringify(after.value)}, the replayed facts say ${JSON.stringify(revived.value)}: ${describeStep(c, from)}`);
    expect(after.status).toBe(revived.status);
    expect(after.status).toBe(leafOf(after) === 'gone' ? 'done' : 'active');
    if (this.coverage) {
      const leaves = this.coverage.get(edge) ?? new Map<LeafState, number>();
      const leaf = from === 'gone' ? 'undefined' : from;
      leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1);
      this.coverage.set(edge, leaves);
    }
  }
}

function withMeta(body: Body, i: number): Command {
  return CommandSchema.parse({
    ...body,
    meta: { commandId: `c${i}`, time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString() },
  } as CommandInput);
}

/**
 * Runs for the edge coverage: from a long pool of random commands, only those the fold accepts in the state
 * reached so far go to the machine (a refused command teaches nothing about edges), so every step moves the
 * domain somewhere and runs reach deep states: a migration's phases, for one, come in order by themselves.
 */
const poolArb: fc.Arbitrary<Body[]> = fc
  .tuple(birthArb, fc.array(fc.oneof({ weight: 12, arbitrary: bodyArb.map((b) => [b]) }, { weight: 1, arbitrary: scenarioArb }), { minLength: 120, maxLength: 120 }))
  .map(([birth, steps]) => [birth, ...steps.flat()]);

function driveAccepted(pool: readonly Body[], coverage: Coverage, maxSteps = 40): void {
  const live = new Live(coverage);
  let n = 0;
  for (const body of pool) {
    const c = withMeta(body, n);
    if (!decide(live.context, c, { host: hostView }).ok) continue;
    live.apply(c);
    if (++n >= maxSteps) return;
  }
}

// ---------------------------------------------------------------------------------------------------

describe('the domain machine decides, and its recorded facts replay to its live state', () => {
  it('over random command sequences: replayed facts give its context and state value; decide() agrees; a refusal moves nothing', () => {
    fc.assert(
      fc.property(commandsArb, (commands) => {
        const live = new Live();
        for (const c of commands) live.apply(c);
      }),
      { numRuns: 400 },
    );
  });

  it('takes every edge of the machine, and every edge of a compound state from each of its sub-states', () => {
    const coverage: Coverage = new Map();
    for (const pool of fc.sample(poolArb, { numRuns: COVERAGE_RUNS, seed: 20250101 })) driveAccepted(pool, coverage);

    const states = machineStates();
    const leavesUnder = (path: string): string[] => {
      const node = states.find((s) => s.path === path)!;
      return node.children.length === 0 ? [path] : node.children.flatMap(leavesUnder);
    };
    const dead: string[] = [];
    const partial: string[] = [];
    for (const e of machineEdges()) {
      const from = coverage.get(e.id);
      const label = `${e.from} --${e.event}${e.outcome ? ` [${e.outcome}]` : ''}--> ${e.to}`;
      if (!from) {
        dead.push(label);
        continue;
      }
      const missing = leavesUnder(e.from).filter((leaf) => !from.has(leaf as LeafState));
      if (process.env.COVERAGE_COUNTS) console.log(Math.min(...leavesUnder(e.from).map((l) => from.get(l as LeafState) ?? 0)), label);
      if (missing.length > 0) partial.push(`${label} (never from ${missing.join(', ')})`);
    }
    expect(dead, 'edges never taken (dead, or the generator never reaches them)').toEqual([]);
    expect(partial, 'edges of a compound state never taken from some sub-state: move them to the sub-states that take them').toEqual([]);
  });
});

describe('domainMachine definition', () => {
  const edges = machineEdges();

  it("guards each accepting edge with its verb's guards from verbs.ts, in order, by rule id", () => {
    for (const e of edges) expect(e.rules, e.id).toEqual(GUARDS_BY_VERB[e.event]);
  });

  it('has an edge for every verb, and names an outcome exactly where a verb has several edges from one state', () => {
    expect(new Set(edges.map((e) => e.event))).toEqual(new Set(VERBS));
    const byFromEvent = new Map<string, typeof edges>();
    for (const e of edges) byFromEvent.set(`${e.from} ${e.event}`, [...(byFromEvent.get(`${e.from} ${e.event}`) ?? []), e]);
    for (const [key, group] of byFromEvent) {
      if (group.length === 1) expect(group[0]!.outcome, key).toBeUndefined();
      else expect(new Set(group.map((e) => e.outcome)).size, key).toBe(group.length);
    }
    const keys = edges.map((e) => `${e.from} ${e.event} ${e.to}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keeps its named, parameterised guards in its JSON export: the refusals in order, then the accepting edges', () => {
    const json = JSON.parse(JSON.stringify(domainMachine.toJSON())) as JsonStateNode;
    const fromJson: { from: string; event: string; guards: string[] }[] = [];
    const visit = (node: JsonStateNode, path: string[]) => {
      for (const [event, transitions] of Object.entries(node.on ?? {})) {
        const refusals = transitions.filter((t) => t.guard?.type === 'refuses').map((t) => t.guard!.params!.rule!);
        // Every list opens with the verb's refusals, one per rule, in order.
        expect(transitions.slice(0, refusals.length).every((t) => t.guard?.type === 'refuses'), `${path.join('.')} ${event}`).toBe(true);
        expect(refusals, `${path.join('.')} ${event}`).toEqual(GUARDS_BY_VERB[event as keyof typeof GUARDS_BY_VERB]);
        for (const t of transitions.slice(refusals.length))
          fromJson.push({ from: path.join('.'), event, guards: [...refusals, ...(t.guard ? [`leadsTo ${t.guard.params!.target}`] : [])] });
      }
      for (const [key, child] of Object.entries(node.states ?? {})) visit(child, [...path, key]);
    };
    visit(json, []);
    expect(fromJson).toEqual(edges.map((e) => ({ from: e.from, event: e.event, guards: [...e.rules, ...(e.outcome ? [`leadsTo ${e.outcome}`] : [])] })));
    for (const id of Object.keys(GUARDS)) expect(JSON.stringify(json)).toContain(`"rule":"${id}"`);
  });

  it('takes what-if options and the host view from the event: a switched-off rule is skipped, DEF-NAME sees other domains', () => {
    const meta = (i: number) => ({ commandId: `w${i}`, time: `2025-01-01T00:00:0${i}Z` });
    const parse = (input: object, i: number) => CommandSchema.parse({ ...input, meta: meta(i) } as CommandInput);
    let snapshot = initialDomainSnapshot(HOST, NAME);
    const clash = parse({ verb: 'define', config: { name: NAME, uuid: 'u3' } }, 1); // u3 is `other`'s (hostView)
    expect(machineStep(snapshot, clash, { host: hostView }).decision).toMatchObject({ ok: false, refusal: { rule: 'DEF-NAME' } });
    snapshot = machineStep(snapshot, parse({ verb: 'define', config: { name: NAME, uuid: 'u1' } }, 2), { host: hostView }).snapshot;
    snapshot = machineStep(snapshot, parse({ verb: 'snapshot-create', domain: NAME, snapshot: { name: 's1' } }, 3)).snapshot;
    const undefine = parse({ verb: 'undefine', domain: NAME }, 4); // one snapshot, no --snapshots-metadata
    expect(machineStep(snapshot, undefine).decision).toMatchObject({ ok: false, refusal: { rule: 'UND-SNAPSHOTS' } });
    const off = { disabledRules: new Set(['UND-SNAPSHOTS']) };
    const whatIf = machineStep(snapshot, undefine, off);
    expect(whatIf.decision).toEqual(decide(snapshot.context, undefine, off));
    expect(whatIf.snapshot.value).toBe('gone');
    // A rule switched off can let a command through where the machine has no edge: it says so.
    const resume = parse({ verb: 'resume', domain: NAME }, 5);
    expect(() => machineStep(snapshot, resume, { disabledRules: new Set(['ACT-REQ']) })).toThrow(/no edge for resume in "inactive"/);
  });

  it('runs as an actor, emits its decisions, and ends at gone', () => {
    const actor = createActor(domainMachine, { input: { host: HOST, name: NAME } });
    const emitted: DomainMachineEmitted[] = [];
    actor.on('*', (e) => emitted.push(e));
    actor.start();
    const meta = (i: number) => ({ commandId: `a${i}`, time: `2025-01-01T00:00:0${i}Z` });
    const send = (input: CommandInput, i: number) => actor.send(commandEvent(CommandSchema.parse({ ...input, meta: meta(i) })));
    send({ verb: 'create', config: { name: NAME, uuid: 'u1' }, paused: true } as CommandInput, 1);
    expect(actor.getSnapshot().value).toEqual({ transient: 'paused' });
    send({ verb: 'undefine', domain: NAME } as CommandInput, 2); // UND-TRANSIENT: refused, nothing changes
    expect(actor.getSnapshot().value).toEqual({ transient: 'paused' });
    send({ verb: 'start', domain: NAME } as CommandInput, 3); // no edge from transient: the root's refusals answer
    send({ verb: 'destroy', domain: NAME } as CommandInput, 4);
    expect(actor.getSnapshot().value).toBe('gone');
    expect(actor.getSnapshot().status).toBe('done');
    expect(emitted.map((e) => (e.type === 'refused' ? e.refusal.rule : e.facts.map((f) => f.type).join('+')))).toEqual([
      'DomainCreated',
      'UND-TRANSIENT',
      'STA-ACTIVE',
      'DomainStopped+TransientDomainRemoved',
    ]);
  });
});

interface JsonStateNode {
  on?: Record<string, { guard?: { type?: string; params?: { rule?: string; target?: string } } }[]>;
  states?: Record<string, JsonStateNode>;
}
