// snapshot-create on the simulated hypervisor (SC-ATOMIC): overlays (and mirrors) disk by disk; REUSE_EXT needs
// the file, otherwise it must not exist; read-only or full storage and `fail-disk:N` fail a disk; with
// `no-transaction` a multi-disk snapshot can end part way, and the facts say exactly how far it got.
import { posix } from 'node:path';

import type { CommandOf } from '../../../machines/commands';
import { refusal } from '../../../machines/errors';
import type { Fact } from '../../../machines/events';
import type { DomainState } from '../../../machines/model';
import type { EffectResult } from '../types';
import { OVERLAY_SIZE } from './config';
import { EIO, ENOENT } from './storage';
import type { Sim } from './types';
import { isFact } from './world';

const failed = (text: string) => refusal('SC-ATOMIC', 'VIR_ERR_OPERATION_FAILED', text);

export function performSnapshot(sim: Sim, s: DomainState, c: CommandOf<'snapshot-create'>, decided: Fact[]): EffectResult {
  const { world, faults, storages } = sim;
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
