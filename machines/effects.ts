// The facts of an accepted command, per verb (EFFECTS[verb]): what happened, in past tense, for `evolve` to fold.
// Effects run only after every guard of the verb has passed (verbs.ts), so they may assume what the guards checked.
// The helpers the outcome functions of verbs.ts share with them (where a command leads) are exported here, so a
// choice such as "start restores a paused image" is written once.
import type { CommandOf, Verb } from './commands';
import type { Fact, StopReason } from './events';
import {
  findDisk,
  firstRefusal,
  mirroredSnapshotName,
  snapshotDiskTargets,
  snapshotName,
  type DecideOptions,
  type GuardId,
} from './guards';
import { blockJobOn, descendantsOf, snapshotNamed, type BlockJob, type DomainState, type Snapshot, type SnapshotState } from './model';

/**
 * The domain stops. A live migration cannot go on without the guest: it fails at its phase (MIG-PHASES).
 * A job that was mirroring is lost with it (a transient job does not survive the guest),
 * and TRANSIENT-QUIT: a transient domain is then gone, and all its snapshot metadata with it (seed 000).
 */
function stopFacts(s: DomainState, stopped: Fact): Fact[] {
  const migration: Fact[] =
    s.migration && !s.migration.offline
      ? [{ type: 'MigrationFailed', phase: s.migration.phase, message: 'domain is no longer running', rule: 'MIG-PHASES' }]
      : [];
  const lost: Fact[] = Object.keys(s.blockJobs).map((disk) => ({ type: 'BlockJobEnded', disk, outcome: 'lost' }));
  return [...migration, ...lost, stopped, ...transientQuit(s)];
}

function stop(s: DomainState, reason: StopReason): Fact[] {
  return stopFacts(s, { type: 'DomainStopped', reason });
}

/** TRANSIENT-QUIT */
function transientQuit(s: DomainState): Fact[] {
  return s.persistent ? [] : [{ type: 'TransientDomainRemoved', snapshotMetadataDiscarded: Object.keys(s.snapshots) }];
}

/** UND-STORAGE-SHARED: which volumes undefine removes, and which it keeps and why. */
function storagePlan(s: DomainState, c: CommandOf<'undefine'>) {
  const removed: { target: string; source: string }[] = [];
  const kept: { target: string; source: string; reason: string }[] = [];
  if (c.storage === undefined && !c.removeAllStorage) return { removed, kept };
  for (const disk of s.config?.disks ?? []) {
    if (disk.source === undefined) continue;
    const named = c.storage?.some((e) => e === disk.target || e === disk.source) ?? false;
    if (!named && !c.removeAllStorage) continue;
    const sharedKind = disk.device === 'cdrom' ? 'cdrom' : disk.readonly ? 'readonly' : disk.shareable ? 'shareable' : undefined;
    if (!named && sharedKind) {
      kept.push({ target: disk.target, source: disk.source, reason: `${sharedKind} disk is only removed when named in --storage` });
    } else if (disk.storage === 'unmanaged') {
      kept.push({
        target: disk.target,
        source: disk.source,
        reason: `Storage volume '${disk.target}'(${disk.source}) is not managed by libvirt. Remove it manually.`,
      });
    } else {
      removed.push({ target: disk.target, source: disk.source });
    }
  }
  return { removed, kept };
}

/** STA-ACTIVE: a managed-save image is restored (and removed) unless --force-boot. */
function restoresManagedSave(s: DomainState, c: CommandOf<'start'>): boolean {
  return s.hasManagedSave && !c.forceBoot;
}

/** A start comes up paused when asked to, or when the image it restores was saved paused. */
export function startsPaused(s: DomainState, c: CommandOf<'start'>): boolean {
  return c.paused || (restoresManagedSave(s, c) && s.managedSavePaused);
}

/** The state a snapshot records (§2.11): the domain's state at creation, or disk-snapshot. */
function snapshotStateNow(s: DomainState, diskOnly: boolean): SnapshotState {
  if (diskOnly) return 'disk-snapshot';
  if (!s.active) return 'shutoff';
  return s.paused ? 'paused' : 'running';
}

