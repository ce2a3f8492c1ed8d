// The rule catalog: every rule id of docs/rules.md with its text, so the diagram legend, the audit log and
// the CLI can quote a rule without the spec beside them. test/machine/rules.unit.test.ts keeps it equal to docs/rules.md.

export interface RuleEntry {
  id: string;
  section: string;
  /** The command(s) it applies to, where docs/rules.md names them. */
  commands?: string;
  text: string;
  /** `guard`: refuses commands (a guard in guards.ts); `effect`: shapes the facts of accepted commands. */
  kind: 'guard' | 'effect';
}

export const RULES: readonly RuleEntry[] = [
  {"id": "DOM-NOTFOUND", "section": "§3 Lifecycle", "commands": "any command naming a domain", "text": "no such domain on the host: 42 `Domain not found: no domain with matching name '%s'` (virsh prints `failed to get domain '%s'`)", "kind": "guard"},
  {"id": "DEF-NAME", "section": "§3 Lifecycle", "commands": "define, create", "text": "a name that exists on the host with another UUID: 9 `domain '%s' already exists with uuid %s`; a UUID that exists with another name: 9 `domain '%s' is already defined with uuid %s`", "kind": "guard"},
  {"id": "DEF-UPDATE", "section": "§3 Lifecycle", "commands": "define", "text": "same name and UUID: update the config; a running transient domain becomes persistent", "kind": "effect"},
  {"id": "CRE-ACTIVE", "section": "§3 Lifecycle", "commands": "create", "text": "same name and UUID and the domain is active: 55 `domain '%s' is already active`; an inactive persistent domain is started with the given XML and stays persistent", "kind": "guard"},
  {"id": "STA-ACTIVE", "section": "§3 Lifecycle", "commands": "start", "text": "active domain: 55 `domain is already running`. A managed-save image is restored (and removed) unless `--force-boot`", "kind": "guard"},
  {"id": "ACT-REQ", "section": "§3 Lifecycle", "commands": "shutdown, destroy, suspend, resume, reboot, managedsave, save", "text": "inactive domain: 55 `domain is not running`. shutdown needs state running (not paused); resume of a running domain: 55 `domain is already running`; suspend of a paused domain is a successful no-op", "kind": "guard"},
  {"id": "TRANSIENT-QUIT", "section": "§3 Lifecycle", "commands": "destroy, shutdown, save, crash, migration away, halt", "text": "a transient domain that stops is gone, and **all its snapshot metadata is discarded with it** (seed 000)", "kind": "effect"},
  {"id": "MS-TRANSIENT", "section": "§3 Lifecycle", "commands": "managedsave", "text": "transient domain: 55 `cannot do managed save for transient domain`", "kind": "guard"},
  {"id": "MS-MIRROR", "section": "§3 Lifecycle", "commands": "managedsave, save", "text": "an active mirror or block job: 55 `domain has active block job` (seed 002: save may be prevented while a mirrored snapshot is current)", "kind": "guard"},
  {"id": "UND-TRANSIENT", "section": "§4 Undefine (seeds 000 and 004)", "text": "transient domain: 55 `cannot undefine transient domain`", "kind": "guard"},
  {"id": "UND-SNAPSHOTS", "section": "§4 Undefine (seeds 000 and 004)", "text": "inactive domain with N>0 snapshots that have metadata, without `--snapshots-metadata`: 55 `cannot delete inactive domain with N snapshots`. With the flag, the metadata is removed as part of the undefine", "kind": "guard"},
  {"id": "UND-MANAGED-SAVE", "section": "§4 Undefine (seeds 000 and 004)", "text": "managed-save image without `--managed-save`: 55 `Refusing to undefine while domain managed save image exists`; with the flag it is removed", "kind": "guard"},
  {"id": "UND-STORAGE-RUNNING", "section": "§4 Undefine (seeds 000 and 004)", "text": "`--storage LIST`, `--remove-all-storage` or `--wipe-storage` on an active domain: 55 `Storage volume deletion is supported only on stopped domains` (seed 004: storage flags must fail on a running guest)", "kind": "guard"},
  {"id": "UND-STORAGE-FLAGS", "section": "§4 Undefine (seeds 000 and 004)", "text": "`--storage` with `--remove-all-storage`: 8 `Specified both --storage and --remove-all-storage`; `--wipe-storage` alone: 8 `'--wipe-storage' requires '--storage <string>' or '--remove-all-storage'`; a `--storage` entry naming no disk: 8 `Volume '%s' was not found in domain's definition.`", "kind": "guard"},
  {"id": "UND-STORAGE-SHARED", "section": "§4 Undefine (seeds 000 and 004)", "text": "removal never touches a readonly or shareable disk, nor a cdrom, unless it is named in `--storage`; unmanaged volumes are reported and kept (`Storage volume '%s'(%s) is not managed by libvirt. Remove it manually.`)", "kind": "effect"},
  {"id": "UND-ACTIVE", "section": "§4 Undefine (seeds 000 and 004)", "text": "an active persistent domain becomes transient and keeps running; its snapshot metadata stays until it quits (then TRANSIENT-QUIT applies), whatever the flags", "kind": "effect"},
  {"id": "UND-ATOMIC", "section": "§4 Undefine (seeds 000 and 004)", "text": "unlike qemu 9.0.0, which can delete snapshot metadata and then fail on the managed save, vmledger checks everything first: an undefine either happens whole or changes nothing", "kind": "effect"},
  {"id": "SC-CURRENT", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "`--current` without `--redefine`: 8 `Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'`", "kind": "guard"},
  {"id": "SC-REDEFINE-NOMETA", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "`--redefine` with `--no-metadata` (and with `--halt`): 8 `Flags '…REDEFINE' and '…NO_METADATA' are mutually exclusive`", "kind": "guard"},
  {"id": "SC-QUIESCE", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "`--quiesce` without `--disk-only`: 8 `Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE'`", "kind": "guard"},
  {"id": "SC-HALT-TRANSIENT", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "`--halt` on a transient domain: 55 `cannot halt after transient domain snapshot`", "kind": "guard"},
  {"id": "SC-EXISTS", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "a name that exists: 9 `domain moment %s already exists`", "kind": "guard"},
  {"id": "SC-NAME", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "a name with `/` or starting with `.`: `invalid snapshot name '%s': name can't contain '/'` / `can't start with '.'`", "kind": "guard"},
  {"id": "SC-TREE", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "the new snapshot's parent is the current snapshot and it becomes current; `--no-metadata` snapshots are not tracked; `--redefine` takes the parent from the XML and changes current only with `--current`", "kind": "guard"},
  {"id": "SC-HALT", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "`--halt` leaves a persistent domain inactive after the snapshot", "kind": "effect"},
  {"id": "SC-ATOMIC", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "seed 001: a multi-disk snapshot is all-or-nothing. With `--atomic` vmledger guarantees that a failure changes nothing; without it the driver may report a partial result, which is recorded disk by disk (which disks were changed) so no one has to reparse XML to find out", "kind": "effect"},
  {"id": "SC-BUSY-DISK", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "a disk in an active mirror or block job: 83 `disk '%s' already in active block job`", "kind": "guard"},
  {"id": "SD-EXCL", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "`--children` with `--children-only`: 8 `Flags 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN' and 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY' are mutually exclusive`", "kind": "guard"},
  {"id": "SD-NOTFOUND", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "72 `no domain snapshot with matching name '%s'`", "kind": "guard"},
  {"id": "SD-TREE", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "delete reparents the children to the deleted snapshot's parent; if it was current, its parent becomes current (or none). `--children` deletes the subtree; `--children-only` keeps the target, which becomes current if current was below it; `--metadata` removes only the metadata", "kind": "effect"},
  {"id": "SR-EXCL", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "revert `--running` with `--paused`: 8 mutually exclusive", "kind": "guard"},
  {"id": "SR-TRANSIENT", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "transient domain, snapshot state not running/paused, neither flag: 55 `transient domain needs to request run or pause to revert to inactive snapshot`", "kind": "guard"},
  {"id": "SR-RISKY", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "inactive snapshot, managed-save image present, no `--force`: 77 `snapshot without memory state, removal of existing managed saved state strongly recommended to avoid corruption`", "kind": "guard"},
  {"id": "SR-TREE", "section": "§5 Snapshots (seeds 000, 001, 002)", "text": "a successful revert makes the target current; result state per catalog §2.13", "kind": "effect"},
  {"id": "MIR-CREATE", "section": "§6 Mirroring (seed 002, and block copy which replaced it in libvirt)", "text": "`snapshot-create-as DOM NAME --disk-only [--reuse-external] --diskspec vda,file=F,mirror=M …` creates a mirrored snapshot: the domain enters `mirroring`. It needs an active domain. `--no-metadata` with a mirror is refused", "kind": "guard"},
  {"id": "MIR-COPY", "section": "§6 Mirroring (seed 002, and block copy which replaced it in libvirt)", "text": "`blockcopy DOM DISK DEST` starts a block copy on one disk (phases `copying` → `ready`); the domain enters `mirroring`. On a persistent domain it needs `--transient-job`, else 55 `domain is not transient`", "kind": "guard"},
  {"id": "MIR-END", "section": "§6 Mirroring (seed 002, and block copy which replaced it in libvirt)", "text": "while mirroring, the only ways out are: `snapshot-delete DOM NAME --mirror-pivot|--mirror-abort` (NAME must be the current mirrored snapshot, else 55 `snapshot '%s' is not the current mirrored snapshot`; without one of the flags: 55 `mirrored snapshot '%s' must be deleted with --mirror-pivot or --mirror-abort`), and `blockjob DOM DISK --pivot|--abort`. Pivot before `ready`: 83 `block job '%s' not ready for pivot yet`", "kind": "guard"},
  {"id": "MIR-EXCL", "section": "§6 Mirroring (seed 002, and block copy which replaced it in libvirt)", "text": "`--mirror-pivot` with `--mirror-abort`: 8 `delete mirror flags are mutually exclusive`", "kind": "guard"},
  {"id": "MIR-PARTIAL", "section": "§6 Mirroring (seed 002, and block copy which replaced it in libvirt)", "text": "ending a multi-disk mirror is not atomic: if it fails part way, the events record which disks were reopened on which side, and the domain stays in `mirroring` for the rest", "kind": "effect"},
  {"id": "MIR-BLOCKS", "section": "§6 Mirroring (seed 002, and block copy which replaced it in libvirt)", "text": "while mirroring: revert, save/managedsave, migration, a new snapshot of a mirrored disk, and a second job on the disk are refused (55 `domain has active block job` or 83); destroy of a transient domain ends the job and the domain", "kind": "guard"},
  {"id": "MIG-ACTIVE", "section": "§7 Migration (seed 003)", "text": "migration (not `--offline`) of an inactive domain: 55 `domain is not running`", "kind": "guard"},
  {"id": "MIG-SNAPSHOTS", "section": "§7 Migration (seed 003)", "text": "any snapshot with metadata, even with `--offline`: 55 `cannot migrate domain with N snapshots` (snapshot metadata is too large for the migration cookie; quit early rather than strand it)", "kind": "guard"},
  {"id": "MIG-AUTODESTROY", "section": "§7 Migration (seed 003)", "text": "a domain started with autodestroy: 55 `domain is marked for auto destroy`", "kind": "guard"},
  {"id": "MIG-HOSTDEV", "section": "§7 Migration (seed 003)", "text": "a domain with assigned (non-USB) host devices: 84 `cannot migrate a domain with <hostdev mode='subsystem' type='%s'>`", "kind": "guard"},
  {"id": "MIG-JOB", "section": "§7 Migration (seed 003)", "text": "another job on the domain (migration, mirror, block job): 55 `another migration job is already running for domain '%s'` / `domain has active block job`", "kind": "guard"},
  {"id": "MIG-PHASES", "section": "§7 Migration (seed 003)", "text": "Begin (source: all checks above) → Prepare (destination: checks what the XML alone shows — host devices, name/UUID clash on the destination) → Perform → Finish (destination) → Confirm (source). The source checks run again at Perform, since an older source may not have checked (seed 003). A failure at any phase returns the domain to where it was; success moves it to the destination host", "kind": "guard"},
  {"id": "MIG-PERSIST", "section": "§7 Migration (seed 003)", "text": "`--persistent` defines the domain on the destination; `--undefinesource` removes the source definition; a transient domain stays transient", "kind": "guard"},
  {"id": "JOB-BUSY", "section": "§8 Jobs and concurrency", "text": "one job at a time per domain (libvirt's job lock): a command that arrives while an async job (migration, block copy, mirror) holds the domain is refused with 55 unless the job allows it (queries, destroy, the job's own abort/pivot/next phase)", "kind": "guard"},
];

export const RULE_IDS: readonly string[] = RULES.map((r) => r.id);

export function ruleById(id: string): RuleEntry | undefined {
  return RULES.find((r) => r.id === id);
}
