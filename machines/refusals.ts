// What each guard rule answers when it refuses: libvirt's error code and the message as virsh prints it
// (prefix included), with `%s` for a name and `%d` for a count. docs/rules.md is generated from this table
// and rules.ts (`npm run docs:rules`); the invariants property test checks every refusal the machine gives
// against it, so the document cannot promise a message the guards do not send.
import { ERROR_CODES, type ErrorCodeName, type Refusal } from './errors';

export interface RefusalTemplate {
  code: ErrorCodeName;
  message: string;
}

const NOT_RUNNING = 'Requested operation is not valid: domain is not running';
const ALREADY_RUNNING = 'Requested operation is not valid: domain is already running';
const ACTIVE_BLOCK_JOB = 'Requested operation is not valid: domain has active block job';
const DISK_BUSY = "block copy still active: disk '%s' already in active block job";
const DISK_NOT_FOUND = "invalid argument: disk '%s' not found in domain";
const MIGRATION_RUNNING = "Requested operation is not valid: another migration job is already running for domain '%s'";
const MIRRORED_MUST_END = "Requested operation is not valid: mirrored snapshot '%s' must be deleted with --mirror-pivot or --mirror-abort";
const NOT_CURRENT_MIRROR = "Requested operation is not valid: snapshot '%s' is not the current mirrored snapshot";
const NOT_READY = "block copy still active: block job '%s' not ready for pivot yet";
const OFFLINE_NEEDS_PERSISTENT = 'Requested operation is not valid: offline migration must be specified with the persistent flag set';

const invalid = (message: string): RefusalTemplate => ({ code: 'VIR_ERR_OPERATION_INVALID', message });
const arg = (message: string): RefusalTemplate => ({ code: 'VIR_ERR_INVALID_ARG', message });
const snapFlag = (kind: 'CREATE' | 'DELETE' | 'REVERT', flag: string) => `VIR_DOMAIN_SNAPSHOT_${kind}_${flag}`;

