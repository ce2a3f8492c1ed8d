// evolve(state, fact) → state. Pure and total: replaying a stream's facts rebuilds the domain exactly.
import type { Fact } from './events';
import { blockJobOn, initialDomainState, type BlockJob, type DomainState } from './model';
import { ownEntry, withEntry, withoutEntries } from './names';

/** A fresh life under this name: nothing of a previous (gone) domain survives. */
function newLife(s: DomainState): DomainState {
  return { ...initialDomainState(s.host, s.name), life: 'exists' };
}

/** The domain is gone; the name is free again. */
function gone(s: DomainState): DomainState {
  return { ...initialDomainState(s.host, s.name), life: 'gone' };
}

function withDiskSource(s: DomainState, target: string, source: string | undefined): DomainState {
  if (!s.config || source === undefined) return s;
  return { ...s, config: { ...s.config, disks: s.config.disks.map((d) => (d.target === target ? { ...d, source } : d)) } };
}

export function evolve(s: DomainState, f: Fact): DomainState {
  switch (f.type) {
    case 'DomainDefined':
      if (s.life !== 'exists') return { ...newLife(s), uuid: f.config.uuid, config: f.config, persistent: true, reason: 'unknown' };
      return { ...s, config: f.config, persistent: true };
    case 'DomainCreated':
      return {
        ...newLife(s),
        uuid: f.config.uuid,
        config: f.config,
        active: true,
        paused: f.paused,
        autodestroy: f.autodestroy,
        reason: 'booted',
      };
    case 'DomainStarted':
      return {
        ...s,
        config: f.config ?? s.config,
        active: true,
        paused: f.paused,
        autodestroy: f.autodestroy,
        reason: f.reason,
        hasManagedSave: f.managedSaveConsumed ? false : s.hasManagedSave,
        managedSavePaused: f.managedSaveConsumed ? false : s.managedSavePaused,
      };
    case 'DomainStopped':
      return { ...s, active: false, paused: false, autodestroy: false, reason: f.reason };
    case 'DomainSuspended':
      return { ...s, paused: true, reason: 'user' };
    case 'DomainResumed':
      return { ...s, paused: false, reason: 'unpaused' };
    case 'DomainRebooted':
      return { ...s, paused: false, reason: 'booted' };
    case 'DomainSaved':
      return {
        ...s,
        active: false,
        paused: false,
        autodestroy: false,
        reason: 'saved',
        hasManagedSave: f.managed || s.hasManagedSave,
        managedSavePaused: f.managed ? f.paused : s.managedSavePaused,
      };
    case 'ManagedSaveRemoved':
      return { ...s, hasManagedSave: false, managedSavePaused: false };
    case 'DomainUndefined':
      // UND-ACTIVE: a running domain becomes transient and keeps everything until it quits.
      if (s.active) return { ...s, persistent: false, hasManagedSave: f.managedSaveRemoved ? false : s.hasManagedSave };
      return gone(s);
    case 'TransientDomainRemoved':
      return gone(s);
    case 'SnapshotCreated':
      return {
        ...s,
        snapshots: withEntry(s.snapshots, f.snapshot.name, f.snapshot),
        current: f.current ? f.snapshot.name : s.current,
      };
    case 'SnapshotDisksChanged':
      return f.disks.reduce((acc, d) => (d.changed ? withDiskSource(acc, d.target, d.file) : acc), s);
    case 'SnapshotsDeleted': {
      let snapshots = withoutEntries(s.snapshots, f.deleted);
      for (const r of f.reparented) {
        const snap = ownEntry(snapshots, r.name);
        if (snap) snapshots = withEntry(snapshots, r.name, { ...snap, parent: r.parent });
      }
      return { ...s, snapshots, current: f.current };
    }
    case 'SnapshotReverted':
      return {
        ...s,
        current: f.snapshot,
        active: f.active,
        paused: f.paused,
        autodestroy: f.active ? s.autodestroy : false,
        reason: 'from snapshot',
      };
    case 'BlockJobStarted':
      return { ...s, blockJobs: withEntry(s.blockJobs, f.job.disk, f.job) };
    case 'BlockJobReady': {
      const job = blockJobOn(s, f.disk);
      return job ? { ...s, blockJobs: withEntry<BlockJob>(s.blockJobs, f.disk, { ...job, phase: 'ready' }) } : s;
    }
    case 'BlockJobEnded': {
      return withDiskSource({ ...s, blockJobs: withoutEntries(s.blockJobs, [f.disk]) }, f.disk, f.source);
    }
    case 'BlockJobEndFailed':
      // MIR-PARTIAL: nothing moved on this disk; its job goes on.
      return s;
    case 'BackingChainChanged':
      return withDiskSource(s, f.disk, f.chain[0]);
    case 'MigrationStarted':
      return { ...s, migration: f.job };
    case 'MigrationPhaseReached':
      return s.migration ? { ...s, migration: { ...s.migration, phase: f.phase } } : s;
    case 'MigrationFailed':
      return { ...s, migration: null };
    case 'DomainMigratedOut':
      // An offline migration moves only the definition: the source guest is not stopped, and --undefinesource
      // leaves a running one transient (as undefine does, UND-ACTIVE).
      if (s.migration?.offline) {
        if (!f.undefinesource) return { ...s, migration: null };
        return s.active ? { ...s, migration: null, persistent: false } : gone(s);
      }
      if (f.undefinesource || !s.persistent) return gone(s);
      return { ...s, migration: null, active: false, paused: false, autodestroy: false, reason: 'migrated' };
    case 'DomainMigratedIn': {
      const base = s.life === 'exists' ? s : { ...newLife(s), uuid: f.config.uuid };
      return {
        ...base,
        config: f.config,
        persistent: base.persistent || f.persistent,
        active: f.active,
        paused: f.paused,
        reason: 'migrated',
      };
    }
  }
}

export function evolveAll(s: DomainState, facts: Iterable<Fact>): DomainState {
  let out = s;
  for (const f of facts) out = evolve(out, f);
  return out;
}
