// The simulated hypervisor: a deterministic stand-in for qemu + libvirt that performs what the machine decided
// on a model of storage and images, and reports what really happened (docs/rules.md §5 SC-ATOMIC, §6, §7).
//
// Its world is
//   configuration  storage locations (path prefixes with a capacity and a read-only flag), the images that
//                  exist before the log starts, and the faults of this run (faults.ts);
//   + the log      every fact of every domain stream (disk sources, overlays a snapshot created, mirrors and
//                  copies a job created, chains a blockpull shortened, volumes an undefine removed), and the
//                  host-side image operations (`qemu-img create`, `cp`) recorded in the `hypervisor-storage`
//                  stream by createImage/copyImages.
// Nothing else is kept, so the world is rebuilt exactly by folding the global log from position 0 (what a
// restart does), and a driver that finds facts appended by another process (or a retried append) simply
// catches up: perform() first folds the log up to its head, then checks against that world. Why not keep the
// world in store docs: docs are disposable (checkpoints), and a second copy of the truth could disagree with
// the log after a crash between the append and the doc write; the fold cannot.
//
// Without a store (unit tests driving decide + driver directly) the caller reports accepted facts with
// observe(), which folds them the same way.
//
// What perform() does with a decision (anything else passes unchanged):
//   start/create/…   the guest must not run elsewhere: its lease (same UUID active on another host) and the write
//                    locks on its images (DRV-LOCK) — what keeps a domain from running on two hosts at once
//   snapshot-create  overlays (and mirrors) disk by disk: REUSE_EXT needs the file, otherwise it must not exist;
//                    read-only / full storage and fail-disk:N fail a disk; SC-ATOMIC decides what that means
//   blockcopy        the destination, with room for a full (or --shallow) copy (MIR-COPY)
//   pivot / abort    each disk reopened in turn, reading the mirror's header again (relative backing names);
//                    a failure part way is MIR-PARTIAL: BlockJobEnded for the disks done, BlockJobEndFailed for
//                    the one that failed, the rest still mirroring; each pivot reports its BackingChainChanged
//   blockpull        `--base` must be below the top in the open chain; the top backs onto it (BackingChainChanged)
//   guest-event      under mirror-never-ready a job never becomes ready, whoever claims it
//   migration        through the saga's hook migrationPhase(): migrate-fail:PHASE fails that phase
// Known limit: the checks and the append are not one transaction; two processes starting the same domain on two
// hosts at the same instant can both pass the lease check (a real lock manager would arbitrate).
import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { z } from 'zod';

import type { Command, CommandInput, CommandOf } from '../../machines/commands';
import { refusal, type Refusal } from '../../machines/errors';
import type { Fact, FactOf } from '../../machines/events';
import { findDisk } from '../../machines/guards';
import { domainStream, type DomainState } from '../../machines/model';
import { internalCommandId } from '../../machines/names';
import { foldDomainEvent, type StreamFold } from '../../projections/domainList';
import { commandOf, factOf, isDomainStream, isEffectRecord } from '../../projections/log';
import { WrongExpectedRevisionError, type EventStore, type RecordedEvent } from '../eventstore/types';
import { factHash } from '../factHash';
import type { MigrationAwareDriver } from '../migration';
import { FaultsSchema, normalizePrefix, underPrefix, type Faults, type FaultsInput } from './faults';
import type { EffectResult } from './types';

// ---------------------------------------------------------------------------------------------------
// Configuration

/** Size of an image nobody described (a disk source first seen in a domain's config). */
export const DEFAULT_IMAGE_SIZE = 1024 ** 3;
/** Size of a fresh qcow2 overlay (header and empty tables). */
export const OVERLAY_SIZE = 196_608;

const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .transform((p) => posix.normalize(p));

export const ImageSchema = z.object({
  path: absolutePath,
  size: z.number().int().nonnegative().default(DEFAULT_IMAGE_SIZE),
  format: z.enum(['qcow2', 'raw']).default('qcow2'),
  /** The backing file name as written in the image header: absolute, or relative to the image's own folder. */
  backing: z.string().min(1).optional(),
});
export type Image = z.infer<typeof ImageSchema>;
export type ImageInput = z.input<typeof ImageSchema>;

export const StorageSchema = z.object({
  /** Path prefix the location serves (a mount point). */
  path: absolutePath.transform(normalizePrefix),
  /** Bytes; omitted: unlimited. */
  capacity: z.number().int().nonnegative().optional(),
  readonly: z.boolean().default(false),
});
export type Storage = z.infer<typeof StorageSchema>;

export const SimulatedWorldSchema = z
  .object({
    storage: z.array(StorageSchema).default([]),
    /** Images that exist before the log starts. */
    images: z.array(ImageSchema).default([]),
  })
  .strict();
export type SimulatedWorld = z.infer<typeof SimulatedWorldSchema>;
export type SimulatedWorldInput = z.input<typeof SimulatedWorldSchema>;