/** libvirt's default external file: the source with its suffix replaced by the snapshot name. */
function defaultExternalFile(source: string | undefined, name: string): string | undefined {
  if (!source) return undefined;
  const slash = source.lastIndexOf('/');
  const dot = source.lastIndexOf('.');
  return (dot > slash ? source.slice(0, dot) : source) + '.' + name;
}

function isExternalSnapshot(c: CommandOf<'snapshot-create'>): boolean {
  return c.diskOnly || c.snapshot.disks.some((d) => d.snapshot === 'external' || d.file !== undefined);
}

/** The disks a new (not redefined) snapshot takes, each with its external file and mirror if it has them. */
function snapshotDisks(s: DomainState, c: CommandOf<'snapshot-create'>) {
  const name = snapshotName(c);
  const specs = new Map(c.snapshot.disks.map((d) => [d.target, d]));
  const external = isExternalSnapshot(c);
  return snapshotDiskTargets(s, c).map((target) => {
    const spec = specs.get(target);
    const file = external ? (spec?.file ?? defaultExternalFile(findDisk(s, target)?.source, name)) : undefined;
    return { target, snapshot: external ? ('external' as const) : ('internal' as const), file, mirror: spec?.mirror };
  });
}

/** MIR-CREATE: the snapshot starts a mirror on some disk, so the domain enters mirroring. */
export function startsMirror(s: DomainState, c: CommandOf<'snapshot-create'>): boolean {
  return !c.redefine && snapshotDisks(s, c).some((d) => d.mirror !== undefined);
}

function createSnapshot(s: DomainState, c: CommandOf<'snapshot-create'>): Fact[] {
  const name = snapshotName(c);
  if (c.redefine) {
    const state = c.snapshot.state ?? 'shutoff';
    const snapshot: Snapshot = {
      name,
      description: c.snapshot.description,
      parent: c.snapshot.parent ?? null,
      state,
      diskOnly: state === 'disk-snapshot',
      external: c.snapshot.disks.some((d) => d.snapshot === 'external'),
      creationTime: c.snapshot.creationTime ?? c.meta.time,
      disks: c.snapshot.disks,
      mirrored: false,
    };
    // SC-TREE: a redefined snapshot takes its parent from the XML and becomes current only with --current.
    return [{ type: 'SnapshotCreated', snapshot, current: c.current, redefined: true }];
  }

  const external = isExternalSnapshot(c);
  const disks = snapshotDisks(s, c);
  const mirrored = disks.filter((d) => d.mirror !== undefined);
  const facts: Fact[] = [];
  if (!c.noMetadata) {
    const snapshot: Snapshot = {
      name,
      description: c.snapshot.description,
      parent: s.current, // SC-TREE: the child of the current snapshot, and now current itself
      state: snapshotStateNow(s, c.diskOnly || (external && !s.active)),
      diskOnly: c.diskOnly,
      external,
      creationTime: c.meta.time,
      disks,
      mirrored: mirrored.length > 0,
    };
    facts.push({ type: 'SnapshotCreated', snapshot, current: true, redefined: false });
  }
  if (external) {
    // SC-ATOMIC: the decision is all disks at once; a driver without transactions may report less.
    facts.push({
      type: 'SnapshotDisksChanged',
      snapshot: name,
      disks: disks.map((d) => ({ target: d.target, changed: true, file: d.file })),
    });
  }
  for (const d of mirrored) {
    facts.push({
      type: 'BlockJobStarted',
      job: { disk: d.target, kind: 'snapshot-mirror', phase: 'copying', destination: d.mirror, snapshot: name },
    });
  }
  if (c.halt && s.active) facts.push(...stop(s, 'from snapshot')); // SC-HALT
  return facts;
}

/** MIR-END: deleting the current mirrored snapshot (with --mirror-pivot or --mirror-abort) ends its mirror jobs. */
export function mirrorJobsEndedBy(s: DomainState, c: CommandOf<'snapshot-delete'>): BlockJob[] {
  if (mirroredSnapshotName(s) !== c.snapshotname) return [];
  return Object.values(s.blockJobs).filter((j) => j.snapshot === c.snapshotname);
}

