// Facts: what happened to a domain, in past tense. Only accepted commands (and the hypervisor's own
// reports) produce them; replaying them with `evolve` rebuilds the domain exactly.
import { z } from 'zod';
import { BlockJobSchema, DomainConfigSchema, MigrationJobSchema, MigrationPhaseSchema, SnapshotSchema } from './model';

const stopReason = z.enum(['shutdown', 'destroyed', 'saved', 'crashed', 'from snapshot', 'migrated']);
export type StopReason = z.infer<typeof stopReason>;

export const FactSchema = z.discriminatedUnion('type', [
  /** define: a new persistent inactive domain, or a config update (a running transient domain becomes persistent). */
  z.object({ type: z.literal('DomainDefined'), config: DomainConfigSchema }),
  /** create of a new domain: active and transient. */
  z.object({
    type: z.literal('DomainCreated'),
    config: DomainConfigSchema,
    paused: z.boolean(),
    autodestroy: z.boolean(),
  }),
  /** start (or create over an inactive persistent domain). */
  z.object({
    type: z.literal('DomainStarted'),
    paused: z.boolean(),
    autodestroy: z.boolean(),
    reason: z.enum(['booted', 'restored', 'from snapshot', 'migrated']),
    /** STA-ACTIVE: the managed-save image was consumed (restored, or discarded by --force-boot). */
    managedSaveConsumed: z.boolean(),
    config: DomainConfigSchema.optional(),
  }),
  z.object({ type: z.literal('DomainStopped'), reason: stopReason }),
  z.object({ type: z.literal('DomainSuspended') }),
  z.object({ type: z.literal('DomainResumed') }),
  z.object({ type: z.literal('DomainRebooted') }),
  /** managedsave (managed: true) or save FILE: the domain stops with its memory saved. */
  z.object({ type: z.literal('DomainSaved'), managed: z.boolean(), file: z.string().optional(), paused: z.boolean() }),
  z.object({ type: z.literal('ManagedSaveRemoved') }),
  /**
   * undefine. An inactive domain is gone afterwards; an active one becomes transient (UND-ACTIVE).
   * The lists say exactly what was removed with it and what was kept.
   */
  z.object({
    type: z.literal('DomainUndefined'),
    snapshotMetadataRemoved: z.array(z.string()),
    managedSaveRemoved: z.boolean(),
    storageRemoved: z.array(z.object({ target: z.string(), source: z.string() })),
    storageKept: z.array(z.object({ target: z.string(), source: z.string(), reason: z.string() })),
  }),
  /** TRANSIENT-QUIT: a transient domain stopped; it is gone and its snapshot metadata with it. */
  z.object({ type: z.literal('TransientDomainRemoved'), snapshotMetadataDiscarded: z.array(z.string()) }),
  z.object({
    type: z.literal('SnapshotCreated'),
    snapshot: SnapshotSchema,
    /** Whether it became the current snapshot (SC-TREE). */
    current: z.boolean(),
    redefined: z.boolean(),
  }),
  /**
   * SC-ATOMIC: the per-disk outcome of a disk snapshot, so nobody has to reparse XML to learn which disks
   * changed. `changed: false` on some disk means the snapshot was partial (never under --atomic).
   */
  z.object({
    type: z.literal('SnapshotDisksChanged'),
    snapshot: z.string(),
    disks: z.array(z.object({ target: z.string(), changed: z.boolean(), file: z.string().optional(), error: z.string().optional() })),
  }),
  /** SD-TREE: which snapshots were removed, how the survivors were reparented, and the new current. */
  z.object({
    type: z.literal('SnapshotsDeleted'),
    deleted: z.array(z.string()),
    reparented: z.array(z.object({ name: z.string(), parent: z.string().nullable() })),
    current: z.string().nullable(),
    metadataOnly: z.boolean(),
  }),
  /** SR-TREE: the domain now is as the snapshot was (or started/paused per flags); the target is current. */
  z.object({
    type: z.literal('SnapshotReverted'),
    snapshot: z.string(),
    active: z.boolean(),
    paused: z.boolean(),
  }),
  z.object({ type: z.literal('BlockJobStarted'), job: BlockJobSchema }),
  z.object({ type: z.literal('BlockJobReady'), disk: z.string() }),
  /** A block job ended: pivoted to its destination, aborted back to the source, or completed (pull). */
  z.object({
    type: z.literal('BlockJobEnded'),
    disk: z.string(),
    outcome: z.enum(['pivot', 'abort', 'completed', 'lost']),
    /** The disk's source afterwards. */
    source: z.string().optional(),
  }),
  /**
   * MIR-PARTIAL: ending the job on this disk (pivot to the mirror, or abort back to the source) failed, so the
   * disk is still open where it was and its job goes on; the disks before it in the same command were reopened
   * (their BlockJobEnded facts say on which side).
   */
  z.object({ type: z.literal('BlockJobEndFailed'), disk: z.string(), outcome: z.enum(['pivot', 'abort']), error: z.string() }),
  /**
   * The backing chain a disk has open, top first, as absolute paths (relative backing names resolved against
   * the folder of the image naming them, as qemu does): reported by the hypervisor after a pivot reopened the
   * disk on its mirror, and after a blockpull rewrote the top image to back onto the base.
   */
  z.object({ type: z.literal('BackingChainChanged'), disk: z.string(), chain: z.array(z.string()).min(1) }),
  /** MIG-PHASES: a migration job holds the domain (Begin passed on the source). */
  z.object({ type: z.literal('MigrationStarted'), job: MigrationJobSchema }),
  z.object({ type: z.literal('MigrationPhaseReached'), phase: MigrationPhaseSchema }),
  /** A phase failed: the domain returns to where it was. `rule` and libvirt's `code` say which check failed it. */
  z.object({
    type: z.literal('MigrationFailed'),
    phase: MigrationPhaseSchema,
    message: z.string(),
    rule: z.string().optional(),
    code: z.number().int().optional(),
  }),
  /** Confirm on the source after success: the domain left this host. */
  z.object({ type: z.literal('DomainMigratedOut'), destination: z.string(), undefinesource: z.boolean() }),
  /** Finish on the destination: the domain arrived. */
  z.object({
    type: z.literal('DomainMigratedIn'),
    source: z.string(),
    config: DomainConfigSchema,
    persistent: z.boolean(),
    active: z.boolean(),
    paused: z.boolean(),
  }),
]);
export type Fact = z.infer<typeof FactSchema>;
export type FactType = Fact['type'];
export type FactOf<T extends FactType> = Extract<Fact, { type: T }>;
