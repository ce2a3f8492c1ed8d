// One describe per rule id of docs/rules.md: a test that makes the rule refuse (or, for an effect rule, shows the
// effect and its boundary) next to one that shows the allowed path. Refusals are checked for the exact rule id,
// libvirt's numeric code and libvirt's rendered message (docs/rules.md §2, catalog §0.2), and for changing nothing.
// The meta-tests at the bottom keep this file, machines/guards.ts, machines/rules.ts and docs/rules.md in step.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { VERBS, type Verb } from '../../machines/commands';
import { evolve, evolveAll } from '../../machines/evolve';
import type { Fact } from '../../machines/events';
import { GUARDS } from '../../machines/guards';
import { domstateText, topState, type Disk, type DomainConfig, type DomainState } from '../../machines/model';
import { RULES, RULE_IDS } from '../../machines/rules';
import {
  domstate,
  given,
  run,
  runAccepted,
  testDomain,
  testDomainSetup,
  TEST_CONFIG,
  TEST_UUID,
  type CommandSpec,
  snapshotParents,
  type SpecOf,
} from '../support/given';

// ---------------------------------------------------------------------------------------------------
// Messages as libvirt renders them (catalog §0.2).

const invalid = (text: string) => `Requested operation is not valid: ${text}`; // 55
const failed = (text: string) => `operation failed: ${text}`; // 9
const invalidArgument = (text: string) => `invalid argument: ${text}`; // 8 via virReportError
const NOT_RUNNING = invalid('domain is not running');
const ACTIVE_BLOCK_JOB = invalid('domain has active block job');

// ---------------------------------------------------------------------------------------------------
// Fixtures: Appendix A's running persistent `test`, and variants of it.

const VDA: Disk = TEST_CONFIG.disks[0]!;
const VDB: Disk = { target: 'vdb', source: '/guest/data.qcow2', device: 'disk', readonly: false, shareable: false, storage: 'managed' };
const withDisks = (...disks: Disk[]): DomainConfig => ({ ...TEST_CONFIG, disks: [VDA, ...disks] });
const TWO_DISKS = withDisks(VDB);
const T2: DomainConfig = { ...TEST_CONFIG, name: 't2', uuid: '11111111-2222-3333-4444-555555555555' };

/** Appendix A's `test` after these commands (all must be accepted). */
const testAfter = (steps: CommandSpec[], config: DomainConfig = TEST_CONFIG) =>
  runAccepted(steps, { from: testDomain(config) }).state;

const snap = (name: string, flags: Omit<Partial<SpecOf<'snapshot-create'>>, 'verb'> = {}): CommandSpec => ({
  verb: 'snapshot-create',
  domain: 'test',
  ...flags,
  snapshot: { name, ...flags.snapshot },
});
const del = (snapshotname: string, flags: Omit<Partial<SpecOf<'snapshot-delete'>>, 'verb'> = {}): CommandSpec => ({
  verb: 'snapshot-delete',
  domain: 'test',
  snapshotname,
  ...flags,
});
const revert = (snapshotname: string, flags: Omit<Partial<SpecOf<'snapshot-revert'>>, 'verb'> = {}): CommandSpec => ({
  verb: 'snapshot-revert',
  domain: 'test',
  snapshotname,
  ...flags,
});
const undefine = (flags: Omit<Partial<SpecOf<'undefine'>>, 'verb'> = {}): CommandSpec => ({ verb: 'undefine', domain: 'test', ...flags });
const simple = (verb: 'start' | 'shutdown' | 'destroy' | 'suspend' | 'resume' | 'reboot' | 'managedsave' | 'managedsave-remove', domain = 'test'): CommandSpec =>
  ({ verb, domain }) as CommandSpec;
const destroy = simple('destroy');
const save = (file = '/var/lib/test.save'): CommandSpec => ({ verb: 'save', domain: 'test', file });
const guest = (event: 'poweroff' | 'reboot' | 'crash' | 'blockjob-ready', disk?: string): CommandSpec => ({
  verb: 'guest-event',
  domain: 'test',
  event,
  disk,
});
/** A mirrored snapshot (seed 002): vda reopened on `file`, mirrored into `mirror`. */
const mirrorSnap = (name = 'm', disks = [{ target: 'vda', file: '/guest/vda.m', mirror: '/new/vda.qcow2' }]): CommandSpec =>
  snap(name, { diskOnly: true, reuseExternal: true, snapshot: { name, disks } });
const blockcopy = (path = 'vda', dest = '/new/copy.img', transientJob = true): CommandSpec => ({
  verb: 'blockcopy',
  domain: 'test',
  path,
  dest,
  transientJob,
});
const blockjob = (path: string, op: 'pivot' | 'abort'): CommandSpec => ({ verb: 'blockjob', domain: 'test', path, [op]: true });
const migrate = (flags: Omit<Partial<SpecOf<'migrate'>>, 'verb'> = {}): CommandSpec => ({
  verb: 'migrate',
  domain: 'test',
  desthost: 'dst',
  ...flags,
});
const phase = (p: 'prepare' | 'perform' | 'finish' | 'confirm', failed?: string): CommandSpec => ({
  verb: 'migrate-phase',
  domain: 'test',
  phase: p,
  failed,
});

const diskSource = (s: DomainState, target: string) => s.config?.disks.find((d) => d.target === target)?.source;

/** The five-snapshot tree of T26: s1 → s2 → {s3, s4}, current s4. */
const T26_TREE: CommandSpec[] = [snap('s1'), snap('s2'), snap('s3'), revert('s2'), snap('s4')];

// ===================================================================================================
// §3 Lifecycle

describe('DOM-NOTFOUND', () => {
  /** One minimal command per verb that names an existing domain. */
  const minimal: Partial<Record<Verb, (domain: string) => CommandSpec>> = {
    start: (d) => simple('start', d),
    shutdown: (d) => simple('shutdown', d),
    destroy: (d) => simple('destroy', d),
    suspend: (d) => simple('suspend', d),
    resume: (d) => simple('resume', d),
    reboot: (d) => simple('reboot', d),
    managedsave: (d) => simple('managedsave', d),
    'managedsave-remove': (d) => simple('managedsave-remove', d),
    save: (d) => ({ verb: 'save', domain: d, file: '/x.save' }),
    undefine: (d) => ({ verb: 'undefine', domain: d }),
    'snapshot-create': (d) => ({ verb: 'snapshot-create', domain: d, snapshot: { name: 's1' } }),
    'snapshot-delete': (d) => ({ verb: 'snapshot-delete', domain: d, snapshotname: 's1' }),
    'snapshot-revert': (d) => ({ verb: 'snapshot-revert', domain: d, snapshotname: 's1' }),
    blockcopy: (d) => ({ verb: 'blockcopy', domain: d, path: 'vda', dest: '/x.img', transientJob: true }),
    blockjob: (d) => ({ verb: 'blockjob', domain: d, path: 'vda', abort: true }),
    blockpull: (d) => ({ verb: 'blockpull', domain: d, path: 'vda' }),
    migrate: (d) => ({ verb: 'migrate', domain: d, desthost: 'dst' }),
    'migrate-phase': (d) => ({ verb: 'migrate-phase', domain: d, phase: 'prepare' }),
    'guest-event': (d) => ({ verb: 'guest-event', domain: d, event: 'poweroff' }),
  };
  const namingVerbs = VERBS.filter((v) => v !== 'define' && v !== 'create' && v !== 'migrate-incoming');

  it('covers every verb that names an existing domain', () => {
    expect(Object.keys(minimal).sort()).toEqual([...namingVerbs].sort());
  });

  it.each(namingVerbs)('DOM-NOTFOUND: %s of a domain that does not exist is refused with 42', (verb) => {
    given(testDomain())
      .when(minimal[verb]!('nosuch'))
      .then({ rule: 'DOM-NOTFOUND', code: 42, message: "Domain not found: no domain with matching name 'nosuch'" });
  });

  it('DOM-NOTFOUND: a domain that is gone is not found (T52: a transient domain after destroy)', () => {
    given([{ verb: 'create', config: T2 }, simple('destroy', 't2')])
      .when(simple('start', 't2'))
      .then({ rule: 'DOM-NOTFOUND', code: 42, message: "Domain not found: no domain with matching name 't2'" });
  });

  it('allows the same commands on a domain that exists', () => {
    given(testDomain())
      .when(simple('suspend'))
      .then([{ type: 'DomainSuspended' }]);
  });
});

describe('DEF-NAME', () => {
  it('DEF-NAME: a UUID that exists under another name is refused with 9 (T53)', () => {
    given(testDomain())
      .when({ verb: 'define', config: { ...TEST_CONFIG, name: 'other' } })
      .then({ rule: 'DEF-NAME', code: 9, message: failed(`domain 'test' is already defined with uuid ${TEST_UUID}`) });
  });

  it('DEF-NAME: a name that exists with another UUID is refused with 9 (T54)', () => {
    given(testDomain())
      .when({ verb: 'define', config: { ...TEST_CONFIG, uuid: 'aaaaaaaa-0000-0000-0000-000000000000' } })
      .then({ rule: 'DEF-NAME', code: 9, message: failed(`domain 'test' already exists with uuid ${TEST_UUID}`) });
  });

  it('DEF-NAME: create checks the same clashes', () => {
    given(testDomain())
      .when({ verb: 'create', config: { ...TEST_CONFIG, name: 'other' } })
      .then({ rule: 'DEF-NAME', code: 9, message: failed(`domain 'test' is already defined with uuid ${TEST_UUID}`) });
    given(testDomain())
      .when({ verb: 'create', config: { ...TEST_CONFIG, uuid: 'aaaaaaaa-0000-0000-0000-000000000000' } })
      .then({ rule: 'DEF-NAME', code: 9, message: failed(`domain 'test' already exists with uuid ${TEST_UUID}`) });
  });

  it('allows a new name with a new UUID, and the UUID of a domain that is gone', () => {
    given(testDomain())
      .when({ verb: 'define', config: T2 })
      .then((facts, state) => {
        expect(facts).toEqual([{ type: 'DomainDefined', config: T2 }]);
        expect(topState(state)).toBe('inactive');
      });
    const gone = testAfter([destroy, undefine()]);
    expect(topState(gone)).toBe('gone');
    given(gone)
      .when({ verb: 'define', config: { ...TEST_CONFIG, name: 'other' } })
      .then((_facts, state) => expect(state).toMatchObject({ name: 'other', uuid: TEST_UUID, persistent: true }));
  });
});

