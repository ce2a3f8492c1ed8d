// Commands: one per virsh verb, with its flags as virsh names them (in camelCase: `--snapshots-metadata`
// is `snapshotsMetadata`). Every command carries metadata: command id, actor, time, optional expected revision.
import { z } from 'zod';
import { DEFAULT_HOST, DomainConfigSchema, SnapshotDiskSchema, SnapshotStateSchema } from './model';

/** Domain and snapshot names as libvirt accepts them: non-empty, no control characters, bounded. */
export const NAME_MAX = 255;
const nameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(NAME_MAX, `must be at most ${NAME_MAX} characters`)
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters');

/** A disk target or a host path (PATH_MAX). */
const pathSchema = z.string().min(1, 'must not be empty').max(4096, 'must be at most 4096 characters');

export const CommandMetaSchema = z.object({
  /** Idempotency key: a retried command with the same id gets the first outcome. */
  commandId: z.string().min(1).max(200),
  actor: z.string().min(1).max(200).default('anonymous'),
  /** ISO-8601. Time comes with the command so that deciding stays pure. */
  time: z.iso.datetime({ offset: true }),
  correlationId: z.string().max(200).optional(),
  /** Optimistic concurrency from the caller: refuse if the domain stream moved past this revision. */
  expectedRevision: z.number().int().min(-1).optional(),
});
export type CommandMeta = z.infer<typeof CommandMetaSchema>;

const base = {
  /** Host names are names too: bounded, no control characters (they become stream names and subject tokens). */
  host: nameSchema.default(DEFAULT_HOST),
  meta: CommandMetaSchema,
};
const onDomain = { ...base, domain: nameSchema };
/**
 * A domain definition in a command: the model's config, with its name held to the same rule as every other domain
 * name (a define of a name no later command could address would leave a domain nobody can undefine).
 */
const CommandConfigSchema = DomainConfigSchema.extend({ name: nameSchema });

/** A `<domainsnapshot>` definition (from `snapshot-create FILE` XML or from `snapshot-create-as` options). */
export const SnapshotDefinitionSchema = z.object({
  name: nameSchema.optional(),
  description: z.string().max(65_536).optional(),
  /** Only honoured with --redefine. */
  parent: z.string().max(NAME_MAX).optional(),
  /** Only honoured with --redefine. */
  state: SnapshotStateSchema.optional(),
  /** Only honoured with --redefine (epoch seconds or ISO). */
  creationTime: z.string().max(64).optional(),
  memory: z.enum(['no', 'internal', 'external']).optional(),
  disks: z.array(SnapshotDiskSchema).default([]),
});
export type SnapshotDefinition = z.infer<typeof SnapshotDefinitionSchema>;

export const DefineCommand = z.object({ verb: z.literal('define'), ...base, config: CommandConfigSchema });
export const CreateCommand = z.object({
  verb: z.literal('create'),
  ...base,
  config: CommandConfigSchema,
  paused: z.boolean().default(false),
  autodestroy: z.boolean().default(false),
});
export const StartCommand = z.object({
  verb: z.literal('start'),
  ...onDomain,
  paused: z.boolean().default(false),
  autodestroy: z.boolean().default(false),
  forceBoot: z.boolean().default(false),
});
export const ShutdownCommand = z.object({ verb: z.literal('shutdown'), ...onDomain });
export const DestroyCommand = z.object({ verb: z.literal('destroy'), ...onDomain, graceful: z.boolean().default(false) });
export const SuspendCommand = z.object({ verb: z.literal('suspend'), ...onDomain });
export const ResumeCommand = z.object({ verb: z.literal('resume'), ...onDomain });
export const RebootCommand = z.object({ verb: z.literal('reboot'), ...onDomain });
export const ManagedSaveCommand = z.object({
  verb: z.literal('managedsave'),
  ...onDomain,
  running: z.boolean().default(false),
  paused: z.boolean().default(false),
});
export const ManagedSaveRemoveCommand = z.object({ verb: z.literal('managedsave-remove'), ...onDomain });
export const SaveCommand = z.object({
  verb: z.literal('save'),
  ...onDomain,
  file: pathSchema,
  running: z.boolean().default(false),
  paused: z.boolean().default(false),
});
export const UndefineCommand = z.object({
  verb: z.literal('undefine'),
  ...onDomain,
  managedSave: z.boolean().default(false),
  snapshotsMetadata: z.boolean().default(false),
  /** `--storage vda,/path/img`: disk targets or sources to remove. */
  storage: z.array(pathSchema).max(1024).optional(),
  removeAllStorage: z.boolean().default(false),
  wipeStorage: z.boolean().default(false),
});
export const SnapshotCreateCommand = z.object({
  verb: z.literal('snapshot-create'),
  ...onDomain,
  snapshot: SnapshotDefinitionSchema.default({ disks: [] }),
  redefine: z.boolean().default(false),
  current: z.boolean().default(false),
  noMetadata: z.boolean().default(false),
  halt: z.boolean().default(false),
  diskOnly: z.boolean().default(false),
  reuseExternal: z.boolean().default(false),
  quiesce: z.boolean().default(false),
  atomic: z.boolean().default(false),
  live: z.boolean().default(false),
});
export const SnapshotDeleteCommand = z.object({
  verb: z.literal('snapshot-delete'),
  ...onDomain,
  snapshotname: nameSchema,
  children: z.boolean().default(false),
  childrenOnly: z.boolean().default(false),
  metadata: z.boolean().default(false),
  mirrorPivot: z.boolean().default(false),
  mirrorAbort: z.boolean().default(false),
});
export const SnapshotRevertCommand = z.object({
  verb: z.literal('snapshot-revert'),
  ...onDomain,
  snapshotname: nameSchema,
  running: z.boolean().default(false),
  paused: z.boolean().default(false),
  force: z.boolean().default(false),
});
export const BlockCopyCommand = z.object({
  verb: z.literal('blockcopy'),
  ...onDomain,
  /** Disk target (`vda`) or source path. */
  path: pathSchema,
  dest: pathSchema,
  transientJob: z.boolean().default(false),
  shallow: z.boolean().default(false),
  reuseExternal: z.boolean().default(false),
});
export const BlockJobCommand = z.object({
  verb: z.literal('blockjob'),
  ...onDomain,
  path: pathSchema,
  pivot: z.boolean().default(false),
  abort: z.boolean().default(false),
});
/**
 * `blockpull DOM PATH [--base BASE]`: pull the backing layers above BASE (all of them without it) into the
 * disk's top image, shortening its backing chain (seed 002's clean-up after a live storage migration).
 * The simulated job completes within the command.
 */
