// What libvirt shows of a domain, read with queries only (dominfo, domstate --reason, snapshot-list, the live
// XML, each snapshot's XML): the one place these reads are made, for the driver's settle
// (services/drivers/libvirtSettle.ts), the resync after an event, `reconcile` and `adopt` (services/reconcile.ts).
import type { LibvirtConnection } from './connection';

/** The `<disk>` elements of a domain XML with their target and what libvirt says about them. */
export interface LiveDisk {
  target: string;
  source?: string;
  /** A block job's mirror on this disk, and whether libvirt reports it ready. */
  mirror?: { file?: string; ready: boolean };
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]!);
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}=(?:'([^']*)'|"([^"]*)")`).exec(tag);
  return m ? unescapeXml(m[1] ?? m[2] ?? '') : undefined;
}

/** Disk targets, top sources and mirrors from `dumpxml` (libvirt writes this XML itself: a shallow reading is safe). */
export function liveDisks(xml: string): LiveDisk[] {
  const disks: LiveDisk[] = [];
  for (const m of xml.matchAll(/<disk\b[\s\S]*?<\/disk>/g)) {
    const body = m[0];
    // The top source is the first <source> before any <backingStore> or <mirror>.
    const head = body.split(/<backingStore|<mirror/)[0]!;
    const target = /<target\b[^>]*>/.exec(body);
    const dev = target ? attr(target[0], 'dev') : undefined;
    if (dev === undefined) continue;
    const src = /<source\b[^>]*>/.exec(head);
    const source = src ? (attr(src[0], 'file') ?? attr(src[0], 'dev')) : undefined;
    const mirrorTag = /<mirror\b[^>]*>/.exec(body);
    let mirror: LiveDisk['mirror'];
    if (mirrorTag) {
      const mirrorBody = body.slice(mirrorTag.index);
      const mirrorSrc = /<source\b[^>]*>/.exec(mirrorBody);
      const file = attr(mirrorTag[0], 'file') ?? (mirrorSrc ? attr(mirrorSrc[0], 'file') : undefined);
      mirror = { ready: attr(mirrorTag[0], 'ready') === 'yes', ...(file !== undefined ? { file } : {}) };
    }
    disks.push({ target: dev, ...(source !== undefined ? { source } : {}), ...(mirror ? { mirror } : {}) });
  }
  return disks;
}

export interface LibvirtSnapshot {
  name: string;
  /** `snapshot-dumpxml`: what `snapshot-create --redefine` takes back (parent, state, creation time, disks). */
  xml: string;
}

/** A domain as libvirt shows it now. */
export interface LibvirtDomain {
  name: string;
  exists: boolean;
  uuid?: string;
  /** `domstate --reason`: `running`, `paused`, `shut off`, `in shutdown`, `crashed`, `pmsuspended`, … */
  state: string;
  /** Its reason: `booted`, `user`, `destroyed`, `shutdown`, `crashed`, `saved`, `from snapshot`, … */
  reason: string;
  active: boolean;
  paused: boolean;
  persistent: boolean;
  managedSave: boolean;
  /** Live XML (`dumpxml`): the config, and the disks with their mirrors. */
  xml: string;
  disks: LiveDisk[];
  /** Snapshot names, sorted; `snapshots` has their XML only when read `withSnapshotXml`. */
  snapshotNames: string[];
  snapshots: LibvirtSnapshot[];
  current: string | null;
}

