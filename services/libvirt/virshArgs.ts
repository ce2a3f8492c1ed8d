// An accepted command as the virsh command line that performs it on libvirt (the inverse of services/virsh's
// parser, for the verbs libvirt has). Files virsh must read (domain XML for define/create) are named by the
// caller: `files.domainXml` is where the XML was written.
import type { Command, CommandOf } from '../../machines/commands';
import type { Fact } from '../../machines/events';

export type VirshArgv = string[];

/** What a verb needs besides the command: the path of the domain XML file (define, create). */
export interface ArgvFiles {
  domainXml?: string;
  /** snapshot-create with the client's `<domainsnapshot>` XML: where it was written. */
  snapshotXml?: string;
}

/** Why a command has no virsh equivalent (vmledger's own verbs, or seed-002 options libvirt does not have). */
export class NoLibvirtEquivalent extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoLibvirtEquivalent';
  }
}

function flags(pairs: Record<string, boolean>): string[] {
  return Object.entries(pairs)
    .filter(([, on]) => on)
    .map(([name]) => `--${name}`);
}

const SNAPSHOT_CREATE_FLAGS = (c: CommandOf<'snapshot-create'>) =>
  flags({
    redefine: c.redefine,
    current: c.current,
    'no-metadata': c.noMetadata,
    halt: c.halt,
    'disk-only': c.diskOnly,
    'reuse-external': c.reuseExternal,
    quiesce: c.quiesce,
    atomic: c.atomic,
    live: c.live,
  });

function snapshotCreateArgv(c: CommandOf<'snapshot-create'>, decided: readonly Fact[], files: ArgvFiles): VirshArgv {
  // The client's own XML goes to libvirt as it is.
  if (files.snapshotXml !== undefined) return ['snapshot-create', c.domain, files.snapshotXml, ...SNAPSHOT_CREATE_FLAGS(c)];
  // The name the rules decided (libvirt would otherwise pick the epoch time itself, a second later perhaps).
  const created = decided.find((f) => f.type === 'SnapshotCreated');
  const name = created?.type === 'SnapshotCreated' ? created.snapshot.name : c.snapshot.name;
  if (c.redefine) {
    // `snapshot-current DOM NAME`: virsh redefines the snapshot with the XML libvirt holds, as current.
    if (c.current && name !== undefined) return ['snapshot-current', c.domain, name];
    throw new NoLibvirtEquivalent('snapshot-create --redefine needs the snapshot XML (snapshot-create DOM FILE --redefine)');
  }
  if (c.snapshot.disks.some((d) => d.mirror !== undefined)) {
    throw new NoLibvirtEquivalent('mirrored snapshots (diskspec mirror=…) are not in libvirt; use blockcopy --transient-job');
  }
  const argv = ['snapshot-create-as', c.domain];
  if (name !== undefined) argv.push('--name', name);
  if (c.snapshot.description !== undefined) argv.push('--description', c.snapshot.description);
  argv.push(...SNAPSHOT_CREATE_FLAGS(c));
  for (const d of c.snapshot.disks) {
    const parts = [d.target.replace(/,/g, ',,'), `snapshot=${d.snapshot}`];
    if (d.file !== undefined) parts.push(`file=${d.file.replace(/,/g, ',,')}`);
    argv.push('--diskspec', parts.join(','));
  }
  return argv;
}

/** The virsh command line for an accepted command; undefined for a verb with no effect on libvirt (guest-event). */
export function virshArgv(c: Command, decided: readonly Fact[], files: ArgvFiles = {}): VirshArgv | undefined {
  switch (c.verb) {
    case 'define':
      return ['define', needFile(files)];
    case 'create':
      return ['create', needFile(files), ...flags({ paused: c.paused, autodestroy: c.autodestroy })];
    case 'start':
      return ['start', c.domain, ...flags({ paused: c.paused, autodestroy: c.autodestroy, 'force-boot': c.forceBoot })];
    case 'shutdown':
    case 'suspend':
    case 'resume':
    case 'reboot':
    case 'managedsave-remove':
      return [c.verb, c.domain];
    case 'destroy':
      return ['destroy', c.domain, ...flags({ graceful: c.graceful })];
    case 'managedsave':
      return ['managedsave', c.domain, ...flags({ running: c.running, paused: c.paused })];
    case 'save':
      return ['save', c.domain, c.file, ...flags({ running: c.running, paused: c.paused })];
    case 'undefine':
      return [
        'undefine',
        c.domain,
        ...flags({
          'managed-save': c.managedSave,
          'snapshots-metadata': c.snapshotsMetadata,
          'remove-all-storage': c.removeAllStorage,
          'wipe-storage': c.wipeStorage,
        }),
        ...(c.storage !== undefined ? ['--storage', c.storage.map((s) => s.replace(/,/g, ',,')).join(',')] : []),
      ];
    case 'snapshot-create':
      return snapshotCreateArgv(c, decided, files);
    case 'snapshot-delete':
      if (c.mirrorPivot || c.mirrorAbort) throw new NoLibvirtEquivalent('snapshot-delete --mirror-pivot/--mirror-abort are not in libvirt');
      return ['snapshot-delete', c.domain, c.snapshotname, ...flags({ children: c.children, 'children-only': c.childrenOnly, metadata: c.metadata })];
    case 'snapshot-revert':
      return ['snapshot-revert', c.domain, c.snapshotname, ...flags({ running: c.running, paused: c.paused, force: c.force })];
    case 'blockcopy':
      return [
        'blockcopy',
        c.domain,
        c.path,
        c.dest,
        ...flags({ 'transient-job': c.transientJob, shallow: c.shallow, 'reuse-external': c.reuseExternal }),
      ];
    case 'blockjob':
      return ['blockjob', c.domain, c.path, ...flags({ pivot: c.pivot, abort: c.abort })];
    case 'blockpull':
      // The rules record the pull as done within the command: --wait makes libvirt's job end before we answer.
      return ['blockpull', c.domain, c.path, '--wait', ...(c.base !== undefined ? ['--base', c.base] : [])];
    case 'guest-event':
      return undefined;
    case 'migrate':
    case 'migrate-phase':
    case 'migrate-incoming':
      // One `virsh migrate` runs all of libvirt's phases between two connections: the driver's migration steps
      // (services/drivers/libvirtMigration.ts) perform it, no single command line of one connection.
      throw new NoLibvirtEquivalent(`${c.verb} is a step of a migration between two connections, not one virsh command`);
  }
}

function needFile(files: ArgvFiles): string {
  if (files.domainXml === undefined) throw new Error('define/create need the domain XML file');
  return files.domainXml;
}
