// Commands: one per virsh verb, with its flags as virsh names them (in camelCase: `--snapshots-metadata`
// is `snapshotsMetadata`). Every command carries metadata: command id, actor, time, optional expected revision.
import { z } from 'zod';
import { DEFAULT_HOST, DiskSchema, DomainConfigSchema, HostdevSchema, SnapshotDiskSchema, SnapshotStateSchema } from './model';
import { clientCommandIdProblem, ID_MAX, idProblem, NAME_MAX, nameProblem, textProblem } from './names';

export { NAME_MAX } from './names';

// Every object here is strict: a field the schema does not know (`meta.expectedrevision` for `expectedRevision`)
// is refused with an error naming it, never dropped (a dropped concurrency check is a stale write let through).

/** A string checked by one of the pure rules of machines/names.ts (the bounds also go into the JSON Schemas). */
function checked(rule: (s: string) => string | undefined, min: number, max: number) {
  return z.string().min(min, 'must not be empty').max(max, `must be at most ${max} characters`).superRefine((s, ctx) => {
    const problem = rule(s);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/** Domain, host and snapshot names as libvirt accepts them, well-formed and NFC (machines/names.ts). */
const nameSchema = checked(nameProblem, 1, NAME_MAX);

/** A disk target or a host path (PATH_MAX), without control characters. */
const pathSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(4096, 'must be at most 4096 characters')
  .superRefine((s, ctx) => {
    const problem = textProblem(s, 'path');
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** An id that travels in metadata and NATS headers (one line of well-formed text). */
const idSchema = (what: string, min = 0) => checked((s) => idProblem(s, what), min, ID_MAX);

export const CommandMetaSchema = z.strictObject({
  /**
   * Idempotency key: a retried command with the same id gets the first outcome. Ids containing '/' are the
   * ledger's own (ClientCommandSchema refuses them from clients); the ledger's internal steps are parsed here.
   */
  commandId: idSchema('command id', 1),
  actor: idSchema('actor', 1).default('anonymous'),
  /** ISO-8601. Time comes with the command so that deciding stays pure. */
  time: z.iso.datetime({ offset: true }),
  correlationId: idSchema('correlation id').optional(),
  /** Optimistic concurrency from the caller: refuse if the domain stream moved past this revision. */
  expectedRevision: z.number().int().min(-1).optional(),
  /** An Ed25519 signature (NATS nkeys) over the command's signed form: services/identity/signature.ts. */
  signature: z.object({ key: z.string().min(1).max(64), sig: z.string().min(1).max(128) }).strict().optional(),
  /** Who the service authenticated; set by the service (a client's own value is replaced): services/identity/actor.ts. */
  auth: z
    .object({
      natsAccount: idSchema('NATS account').optional(),
      natsUser: idSchema('NATS user').optional(),
      /** The public nkey whose signature the service verified. */
      signer: z.string().max(64).optional(),
      /** Nobody vouched for the requester: the actor is the service's default. */
      unauthenticated: z.literal(true).optional(),
      /** The actor the request named, when it was not the one recorded (kept as a claim, never as the actor). */
      claimedActor: idSchema('actor').optional(),
    })
    .strict()
    .optional(),
  /**
   * Set on what libvirt did on its own (an event, or a difference found by a resync, `reconcile` or `adopt`):
   * the command is what libvirt already did, decided by the same rules and recorded, never performed. Only the
   * ledger's own observers set it (ClientCommandSchema refuses it); its command id is in the ledger's namespace.
   */
  observed: z
    .strictObject({
      source: z.enum(['event', 'resync', 'reconcile', 'adopt']),
      /** What libvirt said (the event line, or `what: ledger → libvirt` of the difference). */
      detail: z.string().max(1000).optional(),
    })
    .optional(),
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
const CommandConfigSchema = z.strictObject({
  ...DomainConfigSchema.shape,
  name: nameSchema,
  disks: z.array(z.strictObject({ ...DiskSchema.shape, target: nameSchema, source: pathSchema.optional() })).default([]),
  hostdevs: z.array(z.strictObject(HostdevSchema.shape)).default([]),
});

/** A `<domainsnapshot>` definition (from `snapshot-create FILE` XML or from `snapshot-create-as` options). */
export const SnapshotDefinitionSchema = z.strictObject({
  name: nameSchema.optional(),
  description: z.string().max(65_536).optional(),
  /** Only honoured with --redefine. */
  parent: nameSchema.optional(),
  /** Only honoured with --redefine. */
  state: SnapshotStateSchema.optional(),
  /** Only honoured with --redefine (epoch seconds or ISO). */
  creationTime: z.string().max(64).optional(),
  memory: z.enum(['no', 'internal', 'external']).optional(),
  disks: z
    .array(z.strictObject({ ...SnapshotDiskSchema.shape, target: nameSchema, file: pathSchema.optional(), mirror: pathSchema.optional() }))
    .default([]),
});
export type SnapshotDefinition = z.infer<typeof SnapshotDefinitionSchema>;

/**
 * The domain XML as the client gave it (`define FILE`, or `xml` over NATS): what a libvirt driver defines,
 * verbatim; `config` is what the rules read from it.
 */
const domainXml = z.string().min(1).max(1024 * 1024, 'must be at most 1 MiB').optional();
export const DefineCommand = z.strictObject({ verb: z.literal('define'), ...base, config: CommandConfigSchema, xml: domainXml });
export const CreateCommand = z.strictObject({
  verb: z.literal('create'),
  ...base,
  config: CommandConfigSchema,
  xml: domainXml,
  paused: z.boolean().default(false),
  autodestroy: z.boolean().default(false),
});
export const StartCommand = z.strictObject({
  verb: z.literal('start'),
  ...onDomain,
  paused: z.boolean().default(false),
  autodestroy: z.boolean().default(false),
  forceBoot: z.boolean().default(false),
});
export const ShutdownCommand = z.strictObject({ verb: z.literal('shutdown'), ...onDomain });
export const DestroyCommand = z.strictObject({ verb: z.literal('destroy'), ...onDomain, graceful: z.boolean().default(false) });
export const SuspendCommand = z.strictObject({ verb: z.literal('suspend'), ...onDomain });
export const ResumeCommand = z.strictObject({ verb: z.literal('resume'), ...onDomain });
export const RebootCommand = z.strictObject({ verb: z.literal('reboot'), ...onDomain });
export const ManagedSaveCommand = z.strictObject({
  verb: z.literal('managedsave'),
  ...onDomain,
  running: z.boolean().default(false),
  paused: z.boolean().default(false),
});
export const ManagedSaveRemoveCommand = z.strictObject({ verb: z.literal('managedsave-remove'), ...onDomain });
export const SaveCommand = z.strictObject({
  verb: z.literal('save'),
  ...onDomain,
  file: pathSchema,
  running: z.boolean().default(false),
  paused: z.boolean().default(false),
});
export const UndefineCommand = z.strictObject({
  verb: z.literal('undefine'),
  ...onDomain,
  managedSave: z.boolean().default(false),
  snapshotsMetadata: z.boolean().default(false),
  /** `--storage vda,/path/img`: disk targets or sources to remove. */
  storage: z.array(pathSchema).max(1024).optional(),
  removeAllStorage: z.boolean().default(false),
  wipeStorage: z.boolean().default(false),
});
export const SnapshotCreateCommand = z.strictObject({
  verb: z.literal('snapshot-create'),
  ...onDomain,
  snapshot: SnapshotDefinitionSchema.default({ disks: [] }),
  /** The `<domainsnapshot>` XML as the client gave it (`snapshot-create DOM FILE`): what a libvirt driver sends. */
  xml: z.string().min(1).max(1024 * 1024, 'must be at most 1 MiB').optional(),
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
export const SnapshotDeleteCommand = z.strictObject({
  verb: z.literal('snapshot-delete'),
  ...onDomain,
  snapshotname: nameSchema,
  children: z.boolean().default(false),
  childrenOnly: z.boolean().default(false),
  metadata: z.boolean().default(false),
  mirrorPivot: z.boolean().default(false),
  mirrorAbort: z.boolean().default(false),
});
export const SnapshotRevertCommand = z.strictObject({
  verb: z.literal('snapshot-revert'),
  ...onDomain,
  snapshotname: nameSchema,
  running: z.boolean().default(false),
  paused: z.boolean().default(false),
  force: z.boolean().default(false),
});
export const BlockCopyCommand = z.strictObject({
  verb: z.literal('blockcopy'),
  ...onDomain,
  /** Disk target (`vda`) or source path. */
  path: pathSchema,
  dest: pathSchema,
  transientJob: z.boolean().default(false),
  shallow: z.boolean().default(false),
  reuseExternal: z.boolean().default(false),
});
export const BlockJobCommand = z.strictObject({
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
export const BlockPullCommand = z.strictObject({
  verb: z.literal('blockpull'),
  ...onDomain,
  /** Disk target (`vda`) or source path. */
  path: pathSchema,
  /** The image that stays as the new backing file; omitted: pull everything (the top stands alone). */
  base: pathSchema.optional(),
});
export const MigrateCommand = z.strictObject({
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
export const MigratePhaseCommand = z.strictObject({
  verb: z.literal('migrate-phase'),
  ...onDomain,
  phase: z.enum(['prepare', 'perform', 'finish', 'confirm']),
  /** Set when the phase failed: the domain returns to where it was. */
  failed: z.string().max(65_536).optional(),
  /** With `failed`: the rule id and libvirt code of the check that failed the phase (recorded on MigrationFailed). */
  rule: z.string().min(1).max(200).optional(),
  code: z.number().int().optional(),
});
export const MigrateIncomingCommand = z.strictObject({
  verb: z.literal('migrate-incoming'),
  ...base,
  source: nameSchema,
  config: CommandConfigSchema,
  persistent: z.boolean(),
  active: z.boolean(),
  paused: z.boolean(),
});

/**
 * What the hypervisor reports on its own (docs/rules.md §1: guest-initiated changes are facts, not requests):
 * the guest powered off, rebooted or crashed, or a block job became ready.
 */
export const GuestEventCommand = z.strictObject({
  verb: z.literal('guest-event'),
  ...onDomain,
  event: z.enum(['poweroff', 'reboot', 'crash', 'blockjob-ready']),
  /** For blockjob-ready: the disk. */
  disk: nameSchema.optional(),
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

/**
 * Verbs only the ledger's own migration coordinator issues (services/migration.ts): a client sending one could make
 * a domain arrive on a host with no migration behind it. The NATS service has no subject for them and
 * `ledger.execute` refuses them (VIR_ERR_OPERATION_DENIED).
 */
export const COORDINATOR_VERBS: readonly Verb[] = ['migrate-phase', 'migrate-incoming'];
/** The verbs a client may send. */
export const CLIENT_VERBS: readonly Verb[] = VERBS.filter((v) => !COORDINATOR_VERBS.includes(v));

export function isCoordinatorVerb(verb: unknown): boolean {
  return typeof verb === 'string' && (COORDINATOR_VERBS as readonly string[]).includes(verb);
}

/** A command as a client may send it: also no command id in the ledger's own namespace (machines/names.ts). */
export const ClientCommandSchema = CommandSchema.superRefine((c, ctx) => {
  const problem = clientCommandIdProblem(c.meta.commandId);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, path: ['meta', 'commandId'] });
  if (c.meta.observed !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'only the ledger records what libvirt did on its own', path: ['meta', 'observed'] });
  }
});
