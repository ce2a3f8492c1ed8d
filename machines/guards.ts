// One guard per rule id of docs/rules.md. A guard is a pure function of the domain state and the command:
// it returns the refusal libvirt would give, or undefined when the rule lets the command through.
// The order in which a verb consults its guards lives in `verbs.ts`; the facts an accepted command
// produces live in `effects.ts`.
import type { Command, CommandOf } from './commands';
import {
  exclusiveFlags,
  invalidArg,
  operationInvalid,
  refusal,
  requiredFlag,
  type Refusal,
} from './errors';
import { blockJobOn, exists, snapshotCount, snapshotNamed, type DomainState } from './model';

/** What a decision may know beyond the domain itself: other domains on the same host (DEF-NAME). */
export interface HostView {
  /** Name of the existing domain on `host` with this UUID, if any. */
  domainNameByUuid(host: string, uuid: string): string | undefined;
}

export const emptyHostView: HostView = { domainNameByUuid: () => undefined };

export type Guard<C extends Command = Command> = (s: DomainState, c: C, host: HostView) => Refusal | undefined;

const NOT_RUNNING = 'domain is not running';
const ACTIVE_BLOCK_JOB = 'domain has active block job';

function hasBlockJob(s: DomainState): boolean {
  return Object.keys(s.blockJobs).length > 0;
}

/** A disk of the domain named by target (`vda`) or by source path, as virsh accepts either. */
export function findDisk(s: DomainState, path: string) {
  return s.config?.disks.find((d) => d.target === path || d.source === path);
}

/** The snapshot whose mirror is active (seed 002: at most one mirrored snapshot at a time). */
export function mirroredSnapshotName(s: DomainState): string | undefined {
  return Object.values(s.blockJobs).find((j) => j.kind === 'snapshot-mirror')?.snapshot;
}

// ---------------------------------------------------------------------------------------------------
// §3 Lifecycle

export const DOM_NOTFOUND: Guard = (s) =>
  exists(s) ? undefined : refusal('DOM-NOTFOUND', 'VIR_ERR_NO_DOMAIN', `no domain with matching name '${s.name}'`);

/** libvirt checks the UUID first (`virDomainObjListAddLocked`), then the name. */
export const DEF_NAME: Guard<CommandOf<'define' | 'create' | 'migrate-incoming'>> = (s, c, host) => {
  const { name, uuid } = c.config;
  const holder = host.domainNameByUuid(c.host, uuid);
  if (holder !== undefined && holder !== name)
    return refusal('DEF-NAME', 'VIR_ERR_OPERATION_FAILED', `domain '${holder}' is already defined with uuid ${uuid}`);
  if (exists(s) && s.uuid !== uuid)
    return refusal('DEF-NAME', 'VIR_ERR_OPERATION_FAILED', `domain '${name}' already exists with uuid ${s.uuid}`);
  return undefined;
};

export const CRE_ACTIVE: Guard<CommandOf<'create' | 'migrate-incoming'>> = (s, c) =>
  exists(s) && s.active ? operationInvalid('CRE-ACTIVE', `domain '${c.config.name}' is already active`) : undefined;

export const STA_ACTIVE: Guard = (s) => (s.active ? operationInvalid('STA-ACTIVE', 'domain is already running') : undefined);

export const ACT_REQ: Guard = (s, c) => {
  if (!s.active) return operationInvalid('ACT-REQ', NOT_RUNNING);
  if (c.verb === 'shutdown' && s.paused) return operationInvalid('ACT-REQ', NOT_RUNNING);
  if (c.verb === 'resume' && !s.paused) return operationInvalid('ACT-REQ', 'domain is already running');
  return undefined;
};

export const MS_TRANSIENT: Guard = (s) =>
  s.persistent ? undefined : operationInvalid('MS-TRANSIENT', 'cannot do managed save for transient domain');

export const MS_MIRROR: Guard = (s) => (hasBlockJob(s) ? operationInvalid('MS-MIRROR', ACTIVE_BLOCK_JOB) : undefined);

// ---------------------------------------------------------------------------------------------------
// §4 Undefine

