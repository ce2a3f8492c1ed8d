// Invariants of the domain machine over random command sequences (fast-check): three domain names and three
// UUIDs on a host (so DEF-NAME's UUID clash happens), a second host for incoming migrations, disks of every
// kind, every verb with random flags, and the hypervisor's own reports (guest poweroff/crash/reboot,
// blockjob-ready). Every command is decided against the state of the domain it names, with a HostView of all.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandDomainName, type Command } from '../../machines/commands';
import { decide } from '../../machines/decide';
import { FactSchema, type Fact } from '../../machines/events';
import { evolve, evolveAll } from '../../machines/evolve';
import { GUARDS } from '../../machines/guards';
import { DomainStateSchema, initialDomainState, snapshotCount, topState, type Disk, type DomainState } from '../../machines/model';
import { matchingTemplate } from '../../machines/refusals';
import { GUARDS_BY_VERB } from '../../machines/verbs';
import { command, hostViewOf, runAccepted, stateIn, worldKey, type CommandSpec } from '../support/given';

const HOSTS = ['local', 'local', 'local', 'local', 'local', 'local', 'local', 'local', 'dst'] as const;
const UUIDS = ['u1', 'u2', 'u3'] as const;
const SNAPS = ['s1', 's2', 's3'] as const;

const VDA: Disk = { target: 'vda', source: '/img/vda.qcow2', device: 'disk', readonly: false, shareable: false, storage: 'managed' };
const VDC: Disk = { target: 'vdc', source: '/dev/sdc', device: 'disk', readonly: false, shareable: true, storage: 'unmanaged' };
const VDB_RO: Disk = { target: 'vdb', source: '/img/base.img', device: 'disk', readonly: true, shareable: false, storage: 'managed' };
const HDC: Disk = { target: 'hdc', source: '/iso/install.iso', device: 'cdrom', readonly: true, shareable: false, storage: 'managed' };

// ---------------------------------------------------------------------------------------------------
// Arbitraries

const flag = fc.constantFrom(false, false, false, true);
const host = fc.constantFrom(...HOSTS);
/** Mostly the domains the setup made (a: persistent, b: transient), sometimes the third name. */
const name = fc.constantFrom<string>('a', 'a', 'a', 'a', 'b', 'b', 'b', 'c');
const snapName = fc.constantFrom<string>(...SNAPS, ...SNAPS);
const diskPath = fc.constantFrom('vda', 'vda', 'vdc', 'vdb', 'hdc', '/img/vda.qcow2', 'nope');
const DISKS = [VDA, VDC, VDB_RO, HDC];
const OWN_UUID: Record<string, string> = { a: UUIDS[0], b: UUIDS[1], c: UUIDS[2] };

/** A config, mostly with its name's own UUID; now and then another's (DEF-NAME). */
const config = fc.record({
  name,
  uuidOf: fc.constantFrom<string | undefined>(undefined, undefined, undefined, undefined, ...UUIDS),
  disks: fc.constantFrom(DISKS, DISKS, [VDA, VDB_RO, HDC], [VDA]),
  hostdevs: fc.constantFrom([], [], [], [{ mode: 'subsystem' as const, type: 'usb' }], [{ mode: 'subsystem' as const, type: 'pci' }]),
}).map(({ uuidOf, ...c }) => ({ ...c, uuid: uuidOf ?? OWN_UUID[c.name]! }));

const diskSpecs = fc.constantFrom(
  [],
  [],
  [{ target: 'vda', snapshot: 'external' as const, file: '/img/vda.ext' }],
  [{ target: 'vda', file: '/img/vda.m', mirror: '/new/vda.qcow2' }],
  [
    { target: 'vda', file: '/img/vda.m', mirror: '/new/vda.qcow2' },
    { target: 'vdc', file: '/img/vdc.m', mirror: '/new/vdc.qcow2' },
  ],
  [{ target: 'vdc', file: '/img/vdc.m', mirror: '/new/vdc.qcow2' }],
  [
    { target: 'vdb', snapshot: 'no' as const },
    { target: 'vda', snapshot: 'internal' as const },
  ],
);

