// Storage checks: which location serves a path, whether it is read-only (configured, or a `readonly:` fault),
// how much room is left (its capacity, or none under a `full:` fault), and the errno text a write gets.
import type { Faults } from '../faults';
import { underPrefix } from '../faults';
import type { Image, SimulatedWorld, Storage } from './config';

export const EROFS = 'Read-only file system';
export const ENOSPC = 'No space left on device';
export const ENOENT = 'No such file or directory';
export const EIO = 'Input/output error';

export class Storages {
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
