// Whether a guest may start here: its lease (the same UUID active on another host) and qemu's write locks on
// its images (DRV-LOCK), what keeps a domain from running on two hosts at once.
import { posix } from 'node:path';

import type { Fact } from '../../../machines/events';
import { refusal, type Refusal } from '../../../machines/errors';
import { domainStream, type DomainState } from '../../../machines/model';
import type { World } from './types';
import { handedOff, runsOnHost } from './world';

/**
 * Rule id of the hypervisor's own refusal to start a guest that runs elsewhere: the domain's lease (a cluster
 * lock manager's per-domain lease, as sanlock gives oVirt) is held on another host, or an image it would open
 * for writing is write-locked by another running qemu (qemu image locking, virtlockd).
 */
export const LOCK_RULE = 'DRV-LOCK';

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

function lockHolder(world: World, path: string, except: string): DomainState | undefined {
  const p = posix.normalize(path);
  for (const [stream, fold] of Object.entries(world.streams)) {
    if (stream === except) continue;
    if (lockedImages(fold.state).includes(p)) return fold.state;
  }
  return undefined;
}

/** qemu refuses to open an image another qemu holds the write lock on (image locking, virtlockd). */
export function checkLocks(world: World, s: DomainState, decided: Fact[]): Refusal | undefined {
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
    const holder = lockHolder(world, d.source, me);
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