describe('DEF-UPDATE', () => {
  it('DEF-UPDATE: same name and UUID updates the config of a running persistent domain, which keeps running', () => {
    given(testDomain())
      .when({ verb: 'define', config: TWO_DISKS })
      .then((facts, state) => {
        expect(facts).toEqual([{ type: 'DomainDefined', config: TWO_DISKS }]);
        expect(state.config).toEqual(TWO_DISKS);
        expect(topState(state)).toBe('running');
      });
  });

  it('DEF-UPDATE: a running transient domain becomes persistent and stays defined after destroy (T55)', () => {
    const r = runAccepted([{ verb: 'create', config: T2 }, { verb: 'define', config: T2 }]);
    expect(topState(r.state)).toBe('running');
    expect(r.state.persistent).toBe(true);
    const stopped = runAccepted([simple('destroy', 't2')], { from: r.state }).state;
    expect(topState(stopped)).toBe('inactive');
    expect(stopped.reason).toBe('destroyed');
  });

  it('boundary: an update of an inactive domain leaves it inactive, with its snapshots', () => {
    const s = testAfter([snap('s1'), destroy, { verb: 'define', config: TWO_DISKS }]);
    expect(topState(s)).toBe('inactive');
    expect(Object.keys(s.snapshots)).toEqual(['s1']);
    expect(s.config).toEqual(TWO_DISKS);
  });
});

describe('CRE-ACTIVE', () => {
  it('CRE-ACTIVE: create of the same name and UUID while it is active is refused with 55 (T50)', () => {
    given(testDomain())
      .when({ verb: 'create', config: TEST_CONFIG })
      .then({ rule: 'CRE-ACTIVE', code: 55, message: invalid("domain 'test' is already active") });
  });

  it('allows create over an inactive persistent domain: started with the given XML, still persistent (T51)', () => {
    given(testAfter([destroy]))
      .when({ verb: 'create', config: TWO_DISKS })
      .then((facts, state) => {
        expect(facts).toHaveLength(1);
        expect(facts[0]).toMatchObject({ type: 'DomainStarted', config: TWO_DISKS });
        expect(topState(state)).toBe('running');
        expect(state.persistent).toBe(true);
        expect(state.config).toEqual(TWO_DISKS);
      });
  });
});

describe('STA-ACTIVE', () => {
  it('STA-ACTIVE: start of an active domain is refused with 55', () => {
    given(testDomain()).when(simple('start')).then({ rule: 'STA-ACTIVE', code: 55, message: invalid('domain is already running') });
    given(testAfter([simple('suspend')]))
      .when(simple('start'))
      .then({ rule: 'STA-ACTIVE', code: 55, message: invalid('domain is already running') });
  });

  it('allows start of an inactive domain: it boots', () => {
    given(testAfter([destroy]))
      .when(simple('start'))
      .then((_f, s) => expect([topState(s), domstateText(s), s.reason]).toEqual(['running', 'running', 'booted']));
  });

  it('a managed-save image is restored and removed (paused if it was saved paused)', () => {
    given(testAfter([simple('managedsave')]))
      .when(simple('start'))
      .then((_f, s) => expect([domstateText(s), s.reason, s.hasManagedSave]).toEqual(['running', 'restored', false]));
    given(testAfter([simple('suspend'), simple('managedsave')]))
      .when(simple('start'))
      .then((_f, s) => expect([domstateText(s), s.reason, s.hasManagedSave]).toEqual(['paused', 'restored', false]));
  });

  it('--force-boot boots fresh and discards the image', () => {
    given(testAfter([simple('managedsave')]))
      .when({ verb: 'start', domain: 'test', forceBoot: true })
      .then((_f, s) => expect([domstateText(s), s.reason, s.hasManagedSave]).toEqual(['running', 'booted', false]));
  });
});

describe('ACT-REQ', () => {
  const verbs = ['shutdown', 'destroy', 'suspend', 'resume', 'reboot', 'managedsave'] as const;

  it.each(verbs)('ACT-REQ: %s of an inactive domain is refused with 55', (verb) => {
    given(testAfter([destroy])).when(simple(verb)).then({ rule: 'ACT-REQ', code: 55, message: NOT_RUNNING });
  });

  it('ACT-REQ: save of an inactive domain is refused with 55 (T69)', () => {
    given(testAfter([destroy])).when(save()).then({ rule: 'ACT-REQ', code: 55, message: NOT_RUNNING });
  });

  it('ACT-REQ: shutdown needs state running, not paused', () => {
    given(testAfter([simple('suspend')])).when(simple('shutdown')).then({ rule: 'ACT-REQ', code: 55, message: NOT_RUNNING });
  });

  it('ACT-REQ: resume of a running domain is refused with 55', () => {
    given(testDomain()).when(simple('resume')).then({ rule: 'ACT-REQ', code: 55, message: invalid('domain is already running') });
  });

  it('allows suspend of a paused domain as a successful no-op', () => {
    given(testAfter([simple('suspend')]))
      .when(simple('suspend'))
      .then((facts, s, before) => {
        expect(facts).toEqual([]);
        expect(s).toEqual(before);
      });
  });

  it('allows the verbs on an active domain', () => {
    given(testDomain())
      .when(simple('shutdown'))
      .then((_f, s) => expect([domstateText(s), s.reason]).toEqual(['shut off', 'shutdown']));
    given(testAfter([simple('suspend')]))
      .when(simple('resume'))
      .then((_f, s) => expect([domstateText(s), s.reason]).toEqual(['running', 'unpaused']));
    given(testDomain()).when(simple('reboot')).then([{ type: 'DomainRebooted' }]);
  });
});

describe('TRANSIENT-QUIT', () => {
  const transientWithSnapshots = () => testAfter([snap('s1'), snap('s2'), undefine()]);
  const stops: [string, CommandSpec[]][] = [
    ['destroy', [destroy]],
    ['shutdown', [simple('shutdown')]],
    ['save', [save()]],
    ['a guest crash', [guest('crash')]],
    ['a guest poweroff', [guest('poweroff')]],
  ];

  it.each(stops)('TRANSIENT-QUIT: a transient domain that stops by %s is gone, with all its snapshot metadata', (_what, steps) => {
    const r = runAccepted(steps, { from: transientWithSnapshots() });
    const facts = r.outcomes.flatMap((o) => o.facts);
    expect(facts).toContainEqual({ type: 'TransientDomainRemoved', snapshotMetadataDiscarded: ['s1', 's2'] });
    expect(topState(r.state)).toBe('gone');
    expect(r.state.snapshots).toEqual({});
    expect(r.state.current).toBeNull();
  });

  it('TRANSIENT-QUIT: a transient domain that migrates away is gone from the source', () => {
    const r = runAccepted([migrate(), phase('prepare'), phase('perform'), phase('finish'), phase('confirm')], {
      from: testAfter([undefine()]),
    });
    expect(topState(r.state)).toBe('gone');
  });

  it('TRANSIENT-QUIT: a domain re-created under the name starts without the old snapshots (T56)', () => {
    const r = runAccepted([destroy, { verb: 'create', config: TEST_CONFIG }], { from: transientWithSnapshots() });
    expect(topState(r.state)).toBe('transient');
    expect(r.state.snapshots).toEqual({});
  });

  it('boundary: a persistent domain that stops keeps its definition and snapshots (T85)', () => {
    given(testAfter([snap('s1')]))
      .when(destroy)
      .then((facts, s) => {
        expect(facts).toEqual([{ type: 'DomainStopped', reason: 'destroyed' }]);
        expect([topState(s), s.reason, Object.keys(s.snapshots)]).toEqual(['inactive', 'destroyed', ['s1']]);
      });
  });
});

describe('MS-TRANSIENT', () => {
  it('MS-TRANSIENT: managedsave of a transient domain is refused with 55 (T38)', () => {
    given(testAfter([undefine()]))
      .when(simple('managedsave'))
      .then({ rule: 'MS-TRANSIENT', code: 55, message: invalid('cannot do managed save for transient domain') });
  });

  it('allows managedsave of a persistent domain (T39: shut off (saved))', () => {
    given(testDomain())
      .when(simple('managedsave'))
      .then((_f, s) => expect([domstateText(s), s.reason, s.hasManagedSave]).toEqual(['shut off', 'saved', true]));
  });
});

describe('MS-MIRROR', () => {
  it('MS-MIRROR: managedsave and save with an active block copy are refused with 55', () => {
    const copying = testAfter([blockcopy()]);
    given(copying).when(simple('managedsave')).then({ rule: 'MS-MIRROR', code: 55, message: ACTIVE_BLOCK_JOB });
    given(copying).when(save()).then({ rule: 'MS-MIRROR', code: 55, message: ACTIVE_BLOCK_JOB });
  });

  it('MS-MIRROR: save with a current mirrored snapshot is refused with 55 (seed 002)', () => {
    given(testAfter([mirrorSnap()])).when(save()).then({ rule: 'MS-MIRROR', code: 55, message: ACTIVE_BLOCK_JOB });
  });

  it('allows managedsave once the job has ended', () => {
    given(testAfter([blockcopy(), blockjob('vda', 'abort')]))
      .when(simple('managedsave'))
      .then((_f, s) => expect(s.hasManagedSave).toBe(true));
  });
});

// ===================================================================================================
// §4 Undefine

describe('UND-TRANSIENT', () => {
  it('UND-TRANSIENT: undefine of a transient domain is refused with 55', () => {
    given(testAfter([undefine()]))
      .when(undefine())
      .then({ rule: 'UND-TRANSIENT', code: 55, message: invalid('cannot undefine transient domain') });
  });

  it('allows undefine of a persistent domain (T01: a running one becomes transient)', () => {
    given(testDomain())
      .when(undefine())
      .then((_f, s) => expect([topState(s), s.persistent, s.active]).toEqual(['transient', false, true]));
  });
});

