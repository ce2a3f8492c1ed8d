// Block jobs on the simulated hypervisor: a copy's destination and room (MIR-COPY); ending jobs by pivot or abort,
// each disk reopened in turn with its mirror's header read again (MIR-END, MIR-PARTIAL: the disks done stay
// done); blockpull's `--base` below the top of the open chain, which then backs onto it (DRV-BLOCKPULL).
import { posix } from 'node:path';

import type { CommandOf } from '../../../machines/commands';
import { refusal } from '../../../machines/errors';
import type { Fact, FactOf } from '../../../machines/events';
import { findDisk } from '../../../machines/guards';
import type { DomainState } from '../../../machines/model';
import type { EffectResult } from '../types';
import { chainIn, diskSource } from './images';
import { EIO, ENOENT } from './storage';
import type { Sim } from './types';
import { isFact } from './world';

/** Rule id of the hypervisor's refusal of a blockpull: `--base` not below the top of the open chain, a missing
 * image, no room to pull into. (The machine's checks come first: ACT-REQ, MIR-BLOCKS.) */
export const PULL_RULE = 'DRV-BLOCKPULL';

export function performCopy({ world, storages }: Sim, s: DomainState, c: CommandOf<'blockcopy'>, decided: Fact[]): EffectResult {
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

export function performJobEnd({ world, faults }: Sim, decided: Fact[]): EffectResult {
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

export function performPull({ world, storages }: Sim, s: DomainState, c: CommandOf<'blockpull'>, decided: Fact[]): EffectResult {
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