const spec = <T>(arb: fc.Arbitrary<T>) => arb as unknown as fc.Arbitrary<CommandSpec>;
const onDomain = { host, domain: name };

const commandArb: fc.Arbitrary<CommandSpec> = fc.oneof(
  { weight: 4, arbitrary: spec(fc.record({ verb: fc.constant('define'), host, config })) },
  { weight: 3, arbitrary: spec(fc.record({ verb: fc.constant('create'), host, config, paused: flag, autodestroy: flag })) },
  { weight: 4, arbitrary: spec(fc.record({ verb: fc.constant('start'), ...onDomain, paused: flag, autodestroy: flag, forceBoot: flag })) },
  {
    weight: 8,
    arbitrary: spec(
      fc.record({ verb: fc.constantFrom('shutdown', 'destroy', 'suspend', 'resume', 'reboot', 'managedsave-remove'), ...onDomain }),
    ),
  },
  { weight: 2, arbitrary: spec(fc.record({ verb: fc.constant('managedsave'), ...onDomain, running: flag, paused: flag })) },
  { weight: 2, arbitrary: spec(fc.record({ verb: fc.constant('save'), ...onDomain, file: fc.constant('/save/x'), running: flag, paused: flag })) },
  {
    weight: 4,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('undefine'),
        ...onDomain,
        managedSave: flag,
        snapshotsMetadata: flag,
        storage: fc.option(fc.subarray(['vda', 'vdb', 'hdc', '/dev/sdc', 'nope']), { nil: undefined, freq: 4 }),
        removeAllStorage: flag,
        wipeStorage: flag,
      }),
    ),
  },
  {
    weight: 10,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('snapshot-create'),
        ...onDomain,
        snapshot: fc.record({
          name: fc.constantFrom<string | undefined>(...SNAPS, ...SNAPS, ...SNAPS, undefined, '.x', 'a/b'),
          parent: fc.constantFrom<string | undefined>(undefined, undefined, ...SNAPS, 'nosuch'),
          state: fc.constantFrom<'running' | 'paused' | 'shutoff' | 'disk-snapshot' | undefined>(undefined, 'running', 'paused', 'shutoff', 'disk-snapshot'),
          disks: diskSpecs,
        }),
        redefine: flag,
        current: flag,
        noMetadata: flag,
        halt: flag,
        diskOnly: fc.boolean(),
        reuseExternal: flag,
        quiesce: flag,
        atomic: flag,
      }),
    ),
  },
  {
    weight: 6,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('snapshot-delete'),
        ...onDomain,
        snapshotname: snapName,
        children: flag,
        childrenOnly: flag,
        metadata: flag,
        mirrorPivot: flag,
        mirrorAbort: flag,
      }),
    ),
  },
  {
    weight: 4,
    arbitrary: spec(fc.record({ verb: fc.constant('snapshot-revert'), ...onDomain, snapshotname: snapName, running: flag, paused: flag, force: flag })),
  },
  {
    weight: 4,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('blockcopy'),
        ...onDomain,
        path: diskPath,
        dest: fc.constantFrom('/new/copy.img', '/new/copy.img', 'relative.img'),
        transientJob: fc.boolean(),
        shallow: flag,
        reuseExternal: flag,
      }),
    ),
  },
  { weight: 4, arbitrary: spec(fc.record({ verb: fc.constant('blockjob'), ...onDomain, path: diskPath, pivot: fc.boolean(), abort: fc.boolean() })) },
  { weight: 1, arbitrary: spec(fc.record({ verb: fc.constant('blockpull'), ...onDomain, path: diskPath })) },
  {
    weight: 4,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('migrate'),
        ...onDomain,
        desthost: fc.constantFrom('dst', 'dst', 'local'),
        offline: flag,
        persistent: flag,
        undefinesource: flag,
      }),
    ),
  },
  {
    weight: 5,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('migrate-phase'),
        ...onDomain,
        phase: fc.constantFrom('prepare', 'perform', 'finish', 'confirm'),
        failed: fc.option(fc.constant('connection reset'), { nil: undefined, freq: 5 }),
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('migrate-incoming'),
        host: fc.constant('dst'),
        source: fc.constant('local'),
        config,
        persistent: fc.boolean(),
        active: fc.boolean(),
        paused: flag,
      }),
    ),
  },
  {
    weight: 6,
    arbitrary: spec(
      fc.record({
        verb: fc.constant('guest-event'),
        ...onDomain,
        event: fc.constantFrom('poweroff', 'reboot', 'crash', 'blockjob-ready', 'blockjob-ready'),
        disk: fc.constantFrom('vda', 'vdc'),
      }),
    ),
  },
);