/** The stream holding host-side image operations (`qemu-img create`, `cp`): not a domain, so projections skip it. */
export const STORAGE_STREAM = 'hypervisor-storage';

const StorageEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ImageCreated'), image: ImageSchema }),
  z.object({ type: z.literal('ImagesCopied'), copies: z.array(z.object({ from: absolutePath, to: absolutePath })) }),
]);
type StorageEvent = z.infer<typeof StorageEventSchema>;

/**
 * Rule id of the hypervisor's own refusal to start a guest that runs elsewhere: the domain's lease (a cluster
 * lock manager's per-domain lease, as sanlock gives oVirt) is held on another host, or an image it would open
 * for writing is write-locked by another running qemu (qemu image locking, virtlockd).
 */
export const LOCK_RULE = 'DRV-LOCK';

/** Rule id of the hypervisor's refusal of a blockpull: `--base` not below the top of the open chain, a missing
 * image, no room to pull into. (The machine's checks come first: ACT-REQ, MIR-BLOCKS.) */
export const PULL_RULE = 'DRV-BLOCKPULL';

export interface SimulatedDriverOptions {
  /** Where the facts live; the world is folded from its global log. Without it, report facts with observe(). */
  store?: EventStore;
  world?: SimulatedWorldInput;
  faults?: FaultsInput;
}

/** A disk's open chain: the images from the top down, and the first backing file that could not be found. */
export interface ChainResolution {
  chain: string[];
  missing?: string;
}

export interface SimulatedDriver extends MigrationAwareDriver {
  readonly faults: Faults;
  /** Fold the store's global log up to its head (a no-op without a store). */
  sync(): Promise<void>;
  /** No-store mode: fold the facts a command of `host`/`name` recorded (the command itself if there is one). */
  observe(host: string, name: string, facts: readonly Fact[], command?: Command): void;
  /** `qemu-img create -f FORMAT [-o backing_file=B] PATH SIZE`: recorded in the storage stream. */
  createImage(image: ImageInput): Promise<void>;
  /** `cp FROM... DIR` or `cp FROM TO`: the copies keep the headers, relative backing names included. */
  copyImages(copies: { from: string; to: string }[]): Promise<void>;
  image(path: string): Promise<Image | undefined>;
  /** The backing chain an image header leads to, relative names resolved as qemu does. */
  chainOf(path: string): Promise<ChainResolution>;
  /** The chain the domain's disk is open on (its source, then the backing files). */
  diskChain(host: string, name: string, disk: string): Promise<string[]>;
  /** The domain's state as the driver folded it. */
  domain(host: string, name: string): Promise<DomainState | undefined>;
  /** Hosts on which a domain with this UUID is active (running or paused). */
  activeHosts(uuid: string): Promise<string[]>;
  /**
   * What the hypervisor has to report on its own: `guest-event blockjob-ready` for every mirror or copy still
   * copying (none under mirror-never-ready). Derived from the world, so a restart loses none; the command ids
   * are deterministic, so reporting one twice is an idempotent retry.
   */
  pendingGuestEvents(): Promise<CommandInput[]>;
  /**
   * HypervisorDriver.pendingReports: the pending guest events of one domain. The ledger runs them after each
   * accepted command, so a mirror becomes ready without its caller's help (none under mirror-never-ready).
   */
  pendingReports(state: DomainState): Promise<CommandInput[]>;
  /**
   * Report the pending guest events through `execute` (e.g. `(c) => ledger.execute(c)`), until none is left: for
   * a ledger with `hypervisorReports: false`, or one whose commands bypassed it.
   */
  flushGuestEvents(execute: (command: CommandInput) => Promise<unknown>): Promise<number>;
}

// ---------------------------------------------------------------------------------------------------
// The world

interface World {
  images: Map<string, Image>;
  streams: Record<string, StreamFold>;
  /** Global position and command time of the BlockJobStarted of each running job, by `stream\0disk`. */
  jobStarts: Map<string, { position: number; time: string }>;
  position: number;
  /** The command of the decision being folded (carried by its first fact). */
  command?: { id: string; command: Command };
}

function resolveBacking(image: Image): string | undefined {
  if (image.backing === undefined) return undefined;
  return posix.normalize(image.backing.startsWith('/') ? image.backing : posix.join(posix.dirname(image.path), image.backing));
}

function chainIn(images: Map<string, Image>, top: string): ChainResolution {
  const chain: string[] = [];
  let path: string | undefined = posix.normalize(top);
  while (path !== undefined) {
    const image = images.get(path);
    if (!image || chain.includes(path)) return { chain, missing: path };
    chain.push(path);
    path = resolveBacking(image);
  }
  return { chain };
}

function diskSource(s: DomainState | undefined, target: string): string | undefined {
  return s?.config?.disks.find((d) => d.target === target)?.source;
}

