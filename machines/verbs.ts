// The one description of the domain's transitions: for each verb, the guards it passes through in libvirt's
// order (docs/rules.md §4: the first failing check wins), the edges it takes from each state it is accepted in,
// and, where a state has several, where the command leads (`leadsTo`, pure: context and command).
//
// machines/, the rules and nothing else (pure, no I/O), starting from this table:
//   guards.ts         one guard per rule id: the refusal libvirt gives, or none;
//   effects.ts        EFFECTS[verb]: the facts of an accepted command;
//   states.ts         the machine's states, and the state a stored domain state revives to;
//   decide.ts         the fast reading of this table (the ledger, replay, the service): guards, then the effect;
//   domainMachine.ts  the same table built into the XState machine (refusal edges, then accepting edges);
//   machineGraph.ts   that machine read back as data for the diagram and the UI's edge highlighting;
//   evolve.ts         facts → state; model.ts the state; commands.ts, events.ts their schemas;
//   rules.ts, refusals.ts, errors.ts  the rule catalog, the refusal texts, libvirt's error codes; names.ts names.
//
// Why two readings of one table rather than the machine deciding at run time (issue 15, measured): XState's pure
// `transition()` costs 50–140 µs a command here (it builds an inert actor on every call) against 3–5 µs for
// decide + evolve; sending replay's commands through it took replay from 0.29–0.43 of raw read+parse to 0.06.
import type { CommandOf, Verb } from './commands';
import { failsMigration, mirrorJobsEndedBy, revertResult, startsMirror, startsPaused } from './effects';
export { PERFORM_RECHECKS } from './effects';
import type { DecideOptions, GuardId } from './guards';
import type { DomainState } from './model';
import { activeLeaf, type LeafState, type StatePath, type Target } from './states';

export interface VerbRow<V extends Verb = Verb> {
  /** The guards, in libvirt's order: the first that refuses gives the refusal (UND-ATOMIC: nothing before). */
  guards: readonly GuardId[];
  /** From each state the verb is accepted in: the one target, or the targets it may have (then `leadsTo` picks). */
  edges: Partial<Record<StatePath, Target | readonly Target[]>>;
  /** Where an accepted command leads from a state with several targets: pure, from the context and the command. */
  leadsTo?: (s: DomainState, c: CommandOf<V>, options: DecideOptions) => Target;
}

const ACTIVE: readonly LeafState[] = ['running.running', 'running.paused', 'transient.running', 'transient.paused'];

/** Where an active domain rests once its job is over: persistent or not, paused or not. */
function atRest(s: DomainState): LeafState {
  return s.active ? activeLeaf(s.persistent, s.paused) : 'inactive';
}

/**
 * The guest stops (destroy, shutdown, poweroff, crash). TRANSIENT-QUIT: a transient domain is gone; MIR-END: a
 * mirror is lost with it; MIG-PHASES: a live migration fails, an offline one (the definition only) goes on.
 */
function stops(s: DomainState): Target {
  if (s.migration?.offline) return 'same';
  return s.persistent ? 'inactive' : 'gone';
}

/** A job state is left when the last job ends, for where the domain was; else it stays. */
function endsJobs(s: DomainState, jobsLeft: number): Target {
  return jobsLeft > 0 ? 'same' : atRest(s);
}