describe('UND-SNAPSHOTS', () => {
  it('UND-SNAPSHOTS: undefine of an inactive domain with snapshots is refused with 55 and the count (T03)', () => {
    given(testAfter([snap('s1'), destroy]))
      .when(undefine())
      .then({ rule: 'UND-SNAPSHOTS', code: 55, message: invalid('cannot delete inactive domain with 1 snapshots') });
    given(testAfter([snap('s1'), snap('s2'), destroy]))
      .when(undefine({ managedSave: true }))
      .then({ rule: 'UND-SNAPSHOTS', code: 55, message: invalid('cannot delete inactive domain with 2 snapshots') });
  });

  it('allows it with --snapshots-metadata: the metadata goes with the undefine (T04)', () => {
    given(testAfter([snap('s1'), destroy]))
      .when(undefine({ snapshotsMetadata: true }))
      .then((facts, s) => {
        expect(facts).toEqual([
          { type: 'DomainUndefined', snapshotMetadataRemoved: ['s1'], managedSaveRemoved: false, storageRemoved: [], storageKept: [] },
        ]);
        expect(topState(s)).toBe('gone');
        expect(s.snapshots).toEqual({});
      });
  });

  it('boundary: --no-metadata snapshots do not count', () => {
    given(testAfter([snap('s1', { noMetadata: true }), destroy]))
      .when(undefine())
      .then((_f, s) => expect(topState(s)).toBe('gone'));
  });
});

describe('UND-MANAGED-SAVE', () => {
  it('UND-MANAGED-SAVE: a managed-save image without --managed-save is refused with 55 (T39)', () => {
    given(testAfter([simple('managedsave')]))
      .when(undefine())
      .then({ rule: 'UND-MANAGED-SAVE', code: 55, message: invalid('Refusing to undefine while domain managed save image exists') });
  });

  it('allows it with --managed-save: the image is removed (T40)', () => {
    given(testAfter([simple('managedsave')]))
      .when(undefine({ managedSave: true }))
      .then((facts, s) => {
        expect(facts[0]).toMatchObject({ type: 'DomainUndefined', managedSaveRemoved: true });
        expect(topState(s)).toBe('gone');
      });
  });
});

describe('UND-STORAGE-RUNNING', () => {
  const refusal = { rule: 'UND-STORAGE-RUNNING', code: 55, message: invalid('Storage volume deletion is supported only on stopped domains') };

  it('UND-STORAGE-RUNNING: --remove-all-storage on an active domain is refused with 55 (T05)', () => {
    given(testDomain()).when(undefine({ removeAllStorage: true })).then(refusal);
  });

  it('UND-STORAGE-RUNNING: --storage and --wipe-storage on an active domain too (seed 004)', () => {
    given(testDomain()).when(undefine({ storage: ['vda'] })).then(refusal);
    given(testDomain()).when(undefine({ wipeStorage: true })).then(refusal);
    given(testAfter([simple('suspend')])).when(undefine({ storage: ['vda'] })).then(refusal);
  });

  it('allows storage removal on a stopped domain', () => {
    given(testAfter([destroy]))
      .when(undefine({ removeAllStorage: true }))
      .then((facts) => expect(facts[0]).toMatchObject({ storageRemoved: [{ target: 'vda', source: '/guest/diskimage1' }] }));
  });
});

describe('UND-STORAGE-FLAGS', () => {
  it('UND-STORAGE-FLAGS: --storage with --remove-all-storage is refused with 8 (T07)', () => {
    given(testAfter([destroy]))
      .when(undefine({ storage: ['vda'], removeAllStorage: true }))
      .then({ rule: 'UND-STORAGE-FLAGS', code: 8, message: 'Specified both --storage and --remove-all-storage' });
  });

  it('UND-STORAGE-FLAGS: --wipe-storage alone is refused with 8 (T06)', () => {
    given(testAfter([destroy]))
      .when(undefine({ wipeStorage: true }))
      .then({ rule: 'UND-STORAGE-FLAGS', code: 8, message: "'--wipe-storage' requires '--storage <string>' or '--remove-all-storage'" });
  });

  it('UND-STORAGE-FLAGS: a --storage entry naming no disk is refused with 8', () => {
    given(testAfter([destroy]))
      .when(undefine({ storage: ['vda', '/no/such.img'] }))
      .then({ rule: 'UND-STORAGE-FLAGS', code: 8, message: "Volume '/no/such.img' was not found in domain's definition." });
  });

  it('allows --storage by target or source, with --wipe-storage', () => {
    given(testAfter([destroy]))
      .when(undefine({ storage: ['/guest/diskimage1'], wipeStorage: true }))
      .then((facts) => expect(facts[0]).toMatchObject({ storageRemoved: [{ target: 'vda', source: '/guest/diskimage1' }] }));
  });
});

describe('UND-STORAGE-SHARED', () => {
  const config = withDisks(
    { target: 'vdb', source: '/shared/base.img', device: 'disk', readonly: true, shareable: false, storage: 'managed' },
    { target: 'vdc', source: '/shared/cluster.img', device: 'disk', readonly: false, shareable: true, storage: 'managed' },
    { target: 'hdc', source: '/iso/install.iso', device: 'cdrom', readonly: true, shareable: false, storage: 'managed' },
    { target: 'vdd', source: '/dev/sdb', device: 'disk', readonly: false, shareable: false, storage: 'unmanaged' },
    { target: 'hdd', device: 'cdrom', readonly: true, shareable: false, storage: 'managed' },
  );
  const stopped = () => testAfter([destroy], config);

  it('UND-STORAGE-SHARED: --remove-all-storage keeps readonly, shareable and cdrom disks, and reports unmanaged volumes', () => {
    given(stopped())
      .when(undefine({ removeAllStorage: true }))
      .then((facts, s) => {
        const f = facts[0] as Extract<Fact, { type: 'DomainUndefined' }>;
        expect(f.storageRemoved).toEqual([{ target: 'vda', source: '/guest/diskimage1' }]);
        expect(f.storageKept.map((k) => k.target)).toEqual(['vdb', 'vdc', 'hdc', 'vdd']);
        expect(f.storageKept.find((k) => k.target === 'vdd')!.reason).toBe(
          "Storage volume 'vdd'(/dev/sdb) is not managed by libvirt. Remove it manually.",
        );
        expect(topState(s)).toBe('gone');
      });
  });

  it('boundary: a readonly, shareable or cdrom disk named in --storage is removed; an unmanaged one is still kept', () => {
    given(stopped())
      .when(undefine({ storage: ['vdb', '/shared/cluster.img', 'hdc', 'vdd'] }))
      .then((facts) => {
        const f = facts[0] as Extract<Fact, { type: 'DomainUndefined' }>;
        expect(f.storageRemoved.map((r) => r.target)).toEqual(['vdb', 'vdc', 'hdc']);
        expect(f.storageKept.map((k) => k.target)).toEqual(['vdd']);
      });
  });

  it('without storage flags nothing is removed or reported', () => {
    given(stopped())
      .when(undefine())
      .then((facts) => expect(facts[0]).toMatchObject({ storageRemoved: [], storageKept: [] }));
  });
});

describe('UND-ACTIVE', () => {
  it('UND-ACTIVE: a running persistent domain becomes transient, keeps running and keeps its snapshots (T57)', () => {
    given(testAfter([snap('s1')]))
      .when(undefine())
      .then((_f, s) => {
        expect([topState(s), domstateText(s), s.persistent]).toEqual(['transient', 'running', false]);
        expect(Object.keys(s.snapshots)).toEqual(['s1']);
        expect(s.current).toBe('s1');
      });
  });

  it('UND-ACTIVE: whatever the flags (T82: --snapshots-metadata is ignored on an active domain)', () => {
    given(testAfter([snap('s1')]))
      .when(undefine({ snapshotsMetadata: true, managedSave: true }))
      .then((facts, s) => {
        expect(facts[0]).toMatchObject({ type: 'DomainUndefined', snapshotMetadataRemoved: [] });
        expect(Object.keys(s.snapshots)).toEqual(['s1']);
      });
  });

  it('UND-ACTIVE: the metadata goes when the now-transient domain quits (TRANSIENT-QUIT)', () => {
    given(testAfter([snap('s1'), undefine()]))
      .when(destroy)
      .then((facts, s) => {
        expect(facts).toContainEqual({ type: 'TransientDomainRemoved', snapshotMetadataDiscarded: ['s1'] });
        expect(topState(s)).toBe('gone');
      });
  });

  it('boundary: a paused persistent domain is active too', () => {
    given(testAfter([simple('suspend')]))
      .when(undefine())
      .then((_f, s) => expect([topState(s), domstateText(s)]).toEqual(['transient', 'paused']));
  });
});

describe('UND-ATOMIC', () => {
  const inactiveWithSnapshotAndImage = () => testAfter([snap('s1'), simple('managedsave')]);

  it('UND-ATOMIC: --snapshots-metadata without --managed-save fails on the image and keeps the snapshot metadata', () => {
    const before = inactiveWithSnapshotAndImage();
    given(before)
      .when(undefine({ snapshotsMetadata: true }))
      .then({ rule: 'UND-MANAGED-SAVE', code: 55, message: invalid('Refusing to undefine while domain managed save image exists') });
    expect(Object.keys(before.snapshots)).toEqual(['s1']);
  });

  it('UND-ATOMIC: a failing storage check leaves the snapshots and the image too', () => {
    given(inactiveWithSnapshotAndImage())
      .when(undefine({ snapshotsMetadata: true, managedSave: true, storage: ['nope'] }))
      .then({ rule: 'UND-STORAGE-FLAGS', code: 8, message: "Volume 'nope' was not found in domain's definition." });
  });

  it('allows the whole undefine when every check passes: one fact says everything that went with it', () => {
    given(inactiveWithSnapshotAndImage())
      .when(undefine({ snapshotsMetadata: true, managedSave: true, removeAllStorage: true }))
      .then((facts, s) => {
        expect(facts).toEqual([
          {
            type: 'DomainUndefined',
            snapshotMetadataRemoved: ['s1'],
            managedSaveRemoved: true,
            storageRemoved: [{ target: 'vda', source: '/guest/diskimage1' }],
            storageKept: [],
          },
        ]);
        expect(topState(s)).toBe('gone');
      });
  });
});

// ===================================================================================================
// §5 Snapshots

describe('SC-CURRENT', () => {
  it('SC-CURRENT: --current without --redefine is refused with 8 (T15)', () => {
    given(testDomain())
      .when(snap('s1', { current: true }))
      .then({
        rule: 'SC-CURRENT',
        code: 8,
        message: "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'",
      });
  });

  it('allows --current with --redefine (T22)', () => {
    given(testDomain())
      .when(snap('s1', { redefine: true, current: true, snapshot: { state: 'running', creationTime: '1795300779' } }))
      .then((_f, s) => expect(s.current).toBe('s1'));
  });
});