/** A running domain's writable disks hold qemu's write lock on their top image (and on a job's destination). */
function lockedImages(s: DomainState): string[] {
  if (s.life !== 'exists' || !s.active || handedOff(s)) return [];
  const out: string[] = [];
  for (const d of s.config?.disks ?? []) {
    if (d.device === 'disk' && !d.readonly && !d.shareable && d.source) out.push(posix.normalize(d.source));
  }
  for (const job of Object.values(s.blockJobs)) if (job.destination) out.push(posix.normalize(job.destination));
  return out;
}

/**
 * A live migration past Perform: the guest's memory went over and its CPUs are stopped for good on the source,
 * which has released its images to the destination. The source still counts as defined (and active) in its
 * stream until Confirm, but it no longer runs there.
 */
export function handedOff(s: DomainState): boolean {
  return s.migration !== null && !s.migration.offline && ['perform', 'finish', 'confirm'].includes(s.migration.phase);
}

/** Whether a domain runs on its host: active, and not a migration source that has handed off. */
export function runsOnHost(s: DomainState): boolean {
  return s.life === 'exists' && s.active && !handedOff(s);
}

function ensureImage(world: World, path: string | undefined): void {
  if (path === undefined) return;
  const p = posix.normalize(path);
  if (!world.images.has(p)) world.images.set(p, { path: p, size: DEFAULT_IMAGE_SIZE, format: 'qcow2' });
}

function ensureConfigImages(world: World, config: DomainState['config'] | undefined): void {
  for (const d of config?.disks ?? []) ensureImage(world, d.source);
}

/** What a fact does to the images, given the stream's state before it. */
function applyToImages(world: World, before: DomainState | undefined, fact: Fact, command: Command | undefined): void {
  switch (fact.type) {
    case 'DomainDefined':
    case 'DomainCreated':
    case 'DomainMigratedIn':
      ensureConfigImages(world, fact.config);
      return;
    case 'DomainStarted':
      ensureConfigImages(world, fact.config);
      return;
    case 'SnapshotDisksChanged':
      for (const d of fact.disks) {
        if (!d.changed || !d.file) continue;
        const file = posix.normalize(d.file);
        // REUSE_EXT keeps the existing header (seed 002: its relative backing name survives); else a new overlay.
        if (!world.images.has(file)) world.images.set(file, { path: file, size: OVERLAY_SIZE, format: 'qcow2', backing: diskSource(before, d.target) });
      }
      return;
    case 'BlockJobStarted': {
      const dest = fact.job.destination ? posix.normalize(fact.job.destination) : undefined;
      if (dest === undefined || world.images.has(dest)) return;
      const source = diskSource(before, fact.job.disk);
      const { chain } = source ? chainIn(world.images, source) : { chain: [] as string[] };
      if (fact.job.kind === 'snapshot-mirror') {
        // A mirror qemu creates itself backs onto the overlay's backing file by its absolute name (seed 002).
        world.images.set(dest, { path: dest, size: OVERLAY_SIZE, format: 'qcow2', backing: chain[1] });
      } else if (fact.job.kind === 'copy') {
        const shallow = command?.verb === 'blockcopy' && command.shallow;
        const size = (shallow ? chain.slice(0, 1) : chain).reduce((n, p) => n + (world.images.get(p)?.size ?? 0), 0);
        world.images.set(dest, { path: dest, size, format: 'qcow2', backing: shallow ? chain[1] : undefined });
      }
      return;
    }
    case 'BackingChainChanged': {
      // After a pull the top backs onto the base: rewrite each header whose backing resolves elsewhere (a pivot's
      // chain already resolves as recorded, so it rewrites nothing), and the top takes in the pulled data.
      const top = world.images.get(posix.normalize(fact.chain[0]!));
      if (top && resolveBacking(top) !== fact.chain[1]) {
        const old = chainIn(world.images, top.path).chain;
        const base = fact.chain[1] === undefined ? old.length : old.indexOf(fact.chain[1]);
        const pulled = base > 1 ? old.slice(1, base) : [];
        world.images.set(top.path, { ...top, size: top.size + pulled.reduce((n, p) => n + (world.images.get(p)?.size ?? 0), 0) });
      }
      fact.chain.forEach((path, i) => {
        const image = world.images.get(posix.normalize(path));
        const next = fact.chain[i + 1];
        if (image && resolveBacking(image) !== next) world.images.set(image.path, { ...image, backing: next });
      });
      return;
    }
    case 'DomainUndefined':
      for (const r of fact.storageRemoved) world.images.delete(posix.normalize(r.source));
      return;
    default:
      return;
  }
}

function applyStorageEvent(world: World, e: StorageEvent): void {
  if (e.type === 'ImageCreated') {
    world.images.set(e.image.path, e.image);
    return;
  }
  for (const { from, to } of e.copies) {
    const image = world.images.get(from);
    if (image) world.images.set(to, { ...image, path: to });
  }
}