/** Ordered paths a random walk rarely finds: a whole (or failing) migration, a mirror or copy through ready. */
const scenarioArb: fc.Arbitrary<CommandSpec[]> = fc.oneof(
  fc
    .record({
      domain: name,
      offline: flag,
      persistent: fc.boolean(),
      undefinesource: flag,
      upTo: fc.integer({ min: 1, max: 4 }),
      fail: fc.boolean(),
    })
    .map(({ domain, offline, persistent, undefinesource, upTo, fail }) => {
      const phases = (['prepare', 'perform', 'finish', 'confirm'] as const).slice(0, upTo);
      return [
        { verb: 'migrate', domain, desthost: 'dst', offline, persistent, undefinesource },
        ...phases.map((phase, i) => ({
          verb: 'migrate-phase',
          domain,
          phase,
          failed: fail && i === phases.length - 1 ? 'connection reset' : undefined,
        })),
      ] as CommandSpec[];
    }),
  fc
    .record({ domain: name, disks: fc.constantFrom(['vda'], ['vdc'], ['vda', 'vdc']), how: fc.constantFrom('mirrorPivot', 'mirrorAbort', 'none'), ready: fc.boolean() })
    .map(({ domain, disks, how, ready }) => {
      const specs = disks.map((target) => ({ target, file: `/img/${target}.m`, mirror: `/new/${target}.qcow2` }));
      return [
        { verb: 'snapshot-create', domain, diskOnly: true, snapshot: { name: 'm', disks: specs } },
        ...(ready ? disks.map((disk) => ({ verb: 'guest-event', domain, event: 'blockjob-ready', disk })) : []),
        ...(how === 'none' ? [] : [{ verb: 'snapshot-delete', domain, snapshotname: 'm', [how]: true }]),
      ] as CommandSpec[];
    }),
  fc
    .record({ domain: name, path: fc.constantFrom('vda', 'vdc'), transientJob: fc.boolean(), ready: fc.boolean(), end: fc.constantFrom('pivot', 'abort', 'none') })
    .map(({ domain, path, transientJob, ready, end }) => [
      { verb: 'blockcopy', domain, path, dest: '/new/copy.img', transientJob },
      ...(ready ? [{ verb: 'guest-event', domain, event: 'blockjob-ready', disk: path }] : []),
      ...(end === 'none' ? [] : [{ verb: 'blockjob', domain, path, [end]: true }]),
    ] as CommandSpec[]),
  fc
    .record({
      domain: name,
      target: snapName,
      revert: fc.record({ running: flag, paused: flag, force: flag }),
      del: fc.record({ children: flag, childrenOnly: flag, metadata: flag }),
      pause: fc.boolean(),
    })
    .map(({ domain, target, revert, del, pause }) => [
      { verb: 'snapshot-create', domain, snapshot: { name: 's1' } },
      ...(pause ? [{ verb: 'suspend', domain }] : []),
      { verb: 'snapshot-create', domain, snapshot: { name: 's2' } },
      { verb: 'snapshot-revert', domain, snapshotname: target, ...revert },
      { verb: 'resume', domain },
      { verb: 'snapshot-delete', domain, snapshotname: target, ...del },
    ] as CommandSpec[]),
  fc
    .record({ domain: name, undefine: fc.record({ managedSave: fc.boolean(), snapshotsMetadata: fc.boolean() }), snapshot: fc.boolean(), forceBoot: flag })
    .map(({ domain, undefine, snapshot, forceBoot }) => [
      { verb: 'managedsave', domain },
      ...(snapshot ? [{ verb: 'snapshot-create', domain, snapshot: { name: 's3' } }] : []),
      { verb: 'undefine', domain, ...undefine },
      { verb: 'start', domain, forceBoot },
    ] as CommandSpec[]),
);

