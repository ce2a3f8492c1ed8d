// Random command sequences through the ledger (memory store) and the simulated hypervisor, with faults injected,
// across two hosts. After every command, issue 2's invariants and this issue's:
//   - no gone domain keeps snapshot metadata; the current snapshot exists;
//   - no migration starts while the domain has snapshots;
//   - mirroring is left only by pivot/abort, or because the domain's run ended (a transient domain quitting, or
//     the guest itself stopping, which no rule can refuse);
//   - a partial snapshot is never recorded under --atomic (nor by a transactional hypervisor at all);
//   - a domain never runs on two hosts at once (checked fact by fact over the global log);
//   - the hypervisor's world is derivable from the log: a fresh driver folding it sees the same chains.
import fc from 'fast-check';
import { expect, test } from 'vitest';

import type { Command, CommandInput } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import { type DomainState } from '../../machines/model';
import type { FaultsInput } from '../../services/drivers/faults';
import { createSimulatedDriver, OVERLAY_SIZE, type SimulatedWorldInput } from '../../services/drivers/simulated';
import { createMemoryEventStore } from '../../services/eventstore/index';
import { createLedger, reportFromHypervisor } from '../../services/ledger';
import { replayCheck } from '../../services/replay';
import { factOf, twoHostViolations } from './harness';

const HOSTS = ['local', 'dst'] as const;
const NAME = 'vm';
const UUID = 'uuid-vm';
const WORLD: SimulatedWorldInput = {
  storage: [{ path: '/data' }, { path: '/ro', readonly: true }, { path: '/small', capacity: 300_000 }],
  images: [{ path: '/data/base.img', size: 1_000_000, format: 'raw' }, { path: '/data/vda.qcow2', backing: 'base.img' }],
};
const CONFIG = {
  name: NAME,
  uuid: UUID,
  disks: [
    { target: 'vda', source: '/data/vda.qcow2' },
    { target: 'vdb', source: '/data/vdb.qcow2' },
  ],
};

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Body = DistributiveOmit<CommandInput, 'meta' | 'host'> & { host: HostRole };
type Step = { kind: 'command'; body: Body } | { kind: 'flush' } | { kind: 'copy' } | { kind: 'precreate'; n: number };

/**
 * Commands name a host by role, resolved when they run: `here` is where the domain is (running, else defined),
 * `there` the other host. Most commands go `here`, so that few are refused for naming a missing domain.
 */
type HostRole = 'here' | 'there';
const host = fc.constantFrom<HostRole>('here', 'here', 'here', 'here', 'there');
const flag = fc.constantFrom(false, false, true);
const place = fc.constantFrom('/data', '/ro', '/small');
const k = fc.integer({ min: 1, max: 4 });
const diskName = fc.constantFrom('vda', 'vdb');