export const UND_TRANSIENT: Guard = (s) =>
  s.persistent ? undefined : operationInvalid('UND-TRANSIENT', 'cannot undefine transient domain');

export const UND_SNAPSHOTS: Guard<CommandOf<'undefine'>> = (s, c) => {
  const n = snapshotCount(s);
  if (!s.active && n > 0 && !c.snapshotsMetadata)
    return operationInvalid('UND-SNAPSHOTS', `cannot delete inactive domain with ${n} snapshots`);
  return undefined;
};

export const UND_MANAGED_SAVE: Guard<CommandOf<'undefine'>> = (s, c) =>
  s.hasManagedSave && !c.managedSave
    ? operationInvalid('UND-MANAGED-SAVE', 'Refusing to undefine while domain managed save image exists')
    : undefined;

function requestsStorageRemoval(c: CommandOf<'undefine'>): boolean {
  return c.storage !== undefined || c.removeAllStorage || c.wipeStorage;
}

/**
 * virsh's own check (seed 004; virsh prints it bare). docs/rules.md gives it code 55, and §2 renders every 55 with
 * libvirt's prefix, so the reply carries the prefix like any other 55.
 */
export const UND_STORAGE_RUNNING: Guard<CommandOf<'undefine'>> = (s, c) =>
  s.active && requestsStorageRemoval(c)
    ? operationInvalid('UND-STORAGE-RUNNING', 'Storage volume deletion is supported only on stopped domains')
    : undefined;

