// Soak (opt-in): mixed commands from many clients through `vmledger serve` on NATS for a few minutes, bounded in
// time and in count; two service processes share the store and the queue group, commands migrate domains between
// two hosts. Every 15 s it prints the rate and the services' memory; at the end every reply is tied to the log,
// the invariants are checked on the fold and the audit replay must be clean.
//
//   VMLEDGER_SOAK=1 [VMLEDGER_SOAK_SECONDS=180] npx vitest run test/reliability/soak.int.test.ts
//   (or: npm run soak)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openEventStore } from '../../services/eventstore/index';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { checkLog, describeRun, killServeChildren, mixedCommand, runSeed, sleep, spawnServe, startLoad, type ServeProcess } from '../support/reliability';
import { tempDir } from '../nats/fixtures';

const SECONDS = Math.max(5, Number(process.env.VMLEDGER_SOAK_SECONDS ?? 180));
const CLIENTS = 32;
const DOMAINS = Array.from({ length: 40 }, (_, i) => `soak-${String(i).padStart(2, '0')}`);
/** A bound on the count too, whatever the speed of the machine. */
const MAX_COMMANDS = SECONDS * 2_000;

/** Resident memory of a process in MiB (Linux), or NaN. */
function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

describe.skipIf(!process.env.VMLEDGER_SOAK)('soak (opt-in: set VMLEDGER_SOAK=1; VMLEDGER_SOAK_SECONDS sets its length, default 180)', () => {
  let server: NatsServerHandle;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    server = await startNatsServer();
    tmp = tempDir('vmledger-soak-');
  });

  afterAll(async () => {
    await killServeChildren();
    await server?.stop();
    tmp?.remove();
  });

  it(
    `${CLIENTS} clients, mixed commands on ${DOMAINS.length} domains and 2 hosts, 2 service processes, for ${SECONDS} s: replay clean`,
    async () => {
      const seed = runSeed();
      const file = join(tmp.dir, 'soak.sqlite');
      const serves: ServeProcess[] = [await spawnServe(server.url, file), await spawnServe(server.url, file)];
      const memoryAtStart = serves.map((s) => rssMiB(s.pid));
      const started = Date.now();
      const load = startLoad({
        url: server.url,
        clients: CLIENTS,
        idPrefix: 'soak',
        seed,
        maxPerClient: Math.ceil(MAX_COMMANDS / CLIENTS),
        next: (rand) => mixedCommand(rand, { domains: DOMAINS, hosts: ['local', 'dst'], migrate: true }),
        requestTimeoutMs: 10_000,
      });

      const samples: string[] = [];
      let lastSent = 0;
      let lastAt = started;
      let finished = false;
      void load.done.then(() => (finished = true));
      while (!finished && Date.now() - started < SECONDS * 1000) {
        await sleep(Math.min(15_000, SECONDS * 1000 - (Date.now() - started)));
        const now = Date.now();
        const line =
          `t=${Math.round((now - started) / 1000)} s: ${load.stats.sent} commands, ` +
          `${Math.round((load.stats.sent - lastSent) / ((now - lastAt) / 1000))}/s, ` +
          `rss ${serves.map((s) => rssMiB(s.pid)).join('+')} MiB`;
        samples.push(line);
        console.log(`soak ${line}`);
        lastSent = load.stats.sent;
        lastAt = now;
        for (const s of serves) expect(s.alive(), s.output()).toBe(true);
      }
      await load.stop();
      const elapsed = Date.now() - started;
      const memoryAtEnd = serves.map((s) => rssMiB(s.pid));
      for (const s of serves) {
        expect(s.output()).not.toMatch(/handler for .* threw/);
        expect((await s.terminate()).code, s.output()).toBe(0);
      }

      expect(load.gaveUp).toEqual([]);
      expect(load.outcomes.size).toBe(load.sent.size);
      const store = await openEventStore(`sqlite:${file}`);
      try {
        const check = await checkLog(store, load.outcomes.values(), { complete: true });
        console.log(
          `${describeRun(`soak (seed ${seed})`, load.stats, check, elapsed)}; replay ${check.replay.rate.toFixed(0)} facts/s; ` +
            `service memory ${memoryAtStart.join('+')} → ${memoryAtEnd.join('+')} MiB; ` +
            `${check.snapshotsCreated} snapshots created, ${check.undefines} undefines, ${check.migrationsStarted} migrations started`,
        );
        expect(check.problems, `seed ${seed}`).toEqual([]);
        expect(check.replay.ok).toBe(true);
      } finally {
        await store.close();
      }
    },
    SECONDS * 1000 + 180_000,
  );
});