const snapshotCreate = fc
  .record({
    host,
    name: fc.constantFrom('s1', 's2', 's3'),
    two: fc.boolean(),
    external: fc.constantFrom(true, true, false),
    where: place,
    n: k,
    mirror: fc.constantFrom(undefined, undefined, '/data/m', '/ro/m'),
    atomic: flag,
    reuseExternal: fc.constantFrom(false, false, false, true),
    noMetadata: fc.constantFrom(false, false, false, true),
    halt: fc.constantFrom(false, false, false, true),
  })
  .map(({ host, name, two, external, where, n, mirror, atomic, reuseExternal, noMetadata, halt }): Body => {
    const disks = (two ? ['vda', 'vdb'] : ['vda']).map((target, i) => ({
      target,
      snapshot: 'external' as const,
      file: `${i === 1 ? where : '/data'}/${target}.${name}.${n}`,
      ...(mirror ? { mirror: `${mirror}/${target}.${n}` } : {}),
    }));
    return {
      verb: 'snapshot-create',
      host,
      domain: NAME,
      diskOnly: external,
      atomic,
      reuseExternal,
      noMetadata,
      halt,
      snapshot: { name, disks: external ? disks : [] },
    };
  });

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 2, arbitrary: host.map((h): Body => ({ verb: 'define', host: h, config: CONFIG })) },
  { weight: 2, arbitrary: fc.record({ h: host, paused: flag }).map(({ h, paused }): Body => ({ verb: 'create', host: h, config: CONFIG, paused })) },
  { weight: 3, arbitrary: fc.record({ h: host, paused: flag }).map(({ h, paused }): Body => ({ verb: 'start', host: h, domain: NAME, paused })) },
  {
    weight: 3,
    arbitrary: fc
      .record({ h: host, verb: fc.constantFrom('destroy', 'shutdown', 'suspend', 'resume', 'reboot') })
      .map(({ h, verb }) => ({ verb, host: h, domain: NAME }) as Body),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ h: host, snapshotsMetadata: fc.boolean(), removeAllStorage: fc.constantFrom(false, false, true) })
      .map(({ h, snapshotsMetadata, removeAllStorage }): Body => ({ verb: 'undefine', host: h, domain: NAME, snapshotsMetadata, removeAllStorage })),
  },
  { weight: 8, arbitrary: snapshotCreate },
  {
    weight: 4,
    arbitrary: fc
      .record({ h: host, snapshotname: fc.constantFrom('s1', 's2', 's3'), mirror: fc.constantFrom('none', 'pivot', 'pivot', 'abort'), children: flag })
      .map(({ h, snapshotname, mirror, children }): Body => ({
        verb: 'snapshot-delete',
        host: h,
        domain: NAME,
        snapshotname,
        children,
        mirrorPivot: mirror === 'pivot',
        mirrorAbort: mirror === 'abort',
      })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ h: host, snapshotname: fc.constantFrom('s1', 's2', 's3'), running: flag })
      .map(({ h, snapshotname, running }): Body => ({ verb: 'snapshot-revert', host: h, domain: NAME, snapshotname, running })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ h: host, path: diskName, where: place, n: k, transientJob: fc.boolean(), shallow: flag })
      .map(({ h, path, where, n, transientJob, shallow }): Body => ({
        verb: 'blockcopy',
        host: h,
        domain: NAME,
        path,
        dest: `${where}/${path}.copy.${n}`,
        transientJob,
        shallow,
      })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ h: host, path: diskName, pivot: fc.boolean() })
      .map(({ h, path, pivot }): Body => ({ verb: 'blockjob', host: h, domain: NAME, path, pivot, abort: !pivot })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ h: host, path: diskName, base: fc.constantFrom(undefined, '/data/base.img', '/data/vda.qcow2') })
      .map(({ h, path, base }): Body => ({ verb: 'blockpull', host: h, domain: NAME, path, ...(base ? { base } : {}) })),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ persistent: fc.boolean(), undefinesource: fc.boolean(), offline: flag })
      .map(({ persistent, undefinesource, offline }): Body => ({
        verb: 'migrate',
        host: 'here',
        domain: NAME,
        desthost: 'there',
        persistent,
        undefinesource,
        offline,
      })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ h: host, event: fc.constantFrom('poweroff', 'crash', 'reboot', 'blockjob-ready'), disk: diskName })
      .map(({ h, event, disk }): Body => ({ verb: 'guest-event', host: h, domain: NAME, event, disk })),
  },
);

const command = (body: Body): Step => ({ kind: 'command', body });
/** Multi-step scenarios a uniform pick would rarely complete: a copy or a mirrored snapshot to its end. */
const macroArb: fc.Arbitrary<Step[]> = fc.oneof(
  fc.record({ path: diskName, n: k, pivot: fc.boolean(), transientJob: fc.boolean() }).map(({ path, n, pivot, transientJob }) => [
    command({ verb: 'blockcopy', host: 'here', domain: NAME, path, dest: `/data/${path}.copy.${n}`, transientJob }),
    { kind: 'flush' } as Step,
    command({ verb: 'blockjob', host: 'here', domain: NAME, path, pivot, abort: !pivot }),
  ]),
  fc.record({ two: fc.boolean(), n: k, pivot: fc.boolean(), where: place }).map(({ two, n, pivot, where }) => [
    command({
      verb: 'snapshot-create',
      host: 'here',
      domain: NAME,
      diskOnly: true,
      snapshot: {
        name: 'm',
        disks: (two ? ['vda', 'vdb'] : ['vda']).map((target) => ({ target, snapshot: 'external' as const, file: `/data/${target}.m.${n}`, mirror: `${where}/m/${target}.${n}` })),
      },
    }),
    { kind: 'flush' } as Step,
    command({ verb: 'snapshot-delete', host: 'here', domain: NAME, snapshotname: 'm', mirrorPivot: pivot, mirrorAbort: !pivot }),
  ]),
);

/** Every run starts with the domain running somewhere: persistent (define + start) or transient (create). */
const birthArb: fc.Arbitrary<Step[]> = fc.constantFrom<Step[]>(
  [command({ verb: 'define', host: 'here', config: CONFIG }), command({ verb: 'start', host: 'here', domain: NAME })],
  [command({ verb: 'create', host: 'here', config: CONFIG })],
);

/**
 * Seed 002's way: pre-created overlays and mirrors with relative backing names. vdb's mirror names `base.img`
 * in /data/m, which exists only after the `copy` step: a pivot before it is MIR-PARTIAL (vda reopened, vdb not).
 */