export const VERB_TABLE: { [V in Verb]: VerbRow<V> } = {
  define: {
    guards: ['DEF-NAME', 'JOB-BUSY'],
    // DEF-UPDATE: a running transient domain becomes persistent.
    edges: { undefined: 'inactive', inactive: 'same', running: 'same', 'transient.running': 'running.running', 'transient.paused': 'running.paused', mirroring: 'same' },
  },
  create: {
    // JOB-BUSY after CRE-ACTIVE: libvirt adds the object (and reports an active clash) before it takes the job.
    guards: ['DEF-NAME', 'CRE-ACTIVE', 'JOB-BUSY'],
    // CRE-ACTIVE: an inactive persistent domain is started with the given XML and stays persistent.
    edges: { undefined: ['transient.running', 'transient.paused'], inactive: ['running.running', 'running.paused'] },
    leadsTo: (s, c) => activeLeaf(s.persistent, c.paused),
  },
  start: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'STA-ACTIVE'],
    edges: { inactive: ['running.running', 'running.paused'] },
    leadsTo: (s, c) => activeLeaf(true, startsPaused(s, c)),
  },
  shutdown: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-END'],
    edges: { 'running.running': 'inactive', 'transient.running': 'gone', mirroring: ['inactive', 'gone'] },
    leadsTo: stops,
  },
  destroy: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-END'],
    edges: { running: 'inactive', transient: 'gone', migrating: ['same', 'inactive', 'gone'], mirroring: ['inactive', 'gone'] },
    leadsTo: stops,
  },
  suspend: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ'],
    // ACT-REQ: suspend of a paused domain is a successful no-op.
    edges: { 'running.running': 'running.paused', 'running.paused': 'same', 'transient.running': 'transient.paused', 'transient.paused': 'same', mirroring: 'same' },
  },
  resume: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ'],
    edges: { 'running.paused': 'running.running', 'transient.paused': 'transient.running', mirroring: 'same' },
  },
  reboot: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ'],
    edges: { 'running.running': 'same', 'running.paused': 'running.running', 'transient.running': 'same', 'transient.paused': 'transient.running', mirroring: 'same' },
  },
  managedsave: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MS-TRANSIENT', 'MS-MIRROR'],
    edges: { running: 'inactive' },
  },
  'managedsave-remove': {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY'],
    edges: { inactive: 'same', running: 'same', transient: 'same', mirroring: 'same' },
  },
  save: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MS-MIRROR'],
    // TRANSIENT-QUIT: a transient domain that stops is gone.
    edges: { running: 'inactive', transient: 'gone' },
  },
  undefine: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'UND-TRANSIENT', 'UND-SNAPSHOTS', 'UND-MANAGED-SAVE', 'UND-STORAGE-RUNNING', 'UND-STORAGE-FLAGS'],
    // UND-ACTIVE: an active persistent domain becomes transient and keeps running (a mirroring one goes on mirroring).
    edges: { inactive: 'gone', 'running.running': 'transient.running', 'running.paused': 'transient.paused', mirroring: 'same' },
  },
  'snapshot-create': {
    guards: [
      'DOM-NOTFOUND',
      'JOB-BUSY',
      'SC-CURRENT',
      'SC-REDEFINE-NOMETA',
      'SC-QUIESCE',
      'SC-HALT-TRANSIENT',
      'MIR-CREATE',
      'SC-TREE',
      'SC-NAME',
      'SC-BUSY-DISK',
      'MIR-BLOCKS',
      'SC-EXISTS',
    ],
    // SC-HALT leaves the domain inactive; a mirrored snapshot (MIR-CREATE) enters mirroring.
    edges: { inactive: 'same', running: ['same', 'inactive', 'mirroring'], transient: ['same', 'mirroring'], mirroring: 'same' },
    leadsTo: (s, c) => (startsMirror(s, c) ? 'mirroring' : c.halt && s.active ? 'inactive' : 'same'),
  },
  'snapshot-delete': {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'SD-EXCL', 'MIR-EXCL', 'SD-NOTFOUND', 'MIR-END'],
    // MIR-END: deleting the current mirrored snapshot with --mirror-pivot/--mirror-abort is a way out of mirroring.
    edges: { inactive: 'same', running: 'same', transient: 'same', mirroring: ['same', ...ACTIVE] },
    leadsTo: (s, c) => endsJobs(s, Object.keys(s.blockJobs).length - mirrorJobsEndedBy(s, c).length),
  },
  'snapshot-revert': {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'SR-EXCL', 'MIR-BLOCKS', 'SD-NOTFOUND', 'SR-TRANSIENT', 'SR-RISKY'],
    // SR-TREE: the resulting state per catalog §2.13.
    edges: {
      inactive: ['same', 'running.running', 'running.paused'],
      running: ['inactive', 'running.running', 'running.paused'],
      transient: ['transient.running', 'transient.paused'],
    },
    leadsTo: (s, c) => {
      const { active, paused } = revertResult(s, c);
      if (!active) return s.active ? 'inactive' : 'same';
      return activeLeaf(s.persistent, paused);
    },
  },
  blockcopy: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'MIR-COPY', 'MIR-BLOCKS'],
    edges: { running: 'mirroring', transient: 'mirroring', mirroring: 'same' },
  },
  blockjob: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'MIR-END'],
    // MIR-END: --pivot or --abort ends the job on one disk.
    edges: { mirroring: ['same', ...ACTIVE] },
    leadsTo: (s) => endsJobs(s, Object.keys(s.blockJobs).length - 1),
  },
  blockpull: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-BLOCKS'],
    // A pull completes within the command: the state stays.
    edges: { running: 'same', transient: 'same', mirroring: 'same' },
  },
  migrate: {
    guards: ['DOM-NOTFOUND', 'JOB-BUSY', 'MIG-PHASES', 'MIG-PERSIST', 'MIG-ACTIVE', 'MIG-SNAPSHOTS', 'MIG-AUTODESTROY', 'MIG-HOSTDEV', 'MIG-JOB'],
    edges: { inactive: 'migrating', running: 'migrating', transient: 'migrating' },
  },
  'migrate-phase': {
    // Perform re-runs the source checks (seed 003: an older source may not have run them at Begin).
    guards: ['DOM-NOTFOUND', 'MIG-PHASES'],
    // MIG-PHASES: the next phase, a failure (back to where it was), or Confirm (MIG-PERSIST).
    edges: { migrating: ['same', 'inactive', 'gone', ...ACTIVE] },
    leadsTo: (s, c, options) => {
      const job = s.migration!;
      const failed = failsMigration(s, c, options);
      if (!failed && c.phase !== 'confirm') return 'same';
      if (failed || (job.offline && !job.undefinesource)) return atRest(s);
      // MIG-PERSIST at Confirm: an offline move with --undefinesource leaves a running source transient (as
      // undefine does, UND-ACTIVE); a live one leaves the source defined and inactive, unless it was transient
      // or --undefinesource removes it.
      if (job.offline) return s.active ? activeLeaf(false, s.paused) : 'gone';
      return job.undefinesource || !s.persistent ? 'gone' : 'inactive';
    },
  },
  'migrate-incoming': {
    // Prepare on the destination: only what the XML shows, and name/UUID clashes there.
    guards: ['DEF-NAME', 'CRE-ACTIVE', 'JOB-BUSY', 'MIG-PERSIST', 'MIG-HOSTDEV'],
    edges: { undefined: ['inactive', ...ACTIVE], inactive: ['same', 'running.running', 'running.paused'] },
    leadsTo: (s, c) => {
      if (!c.active) return s.life === 'exists' ? 'same' : 'inactive';
      return activeLeaf(s.persistent || c.persistent, c.paused);
    },
  },
  'guest-event': {
    guards: ['DOM-NOTFOUND', 'ACT-REQ'],
    // The hypervisor's reports: the guest powered off or crashed (it stops), rebooted (it runs), a job got ready.
    edges: {
      'running.running': ['inactive', 'same'],
      'running.paused': ['inactive', 'running.running', 'same'],
      'transient.running': ['gone', 'same'],
      'transient.paused': ['gone', 'transient.running', 'same'],
      migrating: ['same', 'inactive', 'gone'],
      mirroring: ['same', 'inactive', 'gone'],
    },
    leadsTo: (s, c) => {
      if (c.event === 'poweroff' || c.event === 'crash') return stops(s);
      const heldByJob = s.migration !== null || Object.keys(s.blockJobs).length > 0;
      if (c.event === 'reboot' && s.paused && !heldByJob) return activeLeaf(s.persistent, false);
      return 'same';
    },
  },
};

/** The guards of each verb, in order (the table's first column). */
export const GUARDS_BY_VERB = Object.fromEntries(Object.entries(VERB_TABLE).map(([verb, row]) => [verb, row.guards])) as {
  [V in Verb]: readonly GuardId[];
};
