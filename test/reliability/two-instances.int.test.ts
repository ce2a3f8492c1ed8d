// Two `vmledger serve` PROCESSES on one SQLite file, sharing the NATS queue group, while 16 clients race on the
// same 4 domains with the commands whose rules a race could slip past: snapshot-create with three names, undefine
// with and without --snapshots-metadata, migrate between two hosts, start/destroy. (test/nats/concurrency.int.test.ts
// races three instances inside one process; here each instance has its own process, SQLite connection, caches and
// host index, so only the store's optimistic concurrency stands between them.) Afterwards the log must show that no
// rule was bypassed: never two snapshots with one name, never an undefine of an inactive domain that keeps snapshots,
// never a migration with snapshots, and every recorded decision is accepted again by the audit replay.
import { join } from 'node:path';

import { Svcm } from '@nats-io/services';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openEventStore } from '../../services/eventstore/index';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { checkLog, describeRun, killServeChildren, mixedCommand, runSeed, spawnServe, startLoad } from '../support/reliability';
import { connectLikeProduction, tempDir } from '../nats/fixtures';

const CLIENTS = 16;
const COMMANDS_PER_CLIENT = 60;
const DOMAINS = ['race-a', 'race-b', 'race-c', 'race-d'];
const HOSTS = ['local', 'dst'];

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir('vmledger-two-instances-');
});

afterAll(async () => {
  await killServeChildren();
  await server?.stop();
  tmp?.remove();
});

/** Requests each instance served, from `$SRV.STATS.vmledger`, by instance id. */
async function requestsPerInstance(url: string): Promise<Map<string, number>> {
  const nc = await connectLikeProduction(url, 'stats');
  try {
    const out = new Map<string, number>();
    for await (const s of await new Svcm(nc).client().stats('vmledger')) {
      out.set(s.id, (s.endpoints ?? []).reduce((sum, e) => sum + e.num_requests, 0));
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe('two service processes on one store, racing on the same domains', () => {
  it('let no race bypass a rule: replay and the invariants hold, every reply matches the log', async () => {
    const seed = runSeed();
    const file = join(tmp.dir, 'shared.sqlite');
    const started = Date.now();
    const serves = [await spawnServe(server.url, file), await spawnServe(server.url, file)];
    expect(new Set(serves.map((s) => s.pid)).size).toBe(2);

    const load = startLoad({
      url: server.url,
      clients: CLIENTS,
      idPrefix: 'two',
      seed,
      maxPerClient: COMMANDS_PER_CLIENT,
      next: (rand) => mixedCommand(rand, { domains: DOMAINS, hosts: HOSTS, migrate: true, snapshots: ['s1', 's2', 's3'] }),
      requestTimeoutMs: 10_000,
    });
    await load.done;

    const served = await requestsPerInstance(server.url);
    expect(served.size, 'both instances answer $SRV.STATS').toBe(2);
    expect([...served.values()].every((n) => n > 50), `requests per instance: ${[...served.values()].join(', ')}`).toBe(true);
    for (const serve of serves) {
      expect(serve.output(), 'no handler failed').not.toMatch(/handler for .* threw/);
      expect((await serve.terminate()).code, serve.output()).toBe(0);
    }
    const elapsed = Date.now() - started;

    expect(load.gaveUp).toEqual([]);
    expect(load.outcomes.size).toBe(CLIENTS * COMMANDS_PER_CLIENT);
    const store = await openEventStore(`sqlite:${file}`);
    try {
      const check = await checkLog(store, load.outcomes.values(), { complete: true });
      console.log(
        `${describeRun(`two processes (seed ${seed})`, load.stats, check, elapsed)}; served ${[...served.values()].join(' + ')}; ` +
          `${check.snapshotsCreated} snapshots created, ${check.undefines} undefines, ${check.migrationsStarted} migrations started`,
      );
      expect(check.problems, `seed ${seed}`).toEqual([]);
      // The race was real: the rules the brief names were exercised, accepted and refused.
      expect(check.snapshotsCreated).toBeGreaterThan(10);
      expect(check.undefines).toBeGreaterThan(3);
      expect(load.stats.byRule['SC-EXISTS'] ?? 0, 'snapshot-create refused for an existing name').toBeGreaterThan(0);
      expect((load.stats.byRule['UND-SNAPSHOTS'] ?? 0) + (load.stats.byRule['MIG-SNAPSHOTS'] ?? 0)).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });
});
