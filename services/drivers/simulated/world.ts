// The simulated hypervisor's world and how it is folded: the images (images.ts says what each fact does to them),
// every domain stream's state, the start of each running block job; and the `hypervisor-storage` stream, where the
// host-side image operations (`qemu-img create`, `cp`) are recorded. The whole world is a fold of the global log.
import { z } from 'zod';

import type { Fact, FactOf } from '../../../machines/events';
import { domainStream, type DomainState } from '../../../machines/model';
import { foldDomainEvent } from '../../../projections/domainList';
import { commandOf, factOf, isDomainStream, isEffectRecord } from '../../../projections/log';
import type { RecordedEvent } from '../../eventstore/types';


import { absolutePath, ImageSchema, type SimulatedWorld } from './config';
import { applyToImages } from './images';
import type { World } from './types';

/** The stream holding host-side image operations (`qemu-img create`, `cp`): not a domain, so projections skip it. */
export const STORAGE_STREAM = 'hypervisor-storage';

export const StorageEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ImageCreated'), image: ImageSchema }),
  z.object({ type: z.literal('ImagesCopied'), copies: z.array(z.object({ from: absolutePath, to: absolutePath })) }),
]);
export type StorageEvent = z.infer<typeof StorageEventSchema>;

export function emptyWorld(config: SimulatedWorld): World {
  const world: World = { images: new Map(), streams: {}, jobStarts: new Map(), position: 0 };
  for (const image of config.images) world.images.set(image.path, image);
  return world;
}

export function stateOf(world: World, host: string, name: string): DomainState | undefined {
  return world.streams[domainStream(host, name)]?.state;
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

export function applyStorageEvent(world: World, e: StorageEvent): void {
  if (e.type === 'ImageCreated') {
    world.images.set(e.image.path, e.image);
    return;
  }
  for (const { from, to } of e.copies) {
    const image = world.images.get(from);
    if (image) world.images.set(to, { ...image, path: to });
  }
}

export function foldEvent(world: World, event: RecordedEvent): void {
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

export function isFact<T extends Fact['type']>(type: T) {
  return (f: Fact): f is FactOf<T> => f.type === type;
}