/** Keyed by rule id: every refusal a guard of that rule can give. */
export const REFUSALS: Readonly<Record<string, readonly RefusalTemplate[]>> = {
  'DOM-NOTFOUND': [{ code: 'VIR_ERR_NO_DOMAIN', message: "Domain not found: no domain with matching name '%s'" }],
  'DEF-NAME': [
    { code: 'VIR_ERR_OPERATION_FAILED', message: "operation failed: domain '%s' is already defined with uuid %s" },
    { code: 'VIR_ERR_OPERATION_FAILED', message: "operation failed: domain '%s' already exists with uuid %s" },
  ],
  'CRE-ACTIVE': [invalid("Requested operation is not valid: domain '%s' is already active")],
  'STA-ACTIVE': [invalid(ALREADY_RUNNING)],
  'ACT-REQ': [invalid(NOT_RUNNING), invalid(ALREADY_RUNNING)],
  'MS-TRANSIENT': [invalid('Requested operation is not valid: cannot do managed save for transient domain')],
  'MS-MIRROR': [invalid(ACTIVE_BLOCK_JOB)],
  'UND-TRANSIENT': [invalid('Requested operation is not valid: cannot undefine transient domain')],
  'UND-SNAPSHOTS': [invalid('Requested operation is not valid: cannot delete inactive domain with %d snapshots')],
  'UND-MANAGED-SAVE': [invalid('Requested operation is not valid: Refusing to undefine while domain managed save image exists')],
  'UND-STORAGE-RUNNING': [invalid('Requested operation is not valid: Storage volume deletion is supported only on stopped domains')],
  'UND-STORAGE-FLAGS': [
    arg('Specified both --storage and --remove-all-storage'),
    arg("'--wipe-storage' requires '--storage <string>' or '--remove-all-storage'"),
    arg("Volume '%s' was not found in domain's definition."),
  ],
  'SC-CURRENT': [arg(`Flag '${snapFlag('CREATE', 'REDEFINE')}' is required by flag '${snapFlag('CREATE', 'CURRENT')}'`)],
  'SC-REDEFINE-NOMETA': [
    arg(`Flags '${snapFlag('CREATE', 'REDEFINE')}' and '${snapFlag('CREATE', 'NO_METADATA')}' are mutually exclusive`),
    arg(`Flags '${snapFlag('CREATE', 'REDEFINE')}' and '${snapFlag('CREATE', 'HALT')}' are mutually exclusive`),
  ],
  'SC-QUIESCE': [arg(`Flag '${snapFlag('CREATE', 'DISK_ONLY')}' is required by flag '${snapFlag('CREATE', 'QUIESCE')}'`)],
  'SC-HALT-TRANSIENT': [invalid('Requested operation is not valid: cannot halt after transient domain snapshot')],
  'SC-EXISTS': [{ code: 'VIR_ERR_OPERATION_FAILED', message: 'operation failed: domain moment %s already exists' }],
  'SC-NAME': [
    { code: 'VIR_ERR_XML_DETAIL', message: "invalid snapshot name '%s': name can't contain '/'" },
    { code: 'VIR_ERR_XML_DETAIL', message: "invalid snapshot name '%s': name can't start with '.'" },
  ],
  'SC-TREE': [
    { code: 'VIR_ERR_XML_ERROR', message: 'XML error: a redefined snapshot must have a name' },
    arg('invalid argument: cannot set moment %s as its own parent'),
    arg('invalid argument: parent %s for moment %s not found'),
    arg('invalid argument: parent %s would create cycle to %s'),
  ],
  'SC-BUSY-DISK': [{ code: 'VIR_ERR_BLOCK_COPY_ACTIVE', message: DISK_BUSY }],
  'SD-EXCL': [arg(`Flags '${snapFlag('DELETE', 'CHILDREN')}' and '${snapFlag('DELETE', 'CHILDREN_ONLY')}' are mutually exclusive`)],
  'SD-NOTFOUND': [{ code: 'VIR_ERR_NO_DOMAIN_SNAPSHOT', message: "Domain snapshot not found: no domain snapshot with matching name '%s'" }],
  'SR-EXCL': [arg(`Flags '${snapFlag('REVERT', 'RUNNING')}' and '${snapFlag('REVERT', 'PAUSED')}' are mutually exclusive`)],
  'SR-TRANSIENT': [
    invalid('Requested operation is not valid: transient domain needs to request run or pause to revert to inactive snapshot'),
  ],
  'SR-RISKY': [
    {
      code: 'VIR_ERR_SNAPSHOT_REVERT_RISKY',
      message:
        'revert requires force: snapshot without memory state, removal of existing managed saved state strongly recommended to avoid corruption',
    },
  ],
  'MIR-CREATE': [
    invalid(NOT_RUNNING),
    arg(`Flag '${snapFlag('CREATE', '%s')}' cannot be used to create a mirrored snapshot`),
    invalid("Requested operation is not valid: snapshot '%s' is already a current mirrored snapshot"),
  ],
  'MIR-COPY': [
    invalid(NOT_RUNNING),
    arg(DISK_NOT_FOUND),
    arg('invalid argument: absolute path must be used as block copy target'),
    invalid('Requested operation is not valid: domain is not transient'),
  ],
  'MIR-END': [
    invalid(NOT_CURRENT_MIRROR),
    invalid(MIRRORED_MUST_END),
    { code: 'VIR_ERR_BLOCK_COPY_ACTIVE', message: NOT_READY },
    invalid(NOT_RUNNING),
    arg(DISK_NOT_FOUND),
    arg('invalid argument: disk %s does not have an active block job'),
    arg('blockjob needs --pivot or --abort to end a job'),
    invalid("Requested operation is not valid: job type '%s' does not support pivot"),
    invalid(ACTIVE_BLOCK_JOB),
  ],
  'MIR-EXCL': [arg('delete mirror flags are mutually exclusive')],
  'MIR-BLOCKS': [arg(DISK_NOT_FOUND), invalid(ACTIVE_BLOCK_JOB), { code: 'VIR_ERR_BLOCK_COPY_ACTIVE', message: DISK_BUSY }],
  'MIG-ACTIVE': [invalid(NOT_RUNNING)],
  'MIG-SNAPSHOTS': [invalid('Requested operation is not valid: cannot migrate domain with %d snapshots')],
  'MIG-AUTODESTROY': [invalid('Requested operation is not valid: domain is marked for auto destroy')],
  'MIG-HOSTDEV': [
    { code: 'VIR_ERR_OPERATION_UNSUPPORTED', message: "Operation not supported: cannot migrate a domain with <hostdev mode='subsystem' type='%s'>" },
    { code: 'VIR_ERR_OPERATION_UNSUPPORTED', message: "Operation not supported: cannot migrate a domain with <hostdev mode='capabilities'>" },
  ],
  'MIG-JOB': [invalid(MIGRATION_RUNNING), invalid(ACTIVE_BLOCK_JOB)],
  'MIG-PERSIST': [
    invalid(OFFLINE_NEEDS_PERSISTENT),
    invalid('Requested operation is not valid: cannot migrate a transient domain offline'),
  ],
  'MIG-PHASES': [
    invalid('Requested operation is not valid: Attempt to migrate guest to the same host %s'),
    invalid("Requested operation is not valid: domain '%s' has no migration job"),
    invalid("Requested operation is not valid: migration of domain '%s' is in phase '%s', not ready for '%s'"),
  ],
  'JOB-BUSY': [invalid(MIGRATION_RUNNING)],
};

function templatePattern(message: string): RegExp {
  const escaped = message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/%s/g, '.+?').replace(/%d/g, '\\d+')}$`, 's');
}

/** The template of `refusal.rule` that the refusal's code and message fit, if any. */
export function matchingTemplate(refusal: Refusal): RefusalTemplate | undefined {
  const templates = Object.hasOwn(REFUSALS, refusal.rule) ? REFUSALS[refusal.rule]! : [];
  return templates.find(
    (t) => ERROR_CODES[t.code] === refusal.code && templatePattern(t.message).test(refusal.message),
  );
}
