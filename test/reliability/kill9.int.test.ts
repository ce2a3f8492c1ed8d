// kill -9 of `vmledger serve` in the middle of a sustained write load, twice: 16 clients send mixed commands on
// 20 domains through NATS and resend (same command id) whatever got no reply; the service is SIGKILLed while
// requests are in flight and started again on the same SQLite file. Afterwards every reply that said ok is in the
// store (by command id, with its facts), every refusal's audit record too, no command was applied twice, and the
// audit replay finds no violation and no tampering.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openEventStore } from '../../services/eventstore/index';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import {
  checkLog,
  describeRun,
  killServeChildren,
  mixedCommand,
  runSeed,
  spawnServe,
  startLoad,
  type ServeProcess,
} from '../support/reliability';
import { tempDir, waitFor } from '../nats/fixtures';

const CLIENTS = 16;
const DOMAINS = Array.from({ length: 20 }, (_, i) => `k9-${String(i).padStart(2, '0')}`);
/** Accepted commands (with facts) to see between two kills. */
const ACCEPTED_PER_PHASE = 250;

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir('vmledger-kill9-');
});

afterAll(async () => {
  await killServeChildren();
  await server?.stop();
  tmp?.remove();
});

describe('kill -9 of the service under a sustained write load', () => {
  it('twice: every acknowledged command survives with its facts, none is applied twice, replay is clean', async () => {
    const seed = runSeed();
    const file = join(tmp.dir, 'kill9.sqlite');
    const started = Date.now();
    let serve: ServeProcess = await spawnServe(server.url, file);

    const load = startLoad({
      url: server.url,
      clients: CLIENTS,
      idPrefix: 'k9',
      seed,
      next: (rand) => mixedCommand(rand, { domains: DOMAINS }),
      requestTimeoutMs: 2_000,
      commandDeadlineMs: 40_000,
      retryPauseMs: 100,
    });

    const kills: { acceptedBefore: number; inFlight: number }[] = [];
    for (let kill = 0; kill < 2; kill++) {
      const target = load.stats.okWithFacts + ACCEPTED_PER_PHASE;
      await waitFor(() => load.stats.okWithFacts >= target, 30_000, `${ACCEPTED_PER_PHASE} accepted commands before kill ${kill + 1}`);
      const sentBefore = load.stats.sent;
      const repliedBefore = load.outcomes.size;
      await serve.kill9(); // in the middle of the load: requests are in flight, appends queued
      expect((await serve.exited).signal).toBe('SIGKILL');
      kills.push({ acceptedBefore: load.stats.okWithFacts, inFlight: sentBefore - repliedBefore });
      serve = await spawnServe(server.url, file);
    }
    const target = load.stats.okWithFacts + ACCEPTED_PER_PHASE;
    await waitFor(() => load.stats.okWithFacts >= target, 30_000, 'accepted commands after the second restart');
    await load.stop();

    const term = await serve.terminate();
    expect(term.code, serve.output()).toBe(0);
    const elapsed = Date.now() - started;

    // Every command got a reply in the end (the clients resent until the restarted service answered).
    expect(load.gaveUp, `seed ${seed}`).toEqual([]);
    expect(load.outcomes.size).toBe(load.sent.size);
    // Commands were in flight at each kill.
    expect(kills.every((k) => k.inFlight > 0), JSON.stringify(kills)).toBe(true);
    expect(load.stats.resentCommands).toBeGreaterThan(0);

    const store = await openEventStore(`sqlite:${file}`);
    try {
      const check = await checkLog(store, load.outcomes.values(), { complete: true });
      console.log(`${describeRun(`kill -9 ×2 (seed ${seed})`, load.stats, check, elapsed)}; commands awaiting a reply at the kills: ${kills.map((k) => k.inFlight).join(', ')}`);
      expect(check.problems, `seed ${seed}`).toEqual([]);
      expect(check.replay.ok).toBe(true);
      expect(check.replay.decisions).toBeGreaterThanOrEqual(3 * ACCEPTED_PER_PHASE);
      // Every accepted reply's command id is in the store (checkLog compared the facts one by one).
      const accepted = [...load.outcomes.values()].filter((o) => o.ok && o.events.length > 0);
      for (const o of accepted) expect(await store.commandResult(o.commandId), o.commandId).toBeDefined();

      // The check is not vacuous: a reply whose fact is not where it said, or a refusal without its record, is named.
      const forged = [
        { ...accepted[0]!, events: accepted[0]!.events.map((e) => ({ ...e, position: e.position + 1_000_000 })) },
        { ...accepted[1]!, ok: false, rule: 'X', events: [], audit: { stream: 'refusals-local', revision: 0, position: 1 } },
      ];
      const forgedCheck = await checkLog(store, forged, { replay: { anchor: false } });
      expect(forgedCheck.problems.join('\n')).toMatch(/acknowledged fact missing: k9-/);
      expect(forgedCheck.problems.join('\n')).toMatch(/refused command k9-.* has facts in the store/);
    } finally {
      await store.close();
    }
  });
});
