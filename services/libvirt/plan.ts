// From what the ledger holds of a domain to what libvirt shows: the next command that records one difference,
// as libvirt would have been asked for it (a `virsh destroy` behind vmledger's back is a `destroy`; a guest that
// powered itself off is `guest-event poweroff`). Pure. services/reconcile.ts runs the steps one at a time
// through the rules (so TRANSIENT-QUIT, UND-ACTIVE, SC-TREE apply as to any command) until nothing differs.
//
// The order matters where one difference hides another: a definition is recorded before the domain stops (a
// transient domain that became persistent must not vanish with TRANSIENT-QUIT), the domain stops before it is
// undefined, snapshots are redefined parents first and forgotten leaves first.
import type { CommandInput } from '../../machines/commands';
import type { DomainState } from '../../machines/model';
import { parseDomainXml, parseSnapshotXml } from '../xml';
import type { LibvirtDomain } from './observe';

/** A command as the plan makes it: its meta (id, actor libvirt, the observation) is added when it is recorded. */
export type PlannedCommand = CommandInput extends infer C ? (C extends unknown ? Omit<C, 'meta'> : never) : never;

/** Why a domain stopped, when libvirt's own reading cannot say (it is gone): from the event line. */
export type StopHint = 'destroyed' | 'shutdown' | 'crashed' | 'saved';

/** One difference between the ledger and libvirt, and the command that records it (none: only reported). */
export interface Difference {
  domain: string;
  what: string;
  ledger: string;
  libvirt: string;
  /** The command (without meta) that brings the ledger to libvirt's side of this difference. */
  command?: PlannedCommand;
}

type Step = Omit<Difference, 'domain'>;

/** `domstate --reason` of a pause libvirt makes while its own job runs (it resumes the guest afterwards). */
const JOB_PAUSES = new Set(['snapshot', 'migration', 'save', 'dump', 'starting up', 'post-copy']);

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

function ledgerState(s: DomainState): string {
  if (s.life !== 'exists') return 'gone';
  if (!s.active) return 'shut off';
  return s.paused ? 'paused' : 'running';
}

function libvirtState(d: LibvirtDomain): string {
  if (!d.exists) return 'gone';
  return d.reason ? `${d.state} (${d.reason})` : d.state;
}

/** The command recording that the domain stopped, by libvirt's reason (the hint when the domain is gone). */
function stopCommand(host: string, domain: string, d: LibvirtDomain, hint: StopHint | undefined): PlannedCommand {
  const reason = d.exists && d.reason ? d.reason : (hint ?? 'destroyed');
  switch (reason) {
    case 'shutdown':
      return { verb: 'guest-event', host, domain, event: 'poweroff' };
    case 'crashed':
      return { verb: 'guest-event', host, domain, event: 'crash' };
    case 'saved':
      if (d.managedSave) return { verb: 'managedsave', host, domain };
      return { verb: 'destroy', host, domain };
    default:
      return { verb: 'destroy', host, domain };
  }
}

/** The next difference to record, or undefined when the ledger and libvirt agree on everything compared here. */
export function nextDifference(s: DomainState, d: LibvirtDomain, hint?: StopHint): Difference | undefined {
  const step = nextStep(s, d, hint);
  return step ? { domain: s.name, ...step } : undefined;
}

function nextStep(s: DomainState, d: LibvirtDomain, hint: StopHint | undefined): Step | undefined {
  const host = s.host;
  const domain = s.name;
  const exists = s.life === 'exists';
  if (!exists && !d.exists) return undefined;

  if (!exists) {
    const config = parseDomainXml(d.xml);
    if (d.persistent) return { what: 'defined', ledger: 'gone', libvirt: 'defined', command: { verb: 'define', host, config, xml: d.xml } };
    return {
      what: 'created',
      ledger: 'gone',
      libvirt: libvirtState(d),
      command: { verb: 'create', host, config, xml: d.xml, paused: d.paused },
    };
  }

  if (!d.exists) {
    if (s.active) return { what: 'state', ledger: ledgerState(s), libvirt: 'gone', command: stopCommand(host, domain, d, hint) };
    const snapshots = Object.keys(s.snapshots).length > 0;
    return {
      what: 'undefined',
      ledger: 'defined',
      libvirt: 'gone',
      command: { verb: 'undefine', host, domain, snapshotsMetadata: snapshots, managedSave: s.hasManagedSave },
    };
  }

  if (d.uuid !== undefined && typeof s.uuid === 'string' && d.uuid !== s.uuid) {
    // Another domain under the same name: the one the ledger knows is gone first.
    const gone = { ...d, exists: false };
    const step = nextStep(s, gone, hint);
    return step ? { ...step, what: `uuid (${step.what})`, ledger: s.uuid ?? 'none', libvirt: d.uuid } : undefined;
  }

  if (!s.persistent && d.persistent) {
    return { what: 'persistent', ledger: 'no', libvirt: 'yes', command: { verb: 'define', host, config: parseDomainXml(d.xml), xml: d.xml } };
  }

  if (!s.active && d.active) {
    return { what: 'state', ledger: ledgerState(s), libvirt: libvirtState(d), command: { verb: 'start', host, domain, paused: d.paused } };
  }
  if (s.active && !d.active) {
    return { what: 'state', ledger: ledgerState(s), libvirt: libvirtState(d), command: stopCommand(host, domain, d, hint) };
  }
  // A pause libvirt makes for its own job (an internal snapshot, a save, a migration) is not the guest's state.
  const paused = d.paused && !JOB_PAUSES.has(d.reason);
  if (s.active && s.paused !== paused) {
    return {
      what: 'state',
      ledger: ledgerState(s),
      libvirt: libvirtState(d),
      command: { verb: paused ? 'suspend' : 'resume', host, domain },
    };
  }

  if (s.persistent && !d.persistent) {
    // UND-ACTIVE: undefined while running, it goes on as a transient domain.
    return { what: 'persistent', ledger: 'yes', libvirt: 'no', command: { verb: 'undefine', host, domain } };
  }

  if (!s.active && s.hasManagedSave !== d.managedSave) {
    return {
      what: 'managed save',
      ledger: yesNo(s.hasManagedSave),
      libvirt: yesNo(d.managedSave),
      // An image made behind vmledger's back can only be recorded the way it is made: the guest ran and was saved.
      command: d.managedSave ? { verb: 'start', host, domain } : { verb: 'managedsave-remove', host, domain },
    };
  }

  const snapshot = snapshotStep(s, d);
  if (snapshot) return snapshot;

  return blockJobStep(s, d);
}

