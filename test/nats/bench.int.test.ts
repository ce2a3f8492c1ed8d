// bench/nats.ts still runs end to end (a short run; the real numbers come from `npm run bench`).
import { afterAll, beforeAll, expect, it } from 'vitest';

import { natsBench } from '../../bench/nats';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';

let server: NatsServerHandle;
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.stop();
});

it('natsBench measures echo and the durable echo (on nats.js v3 and nats 2.29), vmledger over NATS and the ledger alone', async () => {
  const r = await natsBench(server.url, { durationMs: 300, inFlight: 8 });
  expect(r.inFlight).toBe(8);
  for (const m of [r.echo, r.durableEcho, r.echoNats2, r.durableEchoNats2, r.vmledger, r.vmledgerMemoryStore, r.ledgerDirect]) {
    expect(m.count).toBeGreaterThan(0);
    expect(m.requestsPerSecond).toBeGreaterThan(0);
    expect(m.p99Ms).toBeGreaterThanOrEqual(m.p50Ms);
  }
  expect(r.ratio).toBeCloseTo(r.vmledger.requestsPerSecond / r.echo.requestsPerSecond, 3);
  expect(r.durableRatio).toBeCloseTo(r.vmledger.requestsPerSecond / r.durableEcho.requestsPerSecond, 3);
  expect(r.p99Ratio).toBeCloseTo(r.vmledger.p99Ms / r.durableEcho.p99Ms, 1);
});