/** Sequences start from: `a` running persistent, `b` running transient, `c` defined (or fewer of them). */
const SETUP: CommandSpec[] = [
  { verb: 'define', config: { name: 'a', uuid: 'u1', disks: DISKS } },
  { verb: 'start', domain: 'a' },
  { verb: 'create', config: { name: 'b', uuid: 'u2', disks: DISKS } },
  { verb: 'define', config: { name: 'c', uuid: 'u3', disks: [VDA] } },
];
const setupArb = fc.oneof({ weight: 4, arbitrary: fc.constant(SETUP) }, { weight: 1, arbitrary: fc.subarray(SETUP) });
const sequence = (maxLength: number) =>
  fc
    .tuple(
      setupArb,
      fc.array(fc.oneof({ weight: 6, arbitrary: commandArb.map((c) => [c]) }, { weight: 1, arbitrary: scenarioArb }), {
        minLength: 1,
        maxLength,
      }),
    )
    .map(([setup, chunks]) => [...setup, ...chunks.flat().slice(0, maxLength)]);

// ---------------------------------------------------------------------------------------------------
// The invariants

const roundTrip = <T>(x: T): unknown => JSON.parse(JSON.stringify(x));

function checkState(s: DomainState, where: string): void {
  const names = Object.keys(s.snapshots);
  // The state is plain data: it survives JSON and parses with its schema unchanged.
  expect(DomainStateSchema.parse(roundTrip(s)), `${where}: state does not round-trip`).toEqual(s);
  if (s.life !== 'exists') {
    expect(names, `${where}: a ${s.life} domain keeps snapshot metadata`).toEqual([]);
    expect(s.current, `${where}: a ${s.life} domain has a current snapshot`).toBeNull();
    expect([s.migration, s.blockJobs], `${where}: a ${s.life} domain holds a job`).toEqual([null, {}]);
  }
  if (s.current !== null) expect(names, `${where}: current snapshot ${s.current} does not exist`).toContain(s.current);
  for (const snap of Object.values(s.snapshots)) {
    if (snap.parent !== null) expect(names, `${where}: parent ${snap.parent} of ${snap.name} does not exist`).toContain(snap.parent);
  }
  if (topState(s) === 'migrating') expect(snapshotCount(s), `${where}: migrating with snapshots`).toBe(0);
  // A live migration moves a running guest (an offline one only the definition, of any domain).
  if (s.migration && !s.migration.offline) expect(s.active, `${where}: live migration of an inactive domain`).toBe(true);
  if (Object.keys(s.blockJobs).length > 0) expect(s.active, `${where}: a block job on an inactive domain`).toBe(true);
}

interface MigrationWatch {
  /** The state when the migration started, and whether only its own phases happened since. */
  pre: DomainState;
  clean: boolean;
}

