// The libvirt driver: performs each command the rules accepted on a libvirt connection, and records what
// libvirt did. Its answer becomes the facts (the decided ones, with what libvirt reports where it has the last
// word: the disk sources after a disk-only snapshot or a pivot) or, when libvirt refuses, a refusal with rule
// LIBVIRT and libvirt's own code and message. Such a refusal is a disagreement between the rules and libvirt
// (the model is wrong somewhere): it is counted here and stays visible in the audit (its rule is LIBVIRT).
//
// A command the rules refuse never gets here, so libvirt never sees it.
//
// Block copies: libvirt starts the job and returns; the job becomes ready on its own. pendingReports() asks
// libvirt (the `ready='yes'` of the disk's <mirror> in the live XML) and waits for it up to `readyWaitMs`, so the
// ledger records the readiness (as `guest-event … blockjob-ready` from actor `hypervisor`) before it answers the
// blockcopy, and a following `blockjob --pivot` is decided on the state libvirt is in.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { VERBS, commandDomainName, type Command, type CommandInput } from '../../machines/commands';
import { refusal } from '../../machines/errors';
import type { Fact } from '../../machines/events';
import type { DomainState } from '../../machines/model';
import type { LibvirtConnection } from '../libvirt/connection';
import { LIBVIRT_RULE, libvirtRefusal } from '../libvirt/errors';
import { liveDisks, type LiveDisk } from '../libvirt/observe';
import { NoLibvirtEquivalent, virshArgv } from '../libvirt/virshArgs';
import { formatDomainXml } from '../xml';
import { settleOnLibvirt } from './libvirtSettle';
import type { EffectIntent, EffectResult, HypervisorDriver, Settlement } from './types';

/** Verbs whose effect lands on libvirt (guest-event is libvirt's own report; migration is not performed yet). */
const virshVerbs = new Set<string>(VERBS.filter((v) => v !== 'guest-event'));

/** What a refusal by libvirt of a command the rules accepted looked like (for `audit` and the tests). */
export interface Disagreement {
  commandId: string;
  verb: string;
  domain: string;
  message: string;
}

export interface LibvirtDriver extends HypervisorDriver {
  readonly connection: LibvirtConnection;
  /** Whether performing the command changes libvirt (every verb but the hypervisor's own reports). */
  hasEffect(command: Command): boolean;
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

export function createLibvirtDriver(connection: LibvirtConnection, options: LibvirtDriverOptions = {}): LibvirtDriver {
  const readyWaitMs = options.readyWaitMs ?? 30_000;
  const shutdownWaitMs = options.shutdownWaitMs ?? 30_000;
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

  async function waitForShutoff(name: string): Promise<boolean> {
    const deadline = Date.now() + shutdownWaitMs;
    for (;;) {
      const r = await connection.run(['domstate', name]);
      // Gone (a transient domain that quit) or shut off: the guest stopped.
      if (r.failed || r.stdout.trim() === 'shut off') return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function dumpxml(name: string): Promise<string | undefined> {
    const r = await connection.run(['dumpxml', name]);
    return r.failed ? undefined : r.stdout;
  }

  async function perform(_state: DomainState, c: Command, decided: Fact[]): Promise<EffectResult> {
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
      const off = await waitForShutoff(c.domain);
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
    const xml = await dumpxml(commandDomainName(c));
    return { facts: xml === undefined ? decided : withLiveSources(decided, liveDisks(xml)) };
  }

  async function pendingReports(state: DomainState): Promise<CommandInput[]> {
    const copying = Object.values(state.blockJobs).filter((j) => j.kind === 'copy' && j.phase === 'copying');
    if (state.life !== 'exists' || !state.active || copying.length === 0) return [];
    const deadline = Date.now() + readyWaitMs;
    for (;;) {
      const xml = await dumpxml(state.name);
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

  return {
    // The hypervisor the effects land on: an open intent is settled only by a driver on the same connection.
    name: connection.uri,
    connection,
    disagreements,
    perform,
    pendingReports,
    hasEffect: (c) => virshVerbs.has(c.verb),
    settle: (intent) => settleOnLibvirt(connection, intent),
    async close() {
      await connection.close();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    },
  };
}
