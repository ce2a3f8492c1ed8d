// Storage checks: which location serves a path, whether it is read-only (configured, or a `readonly:` fault),
// how much room is left (its capacity, or none under a `full:` fault), and the errno text a write gets.
import type { Faults } from '../faults';
import { underPrefix } from '../faults';
import type { Image, SimulatedWorld, Storage } from './config';

export const EROFS = 'Read-only file system';
export const ENOSPC = 'No space left on device';
export const ENOENT = 'No such file or directory';
export const EIO = 'Input/output error';

/** Bytes an operation has planned so far, by path: several writes of one operation share the free room. */
export type Planned = Map<string, number>;

export interface Storages {
  /** Why a new image of `size` bytes cannot be written at `path` (errno text), or undefined. */
  cannotCreate(path: string, size: number, planned: Planned): string | undefined;
  /** Why `size` more bytes cannot be written into the existing image at `path`, or undefined. */
  cannotWrite(path: string, size: number, planned: Planned): string | undefined;
}

export function storageChecks(config: SimulatedWorld, faults: Faults, images: Map<string, Image>): Storages {
  /** The configured location serving a path (the longest prefix), or unlimited writable root storage. */
  function location(path: string): Storage {
    let best: Storage = { path: '/', readonly: false };
    for (const s of config.storage) if (underPrefix(path, s.path) && s.path.length >= best.path.length) best = s;
    return best;
  }

  function readonly(path: string): boolean {
    return location(path).readonly || faults.readonly.some((p) => underPrefix(path, p));
  }

  /** Bytes free where `path` would live, minus what this operation has already planned there. */
  function free(path: string, planned: Planned): number {
    if (faults.full.some((p) => underPrefix(path, p))) return 0;
    const loc = location(path);
    if (loc.capacity === undefined) return Number.POSITIVE_INFINITY;
    const mine = (p: string) => location(p).path === loc.path;
    let used = 0;
    for (const image of images.values()) if (mine(image.path)) used += image.size;
    for (const [p, size] of planned) if (mine(p)) used += size;
    return loc.capacity - used;
  }

  return {
    cannotCreate(path, size, planned) {
      if (readonly(path)) return EROFS;
      if (free(path, planned) < size) return ENOSPC;
      planned.set(path, (planned.get(path) ?? 0) + size);
      return undefined;
    },
    cannotWrite(path, size, planned) {
      if (readonly(path)) return EROFS;
      if (size > 0 && free(path, planned) < size) return ENOSPC;
      if (size > 0) planned.set(path, (planned.get(path) ?? 0) + size);
      return undefined;
    },
  };
}