function snapshotStep(s: DomainState, d: LibvirtDomain): Step | undefined {
  const host = s.host;
  const domain = s.name;
  const ours = new Set(Object.keys(s.snapshots));
  const theirs = new Set(d.snapshotNames);
  // Redefined parents first: a snapshot whose parent is recorded (or that has none).
  for (const snap of d.snapshots) {
    if (ours.has(snap.name)) continue;
    const definition = parseSnapshotXml(snap.xml);
    if (definition.parent !== undefined && !ours.has(definition.parent)) continue;
    return {
      what: `snapshot ${snap.name}`,
      ledger: 'none',
      libvirt: d.current === snap.name ? 'current' : 'exists',
      command: { verb: 'snapshot-create', host, domain, snapshot: { ...definition, name: snap.name }, redefine: true, current: d.current === snap.name },
    };
  }
  const missing = d.snapshotNames.filter((n) => !ours.has(n));
  if (missing.length > 0 && d.snapshots.length === 0) {
    // Read without their XML (cannot be redefined from here): reported only.
    return { what: 'snapshots', ledger: [...ours].sort().join(',') || 'none', libvirt: d.snapshotNames.join(',') || 'none' };
  }
  // Forgotten leaves first: a snapshot of ours libvirt no longer has, none of whose children it still has.
  const gone = [...ours].filter((n) => !theirs.has(n));
  const leaf = gone.find((n) => !Object.values(s.snapshots).some((c) => c.parent === n && !theirs.has(c.name))) ?? gone[0];
  if (leaf !== undefined) {
    return {
      what: `snapshot ${leaf}`,
      ledger: s.current === leaf ? 'current' : 'exists',
      libvirt: 'none',
      command: { verb: 'snapshot-delete', host, domain, snapshotname: leaf, metadata: true },
    };
  }
  if (d.current !== s.current && d.current !== null) {
    const snap = d.snapshots.find((x) => x.name === d.current);
    const definition = snap ? parseSnapshotXml(snap.xml) : undefined;
    return {
      what: 'current snapshot',
      ledger: s.current ?? 'none',
      libvirt: d.current,
      // A redefinition with --current makes it current again, as `virsh snapshot-current DOM NAME` does.
      ...(definition ? { command: { verb: 'snapshot-create', host, domain, snapshot: { ...definition, name: d.current }, redefine: true, current: true } } : {}),
    };
  }
  return undefined;
}

function blockJobStep(s: DomainState, d: LibvirtDomain): Step | undefined {
  const host = s.host;
  const domain = s.name;
  for (const disk of d.disks) {
    const job = s.blockJobs[disk.target];
    if (disk.mirror && !job) {
      if (disk.mirror.file === undefined) return { what: `block job ${disk.target}`, ledger: 'none', libvirt: 'copy' };
      return {
        what: `block job ${disk.target}`,
        ledger: 'none',
        libvirt: disk.mirror.ready ? 'copy (ready)' : 'copy',
        command: { verb: 'blockcopy', host, domain, path: disk.target, dest: disk.mirror.file, transientJob: true },
      };
    }
    if (disk.mirror && job && disk.mirror.ready && job.phase === 'copying') {
      return { what: `block job ${disk.target}`, ledger: 'copying', libvirt: 'ready', command: { verb: 'guest-event', host, domain, event: 'blockjob-ready', disk: disk.target } };
    }
    if (!disk.mirror && job && job.kind !== 'pull') {
      const pivoted = job.destination !== undefined && disk.source === job.destination;
      if (pivoted && job.phase === 'copying') {
        // A pivot needs a ready job (MIR-END): libvirt's copy got there first.
        return { what: `block job ${disk.target}`, ledger: 'copying', libvirt: 'ready', command: { verb: 'guest-event', host, domain, event: 'blockjob-ready', disk: disk.target } };
      }
      return {
        what: `block job ${disk.target}`,
        ledger: job.phase,
        libvirt: pivoted ? 'ended (pivot)' : 'ended (abort)',
        command: { verb: 'blockjob', host, domain, path: disk.target, pivot: pivoted, abort: !pivoted },
      };
    }
  }
  return undefined;
}
