// The libvirt driver: performs each command the rules accepted on a libvirt connection, and records what
// libvirt did. Its answer becomes the facts (the decided ones, with what libvirt reports where it has the last
// word: the disk sources after a disk-only snapshot or a pivot) or, when libvirt refuses, a refusal with rule
// LIBVIRT and libvirt's own code and message. Such a refusal is a disagreement between the rules and libvirt
// (the model is wrong somewhere): it is counted here and stays visible in the audit (its rule is LIBVIRT).
//
// A command the rules refuse never gets here, so libvirt never sees it.
//
// Hosts: each command runs on its host's connection (`--connect HOST=URI`), else on the default one; a migration
// runs between the source's and the destination's (services/drivers/libvirtMigration.ts).
//
// Block copies: libvirt starts the job and returns; the job becomes ready on its own. pendingReports() asks
// libvirt (the `ready='yes'` of the disk's <mirror> in the live XML) and waits for it up to `readyWaitMs`, so the
// ledger records the readiness (as `guest-event … blockjob-ready` from actor `hypervisor`) before it answers the
// blockcopy, and a following `blockjob --pivot` is decided on the state libvirt is in.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { VERBS, commandDomainName, type Command, type CommandInput } from '../../machines/commands';
import { refusal, type Refusal } from '../../machines/errors';
import type { Fact } from '../../machines/events';
import { DEFAULT_HOST, type DomainState } from '../../machines/model';
import type { LibvirtConnection } from '../libvirt/connection';
import { LIBVIRT_RULE, libvirtRefusal } from '../libvirt/errors';
import { liveDisks, type LiveDisk } from '../libvirt/observe';
import { NoLibvirtEquivalent, virshArgv } from '../libvirt/virshArgs';
import type { MigrationAwareDriver } from '../migration';
import { formatDomainXml } from '../xml';
import { checkArrival, isMigrationEffect, performMigration, prepareOnDestination, settleMigration } from './libvirtMigration';
import { settleOnLibvirt } from './libvirtSettle';
import type { EffectIntent, EffectResult, Settlement } from './types';

const MIGRATION_VERBS = new Set<string>(['migrate', 'migrate-phase', 'migrate-incoming']);
/** Verbs whose effect lands on libvirt (guest-event is libvirt's own report; of a migration only Perform). */
const virshVerbs = new Set<string>(VERBS.filter((v) => v !== 'guest-event' && !MIGRATION_VERBS.has(v)));

/** The connections of a driver that speaks to several hosts: each host's own, and one for the others. */
export interface LibvirtHostConnections {
  default?: LibvirtConnection;
  hosts: ReadonlyMap<string, LibvirtConnection>;
}

/** A connection watched for what libvirt does on its own (services/libvirt/watch.ts), and the hosts whose domains it holds. */
export interface WatchedHost {
  host: string;
  connection: LibvirtConnection;
  /**
   * Set on the default connection: the hosts with a connection of their own. Every other host's commands run on
   * this one, so its domains are watched here too (LibvirtWatchOptions.hostsWithOwnConnection).
   */
  hostsWithOwnConnection?: readonly string[];
}

/** What a refusal by libvirt of a command the rules accepted looked like (for `audit` and the tests). */
export interface Disagreement {
  commandId: string;
  verb: string;
  domain: string;
  message: string;
}

export interface LibvirtDriver extends MigrationAwareDriver {
  /** The default connection (else the first host's). */
  readonly connection: LibvirtConnection;
  /** The connection commands on `host` run on, if any. */
  connectionFor(host: string): LibvirtConnection | undefined;
  /**
   * The hosts whose libvirt is watched for what it does on its own, each with its connection: every `HOST=URI` under
   * its name, and the default connection as the default host (unless a `HOST=URI` names that host), which also
   * watches every host without a connection of its own, since their commands run there.
   */
  readonly watchedHosts: readonly WatchedHost[];
  /** Whether performing the command changes libvirt (every verb but the hypervisor's own reports; a migration's Perform). */
  hasEffect(command: Command, decided?: readonly Fact[]): boolean;
  /** What libvirt did about an effect whose result was never recorded (services/drivers/libvirtSettle.ts). */
  settle(intent: Pick<EffectIntent, 'command' | 'state' | 'decided'>): Promise<Settlement>;
  /** Commands the rules accepted and libvirt refused, since this driver was made. */
  readonly disagreements: readonly Disagreement[];
  pendingReports(state: DomainState): Promise<CommandInput[]>;
  /** Closes the connection and removes the driver's temporary files. */
  close(): Promise<void>;
}

