// For each verb, the guards it passes through, in libvirt's order (docs/rules.md §4: the first failing check
// wins). `decide` walks this table; the state machine and the diagram label their edges from it.
import type { Verb } from './commands';
import type { GuardId } from './guards';

export const GUARDS_BY_VERB: Record<Verb, readonly GuardId[]> = {
  define: ['DEF-NAME', 'JOB-BUSY'],
  // JOB-BUSY after CRE-ACTIVE: libvirt adds the object (and reports an active clash) before it takes the job.
  create: ['DEF-NAME', 'CRE-ACTIVE', 'JOB-BUSY'],
  start: ['DOM-NOTFOUND', 'JOB-BUSY', 'STA-ACTIVE'],
  shutdown: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-END'],
  destroy: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-END'],
  suspend: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ'],
  resume: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ'],
  reboot: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ'],
  managedsave: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MS-TRANSIENT', 'MS-MIRROR'],
  'managedsave-remove': ['DOM-NOTFOUND', 'JOB-BUSY'],
  save: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MS-MIRROR'],
  undefine: [
    'DOM-NOTFOUND',
    'JOB-BUSY',
    'UND-TRANSIENT',
    'UND-SNAPSHOTS',
    'UND-MANAGED-SAVE',
    'UND-STORAGE-RUNNING',
    'UND-STORAGE-FLAGS',
  ],
  'snapshot-create': [
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
  'snapshot-delete': ['DOM-NOTFOUND', 'JOB-BUSY', 'SD-EXCL', 'MIR-EXCL', 'SD-NOTFOUND', 'MIR-END'],
  'snapshot-revert': ['DOM-NOTFOUND', 'JOB-BUSY', 'SR-EXCL', 'MIR-BLOCKS', 'SD-NOTFOUND', 'SR-TRANSIENT', 'SR-RISKY'],
  blockcopy: ['DOM-NOTFOUND', 'JOB-BUSY', 'MIR-COPY', 'MIR-BLOCKS'],
  blockjob: ['DOM-NOTFOUND', 'JOB-BUSY', 'MIR-END'],
  blockpull: ['DOM-NOTFOUND', 'JOB-BUSY', 'ACT-REQ', 'MIR-BLOCKS'],
  migrate: [
    'DOM-NOTFOUND',
    'JOB-BUSY',
    'MIG-PHASES',
    'MIG-PERSIST',
    'MIG-ACTIVE',
    'MIG-SNAPSHOTS',
    'MIG-AUTODESTROY',
    'MIG-HOSTDEV',
    'MIG-JOB',
  ],
  // Perform re-runs the source checks (seed 003: an older source may not have run them at Begin).
  'migrate-phase': ['DOM-NOTFOUND', 'MIG-PHASES'],
  // Prepare on the destination: only what the XML shows, and name/UUID clashes there.
  'migrate-incoming': ['DEF-NAME', 'CRE-ACTIVE', 'JOB-BUSY', 'MIG-PERSIST', 'MIG-HOSTDEV'],
  'guest-event': ['DOM-NOTFOUND', 'ACT-REQ'],
};

/** Source checks re-run at the Perform phase (MIG-PHASES, seed 003). */
export const PERFORM_RECHECKS: readonly GuardId[] = ['MIG-SNAPSHOTS', 'MIG-AUTODESTROY', 'MIG-HOSTDEV'];
