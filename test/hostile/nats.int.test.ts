// Issue 14 over a real NATS service: coordinator verbs have no public subject (case 3), a command id a NATS header
// cannot carry is refused before anything is stored (case 6), and hostile names get VALIDATION over the wire.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createMemoryEventStore } from '../../services/eventstore/memory';
import { createLedger } from '../../services/ledger';
import { commandSubject } from '../../services/nats/protocol';
import { replayCheck } from '../../services/replay';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { domainConfig, rawRequest, startStack, type Stack } from '../nats/fixtures';

let server: NatsServerHandle;
let stack: Stack;
const store = createMemoryEventStore();
const TIME = '2026-12-01T00:00:00Z';

beforeAll(async () => {
  server = await startNatsServer();
  stack = await startStack(server.url, createLedger(store));
});

afterAll(async () => {
  await stack?.stop();
  await server?.stop();
});

describe('the NATS service against a hostile client', () => {
  it('has no subject for migrate-incoming or migrate-phase', async () => {
    for (const verb of ['migrate-incoming', 'migrate-phase']) {
      const body = { verb, host: 'dst', source: 'local', config: domainConfig('web'), persistent: true, active: true, paused: false, meta: { commandId: `x-${verb}`, time: TIME } };
      await expect(rawRequest(stack.clientNc, commandSubject(verb as 'migrate-incoming'), body, 2_000)).rejects.toThrow(/503|no responders/i);
    }
    expect(await store.headPosition()).toBe(0);
  });

  it('refuses a command id with CR/LF (a header cannot carry it) and one in the ledger’s own namespace', async () => {
    for (const commandId of ['c1\r\nNats-Msg-Id: forged', 'M1/incoming']) {
      const { reply } = await rawRequest(stack.clientNc, commandSubject('define'), { config: domainConfig('web'), meta: { commandId, time: TIME } });
      expect(reply).toMatchObject({ ok: false, rule: 'VALIDATION', code: 8 });
      expect(String(reply.message)).toContain('meta.commandId');
    }
    expect(await store.headPosition()).toBe(0);
  });

  it('hostile names over the wire: VALIDATION or a clean decision, and replay agrees', async () => {
    const name = fc.oneof(
      fc.constantFrom('__proto__', 'constructor', 'a-b', 'b-c', 'cafe\u0301', 'caf\u00e9', '\ud800', 'x\r\ny', '\u202e'),
      fc.string({ maxLength: 8 }),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(name, name, async (host, domain) => {
        const { reply } = await rawRequest(stack.clientNc, commandSubject('define'), { host, config: domainConfig(domain), meta: { commandId: `p-${n++}`, time: TIME } });
        expect(typeof reply.ok).toBe('boolean');
        if (reply.ok) expect(reply.host).toBe(host);
      }),
      { numRuns: 40 },
    );
    const summary = await replayCheck(store, { anchor: false });
    expect(summary.ok).toBe(true);
    expect(summary.refusalDrift).toEqual([]);
  });
});