const relativeMirrorArb: fc.Arbitrary<Step[]> = fc.record({ n: k, copyFirst: fc.boolean(), retry: fc.boolean() }).map(({ n, copyFirst, retry }) => {
  const pivot = command({ verb: 'snapshot-delete', host: 'here', domain: NAME, snapshotname: `r${n}`, mirrorPivot: true });
  return [
    { kind: 'precreate', n } as Step,
    command({
      verb: 'snapshot-create',
      host: 'here',
      domain: NAME,
      diskOnly: true,
      reuseExternal: true,
      snapshot: {
        name: `r${n}`,
        disks: ['vda', 'vdb'].map((target) => ({ target, snapshot: 'external' as const, file: `/data/${target}.r${n}`, mirror: `/data/m/${target}.r${n}` })),
      },
    }),
    { kind: 'flush' } as Step,
    ...(copyFirst ? [{ kind: 'copy' } as Step] : []),
    pivot,
    ...(retry ? [{ kind: 'copy' } as Step, pivot] : []),
  ];
});

const stepArb: fc.Arbitrary<Step[]> = fc.oneof(
  { weight: 14, arbitrary: bodyArb.map((body) => [command(body)]) },
  { weight: 3, arbitrary: fc.constant<Step[]>([{ kind: 'flush' }]) },
  { weight: 1, arbitrary: fc.constant<Step[]>([{ kind: 'copy' }]) },
  { weight: 3, arbitrary: macroArb },
  { weight: 1, arbitrary: relativeMirrorArb },
);

const faultsArb: fc.Arbitrary<FaultsInput> = fc.record({
  readonly: fc.constantFrom([], [], ['/data/vdb.s2.1']),
  full: fc.constantFrom([], [], ['/data/vdb.s3.2']),
  failDisk: fc.constantFrom(undefined, undefined, 1, 2),
  migrateFail: fc.constantFrom([], [], ['prepare'], ['perform'], ['finish'], ['confirm']),
  mirrorNeverReady: fc.constantFrom(false, false, true),
  noTransaction: fc.constantFrom(false, true, true),
});

function invariantsOfState(s: DomainState, where: string): void {
  if (s.life === 'gone') {
    expect(s.snapshots, `${where}: a gone domain keeps snapshot metadata`).toEqual({});
    expect(s.current, `${where}: a gone domain keeps a current snapshot`).toBeNull();
  }
  if (s.current !== null) expect(s.snapshots[s.current], `${where}: current snapshot ${s.current} does not exist`).toBeDefined();
}

/** VMLEDGER_PROPERTY_STATS=1 prints what the runs reached (accepted verbs, refusal rules, fact types). */
const stats = new Map<string, number>();
const tally = (key: string) => stats.set(key, (stats.get(key) ?? 0) + 1);