describe('SC-REDEFINE-NOMETA', () => {
  it('SC-REDEFINE-NOMETA: --redefine with --no-metadata is refused with 8 (T16)', () => {
    given(testDomain())
      .when(snap('s1', { redefine: true, noMetadata: true }))
      .then({
        rule: 'SC-REDEFINE-NOMETA',
        code: 8,
        message: "Flags 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA' are mutually exclusive",
      });
  });

  it('SC-REDEFINE-NOMETA: --redefine with --halt is refused with 8 (probe P03)', () => {
    given(testDomain())
      .when(snap('s1', { redefine: true, halt: true }))
      .then({
        rule: 'SC-REDEFINE-NOMETA',
        code: 8,
        message: "Flags 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_HALT' are mutually exclusive",
      });
  });

  it('allows --no-metadata alone: the snapshot is taken and not tracked', () => {
    given(testDomain())
      .when(snap('s1', { noMetadata: true }))
      .then((facts, s) => {
        expect(facts).toEqual([]);
        expect(s.snapshots).toEqual({});
      });
  });
});

describe('SC-QUIESCE', () => {
  it('SC-QUIESCE: --quiesce without --disk-only is refused with 8 (qemu; T20 is the test driver)', () => {
    given(testDomain())
      .when(snap('s1', { quiesce: true }))
      .then({
        rule: 'SC-QUIESCE',
        code: 8,
        message: "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE'",
      });
  });

  it('allows --quiesce with --disk-only', () => {
    given(testDomain())
      .when(snap('s1', { quiesce: true, diskOnly: true }))
      .then((_f, s) => expect(s.snapshots.s1).toMatchObject({ state: 'disk-snapshot', diskOnly: true, external: true }));
  });
});

describe('SC-HALT-TRANSIENT', () => {
  it('SC-HALT-TRANSIENT: --halt on a transient domain is refused with 55 (T13)', () => {
    given(testAfter([undefine()]))
      .when(snap('s1', { halt: true }))
      .then({ rule: 'SC-HALT-TRANSIENT', code: 55, message: invalid('cannot halt after transient domain snapshot') });
  });

  it('allows --halt on a persistent domain (T14)', () => {
    given(testDomain())
      .when(snap('s1', { halt: true }))
      .then((_f, s) => expect(topState(s)).toBe('inactive'));
  });
});

describe('SC-EXISTS', () => {
  it('SC-EXISTS: a snapshot name that exists is refused with 9 (T23)', () => {
    given(testAfter([snap('s1')]))
      .when(snap('s1'))
      .then({ rule: 'SC-EXISTS', code: 9, message: failed('domain moment s1 already exists') });
  });

  it('allows a new name, and --redefine of an existing one (it replaces the metadata)', () => {
    given(testAfter([snap('s1')]))
      .when(snap('s2'))
      .then((_f, s) => expect(Object.keys(s.snapshots)).toEqual(['s1', 's2']));
    given(testAfter([snap('s1')]))
      .when(snap('s1', { redefine: true, snapshot: { description: 'again', state: 'running' } }))
      .then((_f, s) => expect(s.snapshots.s1!.description).toBe('again'));
  });
});

describe('SC-NAME', () => {
  it("SC-NAME: a name with '/' is refused (XML_DETAIL 35, no prefix)", () => {
    given(testDomain())
      .when(snap('a/b'))
      .then({ rule: 'SC-NAME', code: 35, message: "invalid snapshot name 'a/b': name can't contain '/'" });
  });

  it("SC-NAME: a name starting with '.' is refused", () => {
    given(testDomain())
      .when(snap('.hidden'))
      .then({ rule: 'SC-NAME', code: 35, message: "invalid snapshot name '.hidden': name can't start with '.'" });
  });

  it("allows other names ('a.b'), and any name with --no-metadata (libvirt checks only tracked snapshots)", () => {
    given(testDomain())
      .when(snap('a.b'))
      .then((_f, s) => expect(Object.keys(s.snapshots)).toEqual(['a.b']));
    given(testDomain())
      .when(snap('a/b', { noMetadata: true }))
      .then([]);
  });
});

describe('SC-TREE', () => {
  it("SC-TREE: --redefine naming the snapshot as its own parent is refused with 8, 'invalid argument: ' (T24)", () => {
    given(testDomain())
      .when(snap('s1', { redefine: true, snapshot: { parent: 's1', state: 'running' } }))
      .then({ rule: 'SC-TREE', code: 8, message: invalidArgument('cannot set moment s1 as its own parent') });
  });

  it('SC-TREE: --redefine with a parent that does not exist is refused with 8 (T25)', () => {
    given(testDomain())
      .when(snap('x1', { redefine: true, snapshot: { parent: 'nosuch', state: 'running' } }))
      .then({ rule: 'SC-TREE', code: 8, message: invalidArgument('parent nosuch for moment x1 not found') });
  });

  it('SC-TREE: --redefine with a parent below the snapshot (a cycle) is refused with 8', () => {
    given(testAfter([snap('s1'), snap('s2')]))
      .when(snap('s1', { redefine: true, snapshot: { parent: 's2', state: 'running' } }))
      .then({ rule: 'SC-TREE', code: 8, message: invalidArgument('parent s2 would create cycle to s1') });
  });

  it('SC-TREE: --redefine without a name is refused (XML_ERROR 27)', () => {
    given(testDomain())
      .when({ verb: 'snapshot-create', domain: 'test', redefine: true })
      .then({ rule: 'SC-TREE', code: 27, message: 'XML error: a redefined snapshot must have a name' });
  });

  it("allows it: a new snapshot's parent is the current one and it becomes current; a revert makes branches (T26)", () => {
    const s = testAfter(T26_TREE);
    expect(snapshotParents(s)).toEqual({ s1: null, s2: 's1', s3: 's2', s4: 's2' });
    expect(s.current).toBe('s4');
  });

  it('--no-metadata snapshots are not tracked: current and parents do not move', () => {
    const s = testAfter([snap('s1'), snap('nm', { noMetadata: true }), snap('s2')]);
    expect(snapshotParents(s)).toEqual({ s1: null, s2: 's1' });
  });

  it('--redefine takes the parent from the XML and changes current only with --current (T21, T22)', () => {
    const base = testAfter([snap('s1'), snap('s2')]);
    given(base)
      .when(snap('r1', { redefine: true, snapshot: { parent: 's1', state: 'shutoff' } }))
      .then((_f, s) => expect([s.snapshots.r1!.parent, s.current]).toEqual(['s1', 's2']));
    given(base)
      .when(snap('r1', { redefine: true, current: true, snapshot: { parent: 's1', state: 'shutoff' } }))
      .then((_f, s) => expect([s.snapshots.r1!.parent, s.current]).toEqual(['s1', 'r1']));
  });
});

describe('SC-HALT', () => {
  it('SC-HALT: --halt leaves a persistent domain shut off (from snapshot); the snapshot records it running (T14)', () => {
    given(testDomain())
      .when(snap('s1', { halt: true }))
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['SnapshotCreated', 'DomainStopped']);
        expect([domstateText(s), s.reason]).toEqual(['shut off', 'from snapshot']);
        expect(s.snapshots.s1!.state).toBe('running');
        expect(s.persistent).toBe(true);
      });
  });

  it('boundary: --halt of an inactive domain has nothing to stop', () => {
    given(testAfter([destroy]))
      .when(snap('s1', { halt: true }))
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['SnapshotCreated']);
        expect([s.reason, s.snapshots.s1!.state]).toEqual(['destroyed', 'shutoff']);
      });
  });
});

describe('SC-ATOMIC', () => {
  it('SC-ATOMIC: a multi-disk disk-only snapshot is decided for every disk at once, recorded disk by disk', () => {
    for (const atomic of [true, false]) {
      given(testAfter([], TWO_DISKS))
        .when(snap('d1', { diskOnly: true, atomic }))
        .then((facts, s) => {
          expect(facts).toContainEqual({
            type: 'SnapshotDisksChanged',
            snapshot: 'd1',
            disks: [
              { target: 'vda', changed: true, file: '/guest/diskimage1.d1' },
              { target: 'vdb', changed: true, file: '/guest/data.d1' },
            ],
          });
          expect([diskSource(s, 'vda'), diskSource(s, 'vdb')]).toEqual(['/guest/diskimage1.d1', '/guest/data.d1']);
        });
    }
  });

  it('SC-ATOMIC: a partial result reported by a driver changes only the disks it says changed', () => {
    const s = testAfter([], TWO_DISKS);
    const partial: Fact = {
      type: 'SnapshotDisksChanged',
      snapshot: 'd1',
      disks: [
        { target: 'vda', changed: true, file: '/guest/vda.d1' },
        { target: 'vdb', changed: false, error: 'read-only storage' },
      ],
    };
    const after = evolve(s, partial);
    expect([diskSource(after, 'vda'), diskSource(after, 'vdb')]).toEqual(['/guest/vda.d1', '/guest/data.qcow2']);
  });

  it('boundary: an internal snapshot changes no disk source and records no disk changes', () => {
    given(testAfter([], TWO_DISKS))
      .when(snap('i1'))
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['SnapshotCreated']);
        expect(s.config).toEqual(TWO_DISKS);
      });
  });
});

describe('SC-BUSY-DISK', () => {
  it('SC-BUSY-DISK: a snapshot of a disk in a block copy is refused with 83', () => {
    given(testAfter([blockcopy()], TWO_DISKS))
      .when(snap('d1', { diskOnly: true }))
      .then({ rule: 'SC-BUSY-DISK', code: 83, message: "block copy still active: disk 'vda' already in active block job" });
  });

  it('SC-BUSY-DISK: a mirrored disk is busy too', () => {
    given(testAfter([mirrorSnap()], TWO_DISKS))
      .when(snap('d1', { diskOnly: true, snapshot: { name: 'd1', disks: [{ target: 'vda', snapshot: 'external' }] } }))
      .then({ rule: 'SC-BUSY-DISK', code: 83, message: "block copy still active: disk 'vda' already in active block job" });
  });

  it('allows a disk-only snapshot of the other disks', () => {
    given(testAfter([blockcopy()], TWO_DISKS))
      .when(snap('d1', { diskOnly: true, snapshot: { name: 'd1', disks: [{ target: 'vdb', snapshot: 'external' }] } }))
      .then((_f, s) => {
        expect(diskSource(s, 'vdb')).toBe('/guest/data.d1');
        expect(topState(s)).toBe('mirroring');
      });
  });
});

