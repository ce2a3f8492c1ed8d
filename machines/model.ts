// The domain model of docs/rules.md §1: what the machine knows about one libvirt domain.
// Plain data only (JSON round-trips), so state checkpoints can be stored and revived with zod.
import { z } from 'zod';

import { ownEntry } from './names';

export const DEFAULT_HOST = 'local';

/**
 * A record keyed by user-given names (snapshots, block jobs). zod's own record drops a `__proto__` key; this keeps
 * every key as an own property, so a snapshot named `__proto__` survives a checkpoint like any other.
 */
export function ownRecord<T extends z.ZodType>(value: T) {
  return z
    .custom<Record<string, unknown>>((v) => v !== null && typeof v === 'object' && !Array.isArray(v), 'expected an object')
    .transform((input, ctx) => {
      const out: Record<string, z.output<T>> = {};
      for (const [key, raw] of Object.entries(input)) {
        const parsed = value.safeParse(raw);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: [key, ...issue.path] });
          continue;
        }
        Object.defineProperty(out, key, { value: parsed.data, enumerable: true, writable: true, configurable: true });
      }
      return out;
    });
}

/** Bounds on free-form strings, so no field can grow without limit (PATH_MAX for paths). */
const path = z.string().min(1).max(4096);
const shortText = z.string().min(1).max(255);

export const DiskSchema = z.object({
  /** Guest device name, e.g. `vda`. Unique within a domain. */
  target: shortText,
  /** Host file (or volume) backing the disk; absent for an empty cdrom. */
  source: path.optional(),
  device: z.enum(['disk', 'cdrom']).default('disk'),
  readonly: z.boolean().default(false),
  shareable: z.boolean().default(false),
  /** `managed`: a libvirt storage volume that `undefine --remove-all-storage` may delete. */
  storage: z.enum(['managed', 'unmanaged']).default('managed'),
});
export type Disk = z.infer<typeof DiskSchema>;

export const HostdevSchema = z.object({
  mode: z.enum(['subsystem', 'capabilities']).default('subsystem'),
  /** pci, usb, scsi, scsi_host, mdev, … */
  type: shortText,
});
export type Hostdev = z.infer<typeof HostdevSchema>;

export const DomainConfigSchema = z.object({
  name: z.string().min(1),
  uuid: z.string().min(1).max(64),
  disks: z.array(DiskSchema).default([]),
  hostdevs: z.array(HostdevSchema).default([]),
  onPoweroff: z.string().optional(),
  onReboot: z.string().optional(),
  onCrash: z.string().optional(),
});
export type DomainConfig = z.infer<typeof DomainConfigSchema>;

/** Snapshot `<state>`: the domain state at creation, or `disk-snapshot` for a disk-only snapshot. */
export const SnapshotStateSchema = z.enum(['running', 'paused', 'shutoff', 'disk-snapshot']);
export type SnapshotState = z.infer<typeof SnapshotStateSchema>;

export const SnapshotDiskSchema = z.object({
  target: shortText,
  snapshot: z.enum(['internal', 'external', 'no']).default('internal'),
  /** External snapshot file (the new top of the chain). */
  file: path.optional(),
  /** Seed 002: the mirror file a mirrored snapshot copies into. */
  mirror: path.optional(),
});
export type SnapshotDisk = z.infer<typeof SnapshotDiskSchema>;

export const SnapshotSchema = z.object({
  name: z.string().min(1),
  description: z.string().optional(),
  parent: z.string().nullable(),
  state: SnapshotStateSchema,
  diskOnly: z.boolean(),
  external: z.boolean(),
  creationTime: z.string(),
  disks: z.array(SnapshotDiskSchema).default([]),
  /** Whether the snapshot carries a mirror (seed 002) that must be pivoted or aborted. */
  mirrored: z.boolean().default(false),
});
export type Snapshot = z.infer<typeof SnapshotSchema>;

/** An active block job on one disk: a block copy, the mirror of a mirrored snapshot, or a pull. */
export const BlockJobSchema = z.object({
  disk: z.string(),
  kind: z.enum(['copy', 'snapshot-mirror', 'pull', 'commit']),
  phase: z.enum(['copying', 'ready']),
  /** Where the copy goes (block copy destination or snapshot mirror file). */
  destination: z.string().optional(),
  /** For a snapshot mirror: the snapshot it belongs to. */
  snapshot: z.string().optional(),
});
export type BlockJob = z.infer<typeof BlockJobSchema>;