function foldEvent(world: World, event: RecordedEvent): void {
  world.position = Math.max(world.position, event.position);
  if (event.stream === STORAGE_STREAM) {
    const parsed = StorageEventSchema.safeParse({ ...(event.data as object), type: event.type });
    if (parsed.success) applyStorageEvent(world, parsed.data);
    return;
  }
  if (!isDomainStream(event.stream)) return;
  if (isEffectRecord(event.type)) {
    foldDomainEvent(world.streams, event); // an intent or its settlement: the stream moves, nothing else does
    return;
  }
  const command = commandOf(event);
  const commandId = String(event.metadata.commandId ?? '');
  if (command) world.command = { id: commandId, command };
  const current = world.command && world.command.id === commandId ? world.command.command : undefined;
  const fact = factOf(event);
  const before = world.streams[event.stream]?.state;
  applyToImages(world, before, fact, current);
  const after = foldDomainEvent(world.streams, event);
  if (fact.type === 'BlockJobStarted') {
    world.jobStarts.set(`${event.stream}\u0000${fact.job.disk}`, { position: event.position, time: String(event.metadata.time ?? '') });
  } else if (fact.type === 'BlockJobEnded') {
    world.jobStarts.delete(`${event.stream}\u0000${fact.disk}`);
  }
  // A domain that is gone (or stopped) took its jobs with it.
  if (after && Object.keys(after.state.blockJobs).length === 0) {
    for (const k of [...world.jobStarts.keys()]) if (k.startsWith(`${event.stream}\u0000`)) world.jobStarts.delete(k);
  }
}

// ---------------------------------------------------------------------------------------------------
// Storage checks

const EROFS = 'Read-only file system';
const ENOSPC = 'No space left on device';
const ENOENT = 'No such file or directory';
const EIO = 'Input/output error';

class Storages {
  constructor(
    private readonly config: SimulatedWorld,
    private readonly faults: Faults,
    private readonly images: Map<string, Image>,
  ) {}

  /** The configured location serving a path (the longest prefix), or unlimited writable root storage. */
  location(path: string): Storage {
    let best: Storage = { path: '/', readonly: false };
    for (const s of this.config.storage) if (underPrefix(path, s.path) && s.path.length >= best.path.length) best = s;
    return best;
  }

  readonly(path: string): boolean {
    return this.location(path).readonly || this.faults.readonly.some((p) => underPrefix(path, p));
  }

  /** Bytes free where `path` would live, minus what this operation has already planned there. */
  free(path: string, planned: Map<string, number>): number {
    if (this.faults.full.some((p) => underPrefix(path, p))) return 0;
    const loc = this.location(path);
    if (loc.capacity === undefined) return Number.POSITIVE_INFINITY;
    const mine = (p: string) => this.location(p).path === loc.path;
    let used = 0;
    for (const image of this.images.values()) if (mine(image.path)) used += image.size;
    for (const [p, size] of planned) if (mine(p)) used += size;
    return loc.capacity - used;
  }

  /** Why a new image of `size` bytes cannot be written at `path` (errno text), or undefined. */
  cannotCreate(path: string, size: number, planned: Map<string, number>): string | undefined {
    if (this.readonly(path)) return EROFS;
    if (this.free(path, planned) < size) return ENOSPC;
    planned.set(path, (planned.get(path) ?? 0) + size);
    return undefined;
  }