describe('SD-EXCL', () => {
  it('SD-EXCL: --children with --children-only is refused with 8 (T12)', () => {
    given(testAfter([snap('s1')]))
      .when(del('s1', { children: true, childrenOnly: true }))
      .then({
        rule: 'SD-EXCL',
        code: 8,
        message: "Flags 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN' and 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY' are mutually exclusive",
      });
  });

  it('allows either flag alone', () => {
    given(testAfter([snap('s1')]))
      .when(del('s1', { children: true }))
      .then((_f, s) => expect(s.snapshots).toEqual({}));
  });
});

describe('SD-NOTFOUND', () => {
  it('SD-NOTFOUND: delete of a snapshot that does not exist is refused with 72', () => {
    given(testDomain())
      .when(del('nosuch'))
      .then({ rule: 'SD-NOTFOUND', code: 72, message: "Domain snapshot not found: no domain snapshot with matching name 'nosuch'" });
  });

  it('SD-NOTFOUND: revert too (T74), and a deleted snapshot is not found (T31)', () => {
    given(testDomain())
      .when(revert('nosuch'))
      .then({ rule: 'SD-NOTFOUND', code: 72, message: "Domain snapshot not found: no domain snapshot with matching name 'nosuch'" });
    given(testAfter([snap('s1'), del('s1')]))
      .when(del('s1'))
      .then({ rule: 'SD-NOTFOUND', code: 72, message: "Domain snapshot not found: no domain snapshot with matching name 's1'" });
  });

  it('allows delete of a snapshot that exists', () => {
    given(testAfter([snap('s1')]))
      .when(del('s1'))
      .then([{ type: 'SnapshotsDeleted', deleted: ['s1'], reparented: [], current: null, metadataOnly: false }]);
  });
});

describe('SD-TREE', () => {
  it('SD-TREE: delete reparents the children to the parent (T27)', () => {
    given(testAfter(T26_TREE))
      .when(del('s2'))
      .then((_f, s) => {
        expect(snapshotParents(s)).toEqual({ s1: null, s3: 's1', s4: 's1' });
        expect(s.current).toBe('s4');
      });
  });

  it('SD-TREE: deleting the current snapshot makes its parent current (T28)', () => {
    given(testAfter(T26_TREE))
      .when(del('s4'))
      .then((_f, s) => expect([s.current, snapshotParents(s)]).toEqual(['s2', { s1: null, s2: 's1', s3: 's2' }]));
  });

  it('SD-TREE: deleting a current root leaves no current snapshot (T31)', () => {
    given(testAfter([snap('s1')]))
      .when(del('s1'))
      .then((_f, s) => expect(s.current).toBeNull());
  });

  it('SD-TREE: --children-only keeps the target, which becomes current when current was below it (T29)', () => {
    given(testAfter(T26_TREE))
      .when(del('s2', { childrenOnly: true }))
      .then((_f, s) => expect([snapshotParents(s), s.current]).toEqual([{ s1: null, s2: 's1' }, 's2']));
  });

  it('SD-TREE: --children deletes the subtree; the parent of the target becomes current (T30)', () => {
    given(testAfter(T26_TREE))
      .when(del('s2', { children: true }))
      .then((_f, s) => expect([snapshotParents(s), s.current]).toEqual([{ s1: null }, 's1']));
  });

  it('boundary: current outside the deleted subtree stays current', () => {
    given(testAfter([...T26_TREE, revert('s1'), snap('s5')]))
      .when(del('s2', { children: true }))
      .then((_f, s) => expect([snapshotParents(s), s.current]).toEqual([{ s1: null, s5: 's1' }, 's5']));
    given(testAfter([...T26_TREE, revert('s3')]))
      .when(del('s4', { childrenOnly: true }))
      .then((facts, s) => {
        expect(facts).toEqual([{ type: 'SnapshotsDeleted', deleted: [], reparented: [], current: 's3', metadataOnly: false }]);
        expect(s.current).toBe('s3');
      });
  });

  it('SD-TREE: --metadata removes only the metadata, with the same tree handling', () => {
    given(testAfter(T26_TREE))
      .when(del('s2', { metadata: true }))
      .then((facts, s) => {
        expect(facts).toEqual([
          {
            type: 'SnapshotsDeleted',
            deleted: ['s2'],
            reparented: [
              { name: 's3', parent: 's1' },
              { name: 's4', parent: 's1' },
            ],
            current: 's4',
            metadataOnly: true,
          },
        ]);
        expect(snapshotParents(s)).toEqual({ s1: null, s3: 's1', s4: 's1' });
      });
  });
});

describe('SR-EXCL', () => {
  it('SR-EXCL: revert --running with --paused is refused with 8 (T11)', () => {
    given(testAfter([snap('s1')]))
      .when(revert('s1', { running: true, paused: true }))
      .then({
        rule: 'SR-EXCL',
        code: 8,
        message: "Flags 'VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING' and 'VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED' are mutually exclusive",
      });
  });

  it('allows either flag alone', () => {
    given(testAfter([snap('s1')]))
      .when(revert('s1', { running: true }))
      .then((_f, s) => expect(domstateText(s)).toBe('running'));
  });
});

describe('SR-TRANSIENT', () => {
  const transientWithOff1 = () => testAfter([undefine(), snap('off1', { redefine: true, snapshot: { state: 'shutoff' } })]);

  it('SR-TRANSIENT: a transient domain reverting to an inactive snapshot without --running/--paused is refused with 55 (T35)', () => {
    given(transientWithOff1())
      .when(revert('off1'))
      .then({
        rule: 'SR-TRANSIENT',
        code: 55,
        message: invalid('transient domain needs to request run or pause to revert to inactive snapshot'),
      });
  });

  it('allows it with --running or --paused (qemu starts the domain)', () => {
    given(transientWithOff1())
      .when(revert('off1', { running: true }))
      .then((_f, s) => expect([topState(s), domstateText(s), s.current]).toEqual(['transient', 'running', 'off1']));
    given(transientWithOff1())
      .when(revert('off1', { paused: true }))
      .then((_f, s) => expect([topState(s), domstateText(s)]).toEqual(['transient', 'paused']));
  });

  it('boundary: an active snapshot needs no flag; a persistent domain needs none either (T36)', () => {
    given(testAfter([snap('s1'), undefine()]))
      .when(revert('s1'))
      .then((_f, s) => expect(domstateText(s)).toBe('running'));
    given(testAfter([snap('off1', { redefine: true, snapshot: { state: 'shutoff' } })]))
      .when(revert('off1'))
      .then((_f, s) => expect([domstateText(s), s.reason]).toEqual(['shut off', 'from snapshot']));
  });
});

describe('SR-RISKY', () => {
  const withImage = () => testAfter([snap('off1', { redefine: true, snapshot: { state: 'shutoff' } }), snap('s1'), simple('managedsave')]);

  it('SR-RISKY: reverting to an inactive snapshot over a managed-save image without --force is refused with 77', () => {
    given(withImage())
      .when(revert('off1'))
      .then({
        rule: 'SR-RISKY',
        code: 77,
        message:
          'revert requires force: snapshot without memory state, removal of existing managed saved state strongly recommended to avoid corruption',
      });
  });

  it('allows it with --force, and an active snapshot without it', () => {
    given(withImage())
      .when(revert('off1', { force: true }))
      .then((_f, s) => expect([s.current, domstateText(s)]).toEqual(['off1', 'shut off']));
    given(withImage())
      .when(revert('s1'))
      .then((_f, s) => expect([s.current, domstateText(s)]).toEqual(['s1', 'running']));
  });
});

describe('SR-TREE', () => {
  const cases: [string, CommandSpec[], Omit<Partial<SpecOf<'snapshot-revert'>>, 'verb'>, string][] = [
    ['running snapshot, no flag → running (T33)', [snap('s', {}), destroy], {}, 'running'],
    ['running snapshot, --paused → paused (T34)', [snap('s')], { paused: true }, 'paused'],
    ['paused snapshot, no flag → paused (T76)', [simple('suspend'), snap('s'), simple('resume')], {}, 'paused'],
    ['paused snapshot, --running → running', [simple('suspend'), snap('s')], { running: true }, 'running'],
    ['inactive snapshot, no flag → shut off; a running domain is stopped (T36)', [snap('s', { redefine: true, snapshot: { state: 'shutoff' } })], {}, 'shut off'],
    ['inactive snapshot, --running → running (qemu; T37 is the test driver)', [destroy, snap('s'), simple('start')], { running: true }, 'running'],
    ['inactive snapshot, --paused → paused (qemu)', [destroy, snap('s')], { paused: true }, 'paused'],
  ];

  it.each(cases)('SR-TREE: %s', (_name, setup, flags, domstate) => {
    given(testAfter(setup))
      .when(revert('s', flags))
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['SnapshotReverted']);
        expect([domstateText(s), s.reason, s.current]).toEqual([domstate, 'from snapshot', 's']);
      });
  });

  it('SR-TREE: the target becomes current, and the next snapshot is its child (a branch)', () => {
    given(testAfter([snap('s1'), snap('s2'), revert('s1')]))
      .when(snap('s3'))
      .then((_f, s) => expect([snapshotParents(s), s.current]).toEqual([{ s1: null, s2: 's1', s3: 's1' }, 's3']));
  });
});

// ===================================================================================================
// §6 Mirroring

describe('MIR-CREATE', () => {
  it('MIR-CREATE: a mirrored snapshot of an inactive domain is refused with 55', () => {
    given(testAfter([destroy])).when(mirrorSnap()).then({ rule: 'MIR-CREATE', code: 55, message: NOT_RUNNING });
  });

  it('MIR-CREATE: --no-metadata with a mirror is refused with 8', () => {
    given(testDomain())
      .when(snap('m', { diskOnly: true, noMetadata: true, snapshot: { disks: [{ target: 'vda', file: '/f', mirror: '/m' }] } }))
      .then({ rule: 'MIR-CREATE', code: 8, message: "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA' cannot be used to create a mirrored snapshot" });
  });

  it('MIR-CREATE: --halt with a mirror is refused with 8 (regression: it left an inactive domain mirroring)', () => {
    given(testDomain())
      .when(snap('m', { diskOnly: true, halt: true, snapshot: { disks: [{ target: 'vda', file: '/f', mirror: '/m' }] } }))
      .then({ rule: 'MIR-CREATE', code: 8, message: "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_HALT' cannot be used to create a mirrored snapshot" });
  });

  it('MIR-CREATE: a second mirrored snapshot while one is current is refused with 55', () => {
    given(testAfter([mirrorSnap()], TWO_DISKS))
      .when(mirrorSnap('m2', [{ target: 'vdb', file: '/guest/vdb.m2', mirror: '/new/vdb.qcow2' }]))
      .then({ rule: 'MIR-CREATE', code: 55, message: invalid("snapshot 'm' is already a current mirrored snapshot") });
  });

  it('allows it on an active domain: the domain enters mirroring, the disk reopened on the new file', () => {
    given(testDomain())
      .when(mirrorSnap())
      .then((facts, s) => {
        expect(facts).toContainEqual({
          type: 'BlockJobStarted',
          job: { disk: 'vda', kind: 'snapshot-mirror', phase: 'copying', destination: '/new/vda.qcow2', snapshot: 'm' },
        });
        expect(topState(s)).toBe('mirroring');
        expect(s.snapshots.m).toMatchObject({ mirrored: true, state: 'disk-snapshot', parent: null });
        expect(s.current).toBe('m');
        expect(diskSource(s, 'vda')).toBe('/guest/vda.m');
      });
  });
});