export const MigrationPhaseSchema = z.enum(['begin', 'prepare', 'perform', 'finish', 'confirm']);
export type MigrationPhase = z.infer<typeof MigrationPhaseSchema>;

export const MigrationJobSchema = z.object({
  destination: z.string(),
  phase: MigrationPhaseSchema,
  offline: z.boolean().default(false),
  persistent: z.boolean().default(false),
  undefinesource: z.boolean().default(false),
  /** `migrate --live`: kept with the job, so a service restarted between Begin and Perform still migrates live. */
  live: z.boolean().default(false),
});
export type MigrationJob = z.infer<typeof MigrationJobSchema>;

/**
 * One domain's state. `life` says whether a domain exists under this name on this host:
 * `none` before the first define/create, `exists` while defined or running, `gone` after it
 * was undefined or a transient domain quit (the name is free again).
 */
export const DomainStateSchema = z.object({
  host: z.string(),
  name: z.string(),
  life: z.enum(['none', 'exists', 'gone']),
  uuid: z.string().nullable(),
  config: DomainConfigSchema.nullable(),
  persistent: z.boolean(),
  active: z.boolean(),
  paused: z.boolean(),
  hasManagedSave: z.boolean(),
  /** Whether the managed-save image holds a paused guest (start restores it paused). */
  managedSavePaused: z.boolean(),
  autodestroy: z.boolean(),
  /** Snapshots with metadata, by name, in creation order. */
  snapshots: ownRecord(SnapshotSchema),
  current: z.string().nullable(),
  blockJobs: ownRecord(BlockJobSchema),
  migration: MigrationJobSchema.nullable(),
  /** Why the domain last stopped, as `domstate --reason` shows it (`shutdown`, `destroyed`, `saved`, `from snapshot`, …). */
  reason: z.string(),
});
export type DomainState = z.infer<typeof DomainStateSchema>;

export function initialDomainState(host: string, name: string): DomainState {
  return {
    host,
    name,
    life: 'none',
    uuid: null,
    config: null,
    persistent: false,
    active: false,
    paused: false,
    hasManagedSave: false,
    managedSavePaused: false,
    autodestroy: false,
    snapshots: {},
    current: null,
    blockJobs: {},
    migration: null,
    reason: 'unknown',
  };
}

/** The top-level machine states of docs/rules.md §1. */
export type TopState = 'undefined' | 'inactive' | 'running' | 'transient' | 'migrating' | 'mirroring' | 'gone';

/**
 * The machine state a stored domain state is in (a checkpoint keeps only the context): the machine reaches
 * the same state by its own edges (test/machine/machine-replay.property.test.ts). `migrating` and
 * `mirroring` keep `persistent` and `paused` in the context: that is their memory of where to return when
 * the job ends.
 */
export function topState(s: DomainState): TopState {
  if (s.life === 'none') return 'undefined';
  if (s.life === 'gone') return 'gone';
  if (s.migration) return 'migrating';
  if (Object.keys(s.blockJobs).length > 0) return 'mirroring';
  if (!s.active) return 'inactive';
  return s.persistent ? 'running' : 'transient';
}

/** Sub-state of an active domain (`running` or `paused`), `null` when inactive. */
export function runState(s: DomainState): 'running' | 'paused' | null {
  if (!s.active) return null;
  return s.paused ? 'paused' : 'running';
}

/** virsh's `domstate` text. */
export function domstateText(s: DomainState): string {
  if (!s.active) return 'shut off';
  return s.paused ? 'paused' : 'running';
}

export function exists(s: DomainState): boolean {
  return s.life === 'exists';
}

export function snapshotCount(s: DomainState): number {
  return Object.keys(s.snapshots).length;
}

/** The snapshot of this name, if the domain has one (never a property of Object.prototype). */
export function snapshotNamed(s: DomainState, name: string): Snapshot | undefined {
  return ownEntry(s.snapshots, name);
}

/** The block job on this disk, if there is one. */
export function blockJobOn(s: DomainState, disk: string): BlockJob | undefined {
  return ownEntry(s.blockJobs, disk);
}

export function childrenOf(s: DomainState, name: string): string[] {
  return Object.values(s.snapshots)
    .filter((snap) => snap.parent === name)
    .map((snap) => snap.name);
}

/** All descendants of a snapshot, depth first. */
export function descendantsOf(s: DomainState, name: string): string[] {
  const out: string[] = [];
  const walk = (n: string) => {
    for (const child of childrenOf(s, n)) {
      out.push(child);
      walk(child);
    }
  };
  walk(name);
  return out;
}

export { domainStream } from './names';