export const BlockPullCommand = z.object({
  verb: z.literal('blockpull'),
  ...onDomain,
  /** Disk target (`vda`) or source path. */
  path: pathSchema,
  /** The image that stays as the new backing file; omitted: pull everything (the top stands alone). */
  base: pathSchema.optional(),
});
export const MigrateCommand = z.object({
  verb: z.literal('migrate'),
  ...onDomain,
  /** Destination host name in the ledger (virsh's desturi, e.g. `qemu+ssh://dst/system` → `dst`). */
  desthost: nameSchema,
  offline: z.boolean().default(false),
  persistent: z.boolean().default(false),
  undefinesource: z.boolean().default(false),
  live: z.boolean().default(false),
});

/**
 * The later phases of a migration (MIG-PHASES), sent by the migration coordinator, not by users:
 * on the source, `migrate-phase` records Prepare/Perform/Finish/Confirm or a failure at a phase; on the
 * destination, `migrate-incoming` is Prepare's check (dryRun) and Finish's arrival.
 */
export const MigratePhaseCommand = z.object({
  verb: z.literal('migrate-phase'),
  ...onDomain,
  phase: z.enum(['prepare', 'perform', 'finish', 'confirm']),
  /** Set when the phase failed: the domain returns to where it was. */
  failed: z.string().optional(),
  /** With `failed`: the rule id and libvirt code of the check that failed the phase (recorded on MigrationFailed). */
  rule: z.string().min(1).max(200).optional(),
  code: z.number().int().optional(),
});
export const MigrateIncomingCommand = z.object({
  verb: z.literal('migrate-incoming'),
  ...base,
  source: nameSchema,
  config: CommandConfigSchema,
  persistent: z.boolean(),
  active: z.boolean(),
  paused: z.boolean(),
});

/**
 * What the hypervisor reports on its own (RULES.md §1: guest-initiated changes are facts, not requests):
 * the guest powered off, rebooted or crashed, or a block job became ready.
 */
export const GuestEventCommand = z.object({
  verb: z.literal('guest-event'),
  ...onDomain,
  event: z.enum(['poweroff', 'reboot', 'crash', 'blockjob-ready']),
  /** For blockjob-ready: the disk. */
  disk: z.string().optional(),
});

export const CommandSchema = z.discriminatedUnion('verb', [
  DefineCommand,
  CreateCommand,
  StartCommand,
  ShutdownCommand,
  DestroyCommand,
  SuspendCommand,
  ResumeCommand,
  RebootCommand,
  ManagedSaveCommand,
  ManagedSaveRemoveCommand,
  SaveCommand,
  UndefineCommand,
  SnapshotCreateCommand,
  SnapshotDeleteCommand,
  SnapshotRevertCommand,
  BlockCopyCommand,
  BlockJobCommand,
  BlockPullCommand,
  MigrateCommand,
  MigratePhaseCommand,
  MigrateIncomingCommand,
  GuestEventCommand,
]);
export type Command = z.infer<typeof CommandSchema>;
/** A command as a client writes it (defaults not yet applied). */
export type CommandInput = z.input<typeof CommandSchema>;
export type Verb = Command['verb'];
export type CommandOf<V extends Verb> = Extract<Command, { verb: V }>;

export const VERBS = CommandSchema.options.map((o) => o.shape.verb.value) as Verb[];

/** The domain name a command acts on (define/create name it in their config). */
export function commandDomainName(c: Command): string {
  return c.verb === 'define' || c.verb === 'create' || c.verb === 'migrate-incoming' ? c.config.name : c.domain;
}