/** SD-TREE */
function deleteSnapshots(s: DomainState, c: CommandOf<'snapshot-delete'>): Fact[] {
  const target = c.snapshotname;
  const parent = snapshotNamed(s, target)?.parent ?? null;
  const below = descendantsOf(s, target);
  let deleted: string[];
  let reparented: { name: string; parent: string | null }[] = [];
  let current = s.current;
  if (c.children) {
    deleted = [target, ...below];
    if (current !== null && deleted.includes(current)) current = parent;
  } else if (c.childrenOnly) {
    deleted = below;
    if (current !== null && deleted.includes(current)) current = target;
  } else {
    deleted = [target];
    reparented = Object.values(s.snapshots)
      .filter((snap) => snap.parent === target)
      .map((snap) => ({ name: snap.name, parent }));
    if (current === target) current = parent;
  }
  const facts: Fact[] = [];
  for (const job of mirrorJobsEndedBy(s, c)) {
    const source = c.mirrorPivot ? job.destination : findDisk(s, job.disk)?.source;
    facts.push({ type: 'BlockJobEnded', disk: job.disk, outcome: c.mirrorPivot ? 'pivot' : 'abort', source });
  }
  facts.push({ type: 'SnapshotsDeleted', deleted, reparented, current, metadataOnly: c.metadata });
  return facts;
}

/** SR-TREE: the resulting state per catalog §2.13. */
function revertSnapshot(s: DomainState, c: CommandOf<'snapshot-revert'>): Fact[] {
  return [{ type: 'SnapshotReverted', snapshot: c.snapshotname, ...revertResult(s, c) }];
}

/** SR-TREE, catalog §2.13: a revert runs the domain if the snapshot ran or a flag asks; paused likewise. */
export function revertResult(s: DomainState, c: CommandOf<'snapshot-revert'>): { active: boolean; paused: boolean } {
  const snap = snapshotNamed(s, c.snapshotname)!;
  const snapActive = snap.state === 'running' || snap.state === 'paused';
  const active = snapActive || c.running || c.paused;
  return { active, paused: active && (c.paused || (snap.state === 'paused' && !c.running)) };
}

/** Source checks re-run at the Perform phase (MIG-PHASES, seed 003: an older source may not have run them at Begin). */
export const PERFORM_RECHECKS: readonly GuardId[] = ['MIG-SNAPSHOTS', 'MIG-AUTODESTROY', 'MIG-HOSTDEV'];

/** The refusal a re-run source check gives at Perform, which fails the phase (it is not a refusal of the command). */
function performRecheck(s: DomainState, c: CommandOf<'migrate-phase'>, options: DecideOptions) {
  return c.phase === 'perform' ? firstRefusal(s, c, PERFORM_RECHECKS, options) : undefined;
}

/** MIG-PHASES: whether a phase command fails the migration (reported failed, or a re-run check refuses). */
export function failsMigration(s: DomainState, c: CommandOf<'migrate-phase'>, options: DecideOptions): boolean {
  return c.failed !== undefined || performRecheck(s, c, options) !== undefined;
}

function migratePhase(s: DomainState, c: CommandOf<'migrate-phase'>, options: DecideOptions): Fact[] {
  if (c.failed) {
    return [
      {
        type: 'MigrationFailed',
        phase: c.phase,
        message: c.failed,
        ...(c.rule !== undefined ? { rule: c.rule } : {}),
        ...(c.code !== undefined ? { code: c.code } : {}),
      },
    ];
  }
  const refused = performRecheck(s, c, options);
  if (refused) return [{ type: 'MigrationFailed', phase: 'perform', message: refused.message, rule: refused.rule, code: refused.code }];
  const facts: Fact[] = [{ type: 'MigrationPhaseReached', phase: c.phase }];
  if (c.phase === 'confirm') {
    const job = s.migration!;
    // MIG-PERSIST: the source stays defined (inactive) unless --undefinesource; a transient source is gone.
    facts.push({ type: 'DomainMigratedOut', destination: job.destination, undefinesource: job.undefinesource });
  }
  return facts;
}

export type Effects = { [V in Verb]: (s: DomainState, c: CommandOf<V>, options: DecideOptions) => Fact[] };