test('random sequences with faults keep the invariants', async () => {
  const deadline = Date.now() + 15_000;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(faultsArb, fc.tuple(birthArb, fc.array(stepArb, { minLength: 5, maxLength: 30 })).map(([b, s]) => [...b, ...s.flat()]), async (faults, steps) => {
      if (Date.now() > deadline) return; // bounded: the budget is time, not a count
      runs++;
      const store = createMemoryEventStore();
      const driver = createSimulatedDriver({ store, world: WORLD, faults });
      const ledger = createLedger(store, { driver });
      let n = 0;
      const meta = () => ({ commandId: `p${runs}-${++n}`, actor: 'prop', time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString() });
      const states = async () => Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, (await ledger.loadDomain(h, NAME)).state] as const)));
      try {
        for (const [i, step] of steps.entries()) {
          const where = `step ${i + 1}`;
          const before = await states();
          let command: (DistributiveOmit<Body, 'host'> & { host: string }) | undefined;
          if (step.kind === 'flush') {
            await driver.flushGuestEvents((c) => reportFromHypervisor(ledger, c));
          } else if (step.kind === 'precreate') {
            // `qemu-img create -f qcow2 -o backing_file=…` of the overlays and mirrors, relative names (seed 002).
            for (const d of ['vda', 'vdb']) {
              if (await driver.image(`/data/${d}.r${step.n}`)) continue;
              await driver.createImage({ path: `/data/${d}.r${step.n}`, size: OVERLAY_SIZE, backing: `${d}.qcow2` });
              await driver.createImage({ path: `/data/m/${d}.r${step.n}`, size: OVERLAY_SIZE, backing: d === 'vda' ? '../base.img' : 'base.img' });
            }
          } else if (step.kind === 'copy') {
            // The administrator's `cp` of a backing file to where a relative name will find it.
            await driver.copyImages([{ from: '/data/base.img', to: '/data/m/base.img' }]);
          } else {
            const here =
              HOSTS.find((h) => before[h]!.life === 'exists' && before[h]!.active) ?? HOSTS.find((h) => before[h]!.life === 'exists') ?? 'local';
            const there = HOSTS.find((h) => h !== here)!;
            const resolve = (role: string) => (role === 'here' ? here : role === 'there' ? there : role);
            command = { ...step.body, host: resolve(step.body.host), ...('desthost' in step.body ? { desthost: resolve(step.body.desthost) } : {}) };
            const outcome = await ledger.execute({ ...command, meta: meta() });
            const facts: Fact[] = outcome.events.map(factOf);
            tally(outcome.ok ? `ok ${command.verb}` : `refused ${outcome.rule}`);
            for (const f of facts) tally(`fact ${f.type}`);
            if (facts.some((f) => f.type === 'SnapshotDisksChanged' && f.disks.some((d) => !d.changed))) tally('PARTIAL snapshot');
            if (facts.some((f) => f.type === 'BlockJobEndFailed') && facts.some((f) => f.type === 'BlockJobEnded')) tally('PARTIAL mirror end');
            // A refusal appends nothing (a failed migration records its failure: MigrationFailed on the source).
            if (!outcome.ok && command.verb !== 'migrate') expect(outcome.events).toEqual([]);

            // No migration starts with snapshots (a refused Begin appends nothing).
            if (facts.some((f) => f.type === 'MigrationStarted')) {
              expect(Object.keys(before[command.host]!.snapshots), `${where}: migration started with snapshots`).toEqual([]);
            }
            // A partial snapshot: never under --atomic, never from a transactional hypervisor.
            for (const f of facts) {
              if (f.type !== 'SnapshotDisksChanged' || f.disks.every((d) => d.changed)) continue;
              const c = command as unknown as Extract<Command, { verb: 'snapshot-create' }>;
              expect(c.atomic, `${where}: partial snapshot under --atomic`).toBeFalsy();
              expect(faults.noTransaction, `${where}: partial snapshot from a transactional hypervisor`).toBe(true);
              expect(f.disks.some((d) => d.changed), `${where}: a partial snapshot that changed nothing should be a refusal`).toBe(true);
            }
          }
          const after = await states();
          for (const h of HOSTS) {
            invariantsOfState(after[h]!, `${where} on ${h}`);
            // Mirroring is left only by pivot/abort, or when the domain's process ends (MIR-END), persistent or not.
            const b = before[h]!;
            const a = after[h]!;
            const left = Object.keys(b.blockJobs).filter((d) => !a.blockJobs[d] && b.blockJobs[d]!.kind !== 'pull');
            if (left.length === 0) continue;
            const c = command;
            const ended = c !== undefined && c.host === h && (c.verb === 'blockjob' || (c.verb === 'snapshot-delete' && (c.mirrorPivot || c.mirrorAbort)));
            const runEnded = a.life !== 'exists' || !a.active;
            const processEnded = c?.verb === 'guest-event' || c?.verb === 'destroy' || c?.verb === 'shutdown';
            expect(
              ended || (runEnded && (!b.persistent || processEnded)),
              `${where} on ${h}: mirroring of ${left.join(', ')} left by ${c?.verb ?? step.kind} (persistent=${b.persistent}, active after=${a.active})`,
            ).toBe(true);
          }
        }
        // Never active on two hosts at once, at any point of the log.
        expect(await twoHostViolations(store)).toEqual([]);
        // The world is configuration + the log: a fresh driver folding it sees the same images under every disk.
        const fresh = createSimulatedDriver({ store, world: WORLD, faults });
        for (const h of HOSTS) {
          for (const d of ['vda', 'vdb']) {
            expect(await fresh.diskChain(h, NAME, d)).toEqual(await driver.diskChain(h, NAME, d));
          }
          expect(await fresh.domain(h, NAME)).toEqual((await ledger.loadDomain(h, NAME)).state.life === 'none' ? undefined : (await ledger.loadDomain(h, NAME)).state);
        }
        expect(await fresh.pendingGuestEvents()).toEqual(await driver.pendingGuestEvents());
        // And the audit replay accepts the log (driver-reported facts included).
        const audit = await replayCheck(store);
        expect(audit.violations, JSON.stringify(audit.violations).slice(0, 2000)).toEqual([]);
        expect(audit.ok).toBe(true);
      } finally {
        await ledger.close();
        await store.close();
      }
    }),
    { numRuns: 400, seed: Number(process.env.VMLEDGER_PROPERTY_SEED ?? 20260101), endOnFailure: true },
  );
  if (process.env.VMLEDGER_PROPERTY_STATS) console.log([...stats].sort().map(([key, v]) => `${key}: ${v}`).join('\n'));
  expect(runs).toBeGreaterThan(20);
}, 60_000);
