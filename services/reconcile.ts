// The ledger brought to what libvirt shows: `vmledger reconcile` (every ledger domain), `vmledger adopt` (domains
// libvirt has and the ledger does not, or those named), and the resync of `serve --connect` after an event or a
// (re)subscription (services/libvirt/watch.ts). One loop for all of them: read the domain on libvirt
// (services/libvirt/observe.ts), take the next difference (services/libvirt/plan.ts), record its command as what
// libvirt did (actor `libvirt`, meta.observed: decided by the rules, never performed), until none is left.
//
// Idempotent: a difference recorded once is no difference the next time, and each command's id is derived from
// the domain, the ledger revision it was decided on and the verb, so two processes seeing the same change record
// it once (the second gets the first outcome).
import { createHash } from 'node:crypto';

import type { CommandInput } from '../machines/commands';
import { DEFAULT_HOST } from '../machines/model';
import { ID_MAX } from '../machines/names';
import { allDomains } from './domainQuery';
import { recordObserved } from './ledger';
import type { CommandOutcome, Ledger, LocalLedger } from './ledger-types';
import type { LibvirtConnection } from './libvirt/connection';
import { listLibvirtDomains, readDomain } from './libvirt/observe';
import { nextDifference, type Difference, type PlannedCommand, type StopHint } from './libvirt/plan';

/** The actor of every fact that came from libvirt rather than from a command sent to vmledger. */
export const LIBVIRT_ACTOR = 'libvirt';

export type ObservationSource = 'event' | 'resync' | 'reconcile' | 'adopt';

/** A difference found, and what recording it came to (absent: only printed, as with --dry-run). */
export interface Found extends Difference {
  /** The ledger host of the domain, when not the one reconciled (reconcileHost on the default connection). */
  host?: string;
  outcome?: CommandOutcome;
}

export interface ReconcileOptions {
  host?: string;
  source: ObservationSource;
  /** Only report the differences (the first of each domain: the later ones depend on recording it). */
  dryRun?: boolean;
  /** Why the domain stopped, when it is gone and libvirt cannot say (from the event line). */
  hint?: StopHint;
  /** The event line or other text kept with each recorded command (meta.observed.detail). */
  detail?: string;
  /**
   * Given (the ledger itself), the domain is compared for a watch or the start-up reconcile: a migration in flight,
   * out of this host or into it from any other (LocalLedger.migratingTo), is the migration's to record (its Finish),
   * not theirs, or the arriving guest would be recorded as created here.
   */
  migrations?: Pick<LocalLedger, 'migratingTo'>;
}

/** Differences a single domain may take before the loop gives up (a snapshot tree is one step per snapshot). */
const MAX_STEPS = 1000;
/** Tries of one step that met a busy domain or a newer revision (each after a short wait, then read again). */
const MAX_RETRIES = 50;

function observedId(host: string, name: string, revision: number, verb: string): string {
  const id = `libvirt/${verb}/${host}/${name}@${revision}`;
  if (id.length <= ID_MAX) return id;
  return `libvirt/${verb}/${createHash('sha256').update(`${host}\u0000${name}\u0000${revision}`).digest('hex').slice(0, 32)}`;
}

