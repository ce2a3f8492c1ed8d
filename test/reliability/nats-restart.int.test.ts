// The nats-server stopped and started again under load, twice (once gracefully, once with kill -9), while 12
// clients keep sending mixed commands to `vmledger serve` and resend (same command id) whatever got no reply.
// Requests are lost, buffered and redelivered, and replies are lost: afterwards every command has exactly one
// outcome, each command id was applied at most once, every acknowledged command is in the store, nothing is in the
// store that no reply accounts for, and the audit replay is clean. The service process never exits.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openEventStore } from '../../services/eventstore/index';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { checkLog, describeRun, killServeChildren, mixedCommand, runSeed, sleep, spawnServe, startLoad } from '../support/reliability';
import { tempDir, waitFor } from '../nats/fixtures';

const CLIENTS = 12;
const DOMAINS = Array.from({ length: 12 }, (_, i) => `nr-${String(i).padStart(2, '0')}`);
const ACCEPTED_PER_PHASE = 150;
const OUTAGE_MS = 1_500;

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir('vmledger-nats-restart-');
});

afterAll(async () => {
  await killServeChildren();
  await server?.stop();
  tmp?.remove();
});

describe('nats-server restarted under load', () => {
  it('twice: each command id applied exactly once, every acknowledged command present, replay clean', async () => {
    const seed = runSeed();
    const file = join(tmp.dir, 'nats-restart.sqlite');
    const started = Date.now();
    const serve = await spawnServe(server.url, file);

    const load = startLoad({
      url: server.url,
      clients: CLIENTS,
      idPrefix: 'nr',
      seed,
      next: (rand) => mixedCommand(rand, { domains: DOMAINS }),
      requestTimeoutMs: 1_500,
      commandDeadlineMs: 40_000,
      retryPauseMs: 100,
    });

    const outages: { signal: NodeJS.Signals; unansweredAtStop: number; errorsDuring: number }[] = [];
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const target = load.stats.okWithFacts + ACCEPTED_PER_PHASE;
      await waitFor(() => load.stats.okWithFacts >= target, 30_000, `${ACCEPTED_PER_PHASE} accepted commands before the outage`);
      const errorsBefore = load.stats.transportErrors;
      const unanswered = load.stats.sent - load.outcomes.size;
      await server.kill(signal);
      await sleep(OUTAGE_MS); // the clients keep sending into the void meanwhile
      await server.restart();
      outages.push({ signal, unansweredAtStop: unanswered, errorsDuring: load.stats.transportErrors - errorsBefore });
      expect(serve.alive(), serve.output()).toBe(true);
    }
    const target = load.stats.okWithFacts + ACCEPTED_PER_PHASE;
    await waitFor(() => load.stats.okWithFacts >= target, 40_000, 'accepted commands after the second restart');
    await load.stop();

    // The service rode out both outages in one process, and stops cleanly.
    expect(serve.alive(), serve.output()).toBe(true);
    expect(serve.output()).toMatch(/disconnected from NATS/);
    expect(serve.output()).toMatch(/reconnected to NATS/);
    expect(serve.output()).not.toMatch(/handler for .* threw/);
    expect((await serve.terminate()).code, serve.output()).toBe(0);
    const elapsed = Date.now() - started;

    // Every command got exactly one final reply; the outages cost resends.
    expect(load.gaveUp, `seed ${seed}`).toEqual([]);
    expect(load.outcomes.size).toBe(load.sent.size);
    expect(outages.every((o) => o.errorsDuring > 0), JSON.stringify(outages)).toBe(true);

    const store = await openEventStore(`sqlite:${file}`);
    try {
      const check = await checkLog(store, load.outcomes.values(), { complete: true });
      console.log(`${describeRun(`nats-server restarted ×2 (seed ${seed})`, load.stats, check, elapsed)}; outages: ${JSON.stringify(outages)}`);
      expect(check.problems, `seed ${seed}`).toEqual([]);
      // Exactly once: the command ids in the log are exactly those whose reply says something was recorded.
      const recorded = [...load.outcomes.values()].filter((o) => o.events.length > 0 || o.audit !== undefined).length;
      expect(check.commandIds).toBe(recorded);
      expect(check.replay.ok).toBe(true);
    } finally {
      await store.close();
    }
  });
});