export const UND_STORAGE_FLAGS: Guard<CommandOf<'undefine'>> = (s, c) => {
  if (c.storage !== undefined && c.removeAllStorage)
    return invalidArg('UND-STORAGE-FLAGS', 'Specified both --storage and --remove-all-storage');
  if (c.wipeStorage && c.storage === undefined && !c.removeAllStorage)
    return invalidArg('UND-STORAGE-FLAGS', "'--wipe-storage' requires '--storage <string>' or '--remove-all-storage'");
  for (const entry of c.storage ?? []) {
    if (!findDisk(s, entry)) return invalidArg('UND-STORAGE-FLAGS', `Volume '${entry}' was not found in domain's definition.`);
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------------
// §5 Snapshots

const SNAP_CREATE = 'VIR_DOMAIN_SNAPSHOT_CREATE_';
const SNAP_DELETE = 'VIR_DOMAIN_SNAPSHOT_DELETE_';
const SNAP_REVERT = 'VIR_DOMAIN_SNAPSHOT_REVERT_';

export const SC_CURRENT: Guard<CommandOf<'snapshot-create'>> = (_s, c) =>
  c.current && !c.redefine ? requiredFlag('SC-CURRENT', `${SNAP_CREATE}REDEFINE`, `${SNAP_CREATE}CURRENT`) : undefined;

export const SC_REDEFINE_NOMETA: Guard<CommandOf<'snapshot-create'>> = (_s, c) => {
  if (c.redefine && c.noMetadata) return exclusiveFlags('SC-REDEFINE-NOMETA', `${SNAP_CREATE}REDEFINE`, `${SNAP_CREATE}NO_METADATA`);
  if (c.redefine && c.halt) return exclusiveFlags('SC-REDEFINE-NOMETA', `${SNAP_CREATE}REDEFINE`, `${SNAP_CREATE}HALT`);
  return undefined;
};

export const SC_QUIESCE: Guard<CommandOf<'snapshot-create'>> = (_s, c) =>
  c.quiesce && !c.diskOnly ? requiredFlag('SC-QUIESCE', `${SNAP_CREATE}DISK_ONLY`, `${SNAP_CREATE}QUIESCE`) : undefined;

export const SC_HALT_TRANSIENT: Guard<CommandOf<'snapshot-create'>> = (s, c) =>
  c.halt && !s.persistent ? operationInvalid('SC-HALT-TRANSIENT', 'cannot halt after transient domain snapshot') : undefined;

/** The name a snapshot gets: its own, or (like libvirt) the creation time in epoch seconds. */
export function snapshotName(c: CommandOf<'snapshot-create'>): string {
  return c.snapshot.name ?? String(Math.floor(Date.parse(c.meta.time) / 1000));
}

export const SC_NAME: Guard<CommandOf<'snapshot-create'>> = (_s, c) => {
  if (c.noMetadata) return undefined; // libvirt validates the name only for snapshots it tracks
  const name = snapshotName(c);
  if (name.includes('/'))
    return refusal('SC-NAME', 'VIR_ERR_XML_DETAIL', `invalid snapshot name '${name}': name can't contain '/'`, false);
  if (name.startsWith('.'))
    return refusal('SC-NAME', 'VIR_ERR_XML_DETAIL', `invalid snapshot name '${name}': name can't start with '.'`, false);
  return undefined;
};

export const SC_EXISTS: Guard<CommandOf<'snapshot-create'>> = (s, c) => {
  if (c.redefine || c.noMetadata) return undefined; // redefine may replace a snapshot's metadata
  const name = snapshotName(c);
  return snapshotNamed(s, name) ? refusal('SC-EXISTS', 'VIR_ERR_OPERATION_FAILED', `domain moment ${name} already exists`) : undefined;
};

/** Disks a snapshot touches: the diskspecs given, or every disk of the domain. */
export function snapshotDiskTargets(s: DomainState, c: CommandOf<'snapshot-create'>): string[] {
  if (c.snapshot.disks.length > 0) return c.snapshot.disks.filter((d) => d.snapshot !== 'no').map((d) => d.target);
  return (s.config?.disks ?? []).filter((d) => d.device === 'disk' && !d.readonly).map((d) => d.target);
}

export const SC_BUSY_DISK: Guard<CommandOf<'snapshot-create'>> = (s, c) => {
  if (c.redefine) return undefined;
  const busy = snapshotDiskTargets(s, c).find((t) => blockJobOn(s, t));
  return busy
    ? refusal('SC-BUSY-DISK', 'VIR_ERR_BLOCK_COPY_ACTIVE', `disk '${busy}' already in active block job`)
    : undefined;
};

/**
 * SC-TREE on --redefine: the parent comes from the XML, so it must exist and must not be the snapshot
 * itself (libvirt's `virDomainSnapshotRedefinePrep`; invalid-argument errors with their prefix).
 */
export const SC_TREE: Guard<CommandOf<'snapshot-create'>> = (s, c) => {
  if (!c.redefine) return undefined;
  const name = c.snapshot.name;
  if (!name) return refusal('SC-TREE', 'VIR_ERR_XML_ERROR', 'a redefined snapshot must have a name');
  const parent = c.snapshot.parent;
  if (parent === undefined) return undefined;
  if (parent === name) return refusal('SC-TREE', 'VIR_ERR_INVALID_ARG', `cannot set moment ${name} as its own parent`);
  if (!snapshotNamed(s, parent)) return refusal('SC-TREE', 'VIR_ERR_INVALID_ARG', `parent ${parent} for moment ${name} not found`);
  // A parent below the snapshot itself would make the tree a cycle.
  let p: string | null | undefined = parent;
  while (p) {
    if (p === name) return refusal('SC-TREE', 'VIR_ERR_INVALID_ARG', `parent ${parent} would create cycle to ${name}`);
    p = snapshotNamed(s, p)?.parent;
  }
  return undefined;
};

export const SD_EXCL: Guard<CommandOf<'snapshot-delete'>> = (_s, c) =>
  c.children && c.childrenOnly ? exclusiveFlags('SD-EXCL', `${SNAP_DELETE}CHILDREN`, `${SNAP_DELETE}CHILDREN_ONLY`) : undefined;

export const SD_NOTFOUND: Guard<CommandOf<'snapshot-delete' | 'snapshot-revert'>> = (s, c) =>
  snapshotNamed(s, c.snapshotname)
    ? undefined
    : refusal('SD-NOTFOUND', 'VIR_ERR_NO_DOMAIN_SNAPSHOT', `no domain snapshot with matching name '${c.snapshotname}'`);

export const SR_EXCL: Guard<CommandOf<'snapshot-revert'>> = (_s, c) =>
  c.running && c.paused ? exclusiveFlags('SR-EXCL', `${SNAP_REVERT}RUNNING`, `${SNAP_REVERT}PAUSED`) : undefined;

function isActiveSnapshotState(state: string): boolean {
  return state === 'running' || state === 'paused';
}

export const SR_TRANSIENT: Guard<CommandOf<'snapshot-revert'>> = (s, c) => {
  const snap = snapshotNamed(s, c.snapshotname);
  if (snap && !s.persistent && !isActiveSnapshotState(snap.state) && !c.running && !c.paused)
    return operationInvalid('SR-TRANSIENT', 'transient domain needs to request run or pause to revert to inactive snapshot');
  return undefined;
};

export const SR_RISKY: Guard<CommandOf<'snapshot-revert'>> = (s, c) => {
  const snap = snapshotNamed(s, c.snapshotname);
  if (snap && !isActiveSnapshotState(snap.state) && s.hasManagedSave && !c.force)
    return refusal(
      'SR-RISKY',
      'VIR_ERR_SNAPSHOT_REVERT_RISKY',
      'snapshot without memory state, removal of existing managed saved state strongly recommended to avoid corruption',
    );
  return undefined;
};

// ---------------------------------------------------------------------------------------------------
// §6 Mirroring

function hasMirrorSpec(c: CommandOf<'snapshot-create'>): boolean {
  return c.snapshot.disks.some((d) => d.mirror !== undefined);
}

export const MIR_CREATE: Guard<CommandOf<'snapshot-create'>> = (s, c) => {
  if (!hasMirrorSpec(c)) return undefined;
  if (!s.active) return operationInvalid('MIR-CREATE', NOT_RUNNING);
  if (c.noMetadata)
    return invalidArg('MIR-CREATE', `Flag '${SNAP_CREATE}NO_METADATA' cannot be used to create a mirrored snapshot`);
  if (c.redefine) return invalidArg('MIR-CREATE', `Flag '${SNAP_CREATE}REDEFINE' cannot be used to create a mirrored snapshot`);
  // A mirror lives only while the domain runs: halting would leave an inactive domain holding a mirror job.
  if (c.halt) return invalidArg('MIR-CREATE', `Flag '${SNAP_CREATE}HALT' cannot be used to create a mirrored snapshot`);
  if (mirroredSnapshotName(s) !== undefined)
    return operationInvalid('MIR-CREATE', `snapshot '${mirroredSnapshotName(s)}' is already a current mirrored snapshot`);
  return undefined;
};

export const MIR_COPY: Guard<CommandOf<'blockcopy'>> = (s, c) => {
  if (!s.active) return operationInvalid('MIR-COPY', NOT_RUNNING);
  if (!findDisk(s, c.path)) return refusal('MIR-COPY', 'VIR_ERR_INVALID_ARG', `disk '${c.path}' not found in domain`);
  if (!c.dest.startsWith('/')) return refusal('MIR-COPY', 'VIR_ERR_INVALID_ARG', 'absolute path must be used as block copy target');
  // A disk already in a job is refused for that first (MIR-BLOCKS, 83), as qemu does, before persistence.
  if (s.persistent && !c.transientJob && !s.blockJobs[findDisk(s, c.path)!.target]) return operationInvalid('MIR-COPY', 'domain is not transient');
  return undefined;
};

export const MIR_EXCL: Guard<CommandOf<'snapshot-delete'>> = (_s, c) =>
  c.mirrorPivot && c.mirrorAbort ? invalidArg('MIR-EXCL', 'delete mirror flags are mutually exclusive') : undefined;

/** The only ways out of `mirroring`: snapshot-delete with a mirror flag, or blockjob --pivot/--abort. */
export const MIR_END: Guard = (s, c) => {
  if (c.verb === 'snapshot-delete') {
    const mirrored = mirroredSnapshotName(s);
    const wantsMirrorEnd = c.mirrorPivot || c.mirrorAbort;
    if (mirrored === undefined) {
      return wantsMirrorEnd
        ? operationInvalid('MIR-END', `snapshot '${c.snapshotname}' is not the current mirrored snapshot`)
        : undefined;
    }
    if (c.snapshotname !== mirrored && (wantsMirrorEnd || c.children || c.childrenOnly || isAncestor(s, c.snapshotname, mirrored)))
      return operationInvalid('MIR-END', `snapshot '${c.snapshotname}' is not the current mirrored snapshot`);
    if (c.snapshotname === mirrored && !wantsMirrorEnd)
      return operationInvalid('MIR-END', `mirrored snapshot '${mirrored}' must be deleted with --mirror-pivot or --mirror-abort`);
    if (c.snapshotname === mirrored && c.mirrorPivot) {
      const notReady = Object.values(s.blockJobs).find((j) => j.snapshot === mirrored && j.phase !== 'ready');
      if (notReady) return refusal('MIR-END', 'VIR_ERR_BLOCK_COPY_ACTIVE', `block job '${notReady.disk}' not ready for pivot yet`);
    }
    return undefined;
  }
  if (c.verb === 'blockjob') {
    if (!s.active) return operationInvalid('MIR-END', NOT_RUNNING);
    const disk = findDisk(s, c.path);
    if (!disk) return refusal('MIR-END', 'VIR_ERR_INVALID_ARG', `disk '${c.path}' not found in domain`);
    const job = blockJobOn(s, disk.target);
    if (!job) return refusal('MIR-END', 'VIR_ERR_INVALID_ARG', `disk ${disk.target} does not have an active block job`);
    if (!c.pivot && !c.abort) return invalidArg('MIR-END', 'blockjob needs --pivot or --abort to end a job');
    if (job.kind === 'snapshot-mirror')
      return operationInvalid('MIR-END', `mirrored snapshot '${job.snapshot}' must be deleted with --mirror-pivot or --mirror-abort`);
    if (c.pivot && job.kind !== 'copy' && job.kind !== 'commit')
      return operationInvalid('MIR-END', `job type '${job.kind}' does not support pivot`);
    if (c.pivot && job.phase !== 'ready')
      return refusal('MIR-END', 'VIR_ERR_BLOCK_COPY_ACTIVE', `block job '${disk.target}' not ready for pivot yet`);
    return undefined;
  }
  // destroy/shutdown: the end of the domain's process is a way out too, persistent or not (measured on qemu:
  // a --transient-job copy is simply lost, and a persistent domain is shut off on its original disks).
  return undefined;
};

function isAncestor(s: DomainState, ancestor: string, of: string): boolean {
  let p = snapshotNamed(s, of)?.parent;
  while (p) {
    if (p === ancestor) return true;
    p = snapshotNamed(s, p)?.parent;
  }
  return false;
}

/**
 * While mirroring: revert and snapshots with memory are refused (`domain has active block job`); a second
 * job on a busy disk is refused with 83. A blockpull (catalog §2.16.5, after ACT-REQ) also needs its disk to
 * exist; whether `--base` lies in the disk's backing chain only the hypervisor knows (the driver checks it).
 */
export const MIR_BLOCKS: Guard = (s, c) => {
  if (c.verb === 'blockpull' && !findDisk(s, c.path))
    return refusal('MIR-BLOCKS', 'VIR_ERR_INVALID_ARG', `disk '${c.path}' not found in domain`);
  if (!hasBlockJob(s)) return undefined;
  if (c.verb === 'snapshot-revert') return operationInvalid('MIR-BLOCKS', ACTIVE_BLOCK_JOB);
  if (c.verb === 'snapshot-create' && !c.redefine && !c.diskOnly && s.active && !hasMirrorSpec(c)) {
    // An internal snapshot needs every disk: qemu names the first one a job holds (83, measured on qemu).
    const busy = s.config?.disks.find((d) => s.blockJobs[d.target]) ?? { target: Object.keys(s.blockJobs)[0]! };
    return refusal('MIR-BLOCKS', 'VIR_ERR_BLOCK_COPY_ACTIVE', `disk '${busy.target}' already in active block job`);
  }
  // --halt would end the run and lose the job; while mirroring the only ways out are MIR-END's.
  if (c.verb === 'snapshot-create' && c.halt && s.active) return operationInvalid('MIR-BLOCKS', ACTIVE_BLOCK_JOB);
  if (c.verb === 'blockcopy' || c.verb === 'blockpull') {
    const disk = findDisk(s, c.path);
    if (disk && blockJobOn(s, disk.target))
      return refusal('MIR-BLOCKS', 'VIR_ERR_BLOCK_COPY_ACTIVE', `disk '${disk.target}' already in active block job`);
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------------
// §7 Migration

export const MIG_ACTIVE: Guard<CommandOf<'migrate'>> = (s, c) =>
  !c.offline && !s.active ? operationInvalid('MIG-ACTIVE', NOT_RUNNING) : undefined;

export const MIG_SNAPSHOTS: Guard = (s) => {
  const n = snapshotCount(s);
  return n > 0 ? operationInvalid('MIG-SNAPSHOTS', `cannot migrate domain with ${n} snapshots`) : undefined;
};

export const MIG_AUTODESTROY: Guard = (s) =>
  s.autodestroy && s.active ? operationInvalid('MIG-AUTODESTROY', 'domain is marked for auto destroy') : undefined;

/** USB host devices migrate; any other assigned device does not (checked from the XML alone). */
export function blockingHostdev(config: DomainState['config']) {
  return config?.hostdevs.find((h) => !(h.mode === 'subsystem' && h.type === 'usb'));
}

export const MIG_HOSTDEV: Guard = (s, c) => {
  const config = c.verb === 'migrate-incoming' ? c.config : s.config;
  // Offline migration moves only the definition: at Begin the flag says so, at Perform the job does.
  if (c.verb === 'migrate' && c.offline) return undefined;
  if (c.verb === 'migrate-phase' && s.migration?.offline) return undefined;
  const hostdev = blockingHostdev(config);
  if (!hostdev) return undefined;
  const text =
    hostdev.mode === 'capabilities'
      ? "cannot migrate a domain with <hostdev mode='capabilities'>"
      : `cannot migrate a domain with <hostdev mode='subsystem' type='${hostdev.type}'>`;
  return refusal('MIG-HOSTDEV', 'VIR_ERR_OPERATION_UNSUPPORTED', text);
};

export const MIG_JOB: Guard = (s) => {
  if (s.migration) return operationInvalid('MIG-JOB', `another migration job is already running for domain '${s.name}'`);
  if (hasBlockJob(s)) return operationInvalid('MIG-JOB', ACTIVE_BLOCK_JOB);
  return undefined;
};

export const MIG_PERSIST: Guard<CommandOf<'migrate' | 'migrate-incoming'>> = (s, c) => {
  // An arrival that is neither running nor defined would be a domain that exists nowhere.
  if (c.verb === 'migrate-incoming')
    return !c.active && !c.persistent
      ? operationInvalid('MIG-PERSIST', 'offline migration must be specified with the persistent flag set')
      : undefined;
  if (c.offline && !c.persistent)
    return operationInvalid('MIG-PERSIST', 'offline migration must be specified with the persistent flag set');
  if (c.offline && !s.persistent) return operationInvalid('MIG-PERSIST', 'cannot migrate a transient domain offline');
  return undefined;
};

/** MIG-PHASES: a phase must follow the one before it, and a domain cannot migrate to its own host. */
export const MIG_PHASES: Guard = (s, c) => {
  if (c.verb === 'migrate') {
    if (c.desthost === s.host) return operationInvalid('MIG-PHASES', `Attempt to migrate guest to the same host ${c.desthost}`);
    return undefined;
  }
  if (c.verb === 'migrate-phase') {
    if (!s.migration) return operationInvalid('MIG-PHASES', `domain '${s.name}' has no migration job`);
    const order = ['begin', 'prepare', 'perform', 'finish', 'confirm'] as const;
    const expected = order[order.indexOf(s.migration.phase) + 1];
    if (!c.failed && c.phase !== expected)
      return operationInvalid('MIG-PHASES', `migration of domain '${s.name}' is in phase '${s.migration.phase}', not ready for '${c.phase}'`);
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------------
// §8 Jobs

/** One job at a time: while a migration holds the domain only destroy and the migration's own phases pass. */
export const JOB_BUSY: Guard = (s, c) => {
  if (!s.migration) return undefined;
  if (c.verb === 'destroy' || c.verb === 'migrate-phase' || c.verb === 'guest-event') return undefined;
  return refusal('JOB-BUSY', 'VIR_ERR_OPERATION_INVALID', `another migration job is already running for domain '${s.name}'`);
};

/** The guard table, keyed by rule id: what the state diagram labels its edges with. */
export const GUARDS = {
  'DOM-NOTFOUND': DOM_NOTFOUND,
  'DEF-NAME': DEF_NAME as Guard,
  'CRE-ACTIVE': CRE_ACTIVE as Guard,
  'STA-ACTIVE': STA_ACTIVE,
  'ACT-REQ': ACT_REQ,
  'MS-TRANSIENT': MS_TRANSIENT,
  'MS-MIRROR': MS_MIRROR,
  'UND-TRANSIENT': UND_TRANSIENT,
  'UND-SNAPSHOTS': UND_SNAPSHOTS as Guard,
  'UND-MANAGED-SAVE': UND_MANAGED_SAVE as Guard,
  'UND-STORAGE-RUNNING': UND_STORAGE_RUNNING as Guard,
  'UND-STORAGE-FLAGS': UND_STORAGE_FLAGS as Guard,
  'SC-CURRENT': SC_CURRENT as Guard,
  'SC-REDEFINE-NOMETA': SC_REDEFINE_NOMETA as Guard,
  'SC-QUIESCE': SC_QUIESCE as Guard,
  'SC-HALT-TRANSIENT': SC_HALT_TRANSIENT as Guard,
  'SC-EXISTS': SC_EXISTS as Guard,
  'SC-NAME': SC_NAME as Guard,
  'SC-TREE': SC_TREE as Guard,
  'SC-BUSY-DISK': SC_BUSY_DISK as Guard,
  'SD-EXCL': SD_EXCL as Guard,
  'SD-NOTFOUND': SD_NOTFOUND as Guard,
  'SR-EXCL': SR_EXCL as Guard,
  'SR-TRANSIENT': SR_TRANSIENT as Guard,
  'SR-RISKY': SR_RISKY as Guard,
  'MIR-CREATE': MIR_CREATE as Guard,
  'MIR-COPY': MIR_COPY as Guard,
  'MIR-END': MIR_END,
  'MIR-EXCL': MIR_EXCL as Guard,
  'MIR-BLOCKS': MIR_BLOCKS,
  'MIG-ACTIVE': MIG_ACTIVE as Guard,
  'MIG-SNAPSHOTS': MIG_SNAPSHOTS,
  'MIG-AUTODESTROY': MIG_AUTODESTROY,
  'MIG-HOSTDEV': MIG_HOSTDEV,
  'MIG-JOB': MIG_JOB,
  'MIG-PERSIST': MIG_PERSIST as Guard,
  'MIG-PHASES': MIG_PHASES,
  'JOB-BUSY': JOB_BUSY,
} satisfies Record<string, Guard>;

export type GuardId = keyof typeof GUARDS;

/** What a decision may know beyond the domain and the command. */
export interface DecideOptions {
  host?: HostView;
  /** What-if replay: rules switched off are skipped as if they were not written. */
  disabledRules?: ReadonlySet<string>;
}

/** The first of these guards, in this order, that refuses the command (docs/rules.md §4: the first failing check wins). */
export function firstRefusal(
  s: DomainState,
  c: Command,
  ids: readonly GuardId[],
  options: DecideOptions = {},
): Refusal | undefined {
  const host = options.host ?? emptyHostView;
  for (const id of ids) {
    if (options.disabledRules?.has(id)) continue;
    const refused = GUARDS[id](s, c, host);
    if (refused) return refused;
  }
  return undefined;
}