function withMeta(command: PlannedCommand, revision: number, options: ReconcileOptions, difference: Difference): CommandInput {
  const name = command.verb === 'define' || command.verb === 'create' ? command.config.name : (command as { domain: string }).domain;
  const detail = options.detail ?? `${difference.what}: ${difference.ledger} -> ${difference.libvirt}`;
  return {
    ...command,
    meta: {
      commandId: observedId(command.host ?? DEFAULT_HOST, name, revision, command.verb),
      actor: LIBVIRT_ACTOR,
      time: new Date().toISOString(),
      expectedRevision: revision,
      observed: { source: options.source, detail: detail.slice(0, 1000) },
    },
  } as CommandInput;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A refusal that means "look again" (the domain moved, or a job holds it), not a disagreement. */
const isRetry = (o: CommandOutcome) => !o.ok && !o.audit && (o.rule === 'CONCURRENCY' || o.rule === 'JOB-BUSY');

/** Brings one domain of the ledger to what libvirt shows; returns every difference found, in order. */
export async function reconcileDomain(ledger: Ledger, connection: LibvirtConnection, name: string, options: ReconcileOptions): Promise<Found[]> {
  const host = options.host ?? DEFAULT_HOST;
  const found: Found[] = [];
  let retries = 0;
  for (let step = 0; step < MAX_STEPS; step++) {
    // The ledger first, then libvirt: a reading older than the ledger's state is never recorded over it (a command
    // of ours that ran in between moved the revision, and the step is then refused as stale and read again).
    const { state, revision } = await ledger.loadDomain(host, name);
    // For a watch: a migration in flight, out of this host or into it, is the migration's to record (the rules
    // would refuse the watch's commands as JOB-BUSY meanwhile; on the destination nothing would stop them).
    if (options.migrations && (state.migration || (await options.migrations.migratingTo(name, host)))) return found;
    const libvirt = await readDomain(connection, name, { withSnapshotXml: true });
    const difference = nextDifference(state, libvirt, options.hint);
    if (!difference) return found;
    if (options.dryRun || !difference.command) {
      found.push(difference);
      return found;
    }
    const outcome = await recordObserved(ledger, withMeta(difference.command, revision, options, difference));
    if (isRetry(outcome) && retries++ < MAX_RETRIES) {
      await sleep(Math.min(20 * retries, 200));
      continue;
    }
    found.push({ ...difference, outcome });
    // A refusal (the rules disagree with what libvirt did, recorded as such) or a step that changed nothing
    // would be met again: stop here for this domain.
    if (!outcome.ok || outcome.events.length === 0) return found;
  }
  return found;
}

/**
 * Whether a ledger host's commands run on the connection of `host` (so its domains live in that libvirt): `host`
 * itself, and on the default connection (`hostsWithOwnConnection` given) every host without a connection of its
 * own (LibvirtDriver.watchedHosts). The watch and the start-up reconcile share this rule.
 */
export function onConnectionOf(host: string, hostsWithOwnConnection: readonly string[] | undefined): (h: string) => boolean {
  return (h) => h === host || (hostsWithOwnConnection !== undefined && !hostsWithOwnConnection.includes(h));
}

/**
 * Every domain of the ledger on the host, compared with libvirt (and with `includeUnknown`, libvirt's others too).
 * With `hostsWithOwnConnection` (the default connection) the ledger's domains of every host on the connection
 * (onConnectionOf) are compared, each under its own host: a libvirt domain one of them holds is that host's, and
 * only one none of them holds is reported as not in the ledger.
 */
export async function reconcileHost(
  ledger: Ledger,
  connection: LibvirtConnection,
  options: ReconcileOptions & { includeUnknown?: boolean; hostsWithOwnConnection?: readonly string[] },
): Promise<Found[]> {
  const host = options.host ?? DEFAULT_HOST;
  const { hostsWithOwnConnection, ...rest } = options;
  const here = onConnectionOf(host, hostsWithOwnConnection);
  const held = hostsWithOwnConnection
    ? (await allDomains(ledger, { all: true })).filter((d) => here(d.host)).map((d) => ({ host: d.host, name: d.name }))
    : (await ledger.listDomains(host)).map((s) => ({ host, name: s.name }));
  const ours = new Set(held.map((d) => d.name));
  const theirs = await listLibvirtDomains(connection);
  const found: Found[] = [];
  const unknown = theirs.filter((n) => !ours.has(n));
  // Compared under the host holding it (one unknown to the ledger is brought in, with includeUnknown, to `host`).
  const work = [...held, ...(options.includeUnknown ? unknown.map((name) => ({ host, name })) : [])].sort(
    (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.host < b.host ? -1 : a.host > b.host ? 1 : 0),
  );
  for (const d of work) {
    const differences = await reconcileDomain(ledger, connection, d.name, { ...rest, host: d.host });
    found.push(...(d.host === host ? differences : differences.map((f) => ({ ...f, host: d.host }))));
  }
  if (!options.includeUnknown) {
    for (const name of unknown) found.push({ domain: name, what: 'not in the ledger', ledger: 'gone', libvirt: 'exists (vmledger adopt)' });
  }
  return found;
}

/**
 * Imports domains libvirt has (all of them, or those named) with everything the rules look at: definition,
 * persistence, state, managed save, the snapshot tree with its current snapshot, active block copies.
 * A domain the ledger already has is brought up to date instead; running it twice changes nothing.
 */
export async function adoptDomains(ledger: Ledger, connection: LibvirtConnection, names: readonly string[], options: { host?: string } = {}): Promise<Found[]> {
  const all = names.length > 0 ? names : await listLibvirtDomains(connection);
  const found: Found[] = [];
  for (const name of all) {
    const d = await readDomain(connection, name);
    if (!d.exists) throw new Error(`failed to get domain '${name}'`);
    found.push(...(await reconcileDomain(ledger, connection, name, { ...options, source: 'adopt' })));
  }
  return found;
}

/** The differences as a table: domain, what, ledger, libvirt (and what recording it came to). */
export function formatFound(found: readonly Found[], dryRun = false): string {
  if (found.length === 0) return 'no differences\n';
  const rows = found.map((f) => [
    f.host !== undefined ? `${f.host}/${f.domain}` : f.domain,
    f.what,
    f.ledger,
    f.libvirt,
    dryRun || !f.command ? (f.command ? 'would record' : 'not recorded') : f.outcome?.ok ? 'recorded' : `refused: ${f.outcome?.rule ?? ''} ${f.outcome?.message ?? ''}`.trim(),
  ]);
  const head = ['Domain', 'What', 'Ledger', 'Libvirt', 'Result'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => ` ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')}`.trimEnd();
  return [line(head), '-'.repeat(widths.reduce((a, b) => a + b + 3, 0)), ...rows.map(line), ''].join('\n');
}
