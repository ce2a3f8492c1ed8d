// What the simulated hypervisor reports on its own: `guest-event blockjob-ready` for every mirror or copy still
// copying on a running domain, none under the `mirror-never-ready` fault. Derived from the world, so a restart
// loses none; the command ids are deterministic, so a report sent twice is an idempotent retry.
import type { CommandInput } from '../../../machines/commands';
import type { DomainState } from '../../../machines/model';
import { internalCommandId } from '../../../machines/names';
import type { Faults } from '../faults';
import type { World } from './types';
import { runsOnHost } from './world';

export async function pendingGuestEvents(world: World, faults: Faults, sync: () => Promise<void>): Promise<CommandInput[]> {
  await sync();
  if (faults.mirrorNeverReady) return [];
  const out: CommandInput[] = [];
  for (const [stream, fold] of Object.entries(world.streams)) {
    const s = fold.state;
    if (!runsOnHost(s)) continue;
    for (const job of Object.values(s.blockJobs)) {
      if (job.phase !== 'copying' || (job.kind !== 'copy' && job.kind !== 'snapshot-mirror')) continue;
      const started = world.jobStarts.get(`${stream}\u0000${job.disk}`);
      const time = started?.time && !Number.isNaN(Date.parse(started.time)) ? started.time : new Date(0).toISOString();
      out.push({
        verb: 'guest-event',
        host: s.host,
        domain: s.name,
        event: 'blockjob-ready',
        disk: job.disk,
        // In the ledger's own id namespace (machines/names.ts): no client can send this id first and take its outcome.
        meta: { commandId: internalCommandId('hv', `ready-${stream}-${job.disk}-${started?.position ?? 0}`), actor: 'hypervisor', time },
      });
    }
  }
  return out;
}

/** The pending guest events of one domain (HypervisorDriver.pendingReports). */
export async function pendingReportsOf(state: DomainState, faults: Faults, pending: () => Promise<CommandInput[]>): Promise<CommandInput[]> {
  // The common case (no copy or mirror still copying on this domain) answers without reading the log.
  if (faults.mirrorNeverReady || !runsOnHost(state)) return [];
  const copying = Object.values(state.blockJobs).some((j) => j.phase === 'copying' && (j.kind === 'copy' || j.kind === 'snapshot-mirror'));
  if (!copying) return [];
  return (await pending()).filter((e) => e.verb === 'guest-event' && e.host === state.host && e.domain === state.name);
}

/** Reports the pending guest events through `execute` until none is left; how many it reported. */
export async function flushGuestEvents(pending: () => Promise<CommandInput[]>, execute: (command: CommandInput) => Promise<unknown>): Promise<number> {
  let n = 0;
  const seen = new Set<string>();
  for (;;) {
    const events = (await pending()).filter((e) => !seen.has(e.meta.commandId));
    if (events.length === 0) return n;
    for (const e of events) {
      seen.add(e.meta.commandId);
      await execute(e);
      n++;
    }
  }
}