export const EFFECTS: Effects = {
  // DEF-UPDATE: same name and UUID updates the config; a running transient domain becomes persistent.
  define: (_s, c) => [{ type: 'DomainDefined', config: c.config }],
  // CRE-ACTIVE: an inactive persistent domain is started with the given XML and stays persistent.
  create: (s, c) =>
    s.life === 'exists'
      ? [{ type: 'DomainStarted', paused: c.paused, autodestroy: c.autodestroy, reason: 'booted', managedSaveConsumed: false, config: c.config }]
      : [{ type: 'DomainCreated', config: c.config, paused: c.paused, autodestroy: c.autodestroy }],
  // STA-ACTIVE: a managed-save image is restored (and removed) unless --force-boot.
  start: (s, c) => [
    {
      type: 'DomainStarted',
      paused: startsPaused(s, c),
      autodestroy: c.autodestroy,
      reason: restoresManagedSave(s, c) ? 'restored' : 'booted',
      managedSaveConsumed: s.hasManagedSave,
    },
  ],
  shutdown: (s) => stop(s, 'shutdown'),
  destroy: (s) => stop(s, 'destroyed'),
  // A paused domain suspends as a successful no-op (qemu).
  suspend: (s) => (s.paused ? [] : [{ type: 'DomainSuspended' }]),
  resume: () => [{ type: 'DomainResumed' }],
  reboot: () => [{ type: 'DomainRebooted' }],
  managedsave: (s, c) => [{ type: 'DomainSaved', managed: true, paused: c.paused || (!c.running && s.paused) }],
  // virsh: "has no manage save image; removal skipped" is a success that changes nothing.
  'managedsave-remove': (s) => (s.hasManagedSave ? [{ type: 'ManagedSaveRemoved' }] : []),
  save: (s, c) => stopFacts(s, { type: 'DomainSaved', managed: false, file: c.file, paused: c.paused || (!c.running && s.paused) }),
  undefine: (s, c) => {
    const { removed, kept } = storagePlan(s, c);
    return [
      {
        type: 'DomainUndefined',
        // UND-ACTIVE: an active domain keeps its snapshot metadata until it quits, whatever the flags.
        snapshotMetadataRemoved: !s.active && c.snapshotsMetadata ? Object.keys(s.snapshots) : [],
        managedSaveRemoved: s.hasManagedSave && c.managedSave,
        storageRemoved: removed,
        storageKept: kept,
      },
    ];
  },
  'snapshot-create': createSnapshot,
  'snapshot-delete': deleteSnapshots,
  'snapshot-revert': revertSnapshot,
  blockcopy: (s, c) => [
    { type: 'BlockJobStarted', job: { disk: findDisk(s, c.path)!.target, kind: 'copy', phase: 'copying', destination: c.dest } },
  ],
  blockjob: (s, c) => {
    const disk = findDisk(s, c.path)!;
    const job = blockJobOn(s, disk.target)!;
    return c.pivot
      ? [{ type: 'BlockJobEnded', disk: disk.target, outcome: 'pivot', source: job.destination }]
      : [{ type: 'BlockJobEnded', disk: disk.target, outcome: 'abort', source: disk.source }];
  },
  // The pull runs to completion within the command; the hypervisor reports the shortened chain (BackingChainChanged).
  blockpull: (s, c) => {
    const disk = findDisk(s, c.path)!;
    return [
      { type: 'BlockJobStarted', job: { disk: disk.target, kind: 'pull', phase: 'copying' } },
      { type: 'BlockJobEnded', disk: disk.target, outcome: 'completed', source: disk.source },
    ];
  },
  migrate: (_s, c) => [
    {
      type: 'MigrationStarted',
      job: { destination: c.desthost, phase: 'begin', offline: c.offline, persistent: c.persistent, undefinesource: c.undefinesource, live: c.live },
    },
  ],
  'migrate-phase': migratePhase,
  'migrate-incoming': (_s, c) => [
    { type: 'DomainMigratedIn', source: c.source, config: c.config, persistent: c.persistent, active: c.active, paused: c.active && c.paused },
  ],
  'guest-event': (s, c) => {
    switch (c.event) {
      case 'poweroff':
        return stop(s, 'shutdown');
      case 'crash':
        return stop(s, 'crashed');
      case 'reboot':
        return [{ type: 'DomainRebooted' }];
      case 'blockjob-ready': {
        const job = c.disk ? blockJobOn(s, c.disk) : undefined;
        return job && job.phase === 'copying' ? [{ type: 'BlockJobReady', disk: job.disk }] : [];
      }
    }
  },
};