  cannotWrite(path: string, size: number, planned: Map<string, number>): string | undefined {
    if (this.readonly(path)) return EROFS;
    if (size > 0 && this.free(path, planned) < size) return ENOSPC;
    if (size > 0) planned.set(path, (planned.get(path) ?? 0) + size);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// The driver

const failed = (text: string) => refusal('SC-ATOMIC', 'VIR_ERR_OPERATION_FAILED', text);

function isFact<T extends Fact['type']>(type: T) {
  return (f: Fact): f is FactOf<T> => f.type === type;
}

export function createSimulatedDriver(options: SimulatedDriverOptions = {}): SimulatedDriver {
  const config = SimulatedWorldSchema.parse(options.world ?? {});
  const faults = FaultsSchema.parse(options.faults ?? {});
  const store = options.store;

  const world: World = { images: new Map(), streams: {}, jobStarts: new Map(), position: 0 };
  for (const image of config.images) world.images.set(image.path, image);
  const storages = new Storages(config, faults, world.images);
  /** Positions for facts observed without a store. */
  let observed = 0;

  let syncing: Promise<void> | undefined;
  async function sync(): Promise<void> {
    if (!store) return;
    // One fold at a time: concurrent callers share it.
    while (syncing) await syncing;
    syncing = (async () => {
      for await (const event of store.readAll(world.position)) foldEvent(world, event);
    })();
    try {
      await syncing;
    } finally {
      syncing = undefined;
    }
  }

  function stateOf(host: string, name: string): DomainState | undefined {
    return world.streams[domainStream(host, name)]?.state;
  }

  // --- locks ----------------------------------------------------------------------------------------

  function lockHolder(path: string, except: string): DomainState | undefined {
    const p = posix.normalize(path);
    for (const [stream, fold] of Object.entries(world.streams)) {
      if (stream === except) continue;
      if (lockedImages(fold.state).includes(p)) return fold.state;
    }
    return undefined;
  }

  /** qemu refuses to open an image another qemu holds the write lock on (image locking, virtlockd). */
  function checkLocks(s: DomainState, decided: Fact[]): Refusal | undefined {
    const starts = decided.some(
      (f) =>
        f.type === 'DomainCreated' ||
        f.type === 'DomainStarted' ||
        (f.type === 'DomainMigratedIn' && f.active) ||
        (f.type === 'SnapshotReverted' && f.active && !s.active),
    );
    if (!starts) return undefined;
    const withConfig = decided.find((f) => 'config' in f && f.config) as { config?: DomainState['config'] } | undefined;
    const cfg = withConfig?.config ?? s.config;
    const me = domainStream(s.host, s.name);
    const uuid = cfg?.uuid ?? s.uuid;
    for (const [stream, fold] of Object.entries(world.streams)) {
      const other = fold.state;
      if (stream !== me && uuid && other.uuid === uuid && runsOnHost(other))
        return refusal(LOCK_RULE, 'VIR_ERR_OPERATION_INVALID', `domain '${other.name}' is already active on host '${other.host}' (it holds the domain's lease)`);
    }
    for (const d of cfg?.disks ?? []) {
      if (d.device !== 'disk' || d.readonly || d.shareable || !d.source) continue;
      const holder = lockHolder(d.source, me);
      if (holder)
        return refusal(
          LOCK_RULE,
          'VIR_ERR_INTERNAL_ERROR',
          `process exited while connecting to monitor: Failed to get "write" lock: Is another process using the image [${d.source}]? ` +
            `(domain '${holder.name}' on host '${holder.host}' has it open)`,
        );
    }
    return undefined;
  }

  // --- snapshots (SC-ATOMIC) --------------------------------------------------------------------------

  function performSnapshot(s: DomainState, c: CommandOf<'snapshot-create'>, decided: Fact[]): EffectResult {
    const changed = decided.find(isFact('SnapshotDisksChanged'));
    if (!changed) return { facts: decided };
    const mirrors = new Map(
      decided.filter(isFact('BlockJobStarted')).filter((f) => f.job.kind === 'snapshot-mirror').map((f) => [f.job.disk, f.job.destination!]),
    );
    const disks = changed.disks.filter((d) => d.file !== undefined);
    const exists = (p: string) => world.images.has(posix.normalize(p));

    // 1. Up front, for every disk before touching any (qemuSnapshotPrepareDiskExternal): the files must exist
    //    with --reuse-external and must not without it. Nothing has changed when one of these fails.
    for (const d of disks) {
      for (const [what, path] of [['file', d.file!], ['mirror', mirrors.get(d.target)]] as const) {
        if (path === undefined) continue;
        if (c.reuseExternal && !exists(path))
          return { facts: [], refusal: failed(`missing existing ${what === 'file' ? 'file' : 'mirror file'} for disk ${d.target}: ${path}: ${ENOENT}`) };
        if (!c.reuseExternal && exists(path))
          return {
            facts: [],
            refusal: refusal(
              'SC-ATOMIC',
              'VIR_ERR_CONFIG_UNSUPPORTED',
              `external snapshot ${what === 'file' ? 'file' : 'mirror'} for disk ${d.target} already exists and is not a block device: ${path}`,
            ),
          };
      }
    }

    // 2. A driver without transactions cannot promise all-or-nothing for several disks: with --atomic it
    //    fails outright, before anything (libvirt: "atomic live snapshot of multiple disks is unsupported").
    if (c.atomic && faults.noTransaction && disks.length > 1)
      return { facts: [], refusal: refusal('SC-ATOMIC', 'VIR_ERR_OPERATION_UNSUPPORTED', 'atomic live snapshot of multiple disks is unsupported') };

    // 3. Disk by disk: create (or reopen) the overlay, and the mirror if any.
    const planned = new Map<string, number>();
    let failure: { index: number; target: string; path: string; what: string; error: string } | undefined;
    for (const [i, d] of disks.entries()) {
      const file = d.file!;
      const mirror = mirrors.get(d.target);
      let error: { path: string; what: string; error: string } | undefined;
      if (faults.failDisk === i + 1) error = { path: file, what: 'external snapshot', error: EIO };
      const fileErr = error ? undefined : c.reuseExternal ? storages.cannotWrite(file, 0, planned) : storages.cannotCreate(file, OVERLAY_SIZE, planned);
      if (!error && fileErr) error = { path: file, what: 'external snapshot', error: fileErr };
      if (!error && mirror !== undefined) {
        const mirrorErr = c.reuseExternal ? storages.cannotWrite(mirror, 0, planned) : storages.cannotCreate(mirror, OVERLAY_SIZE, planned);
        if (mirrorErr) error = { path: mirror, what: 'mirror', error: mirrorErr };
      }
      if (error) {
        failure = { index: i, target: d.target, ...error };
        break;
      }
    }
    if (!failure) return { facts: decided };

    const message = `failed to create ${failure.what} of disk '${failure.target}' in '${failure.path}': ${failure.error}`;
    // 4. With --atomic, or on a transactional hypervisor (qemu's `transaction`: what the seed says drivers should
    //    prefer even without the flag), or when the very first disk failed: nothing changed.
    if (c.atomic || !faults.noTransaction || failure.index === 0) return { facts: [], refusal: failed(message) };

    // 5. No transaction, failure part way: the disks before the failing one were switched to their overlays and
    //    stay so. Record exactly that: per-disk outcome, the snapshot covering only those disks, their mirrors.
    //    What else was decided (--halt) did not happen: the command failed.
    const done = new Set(disks.slice(0, failure.index).map((d) => d.target));
    const facts: Fact[] = [];
    for (const f of decided) {
      if (f.type === 'SnapshotCreated') {
        const snapDisks = f.snapshot.disks.map((d) => (done.has(d.target) || d.snapshot === 'no' ? d : { target: d.target, snapshot: 'no' as const }));
        facts.push({ ...f, snapshot: { ...f.snapshot, disks: snapDisks, mirrored: snapDisks.some((d) => d.mirror !== undefined) } });
      } else if (f.type === 'SnapshotDisksChanged') {
        facts.push({
          ...f,
          disks: f.disks.map((d) =>
            done.has(d.target)
              ? d
              : {
                  target: d.target,
                  changed: false,
                  file: d.file,
                  error: d.target === failure.target ? `operation failed: ${message}` : `not attempted: disk '${failure.target}' failed before it`,
                },
          ),
        });
      } else if (f.type === 'BlockJobStarted' && done.has(f.job.disk)) {
        facts.push(f);
      }
    }
    return { facts };
  }

  // --- block copy -------------------------------------------------------------------------------------

  function performCopy(s: DomainState, c: CommandOf<'blockcopy'>, decided: Fact[]): EffectResult {
    const started = decided.find(isFact('BlockJobStarted'));
    if (!started?.job.destination) return { facts: decided };
    const dest = posix.normalize(started.job.destination);
    const target = started.job.disk;
    const fail = (text: string, codeName: 'VIR_ERR_OPERATION_FAILED' | 'VIR_ERR_CONFIG_UNSUPPORTED' = 'VIR_ERR_OPERATION_FAILED') => ({
      facts: [],
      refusal: refusal('MIR-COPY', codeName, text),
    });
    const exists = world.images.has(dest);
    if (c.reuseExternal && !exists) return fail(`missing destination file for disk ${target}: ${dest}: ${ENOENT}`);
    if (!c.reuseExternal && exists)
      return fail(`external destination file for disk ${target} already exists and is not a block device: ${dest}`, 'VIR_ERR_CONFIG_UNSUPPORTED');
    const source = diskSource(s, target);
    const { chain, missing } = source ? chainIn(world.images, source) : { chain: [], missing: undefined };
    if (missing) return fail(`block copy of disk '${target}' failed: Could not open '${missing}': ${ENOENT}`);
    const size = (c.shallow ? chain.slice(0, 1) : chain).reduce((n, p) => n + (world.images.get(p)?.size ?? 0), 0);
    const planned = new Map<string, number>();
    const err = c.reuseExternal ? storages.cannotWrite(dest, size, planned) : storages.cannotCreate(dest, size, planned);
    if (err) return fail(`block copy of disk '${target}' into '${dest}' failed: ${err}`);
    return { facts: decided };
  }

  // --- ending jobs: pivot / abort (MIR-END, MIR-PARTIAL) -------------------------------------------------

  function performJobEnd(s: DomainState, decided: Fact[]): EffectResult {
    const ends = decided.filter(isFact('BlockJobEnded')).filter((f) => f.outcome === 'pivot' || f.outcome === 'abort');
    if (ends.length === 0) return { facts: decided };
    const reopened: Fact[] = [];
    for (const [i, end] of ends.entries()) {
      const outcome = end.outcome as 'pivot' | 'abort';
      let error: string | undefined;
      let chain: string[] = [];
      if (faults.failDisk === i + 1) error = EIO;
      else if (end.source !== undefined) {
        // Reopening reads the header again: relative backing names resolve against the image's own folder.
        const r = chainIn(world.images, end.source);
        chain = r.chain;
        if (r.missing !== undefined)
          error = r.missing === posix.normalize(end.source) ? `Could not open '${r.missing}': ${ENOENT}` : `Could not open backing file: Could not open '${r.missing}': ${ENOENT}`;
      }
      if (error !== undefined) {
        const text = `block job '${end.disk}' failed while ${outcome === 'pivot' ? 'pivoting' : 'aborting'}: ${error}`;
        // The first disk failed: nothing moved. Later: the earlier disks stay reopened (MIR-PARTIAL).
        if (i === 0) return { facts: [], refusal: refusal('MIR-END', 'VIR_ERR_OPERATION_FAILED', text) };
        return { facts: [...reopened, { type: 'BlockJobEndFailed', disk: end.disk, outcome, error: `operation failed: ${text}` }] };
      }
      reopened.push(end);
      if (outcome === 'pivot' && chain.length > 0) reopened.push({ type: 'BackingChainChanged', disk: end.disk, chain });
    }
    // All reopened: the decided facts, with the chain each pivot opened right after its BlockJobEnded.
    const facts: Fact[] = [];
    for (const f of decided) {
      facts.push(f);
      if (f.type === 'BlockJobEnded' && f.outcome === 'pivot') {
        const chain = reopened.find((r): r is FactOf<'BackingChainChanged'> => r.type === 'BackingChainChanged' && r.disk === f.disk);
        if (chain) facts.push(chain);
      }
    }
    return { facts };
  }

  // --- blockpull ----------------------------------------------------------------------------------------

  function performPull(s: DomainState, c: CommandOf<'blockpull'>, decided: Fact[]): EffectResult {
    const disk = findDisk(s, c.path);
    if (!disk?.source) return { facts: [], refusal: refusal(PULL_RULE, 'VIR_ERR_OPERATION_FAILED', `disk '${c.path}' has no source to pull into`) };
    const top = posix.normalize(disk.source);
    const { chain, missing } = chainIn(world.images, top);
    if (missing !== undefined)
      return { facts: [], refusal: refusal(PULL_RULE, 'VIR_ERR_OPERATION_FAILED', `block pull of disk '${disk.target}' failed: Could not open '${missing}': ${ENOENT}`) };
    let baseIndex = chain.length;
    if (c.base !== undefined) {
      const base = posix.normalize(c.base.startsWith('/') ? c.base : posix.join(posix.dirname(top), c.base));
      baseIndex = chain.indexOf(base);
      if (baseIndex < 1)
        return { facts: [], refusal: refusal(PULL_RULE, 'VIR_ERR_INVALID_ARG', `could not find image '${c.base}' beneath '${top}' in chain for '${disk.target}'`) };
    }
    const pulled = chain.slice(1, baseIndex).reduce((n, p) => n + (world.images.get(p)?.size ?? 0), 0);
    const err = storages.cannotWrite(top, pulled, new Map());
    if (err) return { facts: [], refusal: refusal(PULL_RULE, 'VIR_ERR_OPERATION_FAILED', `block pull of disk '${disk.target}' into '${top}' failed: ${err}`) };
    const newChain = [top, ...chain.slice(baseIndex)];
    const facts: Fact[] = [];
    for (const f of decided) {
      if (f.type === 'BlockJobEnded') facts.push({ type: 'BackingChainChanged', disk: disk.target, chain: newChain });
      facts.push(f);
    }
    return { facts };
  }

  // --- perform ------------------------------------------------------------------------------------------

  async function perform(s: DomainState, c: Command, decided: Fact[]): Promise<EffectResult> {
    await sync();
    const locked = checkLocks(s, decided);
    if (locked) return { facts: [], refusal: locked };
    switch (c.verb) {
      case 'snapshot-create':
        return performSnapshot(s, c, decided);
      case 'blockcopy':
        return performCopy(s, c, decided);
      case 'blockjob':
      case 'snapshot-delete':
        return performJobEnd(s, decided);
      case 'blockpull':
        return performPull(s, c, decided);
      case 'guest-event':
        // The hypervisor, not the caller, knows whether a job is ready.
        return { facts: faults.mirrorNeverReady ? decided.filter((f) => f.type !== 'BlockJobReady') : decided };
      default:
        return { facts: decided };
    }
  }

  // --- host-side operations and queries --------------------------------------------------------------

  async function recordStorage(event: StorageEvent): Promise<void> {
    if (!store) {
      applyStorageEvent(world, event);
      return;
    }
    const { type, ...data } = event;
    // A host-side operation happens now (it is no command of the ledger): its id only has to be unique. Like every
    // stream of the log it is hash-chained (the audit replay checks that), so append on top of the last fact seen.
    const metadata = { commandId: `storage-${randomUUID()}`, actor: 'hypervisor', time: new Date().toISOString() };
    for (;;) {
      const revision = await store.streamRevision(STORAGE_STREAM);
      let previous: string | undefined;
      if (revision !== 'no-stream') {
        for await (const e of store.readStream(STORAGE_STREAM, revision)) previous = typeof e.metadata.hash === 'string' ? e.metadata.hash : undefined;
      }
      const hash = factHash(previous, type, data);
      try {
        await store.append(STORAGE_STREAM, [{ type, data, metadata: { ...metadata, hash } }], {
          expectedRevision: revision === 'no-stream' ? 'no-stream' : revision,
        });
        break;
      } catch (error) {
        if (!(error instanceof WrongExpectedRevisionError)) throw error;
      }
    }
    await sync();
  }

  async function pendingGuestEvents(): Promise<CommandInput[]> {
    await sync();
    if (faults.mirrorNeverReady) return [];
    const out: CommandInput[] = [];
    for (const [stream, fold] of Object.entries(world.streams)) {
      const s = fold.state;
      if (!runsOnHost(s)) continue;
      for (const job of Object.values(s.blockJobs)) {
        if (job.phase !== 'copying' || (job.kind !== 'copy' && job.kind !== 'snapshot-mirror')) continue;
        const started = world.jobStarts.get(`${stream}\u0000${job.disk}`);
        const time = started?.time && !Number.isNaN(Date.parse(started.time)) ? started.time : new Date(0).toISOString();
        out.push({
          verb: 'guest-event',
          host: s.host,
          domain: s.name,
          event: 'blockjob-ready',
          disk: job.disk,
          // In the ledger's own id namespace (machines/names.ts): no client can send this id first and take its outcome.
          meta: { commandId: internalCommandId('hv', `ready-${stream}-${job.disk}-${started?.position ?? 0}`), actor: 'hypervisor', time },
        });
      }
    }
    return out;
  }

  return {
    name: 'simulated',
    faults,
    perform,
    // Its world is the log (see the top of this file), so an effect whose result was never appended left no trace
    // anywhere: not performed. (It writes no intents itself, having no hasEffect; this answers for a store whose
    // intents another run of it left.)
    settle: async () => ({ performed: false }),
    async migrationPhase(phase) {
      // The saga (services/migration.ts) asks before each phase; it records the failure on the source and undoes
      // what the destination had done, so the domain returns to where it was.
      return faults.migrateFail.includes(phase) ? `injected fault migrate-fail:${phase}` : undefined;
    },
    sync,
    observe(host, name, facts, command) {
      const stream = domainStream(host, name);
      const commandId = command?.meta.commandId ?? `observed-${observed + 1}`;
      facts.forEach((fact, i) => {
        const { type, ...data } = fact;
        foldEvent(world, {
          stream,
          revision: (world.streams[stream]?.revision ?? -1) + 1,
          position: ++observed,
          type,
          data,
          metadata: { commandId, actor: command?.meta.actor ?? 'test', time: command?.meta.time ?? '', ...(i === 0 && command ? { command } : {}) },
        });
      });
    },
    async createImage(input) {
      const image = ImageSchema.parse(input);
      await sync();
      await recordStorage({ type: 'ImageCreated', image });
    },
    async copyImages(copies) {
      await sync();
      const parsed = z.array(z.object({ from: absolutePath, to: absolutePath })).parse(copies);
      for (const { from } of parsed) if (!world.images.has(from)) throw new Error(`cp: cannot stat '${from}': ${ENOENT}`);
      await recordStorage({ type: 'ImagesCopied', copies: parsed });
    },
    async image(path) {
      await sync();
      const image = world.images.get(posix.normalize(path));
      return image ? { ...image } : undefined;
    },
    async chainOf(path) {
      await sync();
      return chainIn(world.images, path);
    },
    async diskChain(host, name, disk) {
      await sync();
      const source = diskSource(stateOf(host, name), disk);
      return source ? chainIn(world.images, source).chain : [];
    },
    async domain(host, name) {
      await sync();
      return stateOf(host, name);
    },
    async activeHosts(uuid) {
      await sync();
      return Object.values(world.streams)
        .map((f) => f.state)
        .filter((s) => s.uuid === uuid && runsOnHost(s))
        .map((s) => s.host);
    },
    pendingGuestEvents,
    async pendingReports(state) {
      // The common case (no copy or mirror still copying on this domain) answers without reading the log.
      if (faults.mirrorNeverReady || !runsOnHost(state)) return [];
      const copying = Object.values(state.blockJobs).some((j) => j.phase === 'copying' && (j.kind === 'copy' || j.kind === 'snapshot-mirror'));
      if (!copying) return [];
      return (await pendingGuestEvents()).filter((e) => e.verb === 'guest-event' && e.host === state.host && e.domain === state.name);
    },
    async flushGuestEvents(execute) {
      let n = 0;
      const seen = new Set<string>();
      for (;;) {
        const pending = (await pendingGuestEvents()).filter((e) => !seen.has(e.meta.commandId));
        if (pending.length === 0) return n;
        for (const e of pending) {
          seen.add(e.meta.commandId);
          await execute(e);
          n++;
        }
      }
    },
  };
}