describe('MIR-COPY', () => {
  it("MIR-COPY: blockcopy on a persistent domain without --transient-job is refused with 55 'domain is not transient'", () => {
    given(testDomain()).when(blockcopy('vda', '/new/copy.img', false)).then({ rule: 'MIR-COPY', code: 55, message: invalid('domain is not transient') });
  });

  it('MIR-COPY: blockcopy of an inactive domain, an unknown disk, or to a relative path is refused', () => {
    given(testAfter([destroy])).when(blockcopy()).then({ rule: 'MIR-COPY', code: 55, message: NOT_RUNNING });
    given(testDomain())
      .when(blockcopy('vdz'))
      .then({ rule: 'MIR-COPY', code: 8, message: invalidArgument("disk 'vdz' not found in domain") });
    given(testDomain())
      .when(blockcopy('vda', 'copy.img'))
      .then({ rule: 'MIR-COPY', code: 8, message: invalidArgument('absolute path must be used as block copy target') });
  });

  it('allows it with --transient-job, or on a transient domain: the domain enters mirroring (phase copying → ready)', () => {
    for (const [from, transientJob] of [
      [testDomain(), true],
      [testAfter([undefine()]), false],
    ] as const) {
      const r = runAccepted([blockcopy('/guest/diskimage1', '/new/copy.img', transientJob), guest('blockjob-ready', 'vda')], { from });
      expect(r.outcomes[0]!.after.blockJobs.vda).toEqual({ disk: 'vda', kind: 'copy', phase: 'copying', destination: '/new/copy.img' });
      expect(r.state.blockJobs.vda!.phase).toBe('ready');
      expect(topState(r.state)).toBe('mirroring');
      expect(r.state.persistent).toBe(from.persistent);
    }
  });
});

describe('MIR-END', () => {
  const mirroring = () => testAfter([snap('s0'), mirrorSnap()]);

  it('MIR-END: the mirrored snapshot without --mirror-pivot/--mirror-abort is refused with 55', () => {
    given(mirroring())
      .when(del('m'))
      .then({ rule: 'MIR-END', code: 55, message: invalid("mirrored snapshot 'm' must be deleted with --mirror-pivot or --mirror-abort") });
  });

  it('MIR-END: a mirror flag on a snapshot that is not the current mirrored one is refused with 55', () => {
    given(mirroring())
      .when(del('s0', { mirrorAbort: true }))
      .then({ rule: 'MIR-END', code: 55, message: invalid("snapshot 's0' is not the current mirrored snapshot") });
    given(testAfter([snap('s0')]))
      .when(del('s0', { mirrorPivot: true }))
      .then({ rule: 'MIR-END', code: 55, message: invalid("snapshot 's0' is not the current mirrored snapshot") });
  });

  it('MIR-END: deleting the subtree holding the mirrored snapshot from above is refused with 55', () => {
    given(mirroring())
      .when(del('s0', { children: true }))
      .then({ rule: 'MIR-END', code: 55, message: invalid("snapshot 's0' is not the current mirrored snapshot") });
  });

  it('MIR-END: pivot before ready is refused with 83 (snapshot-delete and blockjob)', () => {
    given(mirroring())
      .when(del('m', { mirrorPivot: true }))
      .then({ rule: 'MIR-END', code: 83, message: "block copy still active: block job 'vda' not ready for pivot yet" });
    given(testAfter([blockcopy()]))
      .when(blockjob('vda', 'pivot'))
      .then({ rule: 'MIR-END', code: 83, message: "block copy still active: block job 'vda' not ready for pivot yet" });
  });

  it("MIR-END: blockjob on a mirrored snapshot's disk is refused: the snapshot ends it", () => {
    given(mirroring())
      .when(blockjob('vda', 'abort'))
      .then({ rule: 'MIR-END', code: 55, message: invalid("mirrored snapshot 'm' must be deleted with --mirror-pivot or --mirror-abort") });
  });

  it('MIR-END: destroy or shutdown of a persistent mirroring domain ends its process and loses the copy (measured on qemu)', () => {
    given(testAfter([blockcopy()]))
      .when(destroy)
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['BlockJobEnded', 'DomainStopped']);
        expect(facts[0]).toMatchObject({ disk: 'vda', outcome: 'lost' });
        // Shut off on its original disk: the copy never became its source.
        expect(s.config?.disks.find((d) => d.target === 'vda')?.source).toBe(testDomain().config?.disks[0]?.source);
        expect(topState(s)).toBe('inactive');
      });
    given(mirroring())
      .when(simple('shutdown'))
      .then((facts, s) => {
        expect(facts[0]).toMatchObject({ type: 'BlockJobEnded', disk: 'vda', outcome: 'lost' });
        expect(topState(s)).toBe('inactive');
      });
  });

  it('allows --mirror-pivot once ready: the disk now runs on the mirror, the snapshot is gone, mirroring is over', () => {
    given(testAfter([snap('s0'), mirrorSnap(), guest('blockjob-ready', 'vda')]))
      .when(del('m', { mirrorPivot: true }))
      .then((facts, s) => {
        expect(facts[0]).toEqual({ type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/new/vda.qcow2' });
        expect([topState(s), diskSource(s, 'vda'), s.current, Object.keys(s.snapshots)]).toEqual([
          'running',
          '/new/vda.qcow2',
          's0',
          ['s0'],
        ]);
      });
  });

  it('allows --mirror-abort at any phase: the disk stays on the snapshot file', () => {
    given(mirroring())
      .when(del('m', { mirrorAbort: true }))
      .then((_f, s) => expect([topState(s), diskSource(s, 'vda')]).toEqual(['running', '/guest/vda.m']));
  });

  it('allows blockjob --abort, and --pivot once ready', () => {
    given(testAfter([blockcopy()]))
      .when(blockjob('vda', 'abort'))
      .then((_f, s) => expect([topState(s), diskSource(s, 'vda')]).toEqual(['running', '/guest/diskimage1']));
    given(testAfter([blockcopy(), guest('blockjob-ready', 'vda')]))
      .when(blockjob('vda', 'pivot'))
      .then((_f, s) => expect([topState(s), diskSource(s, 'vda')]).toEqual(['running', '/new/copy.img']));
  });

  it('a paused domain returns to paused when the job ends', () => {
    given(testAfter([blockcopy(), simple('suspend')]))
      .when(blockjob('vda', 'abort'))
      .then((_f, s) => expect([topState(s), domstateText(s)]).toEqual(['running', 'paused']));
  });
});

describe('MIR-EXCL', () => {
  it('MIR-EXCL: --mirror-pivot with --mirror-abort is refused with 8', () => {
    given(testAfter([mirrorSnap()]))
      .when(del('m', { mirrorPivot: true, mirrorAbort: true }))
      .then({ rule: 'MIR-EXCL', code: 8, message: 'delete mirror flags are mutually exclusive' });
  });

  it('allows one of them', () => {
    given(testAfter([mirrorSnap()]))
      .when(del('m', { mirrorAbort: true }))
      .then((_f, s) => expect(topState(s)).toBe('running'));
  });
});