export interface LibvirtDriverOptions {
  /** How long pendingReports waits for a block copy to become ready (default 30 s; 0: only look). */
  readyWaitMs?: number;
  /**
   * How long `shutdown` waits for the guest to power off (default 30 s). libvirt only asks the guest; the rules
   * record the domain as shut off, so the driver records that only once libvirt shows it.
   */
  shutdownWaitMs?: number;
}

const POLL_MS = 50;

// The live XML's disks are read in services/libvirt/observe.ts (with every other read of a domain).
export { liveDisks, type LiveDisk } from '../libvirt/observe';

/** The XML libvirt gets for define/create: the client's own, else one made from the config, with the ledger's UUID. */
export function domainXmlFor(c: Extract<Command, { verb: 'define' | 'create' }>): string {
  const xml = c.xml ?? formatDomainXml(c.config, 'qemu');
  if (/<uuid\b/.test(xml)) return xml;
  // The rules claimed this UUID (DEF-NAME); libvirt must not pick another one.
  return xml.replace(/<\/name>/, `</name>\n  <uuid>${c.config.uuid}</uuid>`);
}

/** The decided facts, with the disk sources libvirt reports where it decides them (overlay names, pivots). */
function withLiveSources(facts: readonly Fact[], disks: readonly LiveDisk[]): Fact[] {
  const sourceOf = (target: string) => disks.find((d) => d.target === target)?.source;
  return facts.map((f): Fact => {
    switch (f.type) {
      case 'SnapshotDisksChanged':
        return { ...f, disks: f.disks.map((d) => (d.changed && sourceOf(d.target) ? { ...d, file: sourceOf(d.target) } : d)) };
      case 'BlockJobEnded': {
        const source = sourceOf(f.disk);
        return source !== undefined ? { ...f, source } : f;
      }
      case 'BackingChainChanged': {
        const source = sourceOf(f.disk);
        return source !== undefined && source !== f.chain[0] ? { ...f, chain: [source, ...f.chain.slice(1)] } : f;
      }
      default:
        return f;
    }
  });
}

/** Verbs after which libvirt, not the rules, knows the disk sources. */
function readsBackSources(c: Command): boolean {
  return (c.verb === 'snapshot-create' && c.snapshot.disks.some((d) => d.snapshot === 'external')) || c.verb === 'blockjob' || c.verb === 'blockpull';
}

/** A command on a host that has no libvirt connection: refused before anything reaches libvirt. */
function noConnection(host: string, role = ''): Refusal {
  return refusal(LIBVIRT_RULE, 'VIR_ERR_INVALID_ARG', `no libvirt connection for ${role}host '${host}': give --connect ${host}=URI`);
}

