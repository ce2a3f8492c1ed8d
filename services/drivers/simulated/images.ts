// What the facts do to the images: a disk source first seen is an image, a snapshot creates overlays, a copy or a
// mirror its destination, a pull rewrites the chain, an undefine removes volumes; and how an image's backing
// chain resolves, relative names as qemu reads them.
import { posix } from 'node:path';

import type { Command } from '../../../machines/commands';
import type { Fact } from '../../../machines/events';
import type { DomainState } from '../../../machines/model';
import { DEFAULT_IMAGE_SIZE, OVERLAY_SIZE, type Image } from './config';
import type { ChainResolution, World } from './types';

export function resolveBacking(image: Image): string | undefined {
  if (image.backing === undefined) return undefined;
  return posix.normalize(image.backing.startsWith('/') ? image.backing : posix.join(posix.dirname(image.path), image.backing));
}

export function chainIn(images: Map<string, Image>, top: string): ChainResolution {
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

export function diskSource(s: DomainState | undefined, target: string): string | undefined {
  return s?.config?.disks.find((d) => d.target === target)?.source;
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
export function applyToImages(world: World, before: DomainState | undefined, fact: Fact, command: Command | undefined): void {
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
