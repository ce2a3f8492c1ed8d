// The simulated hypervisor: a deterministic stand-in for qemu + libvirt that performs what the machine decided
// on a model of storage and images, and reports what really happened (docs/rules.md §5 SC-ATOMIC, §6, §7).
// What lives where:
//   index.ts      createSimulatedDriver: the driver, perform()'s dispatch by verb, the host-side operations
//   types.ts      its options and its interface (SimulatedDriver)
//   config.ts     the configuration: storage locations, images that exist before the log starts
//   world.ts      the world and its fold from the log; the `hypervisor-storage` stream's events
//   images.ts     what each fact does to the images; backing chains, relative names resolved as qemu does
//   storage.ts    room and read-only checks on storage, errno texts
//   log.ts        folding the store's log up to its head; appending to the storage stream (p-retry on a race)
//   locks.ts      leases and image write locks (DRV-LOCK)
//   snapshot.ts   snapshot-create disk by disk (SC-ATOMIC)
//   blockjobs.ts  blockcopy, ending jobs by pivot/abort (MIR-COPY, MIR-END, MIR-PARTIAL), blockpull (DRV-BLOCKPULL)
//   reports.ts    what the hypervisor reports on its own (blockjob-ready)
// The faults of a run are configuration (../faults.ts); each module applies those that concern it: readonly and
// full in storage.ts, fail-disk in snapshot.ts and blockjobs.ts, no-transaction in snapshot.ts,
// mirror-never-ready in reports.ts and perform(), migrate-fail in migrationPhase() below.
//
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
import { posix } from 'node:path';
import { z } from 'zod';

import type { Command, CommandInput } from '../../../machines/commands';
import type { Fact } from '../../../machines/events';
import { domainStream, type DomainState } from '../../../machines/model';
import { FaultsSchema } from '../faults';
import type { EffectResult } from '../types';
import { performCopy, performJobEnd, performPull } from './blockjobs';
import { absolutePath, ImageSchema, SimulatedWorldSchema } from './config';
import { chainIn, diskSource } from './images';
import { checkLocks } from './locks';
import { logSync, recordStorage } from './log';
import { flushGuestEvents, pendingGuestEvents, pendingReportsOf } from './reports';
import { performSnapshot } from './snapshot';
import { ENOENT, storageChecks } from './storage';
import type { Sim, SimulatedDriver, SimulatedDriverOptions } from './types';
import { emptyWorld, foldEvent, runsOnHost, stateOf, type StorageEvent } from './world';

export { DEFAULT_IMAGE_SIZE, OVERLAY_SIZE, ImageSchema, StorageSchema, SimulatedWorldSchema } from './config';
export type { Image, ImageInput, SimulatedWorld, SimulatedWorldInput, Storage } from './config';
export { LOCK_RULE } from './locks';
export { PULL_RULE } from './blockjobs';
export type { ChainResolution, SimulatedDriver, SimulatedDriverOptions } from './types';
export { STORAGE_STREAM, handedOff, runsOnHost } from './world';

export function createSimulatedDriver(options: SimulatedDriverOptions = {}): SimulatedDriver {
  const config = SimulatedWorldSchema.parse(options.world ?? {});
  const faults = FaultsSchema.parse(options.faults ?? {});
  const store = options.store;

  const world = emptyWorld(config);
  const storages = storageChecks(config, faults, world.images);
  const sim: Sim = { config, faults, world, storages };
  /** Positions for facts observed without a store. */
  let observed = 0;

  const sync = logSync(store, world);
  const record = (event: StorageEvent) => recordStorage(store, world, sync, event);
  const pending = () => pendingGuestEvents(world, faults, sync);

  async function perform(s: DomainState, c: Command, decided: Fact[]): Promise<EffectResult> {
    await sync();
    const locked = checkLocks(world, s, decided);
    if (locked) return { facts: [], refusal: locked };
    switch (c.verb) {
      case 'snapshot-create':
        return performSnapshot(sim, s, c, decided);
      case 'blockcopy':
        return performCopy(sim, s, c, decided);
      case 'blockjob':
      case 'snapshot-delete':
        return performJobEnd(sim, decided);
      case 'blockpull':
        return performPull(sim, s, c, decided);
      case 'guest-event':
        // The hypervisor, not the caller, knows whether a job is ready.
        return { facts: faults.mirrorNeverReady ? decided.filter((f) => f.type !== 'BlockJobReady') : decided };
      default:
        return { facts: decided };
    }
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
      await record({ type: 'ImageCreated', image });
    },
    async copyImages(copies) {
      await sync();
      const parsed = z.array(z.object({ from: absolutePath, to: absolutePath })).parse(copies);
      for (const { from } of parsed) if (!world.images.has(from)) throw new Error(`cp: cannot stat '${from}': ${ENOENT}`);
      await record({ type: 'ImagesCopied', copies: parsed });
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
      const source = diskSource(stateOf(world, host, name), disk);
      return source ? chainIn(world.images, source).chain : [];
    },
    async domain(host, name) {
      await sync();
      return stateOf(world, host, name);
    },
    async activeHosts(uuid) {
      await sync();
      return Object.values(world.streams)
        .map((f) => f.state)
        .filter((s) => s.uuid === uuid && runsOnHost(s))
        .map((s) => s.host);
    },
    pendingGuestEvents: pending,
    pendingReports: (state: DomainState) => pendingReportsOf(state, faults, pending),
    flushGuestEvents: (execute: (command: CommandInput) => Promise<unknown>) => flushGuestEvents(pending, execute),
  };
}
