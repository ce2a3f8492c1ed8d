// The simulated hypervisor's configuration: storage locations (path prefixes with a capacity and a read-only
// flag) and the images that exist before the log starts. The faults of a run are configured apart (../faults.ts).
import { posix } from 'node:path';
import { z } from 'zod';

import { normalizePrefix } from '../faults';

/** Size of an image nobody described (a disk source first seen in a domain's config). */
export const DEFAULT_IMAGE_SIZE = 1024 ** 3;
/** Size of a fresh qcow2 overlay (header and empty tables). */
export const OVERLAY_SIZE = 196_608;

export const absolutePath = z
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