/** Runs the commands through decide/evolve over a world of domains, checking every invariant at every step. */
function runChecked(specs: CommandSpec[]): void {
  const world = new Map<string, DomainState>();
  const log = new Map<string, Fact[]>();
  const watches = new Map<string, MigrationWatch>();

  specs.forEach((spec, i) => {
    const c: Command = command(spec);
    const before = stateIn(world, commandDomainName(c), c.host);
    const key = worldKey(before.host, before.name);
    const where = `step ${i + 1} (${c.verb} ${c.host}/${commandDomainName(c)})`;
    const decision = decide(before, c, { host: hostViewOf(world) });

    if (!decision.ok) {
      // A refusal names a rule this verb consults, and appends nothing (so nothing changes).
      expect(GUARDS_BY_VERB[c.verb], `${where}: refused by ${decision.refusal.rule}, not a guard of the verb`).toContain(decision.refusal.rule);
      expect(Object.hasOwn(GUARDS, decision.refusal.rule)).toBe(true);
      expect(decision.refusal.message.length).toBeGreaterThan(0);
      // The refusal is one docs/rules.md lists for its rule (code and message).
      const { rule, code, message } = decision.refusal;
      expect(matchingTemplate(decision.refusal), `${where}: ${rule} ${code} '${message}' is not in machines/refusals.ts`).toBeDefined();
      expect(decision, `${where}: a refusal carries facts`).not.toHaveProperty('facts');
      return;
    }

    // Facts are stored as JSON: each parses with its schema and survives the trip unchanged.
    for (const f of decision.facts) expect(FactSchema.parse(roundTrip(f)), `${where}: fact does not round-trip`).toEqual(f);

    let s = before;
    for (const f of decision.facts) {
      const next = evolve(s, f);
      if (f.type === 'MigrationStarted') {
        expect(snapshotCount(s), `${where}: MigrationStarted with snapshot metadata`).toBe(0);
        watches.set(key, { pre: s, clean: true });
      }
      if (f.type === 'BlockJobEnded') {
        const job = s.blockJobs[f.disk];
        // A job is lost only with the end of the domain's process (MIR-END), persistent or not: the guest stopped
        // on its own, or destroy/shutdown ended it; the domain is then inactive (or gone).
        if (f.outcome === 'lost') {
          expect(
            c.verb === 'guest-event' || c.verb === 'destroy' || c.verb === 'shutdown' || !s.persistent,
            `${where}: a persistent domain's job lost by ${c.verb}`,
          ).toBe(true);
        }
        // Only a job that is not a mirror (a pull) completes on its own; mirrors are pivoted or aborted.
        if (f.outcome === 'completed') expect(job?.kind, `${where}: a ${job?.kind} job completed`).toBe('pull');
      }
      // A migration that fails with nothing else happening in between returns the domain to where it was.
      const watch = watches.get(key);
      if (watch && f.type !== 'MigrationStarted' && f.type !== 'MigrationPhaseReached') {
        if (f.type === 'MigrationFailed' && c.verb === 'migrate-phase' && watch.clean) {
          expect(next, `${where}: a failed migration did not return the domain to where it was`).toEqual(watch.pre);
        }
        watch.clean = false;
      }
      // An offline migration moves the definition only: the guest on the source is as it was (MIG-PERSIST).
      if (f.type === 'DomainMigratedOut' && s.migration?.offline && next.life === 'exists') {
        expect([next.active, next.paused], `${where}: an offline migration changed the source guest`).toEqual([s.active, s.paused]);
      }
      if (topState(next) !== 'migrating') watches.delete(key);
      s = next;
    }
    // mirroring is left only through a pivot or an abort, or a job lost with the end of the domain's process
    // (checked per command: a pull that runs within one command passes through `mirroring` and out again).
    if (topState(before) === 'mirroring' && topState(s) !== 'mirroring') {
      const ended = decision.facts.filter(
        (f) => f.type === 'BlockJobEnded' && before.blockJobs[f.disk] && ['pivot', 'abort', 'lost'].includes(f.outcome),
      );
      expect(ended.length, `${where}: left mirroring without ending its jobs: ${JSON.stringify(decision.facts)}`).toBeGreaterThan(0);
    }
    checkState(s, where);
    world.set(key, s);
    log.set(key, [...(log.get(key) ?? []), ...decision.facts]);
  });

  // Replaying the stored facts (as stored: JSON) rebuilds every domain exactly.
  for (const [key, facts] of log) {
    const live = world.get(key)!;
    const replayed = evolveAll(initialDomainState(live.host, live.name), facts.map((f) => FactSchema.parse(roundTrip(f))));
    expect(replayed, `replay of ${live.host}/${live.name}`).toEqual(live);
  }
}