describe('MIR-PARTIAL', () => {
  const twoDiskMirror = () =>
    testAfter(
      [
        mirrorSnap('m', [
          { target: 'vda', file: '/guest/vda.m', mirror: '/new/vda.qcow2' },
          { target: 'vdb', file: '/guest/vdb.m', mirror: '/new/vdb.qcow2' },
        ]),
        guest('blockjob-ready', 'vda'),
        guest('blockjob-ready', 'vdb'),
      ],
      TWO_DISKS,
    );

  it('MIR-PARTIAL: ending a two-disk mirror records each disk and the side it was reopened on', () => {
    given(twoDiskMirror())
      .when(del('m', { mirrorPivot: true }))
      .then((facts) =>
        expect(facts.filter((f) => f.type === 'BlockJobEnded')).toEqual([
          { type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/new/vda.qcow2' },
          { type: 'BlockJobEnded', disk: 'vdb', outcome: 'pivot', source: '/new/vdb.qcow2' },
        ]),
      );
  });

  it('MIR-PARTIAL: when only one disk ended, the domain stays mirroring for the other', () => {
    // What a driver reports when the pivot of vdb fails after vda's went through.
    const partial = given([
      ...testDomainSetup(TWO_DISKS),
      mirrorSnap('m', [
        { target: 'vda', file: '/guest/vda.m', mirror: '/new/vda.qcow2' },
        { target: 'vdb', file: '/guest/vdb.m', mirror: '/new/vdb.qcow2' },
      ]),
      guest('blockjob-ready', 'vda'),
      guest('blockjob-ready', 'vdb'),
      { type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/new/vda.qcow2' },
    ]);
    const s = partial.state!;
    expect(topState(s)).toBe('mirroring');
    expect(Object.keys(s.blockJobs)).toEqual(['vdb']);
    expect([diskSource(s, 'vda'), diskSource(s, 'vdb')]).toEqual(['/new/vda.qcow2', '/guest/vdb.m']);
    // The mirrored snapshot is still the one to end, and ending it again finishes the rest.
    partial
      .when(del('m', { mirrorPivot: true }))
      .then((facts, after) => {
        expect(facts.filter((f) => f.type === 'BlockJobEnded')).toEqual([
          { type: 'BlockJobEnded', disk: 'vdb', outcome: 'pivot', source: '/new/vdb.qcow2' },
        ]);
        expect(topState(after)).toBe('running');
      });
  });

  it('boundary: the last disk ending leaves mirroring', () => {
    const s = evolveAll(twoDiskMirror(), [
      { type: 'BlockJobEnded', disk: 'vda', outcome: 'pivot', source: '/new/vda.qcow2' },
      { type: 'BlockJobEnded', disk: 'vdb', outcome: 'abort', source: '/guest/vdb.m' },
    ]);
    expect(topState(s)).toBe('running');
  });
});

describe('MIR-BLOCKS', () => {
  const copying = () => testAfter([snap('s1'), blockcopy()], TWO_DISKS);

  it('MIR-BLOCKS: revert while mirroring is refused with 55', () => {
    given(copying()).when(revert('s1')).then({ rule: 'MIR-BLOCKS', code: 55, message: ACTIVE_BLOCK_JOB });
  });

  it('MIR-BLOCKS: a snapshot with memory while mirroring is refused with 83 naming the busy disk, even when it lists only the others', () => {
    // The disks it does not list are snapshotted internally too (with the memory): qemu names the copying one.
    given(copying())
      .when(snap('s2', { snapshot: { name: 's2', disks: [{ target: 'vdb', snapshot: 'internal' }] } }))
      .then({ rule: 'MIR-BLOCKS', code: 83, message: "block copy still active: disk 'vda' already in active block job" });
  });

  it('MIR-BLOCKS: a disk-only snapshot of another disk with --halt is refused with 55 (regression: the halt lost the job)', () => {
    given(copying())
      .when(snap('s2', { diskOnly: true, halt: true, snapshot: { name: 's2', disks: [{ target: 'vdb', snapshot: 'external' }] } }))
      .then({ rule: 'MIR-BLOCKS', code: 55, message: ACTIVE_BLOCK_JOB });
  });

  it('MIR-BLOCKS: a snapshot that includes the busy disk gets 83 first (qemuSnapshotPrepare checks the disks first)', () => {
    given(copying())
      .when(snap('s2'))
      .then({ rule: 'SC-BUSY-DISK', code: 83, message: "block copy still active: disk 'vda' already in active block job" });
  });

  it('MIR-BLOCKS: a second job on the disk is refused with 83', () => {
    given(copying())
      .when(blockcopy('vda', '/new/other.img'))
      .then({ rule: 'MIR-BLOCKS', code: 83, message: "block copy still active: disk 'vda' already in active block job" });
  });

  it('MIR-BLOCKS: the busy disk is refused before the persistence check (blockcopy without --transient-job, measured on qemu)', () => {
    given(copying())
      .when(blockcopy('vda', '/new/other.img', false))
      .then({ rule: 'MIR-BLOCKS', code: 83, message: "block copy still active: disk 'vda' already in active block job" });
    given(copying())
      .when(blockcopy('vdb', '/new/other.img', false))
      .then({ rule: 'MIR-COPY', code: 55, message: invalid('domain is not transient') });
  });

  it('MIR-BLOCKS: save, managedsave and migration are refused too (by MS-MIRROR, MIG-SNAPSHOTS and MIG-JOB)', () => {
    given(copying()).when(save()).then({ rule: 'MS-MIRROR', code: 55, message: ACTIVE_BLOCK_JOB });
    given(copying()).when(simple('managedsave')).then({ rule: 'MS-MIRROR', code: 55, message: ACTIVE_BLOCK_JOB });
    given(testAfter([blockcopy()])).when(migrate()).then({ rule: 'MIG-JOB', code: 55, message: ACTIVE_BLOCK_JOB });
  });

  it('MIR-BLOCKS: destroy of a transient domain ends the job and the domain', () => {
    given(testAfter([undefine(), blockcopy('vda', '/new/copy.img', false)]))
      .when(destroy)
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['BlockJobEnded', 'DomainStopped', 'TransientDomainRemoved']);
        expect(facts[0]).toMatchObject({ disk: 'vda', outcome: 'lost' });
        expect(topState(s)).toBe('gone');
      });
  });

  it('allows a job on another disk, and a disk-only snapshot of another disk', () => {
    given(copying())
      .when(blockcopy('vdb', '/new/vdb.img'))
      .then((_f, s) => expect(Object.keys(s.blockJobs)).toEqual(['vda', 'vdb']));
  });
});

// ===================================================================================================
// §7 Migration

describe('MIG-ACTIVE', () => {
  it('MIG-ACTIVE: migration of an inactive domain is refused with 55', () => {
    given(testAfter([destroy])).when(migrate()).then({ rule: 'MIG-ACTIVE', code: 55, message: NOT_RUNNING });
  });

  it('allows --offline migration of an inactive domain, and live migration of an active one', () => {
    given(testAfter([destroy]))
      .when(migrate({ offline: true, persistent: true }))
      .then((_f, s) => expect([topState(s), s.migration?.offline]).toEqual(['migrating', true]));
    given(testDomain())
      .when(migrate())
      .then((_f, s) => expect(topState(s)).toBe('migrating'));
  });
});

describe('MIG-SNAPSHOTS', () => {
  it('MIG-SNAPSHOTS: migration with snapshot metadata is refused with 55 and the count, even --offline', () => {
    given(testAfter([snap('s1'), snap('s2')]))
      .when(migrate())
      .then({ rule: 'MIG-SNAPSHOTS', code: 55, message: invalid('cannot migrate domain with 2 snapshots') });
    given(testAfter([snap('s1'), destroy]))
      .when(migrate({ offline: true, persistent: true }))
      .then({ rule: 'MIG-SNAPSHOTS', code: 55, message: invalid('cannot migrate domain with 1 snapshots') });
  });

  it('allows it once the metadata is gone (the documented workaround: delete --metadata), and with --no-metadata snapshots', () => {
    given(testAfter([snap('s1'), del('s1', { metadata: true })]))
      .when(migrate())
      .then((_f, s) => expect(topState(s)).toBe('migrating'));
    given(testAfter([snap('s1', { noMetadata: true })]))
      .when(migrate())
      .then((_f, s) => expect(topState(s)).toBe('migrating'));
  });
});

describe('MIG-AUTODESTROY', () => {
  it('MIG-AUTODESTROY: a domain started with autodestroy is refused with 55', () => {
    given(testAfter([destroy, { verb: 'start', domain: 'test', autodestroy: true }]))
      .when(migrate())
      .then({ rule: 'MIG-AUTODESTROY', code: 55, message: invalid('domain is marked for auto destroy') });
    given([{ verb: 'create', config: T2, autodestroy: true }])
      .when({ verb: 'migrate', domain: 't2', desthost: 'dst' })
      .then({ rule: 'MIG-AUTODESTROY', code: 55, message: invalid('domain is marked for auto destroy') });
  });

  it('allows it after a restart without autodestroy', () => {
    given(testAfter([destroy, { verb: 'start', domain: 'test', autodestroy: true }, destroy, simple('start')]))
      .when(migrate())
      .then((_f, s) => expect(topState(s)).toBe('migrating'));
  });
});

describe('MIG-HOSTDEV', () => {
  const withHostdev = (type: string): DomainConfig => ({ ...TEST_CONFIG, hostdevs: [{ mode: 'subsystem', type }] });

  it("MIG-HOSTDEV: an assigned PCI host device is refused with 84 (source, Begin)", () => {
    given(testAfter([], withHostdev('pci')))
      .when(migrate())
      .then({ rule: 'MIG-HOSTDEV', code: 84, message: "Operation not supported: cannot migrate a domain with <hostdev mode='subsystem' type='pci'>" });
  });

  it('MIG-HOSTDEV: the destination checks the XML alone at Prepare', () => {
    given([])
      .when({ verb: 'migrate-incoming', host: 'dst', source: 'local', config: withHostdev('scsi'), persistent: false, active: true, paused: false })
      .then({ rule: 'MIG-HOSTDEV', code: 84, message: "Operation not supported: cannot migrate a domain with <hostdev mode='subsystem' type='scsi'>" });
  });

  it('allows USB host devices', () => {
    given(testAfter([], withHostdev('usb')))
      .when(migrate())
      .then((_f, s) => expect(topState(s)).toBe('migrating'));
  });

  it('allows --offline migration with a PCI device through every phase (regression: Perform re-checked it)', () => {
    const r = runAccepted([destroy, migrate({ offline: true, persistent: true }), phase('prepare'), phase('perform'), phase('finish'), phase('confirm')], {
      from: testDomain(withHostdev('pci')),
    });
    expect(r.outcomes.flatMap((o) => o.facts).map((f) => f.type)).not.toContain('MigrationFailed');
    expect([topState(r.state), r.state.reason, r.state.migration]).toEqual(['inactive', 'destroyed', null]);
  });
});

describe('MIG-JOB', () => {
  it('MIG-JOB: migration while a block job is active is refused with 55', () => {
    given(testAfter([blockcopy()])).when(migrate()).then({ rule: 'MIG-JOB', code: 55, message: ACTIVE_BLOCK_JOB });
  });

  it('MIG-JOB: a second migration while one runs is refused (JOB-BUSY answers first, with the same text)', () => {
    given(testAfter([migrate()]))
      .when(migrate({ desthost: 'other' }))
      .then({ rule: 'JOB-BUSY', code: 55, message: invalid("another migration job is already running for domain 'test'") });
  });

  it('allows migration once the job has ended', () => {
    given(testAfter([blockcopy(), blockjob('vda', 'abort')]))
      .when(migrate())
      .then((_f, s) => expect(topState(s)).toBe('migrating'));
  });
});