export function createLibvirtDriver(target: LibvirtConnection | LibvirtHostConnections, options: LibvirtDriverOptions = {}): LibvirtDriver {
  const readyWaitMs = options.readyWaitMs ?? 30_000;
  const shutdownWaitMs = options.shutdownWaitMs ?? 30_000;
  const targets: LibvirtHostConnections = 'run' in target ? { default: target, hosts: new Map() } : target;
  const first = targets.default ?? [...targets.hosts.values()][0];
  if (!first) throw new Error('a libvirt driver needs at least one connection');
  const connectionFor = (host: string) => targets.hosts.get(host) ?? targets.default;
  const disagreements: Disagreement[] = [];
  let scratch: string | undefined;
  /** The blockcopy command that started the job on `host/name/disk`: names its readiness report. */
  const jobStarts = new Map<string, string>();

  const writeXml = (xml: string): string => {
    scratch ??= mkdtempSync(join(tmpdir(), 'vmledger-libvirt-'));
    const file = join(scratch, `domain-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.xml`);
    writeFileSync(file, xml, { mode: 0o600 });
    return file;
  };

  async function waitForShutoff(connection: LibvirtConnection, name: string): Promise<boolean> {
    const deadline = Date.now() + shutdownWaitMs;
    for (;;) {
      const r = await connection.run(['domstate', name]);
      // Gone (a transient domain that quit) or shut off: the guest stopped.
      if (r.failed || r.stdout.trim() === 'shut off') return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function dumpxml(connection: LibvirtConnection, name: string): Promise<string | undefined> {
    const r = await connection.run(['dumpxml', name]);
    return r.failed ? undefined : r.stdout;
  }

  /** The steps of a migration (services/drivers/libvirtMigration.ts): only Perform changes libvirt. */
  async function performMigrationStep(state: DomainState, c: Command, decided: Fact[], connection: LibvirtConnection): Promise<EffectResult> {
    if (c.verb === 'migrate') {
      if (!connectionFor(c.desthost)) return { facts: [], refusal: noConnection(c.desthost, 'destination ') };
      return { facts: decided };
    }
    if (c.verb === 'migrate-incoming') {
      const missing = await checkArrival(connection, c);
      return missing === undefined ? { facts: decided } : { facts: [], refusal: refusal(LIBVIRT_RULE, 'VIR_ERR_OPERATION_FAILED', missing) };
    }
    if (c.verb !== 'migrate-phase' || !isMigrationEffect(c, decided)) return { facts: decided };
    const destinationHost = state.migration?.destination ?? '';
    const destination = connectionFor(destinationHost);
    if (!destination) return { facts: [], refusal: noConnection(destinationHost, 'destination ') };
    const done = await performMigration(connection, destination, state, decided, state.migration?.live ?? false);
    if (done.refusedBy !== undefined) disagreements.push({ commandId: c.meta.commandId, verb: 'migrate', domain: c.domain, message: done.refusedBy });
    return { facts: done.facts };
  }

  async function perform(state: DomainState, c: Command, decided: Fact[]): Promise<EffectResult> {
    const connection = connectionFor(c.host);
    if (!connection) return { facts: [], refusal: noConnection(c.host) };
    if (MIGRATION_VERBS.has(c.verb)) return performMigrationStep(state, c, decided, connection);
    let file: string | undefined;
    let argv: string[] | undefined;
    try {
      if (c.verb === 'define' || c.verb === 'create') file = writeXml(domainXmlFor(c));
      if (c.verb === 'snapshot-create' && c.xml !== undefined) file = writeXml(c.xml);
      argv = virshArgv(c, decided, c.verb === 'snapshot-create' ? { snapshotXml: file } : { domainXml: file });
    } catch (error) {
      if (!(error instanceof NoLibvirtEquivalent)) throw error;
      return { facts: [], refusal: refusal(LIBVIRT_RULE, 'VIR_ERR_OPERATION_UNSUPPORTED', error.message) };
    }
    if (argv === undefined) return { facts: decided };
    try {
      const r = await connection.run(argv);
      if (r.failed) {
        const refused = libvirtRefusal(r.stderr);
        disagreements.push({ commandId: c.meta.commandId, verb: c.verb, domain: commandDomainName(c), message: refused.message });
        return { facts: [], refusal: refused };
      }
    } finally {
      if (file) rmSync(file, { force: true });
    }
    if (c.verb === 'shutdown') {
      const off = await waitForShutoff(connection, c.domain);
      if (!off) {
        const refused = refusal(
          LIBVIRT_RULE,
          'VIR_ERR_OPERATION_TIMEOUT',
          `domain '${c.domain}' did not shut down within ${shutdownWaitMs} ms: libvirt asked the guest, which may still power off (destroy stops it at once)`,
        );
        disagreements.push({ commandId: c.meta.commandId, verb: c.verb, domain: c.domain, message: refused.message });
        return { facts: [], refusal: refused };
      }
    }
    for (const f of decided) if (f.type === 'BlockJobStarted') jobStarts.set(`${c.host}/${commandDomainName(c)}/${f.job.disk}`, c.meta.commandId);
    if (!readsBackSources(c)) return { facts: decided };
    const xml = await dumpxml(connection, commandDomainName(c));
    return { facts: xml === undefined ? decided : withLiveSources(decided, liveDisks(xml)) };
  }

  async function pendingReports(state: DomainState): Promise<CommandInput[]> {
    const copying = Object.values(state.blockJobs).filter((j) => j.kind === 'copy' && j.phase === 'copying');
    const connection = connectionFor(state.host);
    if (!connection || state.life !== 'exists' || !state.active || copying.length === 0) return [];
    const deadline = Date.now() + readyWaitMs;
    for (;;) {
      const xml = await dumpxml(connection, state.name);
      const disks = xml === undefined ? [] : liveDisks(xml);
      const ready = copying.filter((j) => disks.find((d) => d.target === j.disk || d.source === j.disk)?.mirror?.ready);
      if (ready.length > 0 || Date.now() >= deadline) {
        return ready.map((j) => ({
          verb: 'guest-event',
          host: state.host,
          domain: state.name,
          event: 'blockjob-ready',
          disk: j.disk,
          meta: {
            commandId: `libvirt-ready-${jobStarts.get(`${state.host}/${state.name}/${j.disk}`) ?? `${state.host}-${state.name}-${j.disk}-${Date.now()}`}`,
            actor: 'hypervisor',
            time: new Date().toISOString(),
          },
        }));
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async function settle(intent: Pick<EffectIntent, 'command' | 'state' | 'decided'>): Promise<Settlement> {
    const connection = connectionFor(intent.command.host);
    if (!connection) throw new Error(`cannot settle ${intent.command.meta.commandId}: no libvirt connection for host '${intent.command.host}'`);
    if (!isMigrationEffect(intent.command as { verb: string; phase?: string }, intent.decided)) return settleOnLibvirt(connection, intent);
    const destinationHost = intent.state.migration?.destination ?? '';
    const destination = connectionFor(destinationHost);
    if (!destination) throw new Error(`cannot settle ${intent.command.meta.commandId}: no libvirt connection for destination host '${destinationHost}'`);
    return settleMigration(connection, destination, intent);
  }

  const connections = [...new Set([...(targets.default ? [targets.default] : []), ...targets.hosts.values()])];
  const hostNames = [...targets.hosts].map(([host, conn]) => `${host}=${conn.uri}`).sort();
  const watchedHosts: WatchedHost[] = [...targets.hosts].map(([host, connection]) => ({ host, connection }));
  if (targets.default && !targets.hosts.has(DEFAULT_HOST)) {
    watchedHosts.unshift({ host: DEFAULT_HOST, connection: targets.default, hostsWithOwnConnection: [...targets.hosts.keys()] });
  }
  return {
    // The hypervisor the effects land on: an open intent is settled only by a driver on the same connections.
    name: hostNames.length === 0 ? first.uri : [...(targets.default ? [targets.default.uri] : []), ...hostNames].join(' '),
    connection: first,
    connectionFor,
    watchedHosts,
    reportsGuestEvents: true,
    disagreements,
    perform,
    pendingReports,
    hasEffect: (c, decided = []) => virshVerbs.has(c.verb) || isMigrationEffect(c as { verb: string; phase?: string }, decided),
    settle,
    async migrationPhase(phase, { command, source }) {
      if (phase !== 'prepare') return undefined;
      const destination = connectionFor(command.desthost);
      if (!destination) return `no libvirt connection for destination host '${command.desthost}'`;
      return prepareOnDestination(destination, source, command.desthost);
    },
    async close() {
      await Promise.all(connections.map((c) => c.close()));
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    },
  };
}