/** `PROPERTY_RUNS=50000 npx vitest run test/machine/invariants.property.test.ts` for a longer soak. */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 2000);
const TIMEOUT = Math.max(60_000, RUNS * 10);

describe('domain machine invariants (property)', () => {
  it('hold over thousands of random command sequences', () => {
    fc.assert(
      fc.property(sequence(40), (specs) => runChecked(specs)),
      { numRuns: RUNS },
    );
  }, TIMEOUT);

  it('hold from a busy start: the running persistent domain with snapshots and a mirror', () => {
    const start: CommandSpec[] = [
      ...SETUP.slice(0, 2),
      { verb: 'snapshot-create', domain: 'a', snapshot: { name: 's1' } },
      {
        verb: 'snapshot-create',
        domain: 'a',
        diskOnly: true,
        snapshot: { name: 's2', disks: [{ target: 'vda', file: '/img/vda.m', mirror: '/new/vda.qcow2' }] },
      },
    ];
    runAccepted(start);
    fc.assert(
      fc.property(sequence(30), (specs) => runChecked([...start, ...specs])),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  }, TIMEOUT);
});

// The counterexamples the property found (shrunk), kept as fixed sequences: each failed before its fix.
describe('regressions found by the property', () => {
  const running: CommandSpec[] = SETUP.slice(0, 2);
  const mirrorVdc: CommandSpec = {
    verb: 'snapshot-create',
    domain: 'a',
    snapshot: { name: 's1', disks: [{ target: 'vdc', file: '/img/vdc.m', mirror: '/new/vdc.qcow2' }] },
  };
  const phases = (['prepare', 'perform', 'finish', 'confirm'] as const).map((phase): CommandSpec => ({ verb: 'migrate-phase', domain: 'a', phase }));

  it('a mirrored snapshot with --halt left an inactive domain holding a mirror job (MIR-CREATE)', () => {
    runChecked([
      ...running,
      { verb: 'snapshot-create', domain: 'a', halt: true, diskOnly: true, snapshot: { name: 'm', disks: [{ target: 'vda', file: '/f', mirror: '/m' }] } },
      { verb: 'start', domain: 'a' },
    ]);
  });

  it("a halting disk-only snapshot of another disk lost a persistent domain's mirror (MIR-BLOCKS)", () => {
    runChecked([
      ...running,
      mirrorVdc,
      { verb: 'snapshot-create', domain: 'a', noMetadata: true, halt: true, diskOnly: true, snapshot: { disks: [{ target: 'vda' }] } },
    ]);
  });

  it('destroy during a live migration left an inactive domain migrating (stop facts fail the migration)', () => {
    runChecked([...running, { verb: 'migrate', domain: 'a', desthost: 'dst' }, { verb: 'destroy', domain: 'a' }, ...phases]);
  });

  it('create over an inactive domain in an offline migration started it mid-migration (JOB-BUSY)', () => {
    runChecked([
      SETUP[0]!,
      { verb: 'migrate', domain: 'a', desthost: 'dst', offline: true, persistent: true },
      { verb: 'create', config: { name: 'a', uuid: 'u1', disks: DISKS } },
      ...phases,
    ]);
  });

  it('an offline migration of a running domain stopped the source guest at Confirm (DomainMigratedOut)', () => {
    runChecked([...running, { verb: 'migrate', domain: 'a', desthost: 'dst', offline: true, persistent: true }, ...phases]);
    runChecked([...running, { verb: 'migrate', domain: 'a', desthost: 'dst', offline: true, persistent: true, undefinesource: true }, ...phases]);
  });
});
