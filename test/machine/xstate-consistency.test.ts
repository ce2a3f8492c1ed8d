// The XState domain machine and the pure decide/evolve fold must agree on every command: same acceptance,
// same state, same context. Then the diagram drawn from the machine (services/diagram.ts) tells the truth
// about the code. A second property: every edge of the machine is taken, so none is dead.
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { CommandSchema, VERBS, type Command, type CommandInput } from '../../machines/commands';
import { decide } from '../../machines/decide';
import {
  commandEvent,
  domainMachine,
  domainSnapshot,
  edgeTaken,
  leafStateOf,
  machineEdges,
  machineStates,
  type LeafState,
} from '../../machines/domainMachine';
import { evolveAll } from '../../machines/evolve';
import { GUARDS, type HostView } from '../../machines/guards';
import { initialDomainState, runState, topState, type DomainState } from '../../machines/model';
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

/** What the machine's state value must be: topState, with runState below `running` and `transient`. */
function expectedValue(s: DomainState): string | Record<string, string> {
  const top = topState(s);
  return top === 'running' || top === 'transient' ? { [top]: runState(s)! } : top;
}

function describeStep(c: Command, from: LeafState): string {
  return `${c.verb} from ${from}: ${JSON.stringify({ ...c, meta: undefined })}`;
}

/**
 * A domain actor and decide/evolve side by side. After every command both must agree: same acceptance, same
 * state, same context. `gone` is final: when the fold starts a new life under the name, so does the machine,
 * with a new actor from its initial state.
 */
class Lockstep {
  folded = initialDomainState(HOST, NAME);
  private actor = Lockstep.newActor();

  constructor(private readonly coverage?: Coverage) {}

  private static newActor() {
    return createActor(domainMachine, { input: { host: HOST, name: NAME } }).start();
  }

  apply(c: Command): void {
    const decision = decide(this.folded, c, { host: hostView });
    const event = commandEvent(c, hostView);
    const from = leafStateOf(this.folded);
    if (this.actor.getSnapshot().status === 'done') {
      // A refused command on a gone domain: the final state takes no events, and the fold must not move either.
      if (!decision.ok) return;
      // A new domain under the same name: the machine starts over (its `undefined` state).
      this.actor = Lockstep.newActor();
    }
    const before = this.actor.getSnapshot();
    const edge = decision.ok ? edgeTaken(before, event) : undefined;
    this.actor.send(event);
    const after = this.actor.getSnapshot();

    if (!decision.ok) {
      // Refused: no edge is taken, nothing changes.
      if (!isDeepStrictEqual(after.value, before.value) || after.context !== before.context)
        expect.fail(`refused by ${decision.refusal.rule}, yet the machine moved to ${JSON.stringify(after.value)}: ${describeStep(c, from)}`);
      return;
    }

    this.folded = evolveAll(this.folded, decision.facts);
    const to = leafStateOf(this.folded);
    if (edge === undefined) expect.fail(`accepted (→ ${to}) but the machine has no edge for it: ${describeStep(c, from)}`);
    if (!isDeepStrictEqual(after.value, expectedValue(this.folded)))
      expect.fail(`machine in ${JSON.stringify(after.value)}, decide/evolve in ${to}, after edge ${edge}: ${describeStep(c, from)}`);
    if (!isDeepStrictEqual(after.context, this.folded)) expect(after.context, `context after ${describeStep(c, from)}`).toEqual(this.folded);
    expect(after.status).toBe(to === 'gone' ? 'done' : 'active');
    // A checkpoint of the folded state revives to the same machine state.
    if (to !== from) expect(domainSnapshot(this.folded).value).toEqual(after.value);
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
  const lockstep = new Lockstep(coverage);
  let n = 0;
  for (const body of pool) {
    const c = withMeta(body, n);
    if (!decide(lockstep.folded, c, { host: hostView }).ok) continue;
    lockstep.apply(c);
    if (++n >= maxSteps) return;
  }
}

// ---------------------------------------------------------------------------------------------------

describe('domainMachine agrees with decide/evolve', () => {
  it('over random command sequences: same acceptance, state and context; a refusal leaves the machine as it was', () => {
    fc.assert(
      fc.property(commandsArb, (commands) => {
        const lockstep = new Lockstep();
        for (const c of commands) lockstep.apply(c);
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

  it("guards each edge with its verb's guards from verbs.ts, in order, by rule id", () => {
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

  it('keeps the guard names in its JSON export', () => {
    const json = JSON.parse(JSON.stringify(domainMachine.toJSON())) as JsonStateNode;
    const fromJson: { from: string; event: string; guards: string[] }[] = [];
    const visit = (node: JsonStateNode, path: string[]) => {
      for (const [event, transitions] of Object.entries(node.on ?? {}))
        for (const t of transitions) fromJson.push({ from: path.join('.'), event, guards: t.guard?.guards ?? [] });
      for (const [key, child] of Object.entries(node.states ?? {})) visit(child, [...path, key]);
    };
    visit(json, []);
    expect(fromJson).toEqual(edges.map((e) => ({ from: e.from, event: e.event, guards: [...e.rules, ...(e.outcome ? [e.outcome] : [])] })));
    for (const id of Object.keys(GUARDS)) expect(typeof domainMachine.implementations.guards[id], id).toBe('function');
  });

  it('runs as an actor, and ends at gone', () => {
    const actor = createActor(domainMachine, { input: { host: HOST, name: NAME } }).start();
    const meta = (i: number) => ({ commandId: `a${i}`, time: `2025-01-01T00:00:0${i}Z` });
    const send = (input: CommandInput, i: number) => actor.send(commandEvent(CommandSchema.parse({ ...input, meta: meta(i) })));
    send({ verb: 'create', config: { name: NAME, uuid: 'u1' }, paused: true } as CommandInput, 1);
    expect(actor.getSnapshot().value).toEqual({ transient: 'paused' });
    send({ verb: 'undefine', domain: NAME } as CommandInput, 2); // UND-TRANSIENT: refused, nothing changes
    expect(actor.getSnapshot().value).toEqual({ transient: 'paused' });
    send({ verb: 'destroy', domain: NAME } as CommandInput, 3);
    expect(actor.getSnapshot().value).toBe('gone');
    expect(actor.getSnapshot().status).toBe('done');
  });
});

interface JsonStateNode {
  on?: Record<string, { guard?: { guards?: string[] } }[]>;
  states?: Record<string, JsonStateNode>;
}
