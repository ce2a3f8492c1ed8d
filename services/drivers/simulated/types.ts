// The simulated driver's types: its options and its interface (what it answers beyond a HypervisorDriver), and
// the world its modules work on.
import type { Command, CommandInput } from '../../../machines/commands';
import type { Fact } from '../../../machines/events';
import type { DomainState } from '../../../machines/model';
import type { EventStore } from '../../eventstore/types';
import type { MigrationAwareDriver } from '../../migration';
import type { StreamFold } from '../../../projections/domainList';
import type { Faults, FaultsInput } from '../faults';
import type { Image, ImageInput, SimulatedWorld, SimulatedWorldInput } from './config';
import type { Storages } from './storage';

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
// The world (folded by world.ts)

export interface World {
  images: Map<string, Image>;
  streams: Record<string, StreamFold>;
  /** Global position and command time of the BlockJobStarted of each running job, by `stream\0disk`. */
  jobStarts: Map<string, { position: number; time: string }>;
  position: number;
  /** The command of the decision being folded (carried by its first fact). */
  command?: { id: string; command: Command };
}

/** What performing a decision works on: the configuration, the faults of the run, the world, its storage checks. */
export interface Sim {
  config: SimulatedWorld;
  faults: Faults;
  world: World;
  storages: Storages;
}
