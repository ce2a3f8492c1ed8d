// Fault injection for the simulated hypervisor, configured per run: a zod-validated JSON file or repeated
// `--fault` flags. Faults are configuration, never facts: a run with the same faults over the same log behaves
// the same, and the facts a fault produced (a partial snapshot, a failed migration phase) stay in the log
// when a later run is started without it.
//
//   --fault readonly:/path          storage under /path is read-only (creating or writing a file there fails)
//   --fault full:/path              storage under /path has no free space left
//   --fault fail-disk:N             the Nth disk (1-based) of a disk operation fails (snapshot, pivot, abort)
//   --fault migrate-fail:PHASE      the migration fails at prepare | perform | finish | confirm
//   --fault mirror-never-ready      a mirror or block copy never reaches `ready`
//   --fault no-transaction          the hypervisor has no transactions: a multi-disk snapshot can end partial
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

export const MIGRATION_FAULT_PHASES = ['prepare', 'perform', 'finish', 'confirm'] as const;
export type MigrationFaultPhase = (typeof MIGRATION_FAULT_PHASES)[number];

const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .transform(normalizePrefix);

export const FaultsSchema = z
  .object({
    /** Storage (path prefixes) that is read-only. */
    readonly: z.array(absolutePath).default([]),
    /** Storage (path prefixes) with no free space. */
    full: z.array(absolutePath).default([]),
    /** The Nth disk (1-based) of a disk operation fails with an I/O error. */
    failDisk: z.number().int().min(1).optional(),
    /** Migration phases that fail. */
    migrateFail: z.array(z.enum(MIGRATION_FAULT_PHASES)).default([]),
    /** Mirrors and block copies stay in `copying`: the driver never reports them ready. */
    mirrorNeverReady: z.boolean().default(false),
    /** No `transaction` support: a multi-disk snapshot is done disk by disk and may stop part way. */
    noTransaction: z.boolean().default(false),
  })
  .strict();
export type Faults = z.infer<typeof FaultsSchema>;
export type FaultsInput = z.input<typeof FaultsSchema>;

export const NO_FAULTS: Faults = FaultsSchema.parse({});

/** `/a/b/` and `/a/b` name the same storage. */
export function normalizePrefix(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

/** Whether `path` lies under the storage prefix (on a path-segment boundary: `/data` does not hold `/data2/x`). */
export function underPrefix(path: string, prefix: string): boolean {
  const p = normalizePrefix(prefix);
  return p === '/' || path === p || path.startsWith(p + '/');
}

export class FaultSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultSpecError';
  }
}

const FAULT_USAGE =
  'readonly:/path, full:/path, fail-disk:N, migrate-fail:prepare|perform|finish|confirm, mirror-never-ready, no-transaction';

/** Adds one `--fault` flag value to `into` (returns a new object). */
export function addFault(into: Faults, spec: string): Faults {
  const colon = spec.indexOf(':');
  const kind = colon === -1 ? spec : spec.slice(0, colon);
  const arg = colon === -1 ? undefined : spec.slice(colon + 1);
  const needArg = (what: string): string => {
    if (arg === undefined || arg === '') throw new FaultSpecError(`fault '${spec}': '${kind}' needs ${what} (${kind}:${what.toUpperCase()})`);
    return arg;
  };
  const noArg = () => {
    if (arg !== undefined) throw new FaultSpecError(`fault '${spec}': '${kind}' takes no argument`);
  };
  const path = (p: string) => {
    if (!p.startsWith('/')) throw new FaultSpecError(`fault '${spec}': the path must be absolute`);
    return normalizePrefix(p);
  };
  switch (kind) {
    case 'readonly':
      return { ...into, readonly: [...into.readonly, path(needArg('path'))] };
    case 'full':
      return { ...into, full: [...into.full, path(needArg('path'))] };
    case 'fail-disk': {
      const n = Number(needArg('n'));
      if (!Number.isInteger(n) || n < 1) throw new FaultSpecError(`fault '${spec}': N must be a whole number from 1`);
      return { ...into, failDisk: n };
    }
    case 'migrate-fail': {
      const phase = needArg('phase');
      if (!(MIGRATION_FAULT_PHASES as readonly string[]).includes(phase))
        throw new FaultSpecError(`fault '${spec}': the phase must be one of ${MIGRATION_FAULT_PHASES.join(', ')}`);
      return { ...into, migrateFail: [...new Set([...into.migrateFail, phase as MigrationFaultPhase])] };
    }
    case 'mirror-never-ready':
      noArg();
      return { ...into, mirrorNeverReady: true };
    case 'no-transaction':
      noArg();
      return { ...into, noTransaction: true };
    default:
      throw new FaultSpecError(`unknown fault '${spec}'; faults are: ${FAULT_USAGE}`);
  }
}

/** Faults from `--fault` flag values, in order (later ones add to earlier ones; fail-disk: the last wins). */
export function parseFaultFlags(specs: readonly string[], base: Faults = NO_FAULTS): Faults {
  return specs.reduce(addFault, base);
}

/** For commander: `.option('--fault <spec>', FAULT_OPTION_HELP, collectFaultFlag, [])`. */
export function collectFaultFlag(value: string, previous: string[] = []): string[] {
  addFault(NO_FAULTS, value); // validate early, with the flag's own message
  return [...previous, value];
}

export const FAULT_OPTION_HELP = `inject a fault into the simulated hypervisor (repeatable): ${FAULT_USAGE}`;

/**
 * A faults file is JSON: either the object form (`{"readonly": ["/ro"], "failDisk": 2, "noTransaction": true}`)
 * or a list of flag strings (`["readonly:/ro", "fail-disk:2"]`).
 */
export function parseFaultsJson(json: unknown): Faults {
  if (Array.isArray(json)) {
    const specs = z.array(z.string()).safeParse(json);
    if (!specs.success) throw new FaultSpecError(`faults list must hold flag strings (${FAULT_USAGE})`);
    return parseFaultFlags(specs.data);
  }
  const parsed = FaultsSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new FaultSpecError(`invalid faults: ${issues}`);
  }
  return parsed.data;
}

export async function loadFaultsFile(path: string): Promise<Faults> {
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FaultSpecError(`faults file ${path}: not JSON (${(e as Error).message})`);
  }
  try {
    return parseFaultsJson(json);
  } catch (e) {
    throw new FaultSpecError(`faults file ${path}: ${(e as Error).message}`);
  }
}

/** The faults as flag strings (for logs and `--help` output of a running service). */
export function describeFaults(f: Faults): string[] {
  return [
    ...f.readonly.map((p) => `readonly:${p}`),
    ...f.full.map((p) => `full:${p}`),
    ...(f.failDisk !== undefined ? [`fail-disk:${f.failDisk}`] : []),
    ...f.migrateFail.map((p) => `migrate-fail:${p}`),
    ...(f.mirrorNeverReady ? ['mirror-never-ready'] : []),
    ...(f.noTransaction ? ['no-transaction'] : []),
  ];
}