const field = (text: string, name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');

const ACTIVE_STATES = new Set(['running', 'paused', 'idle', 'in shutdown', 'blocked', 'pmsuspended']);

export function goneDomain(name: string): LibvirtDomain {
  return {
    name,
    exists: false,
    state: 'gone',
    reason: '',
    active: false,
    paused: false,
    persistent: false,
    managedSave: false,
    xml: '',
    disks: [],
    snapshotNames: [],
    snapshots: [],
    current: null,
  };
}

/** `snapshot-current --name` of a domain without one (virsh: `domain 'x' has no current snapshot`): an answer, not a failure. */
const NO_CURRENT_SNAPSHOT = /has no current snapshot|does not have a current snapshot/;

/** libvirt's "no such domain" (virsh: `failed to get domain 'x'`). */
export function isDomainNotFound(stderr: string): boolean {
  return /failed to get domain|Domain not found/.test(stderr);
}

/**
 * Whether libvirt, asked again, lists no domain of this name. virsh says `failed to get domain 'x'` whenever the
 * lookup fails, also when libvirtd died while it was answering it: taken alone, that would record a stop (and an
 * undefine) that never happened. The list must be read to confirm it (false: the domain is there after all).
 */
async function confirmedAbsent(connection: LibvirtConnection, name: string, lookupError: string): Promise<boolean> {
  const list = await connection.run(['list', '--all', '--name']);
  if (list.failed) throw new Error(`dominfo ${name}: ${lookupError.trim()}; and the domain list, read to confirm it, failed: ${list.stderr.trim()}`);
  return !lines(list.stdout).includes(name);
}

/**
 * Reads the domain. `withSnapshotXml`: also every snapshot's XML (adopt and reconcile need it to redefine them;
 * the settle only compares names). A domain that vanishes between two reads is read again from the start.
 */
export async function readDomain(connection: LibvirtConnection, name: string, options: { withSnapshotXml?: boolean } = {}): Promise<LibvirtDomain> {
  for (let attempt = 0; ; attempt++) {
    const read = await readOnce(connection, name, options.withSnapshotXml ?? false);
    if (read !== 'vanished') return read;
    // Three reads that each found it half gone: no answer to record; the caller compares again later.
    if (attempt >= 2) throw new Error(`${name}: libvirt's answers changed under three reads in a row`);
  }
}

async function readOnce(connection: LibvirtConnection, name: string, withSnapshotXml: boolean): Promise<LibvirtDomain | 'vanished'> {
  const info = await connection.run(['dominfo', name]);
  if (info.failed) {
    if (isDomainNotFound(info.stderr)) return (await confirmedAbsent(connection, name, info.stderr)) ? goneDomain(name) : 'vanished';
    throw new Error(`dominfo ${name}: ${info.stderr.trim()}`);
  }
  const stateLine = await connection.run(['domstate', name, '--reason']);
  const xml = await connection.run(['dumpxml', name]);
  const snaps = await connection.run(['snapshot-list', name, '--name']);
  const current = await connection.run(['snapshot-current', name, '--name']);
  if ([stateLine, xml, snaps, current].some((r) => r.failed && isDomainNotFound(r.stderr))) return 'vanished';
  // Any other failure (libvirtd gone mid-read, a timeout) is no observation: an empty state or snapshot list read
  // as what libvirt shows would record a stop or deleted snapshots that never happened. The caller compares again.
  const reads: [string, { failed: boolean; stderr: string }][] = [['domstate', stateLine], ['dumpxml', xml], ['snapshot-list', snaps]];
  if (current.failed && !NO_CURRENT_SNAPSHOT.test(current.stderr)) reads.push(['snapshot-current', current]);
  for (const [verb, r] of reads) if (r.failed) throw new Error(`${verb} ${name}: ${r.stderr.trim()}`);
  const m = /^(.*?)(?: \(([^)]*)\))?$/.exec(stateLine.stdout.trim()) ?? [];
  const state = m[1] ?? field(info.stdout, 'State') ?? '';
  const snapshotNames = lines(snaps.stdout).sort();
  const snapshots: LibvirtSnapshot[] = [];
  if (withSnapshotXml) {
    for (const s of snapshotNames) {
      const r = await connection.run(['snapshot-dumpxml', name, s]);
      if (!r.failed) snapshots.push({ name: s, xml: r.stdout });
    }
  }
  return {
    name,
    exists: true,
    ...(field(info.stdout, 'UUID') ? { uuid: field(info.stdout, 'UUID') } : {}),
    state,
    reason: m[2] ?? '',
    active: ACTIVE_STATES.has(state),
    paused: state === 'paused',
    persistent: field(info.stdout, 'Persistent') === 'yes',
    managedSave: field(info.stdout, 'Managed save') === 'yes',
    xml: xml.stdout,
    disks: liveDisks(xml.stdout),
    snapshotNames,
    snapshots,
    current: current.failed ? null : (lines(current.stdout)[0] ?? null),
  };
}

/** Every domain libvirt has on this connection, active or not (`list --all --name`). */
export async function listLibvirtDomains(connection: LibvirtConnection): Promise<string[]> {
  const r = await connection.run(['list', '--all', '--name']);
  if (r.failed) throw new Error(`list --all: ${r.stderr.trim()}`);
  return lines(r.stdout).sort();
}