describe('MIG-PHASES', () => {
  const ALL = [migrate(), phase('prepare'), phase('perform'), phase('finish'), phase('confirm')];

  it('MIG-PHASES: a phase out of order is refused with 55', () => {
    given(testAfter([migrate()]))
      .when(phase('perform'))
      .then({ rule: 'MIG-PHASES', code: 55, message: invalid("migration of domain 'test' is in phase 'begin', not ready for 'perform'") });
  });

  it('MIG-PHASES: a phase without a migration is refused with 55', () => {
    given(testDomain()).when(phase('prepare')).then({ rule: 'MIG-PHASES', code: 55, message: invalid("domain 'test' has no migration job") });
  });

  it('MIG-PHASES: migrating to the same host is refused with 55', () => {
    given(testDomain())
      .when(migrate({ desthost: 'local' }))
      .then({ rule: 'MIG-PHASES', code: 55, message: invalid('Attempt to migrate guest to the same host local') });
  });

  it('allows Begin → Prepare → Perform → Finish → Confirm: the source is shut off (migrated)', () => {
    const r = runAccepted(ALL, { from: testDomain() });
    expect(r.outcomes.map((o) => topState(o.after))).toEqual(['migrating', 'migrating', 'migrating', 'migrating', 'inactive']);
    expect([r.state.reason, r.state.persistent, r.state.migration]).toEqual(['migrated', true, null]);
  });

  it.each(['prepare', 'perform', 'finish', 'confirm'] as const)('MIG-PHASES: a failure at %s returns the domain to where it was', (p) => {
    const before = testAfter([simple('suspend')]);
    const steps = ALL.slice(0, ALL.findIndex((c) => c.verb === 'migrate-phase' && c.phase === p));
    const r = runAccepted([...steps, phase(p, 'connection reset')], { from: before });
    expect(r.outcomes.at(-1)!.facts).toEqual([{ type: 'MigrationFailed', phase: p, message: 'connection reset' }]);
    expect(r.state).toEqual(before);
  });

  it('MIG-PHASES: the source checks run again at Perform, for a source that did not check at Begin (seed 003)', () => {
    const old = run([snap('s1'), migrate()], { from: testDomain(), decide: { disabledRules: new Set(['MIG-SNAPSHOTS']) } });
    expect(topState(old.state)).toBe('migrating');
    const r = runAccepted([phase('prepare'), phase('perform')], { from: old.state });
    expect(r.outcomes[1]!.facts).toEqual([
      { type: 'MigrationFailed', phase: 'perform', message: invalid('cannot migrate domain with 1 snapshots'), rule: 'MIG-SNAPSHOTS', code: 55 },
    ]);
    expect(topState(r.state)).toBe('running');
  });

  it('MIG-PHASES: the destination refuses a name or UUID clash, and an active domain, at Prepare', () => {
    const dst = testAfter([]);
    const onDst = { ...dst, host: 'dst' };
    const incoming = (config: DomainConfig): CommandSpec => ({
      verb: 'migrate-incoming',
      host: 'dst',
      source: 'local',
      config,
      persistent: false,
      active: true,
      paused: false,
    });
    given(onDst)
      .when(incoming({ ...TEST_CONFIG, uuid: 'aaaaaaaa-0000-0000-0000-000000000000' }))
      .then({ rule: 'DEF-NAME', code: 9, message: failed(`domain 'test' already exists with uuid ${TEST_UUID}`) });
    given(onDst)
      .when(incoming(TEST_CONFIG))
      .then({ rule: 'CRE-ACTIVE', code: 55, message: invalid("domain 'test' is already active") });
    given(onDst)
      .when(incoming(T2))
      .then((_f, s) => expect([s.host, s.name, topState(s), s.reason]).toEqual(['dst', 't2', 'transient', 'migrated']));
  });
});

describe('MIG-PERSIST', () => {
  it('MIG-PERSIST: --offline without --persistent is refused with 55', () => {
    given(testAfter([destroy]))
      .when(migrate({ offline: true }))
      .then({ rule: 'MIG-PERSIST', code: 55, message: invalid('offline migration must be specified with the persistent flag set') });
  });

  it('MIG-PERSIST: an arrival that is neither running nor defined persistently is refused (it would exist nowhere)', () => {
    given([])
      .when({ verb: 'migrate-incoming', host: 'dst', source: 'local', config: T2, persistent: false, active: false, paused: false })
      .then({ rule: 'MIG-PERSIST', code: 55, message: invalid('offline migration must be specified with the persistent flag set') });
  });

  it('MIG-PERSIST: an offline arrival with --persistent is defined, shut off', () => {
    const arrived = runAccepted([{ verb: 'migrate-incoming', host: 'dst', source: 'local', config: T2, persistent: true, active: false, paused: true }]).state;
    expect([topState(arrived), arrived.paused]).toEqual(['inactive', false]);
  });

  it('MIG-PERSIST: --offline of a transient domain is refused with 55', () => {
    given(testAfter([undefine()]))
      .when(migrate({ offline: true, persistent: true }))
      .then({ rule: 'MIG-PERSIST', code: 55, message: invalid('cannot migrate a transient domain offline') });
  });

  it('--undefinesource removes the source definition; without it the source stays defined', () => {
    const steps = (undefinesource: boolean) => [migrate({ persistent: true, undefinesource }), phase('prepare'), phase('perform'), phase('finish'), phase('confirm')];
    expect(topState(testAfter(steps(true)))).toBe('gone');
    expect(topState(testAfter(steps(false)))).toBe('inactive');
  });

  it('--offline moves only the definition: the source guest keeps running (regression: Confirm stopped it)', () => {
    const offline = (undefinesource: boolean) => [
      migrate({ offline: true, persistent: true, undefinesource }),
      phase('prepare'),
      phase('perform'),
      phase('finish'),
      phase('confirm'),
    ];
    const kept = testAfter(offline(false));
    expect([topState(kept), domstate(kept), kept.persistent]).toEqual(['running', 'running (booted)', true]);
    // --undefinesource removes the definition of a running guest: it runs on, transient (as UND-ACTIVE).
    const undefined_ = testAfter(offline(true));
    expect([topState(undefined_), domstate(undefined_), undefined_.persistent]).toEqual(['transient', 'running (booted)', false]);
    expect(topState(testAfter([destroy, ...offline(true)]))).toBe('gone');
  });

  it('--persistent defines the domain on the destination; a transient domain stays transient', () => {
    const arrive = (persistent: boolean) =>
      runAccepted([{ verb: 'migrate-incoming', host: 'dst', source: 'local', config: T2, persistent, active: true, paused: false }]).state;
    expect(topState(arrive(true))).toBe('running');
    expect(topState(arrive(false))).toBe('transient');
  });
});

// ===================================================================================================
// §8 Jobs

describe('JOB-BUSY', () => {
  const migrating = () => testAfter([migrate()]);
  const refused: CommandSpec[] = [
    simple('start'),
    simple('shutdown'),
    simple('suspend'),
    simple('resume'),
    simple('reboot'),
    simple('managedsave'),
    simple('managedsave-remove'),
    save(),
    undefine(),
    snap('s1'),
    del('s1'),
    revert('s1'),
    blockcopy(),
    blockjob('vda', 'abort'),
    migrate({ desthost: 'other' }),
  ];

  it.each(refused.map((c) => [c.verb, c] as const))('JOB-BUSY: %s during a migration is refused with 55', (_verb, c) => {
    given(migrating()).when(c).then({ rule: 'JOB-BUSY', code: 55, message: invalid("another migration job is already running for domain 'test'") });
  });

  it('JOB-BUSY: define during a migration is refused (the job holds the domain)', () => {
    given(migrating()).when({ verb: 'define', config: TEST_CONFIG }).then({ rule: 'JOB-BUSY', code: 55, message: invalid("another migration job is already running for domain 'test'") });
  });

  it('JOB-BUSY: create over an inactive persistent domain in an offline migration is refused (regression: it started it)', () => {
    given(testAfter([destroy, migrate({ offline: true, persistent: true })]))
      .when({ verb: 'create', config: TEST_CONFIG })
      .then({ rule: 'JOB-BUSY', code: 55, message: invalid("another migration job is already running for domain 'test'") });
  });

  it("allows the job's next phase and guest events", () => {
    given(migrating()).when(phase('prepare')).then([{ type: 'MigrationPhaseReached', phase: 'prepare' }]);
    given(migrating()).when(guest('reboot')).then([{ type: 'DomainRebooted' }]);
  });

  it('allows destroy, which fails the migration at its phase (regression: the migration went on without the guest)', () => {
    given(testAfter([migrate(), phase('prepare')]))
      .when(destroy)
      .then((facts, s) => {
        expect(facts).toEqual([
          { type: 'MigrationFailed', phase: 'prepare', message: 'domain is no longer running', rule: 'MIG-PHASES' },
          { type: 'DomainStopped', reason: 'destroyed' },
        ]);
        expect([topState(s), s.migration, s.reason]).toEqual(['inactive', null, 'destroyed']);
      });
    given(testAfter([undefine(), migrate()]))
      .when(guest('crash'))
      .then((facts, s) => {
        expect(facts.map((f) => f.type)).toEqual(['MigrationFailed', 'DomainStopped', 'TransientDomainRemoved']);
        expect(topState(s)).toBe('gone');
      });
  });
});

// ===================================================================================================
// Meta: docs/rules.md, machines/rules.ts, machines/guards.ts and this file name the same rules.

const RULES_MD = new URL('../../docs/rules.md', import.meta.url);
const THIS_FILE = fileURLToPath(import.meta.url);

/** Rule ids of docs/rules.md: the first cell of every table row that looks like an id. */
function ruleIdsOfSpec(): string[] {
  const text = readFileSync(RULES_MD, 'utf8');
  return [...text.matchAll(/^\|\s*([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\s*\|/gm)].map((m) => m[1]!);
}

describe('rule coverage', () => {
  const specIds = ruleIdsOfSpec();
  const source = readFileSync(THIS_FILE, 'utf8');

  it('docs/rules.md has rule ids, each once', () => {
    expect(specIds.length).toBeGreaterThan(40);
    expect(new Set(specIds).size).toBe(specIds.length);
  });

  it('machines/rules.ts catalogs exactly the rule ids of docs/rules.md, in its order', () => {
    expect([...RULE_IDS]).toEqual(specIds);
  });

  it.each(specIds)('%s has a guard in machines/guards.ts or is an effect rule', (id) => {
    const entry = RULES.find((r) => r.id === id);
    expect(entry, `${id} missing from machines/rules.ts`).toBeDefined();
    const hasGuard = Object.hasOwn(GUARDS, id);
    expect(hasGuard || entry!.kind === 'effect', `${id}: no guard and not an effect rule`).toBe(true);
    expect(hasGuard, `${id}: rules.ts kind '${entry!.kind}' disagrees with guards.ts`).toBe(entry!.kind === 'guard');
  });

  it('every guard belongs to a rule of docs/rules.md', () => {
    expect(Object.keys(GUARDS).filter((id) => !specIds.includes(id))).toEqual([]);
  });

  it.each(specIds)('%s is tested by name in this file', (id) => {
    expect(source.includes(`describe('${id}'`), `no describe('${id}', …) in ${THIS_FILE}`).toBe(true);
    const named = new RegExp(`it(?:\\.each\\([^)]*\\))?\\(\\s*['"\`]${id}[:\\s]`);
    expect(named.test(source), `no it('${id}: …') in ${THIS_FILE}`).toBe(true);
  });
});
