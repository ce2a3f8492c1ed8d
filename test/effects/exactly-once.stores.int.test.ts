// The exactly-once protocol (services/intents.ts) lives in the ledger and uses the event-store interface only, so
// every store carries it: memory, SQLite, JetStream (a private nats-server) and EventStoreDB (the in-process double
// of its client, test/support/fakeEsdbClient.ts). On each: a ledger that stops between the intent and the result
// (its process would have died: here the hook throws and the ledger is closed), then a new ledger on the store
// settles the intent against the hypervisor's journal, performs nothing twice, and replay is clean.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import type { CommandInput } from '../../machines/commands';
import { domainStream } from '../../machines/model';
import { createJournalDriver, readJournal } from '../../services/drivers/journal';
import { openEsdbEventStore } from '../../services/eventstore/esdb';
import { openJetStreamEventStore } from '../../services/eventstore/jetstream';
import { createMemoryEventStore } from '../../services/eventstore/memory';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import type { EventStore } from '../../services/eventstore/types';
import { createLedger } from '../../services/ledger';
import { replayCheck } from '../../services/replay';
import { parseDomainXml } from '../../services/xml';
import { EFFECT_SETTLED } from '../../projections/log';
import { FakeEsdbClient } from '../support/fakeEsdbClient';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIG = parseDomainXml(readFileSync(join(ROOT, 'examples/web1.xml'), 'utf8'));
const NAME = CONFIG.name;
const TIME = '2026-12-01T00:00:00.000Z';

let nats: NatsServerHandle;
let dir: string;
let n = 0;

beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-once-stores-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const stores: [string, () => Promise<EventStore>][] = [
  ['memory', async () => createMemoryEventStore()],
  ['sqlite', async () => openSqliteEventStore(join(dir, 'ledger.sqlite'))],
  [
    'jetstream',
    async () => {
      const i = ++n;
      return openJetStreamEventStore({ servers: nats.url, streamName: `ONCE_${i}`, subjectPrefix: `once${i}.log`, commandsBucket: `once${i}-commands`, docsBucket: `once${i}-docs` });
    },
  ],
  ['esdb (client double)', async () => openEsdbEventStore({ client: new FakeEsdbClient().asClient() })],
];

const cmd = (spec: Record<string, unknown>, commandId: string): CommandInput => ({ ...spec, meta: { commandId, actor: 'test', time: TIME } }) as CommandInput;

describe.each(stores)('on %s', (_name, openStore) => {
  it.each([
    ['after-effect', true],
    ['after-intent', false],
  ] as const)('stopped at %s: settled on reopening to what the hypervisor did (%s), once', async (point, happened) => {
    const store = await openStore();
    const journal = join(dir, 'hypervisor.journal');
    try {
      const first = createLedger(store, {
        driver: createJournalDriver(journal),
        intents: {
          onPoint: (at, c) => {
            if (at === point && c.verb === 'start') throw new Error(`stopped at ${at}`);
          },
        },
      });
      expect(await first.execute(cmd({ verb: 'define', config: CONFIG }, 'define-1'))).toMatchObject({ ok: true });
      await expect(first.execute(cmd({ verb: 'start', domain: NAME }, 'start-1'))).rejects.toThrow(`stopped at ${point}`);
      await first.close(); // as if its process had died: its intent is nobody's now

      const second = createLedger(store, { driver: createJournalDriver(journal) });
      expect((await second.loadDomain('local', NAME)).state.active).toBe(happened);
      const retry = await second.execute(cmd({ verb: 'start', domain: NAME }, 'start-1'));
      expect(retry).toMatchObject(happened ? { ok: true, duplicate: true } : { ok: false, rule: 'JOB-INTERRUPTED', duplicate: true });
      expect(readJournal(journal).filter((l) => l.commandId === 'start-1')).toHaveLength(happened ? 1 : 0);
      const last = [];
      for await (const e of store.readStream(domainStream('local', NAME))) last.push(e.type);
      expect(last.at(-1)).toBe(EFFECT_SETTLED);
      expect(await second.execute(cmd({ verb: happened ? 'destroy' : 'start', domain: NAME }, 'next-1'))).toMatchObject({ ok: true });
      expect(await replayCheck(store)).toMatchObject({ ok: true, intents: 3, openIntents: 0 });
      await second.close();
    } finally {
      await store.close();
    }
  });
});
