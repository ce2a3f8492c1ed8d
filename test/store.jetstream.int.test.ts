// The JetStream event store against a real, private nats-server (-js, temporary store dir): the shared contract
// suite, then what only a networked store has to prove: a server restart under write load loses nothing that
// was acknowledged, idempotency outlives JetStream's duplicate window (including the crash window between
// storing the facts and recording the command), and the log stream never captures the command service's subjects.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { openEventStore } from '../services/eventstore/index';
import {
  COMMAND_SERVICE_SUBJECTS,
  DEFAULT_STREAM_NAME,
  encodeToken,
  openJetStreamEventStore,
  parseJetStreamSpec,
  type JetStreamEventStoreOptions,
} from '../services/eventstore/jetstream';
import { StoreCorruptError, StoreUnavailableError, WrongExpectedRevisionError, type EventStore, type RecordedEvent } from '../services/eventstore/types';
import {
  COMMAND_SUBJECT_PREFIX,
  EVENT_SUBJECT_PREFIX,
  QUERY_SUBJECTS,
  SCHEMA_SUBJECT,
  subjectsCollide,
} from '../services/nats/protocol';
import { startNatsServer, type NatsServerHandle } from './support/natsServer';
import { collect, describeStoreContract, fact, waitFor } from './store-contract';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// The contract suite: one private server for the suite, a fresh stream, subject prefix and buckets per test.

let contractServer: NatsServerHandle;
let contractCounter = 0;

beforeAll(async () => {
  contractServer = await startNatsServer();
});
afterAll(async () => {
  await contractServer?.stop();
});

describeStoreContract('jetstream', async () => {
  const n = ++contractCounter;
  const store = await openJetStreamEventStore({
    servers: contractServer.url,
    streamName: `CONTRACT_${n}`,
    subjectPrefix: `contract${n}.log`,
    commandsBucket: `contract${n}-commands`,
    docsBucket: `contract${n}-docs`,
  });
  return { store, cleanup: () => store.close() };
});

// ---------------------------------------------------------------------------------------------------------------

describe('jetstream event store', () => {
  let server: NatsServerHandle;
  const opened: EventStore[] = [];
  const connections: NatsConnection[] = [];

  const open = async (options: Partial<JetStreamEventStoreOptions> = {}): Promise<EventStore> => {
    const store = await openJetStreamEventStore({ servers: server.url, ...options });
    opened.push(store);
    return store;
  };

  beforeEach(async () => {
    server = await startNatsServer();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    await Promise.all(connections.splice(0).map((nc) => nc.close()));
    await server.stop();
  });

  describe('subjects', () => {
    it("captures only vmledger.log.>, which overlaps none of the command service's subjects", async () => {
      await open();
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(DEFAULT_STREAM_NAME);
      expect(info.config.subjects).toEqual(['vmledger.log.>']);

      // Checked against the service's own subject constants, so a change there cannot slip past this test.
      const serviceSubjects = [
        `${COMMAND_SUBJECT_PREFIX}.>`,
        `${EVENT_SUBJECT_PREFIX}.>`,
        ...Object.values(QUERY_SUBJECTS),
        SCHEMA_SUBJECT,
        ...COMMAND_SERVICE_SUBJECTS,
      ];
      for (const stream of await collect(jsm.streams.list())) {
        for (const pattern of stream.config.subjects ?? []) {
          for (const subject of serviceSubjects) {
            expect(subjectsCollide(pattern, subject), `${stream.config.name} '${pattern}' vs '${subject}'`).toBe(false);
          }
        }
      }
    });

    it('leaves requests on command and query subjects to their responders (no PubAck swallows them)', async () => {
      const store = await open();
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      for (const subject of [`${COMMAND_SUBJECT_PREFIX}.define`, QUERY_SUBJECTS.domains, SCHEMA_SUBJECT]) {
        const sub = nc.subscribe(subject, { max: 1, callback: (_err, msg) => void msg.respond(`service:${subject}`) });
        const reply = await nc.request(subject, '{}', { timeout: 2_000 });
        expect(reply.string()).toBe(`service:${subject}`);
        sub.unsubscribe();
      }
    });

    it('refuses a subject prefix that would capture command service subjects', async () => {
      for (const prefix of ['vmledger', 'vmledger.cmd', 'vmledger.evt.host', 'vmledger.query', '$JS', 'a.*', 'a..b']) {
        await expect(openJetStreamEventStore({ servers: server.url, subjectPrefix: prefix })).rejects.toThrow(TypeError);
      }
      await expect(openJetStreamEventStore({ servers: server.url, subjectPrefix: 'vmledger' })).rejects.toThrow(
        /overlaps the command service's 'vmledger.cmd.>'/,
      );
    });

    it('encodes any stream name as one safe subject token, reversibly distinct', () => {
      const names = ['domain-local-vm1', 'domain-web.example.com-db', 'a b', 'a*b', 'a>b', 'ä', '_41', 'A', '', 'x'.repeat(300)];
      const tokens = names.map(encodeToken);
      expect(tokens[0]).toBe('domain-local-vm1');
      expect(tokens[1]).toBe('domain-web_2Eexample_2Ecom-db');
      for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_=-]+$/);
      expect(new Set(tokens).size).toBe(names.length);
      expect(tokens.at(-1)).toMatch(/^=[0-9a-f]{64}$/);
    });

    it('keeps streams whose names differ only in characters a subject cannot hold apart', async () => {
      const store = await open();
      await store.append('vm.a', [fact('Dot', 1)], { expectedRevision: 'no-stream' });
      await store.append('vm_2Ea', [fact('Lookalike', 2)], { expectedRevision: 'no-stream' });
      await store.append('vm a', [fact('Space', 3)], { expectedRevision: 'no-stream' });
      const long = `domain-${'x'.repeat(400)}`;
      await store.append(long, [fact('Long', 4)], { expectedRevision: 'no-stream' });
      expect((await collect(store.readStream('vm.a'))).map((e) => e.type)).toEqual(['Dot']);
      expect((await collect(store.readStream('vm_2Ea'))).map((e) => e.type)).toEqual(['Lookalike']);
      expect((await collect(store.readStream('vm a'))).map((e) => e.type)).toEqual(['Space']);
      expect((await collect(store.readStream(long))).map((e) => [e.stream, e.type])).toEqual([[long, 'Long']]);
      expect((await collect(store.readAll())).map((e) => e.stream)).toEqual(['vm.a', 'vm_2Ea', 'vm a', long]);
    });
  });

  describe('opening', () => {
    it('refuses a stream of the same name that is not a vmledger log, leaving it alone', async () => {
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: DEFAULT_STREAM_NAME, subjects: ['orders.>'] });
      await expect(open()).rejects.toThrow(StoreCorruptError);
      await expect(open()).rejects.toThrow(/captures \["orders.>"\]/);
      expect((await jsm.streams.info(DEFAULT_STREAM_NAME)).config.subjects).toEqual(['orders.>']);
    });

    it('refuses a stream on the right subjects that holds foreign messages and no format marker', async () => {
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: DEFAULT_STREAM_NAME, subjects: ['vmledger.log.>'] });
      await jetstream(nc).publish('vmledger.log.something', 'not ours');
      await expect(open()).rejects.toThrow(/not a vmledger log/);
      expect((await jsm.streams.info(DEFAULT_STREAM_NAME)).state.messages).toBe(1);
    });

    it('reopens an existing log and keeps appending where it left off', async () => {
      const first = await open();
      await first.append('vm-a', [fact('A', 1), fact('A', 2)], { expectedRevision: 'no-stream', commandId: 'cmd-open' });
      await first.putDoc('checkpoints', 'domain-list', { position: 2 });
      await first.close();
      const again = await open();
      expect(await again.headPosition()).toBe(2);
      expect(await again.commandResult('cmd-open')).toEqual({ revision: 1, position: 2, duplicate: true });
      expect(await again.getDoc('checkpoints', 'domain-list')).toEqual({ position: 2 });
      expect(await again.append('vm-b', [fact('B', 3)], { expectedRevision: 'no-stream' })).toEqual({
        revision: 0,
        position: 3,
        duplicate: false,
      });
    });

    it('is opened by the spec jetstream://HOST:PORT, and explains bad specs', async () => {
      const store = await openEventStore(`jetstream://127.0.0.1:${server.port}`);
      opened.push(store);
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      expect(await store.headPosition()).toBe(1);
      expect(parseJetStreamSpec('jetstream://u:p@h1:1,h2:2?stream=S&prefix=a.b')).toEqual({
        servers: ['nats://h1:1', 'nats://h2:2'],
        connectionOptions: { user: 'u', pass: 'p' },
        streamName: 'S',
        subjectPrefix: 'a.b',
      });
      expect(() => parseJetStreamSpec('jetstream://nohostport')).toThrow(/is not HOST:PORT/);
      expect(() => parseJetStreamSpec('jetstream://h:1?colour=red')).toThrow(/unknown parameter 'colour'/);
      await expect(openEventStore('jetstream:')).rejects.toThrow(/write jetstream:\/\/HOST:PORT/);
    });

    it('says when NATS cannot be reached', async () => {
      await expect(
        openJetStreamEventStore({ servers: 'nats://127.0.0.1:1', connectionOptions: { maxReconnectAttempts: 0 } }),
      ).rejects.toThrow(/cannot connect to NATS at nats:\/\/127.0.0.1:1/);
    });
  });

  describe('positions', () => {
    it('stays gap-free with several store objects appending to different streams at once', async () => {
      const writers = await Promise.all([open(), open(), open()]);
      const perWriter = 40;
      await Promise.all(
        writers.map(async (store, w) => {
          for (let n = 0; n < perWriter; n++) {
            await store.append(`vm-${w}`, [fact('T', n), fact('T', n)], { expectedRevision: n === 0 ? 'no-stream' : 2 * n - 1 });
          }
        }),
      );
      const all = await collect(writers[0]!.readAll());
      expect(all).toHaveLength(writers.length * perWriter * 2);
      expect(all.map((e) => e.position)).toEqual(all.map((_, i) => i + 1));
      for (let w = 0; w < writers.length; w++) {
        const revisions = all.filter((e) => e.stream === `vm-${w}`).map((e) => e.revision);
        expect(revisions).toEqual(revisions.map((_, i) => i));
      }
      // Reading a stream from a middle revision walks back from its end; positions agree with the global log.
      const tail = await collect(writers[1]!.readStream('vm-1', 50));
      expect(tail.map((e) => e.revision)).toEqual(Array.from({ length: 30 }, (_, i) => 50 + i));
      const byKey = new Map(all.map((e) => [`${e.stream}/${e.revision}`, e.position]));
      for (const event of tail) expect(event.position).toBe(byKey.get(`vm-1/${event.revision}`));
    });

    it('a stream head cached from its own writes never makes a false conflict, nor hides a real one', async () => {
      const [a, b] = await Promise.all([open(), open()]);
      await a.append('vm-a', [fact('A', 0)], { expectedRevision: 'no-stream' }); // a now caches revision 0
      await b.append('vm-a', [fact('B', 1)], { expectedRevision: 0 });
      expect(await a.append('vm-a', [fact('A', 2)], { expectedRevision: 1 })).toEqual({ revision: 2, position: 3, duplicate: false });
      await b.append('vm-a', [fact('B', 3)], { expectedRevision: 2 });
      await expect(a.append('vm-a', [fact('A', 4)], { expectedRevision: 2 })).rejects.toBeInstanceOf(WrongExpectedRevisionError);
      // A cached "no stream yet" is confirmed before it is reported.
      await expect(a.append('vm-n', [fact('A', 5)], { expectedRevision: 0 })).rejects.toMatchObject({ actual: 'no-stream' });
      await b.append('vm-n', [fact('B', 6)], { expectedRevision: 'no-stream' });
      expect(await a.append('vm-n', [fact('A', 7)], { expectedRevision: 0 })).toEqual({ revision: 1, position: 6, duplicate: false });
      await expect(a.append('vm-n', [fact('A', 8)], { expectedRevision: 'no-stream' })).rejects.toMatchObject({ actual: 1 });
      expect((await collect(b.readAll())).map((e) => (e.data as { n: number }).n)).toEqual([0, 1, 2, 3, 6, 7]);
    });

    it('conflicts on the same stream across store objects are reported, never retried into a write', async () => {
      const [a, b] = await Promise.all([open(), open()]);
      await a.append('vm-a', [fact('A', 0)], { expectedRevision: 'no-stream' });
      const outcomes = await Promise.allSettled([
        a.append('vm-a', [fact('A', 1)], { expectedRevision: 0 }),
        b.append('vm-a', [fact('B', 1)], { expectedRevision: 0 }),
        b.append('vm-other', [fact('O', 1)], { expectedRevision: 'no-stream' }),
      ]);
      const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(rejected).toHaveLength(1);
      expect(rejected[0]!.reason).toBeInstanceOf(WrongExpectedRevisionError);
      expect(await a.streamRevision('vm-a')).toBe(1);
      expect((await collect(a.readAll())).map((e) => e.position)).toEqual([1, 2, 3]);
    });
  });

  describe('an append whose acknowledgement is lost', () => {
    it('is found again on retry: never written twice, never reported as a conflict', async () => {
      let lose = 0;
      const store = await open({ testHooks: { loseAck: () => lose-- > 0 } });
      await store.append('vm-a', [fact('A', 0)], { expectedRevision: 'no-stream' });
      lose = 1;
      expect(await store.append('vm-a', [fact('A', 1)], { expectedRevision: 0 })).toEqual({ revision: 1, position: 2, duplicate: false });
      lose = 2;
      expect(await store.append('vm-a', [fact('A', 2), fact('A', 3)], { expectedRevision: 1, commandId: 'cmd-lost' })).toEqual({
        revision: 3,
        position: 4,
        duplicate: false,
      });
      expect(await store.commandResult('cmd-lost')).toEqual({ revision: 3, position: 4, duplicate: true });
      expect((await collect(store.readAll())).map((e) => (e.data as { n: number }).n)).toEqual([0, 1, 2, 3]);
    });
  });

  describe('idempotency beyond the duplicate window', () => {
    const WINDOW_MS = 1_000;
    const AFTER_WINDOW_MS = 1_500;

    it('a retry after the window is still a duplicate and writes nothing', async () => {
      const store = await open({ duplicateWindowMs: WINDOW_MS });
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      const info = await (await jetstreamManager(nc)).streams.info(DEFAULT_STREAM_NAME);
      expect(info.config.duplicate_window).toBe(WINDOW_MS * 1_000_000);

      const first = await store.append('vm-a', [fact('A', 1), fact('A', 2)], { expectedRevision: 'no-stream', commandId: 'cmd-late' });
      expect(first).toEqual({ revision: 1, position: 2, duplicate: false });
      await sleep(AFTER_WINDOW_MS);
      const retry = await store.append('vm-a', [fact('Other', 9)], { expectedRevision: 'no-stream', commandId: 'cmd-late' });
      expect(retry).toEqual({ revision: 1, position: 2, duplicate: true });
      // Another process (another connection) sees the same.
      const other = await open();
      expect(await other.append('vm-b', [fact('B', 1)], { expectedRevision: 'any', commandId: 'cmd-late' })).toEqual(retry);
      expect(await other.headPosition()).toBe(2);
      expect(await other.streamRevision('vm-b')).toBe('no-stream');
    });

    it('closes the crash window: facts stored, command record not yet written', async () => {
      const crashing = await open({
        duplicateWindowMs: WINDOW_MS,
        testHooks: {
          afterPublish: () => {
            throw new Error('simulated crash after the facts were stored');
          },
        },
      });
      await expect(
        crashing.append('vm-a', [fact('A', 1), fact('A', 2)], { expectedRevision: 'no-stream', commandId: 'cmd-crash' }),
      ).rejects.toThrow(/simulated crash/);
      await crashing.close();
      await sleep(AFTER_WINDOW_MS);

      const recovered = await open();
      // Another append in between, so the crashed append is no longer the stream's last message.
      await recovered.append('vm-a', [fact('A', 3)], { expectedRevision: 1 });
      expect(await recovered.commandResult('cmd-crash')).toEqual({ revision: 1, position: 2, duplicate: true });
      const retry = await recovered.append('vm-a', [fact('A', 1), fact('A', 2)], { expectedRevision: 'no-stream', commandId: 'cmd-crash' });
      expect(retry).toEqual({ revision: 1, position: 2, duplicate: true });
      expect(await recovered.headPosition()).toBe(3);
    });

    it('closes the other side: command reserved, facts never stored, then retried once', async () => {
      const crashing = await open({
        duplicateWindowMs: WINDOW_MS,
        testHooks: {
          afterReserve: () => {
            throw new Error('simulated crash before publishing');
          },
        },
      });
      await expect(crashing.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-early' })).rejects.toThrow(
        /simulated crash/,
      );
      await crashing.close();
      await sleep(AFTER_WINDOW_MS);

      const recovered = await open();
      expect(await recovered.commandResult('cmd-early')).toBeUndefined();
      expect(await recovered.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-early' })).toEqual({
        revision: 0,
        position: 1,
        duplicate: false,
      });
      expect(await recovered.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-early' })).toEqual({
        revision: 0,
        position: 1,
        duplicate: true,
      });
      expect(await recovered.headPosition()).toBe(1);
    });

    it('concurrent appends of one command id from two store objects store it once', async () => {
      const [a, b] = await Promise.all([open(), open()]);
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 === 0 ? a : b).append('vm-a', [fact('A', i)], { expectedRevision: 'any', commandId: 'cmd-race' }),
        ),
      );
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
      for (const r of results) expect([r.revision, r.position]).toEqual([0, 1]);
      expect(await a.headPosition()).toBe(1);
    });
  });

  it('opening rides out a server that is away (its JetStream requests are retried, not failed at the first timeout)', async () => {
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    connections.push(nc);
    await server.kill('SIGKILL');
    const opening = openJetStreamEventStore({ nc, requestTimeoutMs: 500, retryBudgetMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1_500)); // several request timeouts while it is away
    await server.restart();
    const store = await opening;
    opened.push(store);
    expect(await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' })).toMatchObject({ revision: 0, position: 1 });

    // With no server for longer than the budget, it gives up naming the step.
    await server.kill('SIGKILL');
    await expect(openJetStreamEventStore({ nc, requestTimeoutMs: 300, retryBudgetMs: 1_000, streamName: 'other' })).rejects.toThrow(
      /^cannot open the JetStream store 'other': could not reach the JetStream API: request timed out: timeout/,
    );
    await server.restart();
  });

  it('with no server for longer than its retry budget, an append retries for the budget, then fails with StoreUnavailableError; the same command id applies it once later', async () => {
    const store = await open({ requestTimeoutMs: 300, retryBudgetMs: 1_500 });
    await store.append('vm-u', [fact('A', 1)], { expectedRevision: 'no-stream', commandId: 'u-1' });
    await server.kill('SIGKILL');
    const started = Date.now();
    const failure = await store.append('vm-u', [fact('B', 2)], { expectedRevision: 0, commandId: 'u-2' }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const waited = Date.now() - started;
    expect(failure).toBeInstanceOf(StoreUnavailableError);
    expect((failure as Error).message).toMatch(
      /^event store unavailable: JetStream stream 'VMLEDGER' at .*: (append to stream 'vm-u' was not acknowledged|could not \w[^;]*) within 1500 ms \(request timed out: .*\); .*retry with the same command id$/,
    );
    // It kept retrying (timeouts of 300 ms with a backoff) for the whole budget, and gave up soon after it.
    expect(waited).toBeGreaterThanOrEqual(1_500);
    expect(waited).toBeLessThan(1_500 + 300 + 3_000);

    await server.restart();
    const again = await store.append('vm-u', [fact('B', 2)], { expectedRevision: 0, commandId: 'u-2' });
    expect(again).toMatchObject({ revision: 1, position: 2 });
    expect((await collect(store.readStream('vm-u'))).map((e) => e.type)).toEqual(['A', 'B']);
  });

  describe('a server restart in the middle of a write load', () => {
    it.each([['SIGTERM'], ['SIGKILL']] as const)('loses nothing that was acknowledged (%s); revisions, positions and the subscription stay consistent', async (signal) => {
      const kill = signal;
      const store = await open();
      const delivered: RecordedEvent[] = [];
      const subscription = store.subscribe(0, (event) => {
        delivered.push(event);
      });

      interface Acked {
        stream: string;
        commandId: string;
        revision: number;
        position: number;
        ns: number[];
      }
      const acked: Acked[] = [];
      const writers = 4;
      const appendsPerWriter = 60;
      let restarted = false;
      let errorsSeen = 0;

      const writer = async (w: number): Promise<void> => {
        const stream = `vm-load-${w}`;
        let revision = -1;
        for (let n = 0; n < appendsPerWriter; n++) {
          const size = 1 + (n % 3);
          const ns = Array.from({ length: size }, (_, i) => w * 10_000 + n * 10 + i);
          const commandId = `load-${w}-${n}`;
          for (let attempt = 0; ; attempt++) {
            try {
              const result = await store.append(stream, ns.map((x) => fact('Load', x)), {
                expectedRevision: revision === -1 ? 'no-stream' : revision,
                commandId,
              });
              expect(result.revision).toBe(revision + size);
              revision = result.revision;
              acked.push({ stream, commandId, revision: result.revision, position: result.position, ns });
              break;
            } catch (error) {
              errorsSeen++;
              // Unknown outcome: retry the same command, as a client would; idempotency decides.
              if (error instanceof WrongExpectedRevisionError || attempt > 200) throw error;
              await sleep(100);
            }
          }
          await sleep(2);
        }
      };

      let ackedBeforeRestart = 0;
      let ackedDuringRestart = 0;
      const restarter = (async () => {
        await waitFor(() => acked.length >= 60, 'a quarter of the appends before the restart', 30_000);
        ackedBeforeRestart = acked.length;
        await server.kill(kill);
        await sleep(200);
        await server.restart();
        ackedDuringRestart = acked.length - ackedBeforeRestart;
        restarted = true;
      })();
      await Promise.all([...Array.from({ length: writers }, (_, w) => writer(w)), restarter]);
      expect(restarted).toBe(true);
      // The restart fell in the middle of the load: appends were acknowledged before it and after it.
      expect(ackedBeforeRestart).toBeLessThan(writers * appendsPerWriter);
      expect(acked.length - ackedBeforeRestart - ackedDuringRestart).toBeGreaterThan(0);

      // Every acknowledged append is there, once, where its acknowledgement said.
      const all = await collect(store.readAll());
      expect(all.map((e) => e.position)).toEqual(all.map((_, i) => i + 1));
      const factCount = acked.reduce((sum, a) => sum + a.ns.length, 0);
      expect(all).toHaveLength(factCount);
      const byPosition = new Map(all.map((e) => [e.position, e]));
      for (const a of acked) {
        a.ns.forEach((n, i) => {
          const event = byPosition.get(a.position - a.ns.length + 1 + i);
          expect(event, `${a.commandId} fact ${i}`).toBeDefined();
          expect([event!.stream, event!.revision, (event!.data as { n: number }).n]).toEqual([a.stream, a.revision - a.ns.length + 1 + i, n]);
        });
      }
      for (let w = 0; w < writers; w++) {
        const events = await collect(store.readStream(`vm-load-${w}`));
        expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => i));
        expect(events.map((e) => e.position)).toEqual(all.filter((e) => e.stream === `vm-load-${w}`).map((e) => e.position));
      }
      for (const a of acked.slice(0, 20)) {
        expect(await store.commandResult(a.commandId)).toEqual({ revision: a.revision, position: a.position, duplicate: true });
      }

      // The subscription rode through the restart: every fact, in order, once.
      await waitFor(() => delivered.length === all.length, 'the subscription to catch up after the restart', 30_000);
      expect(delivered.map((e) => e.position)).toEqual(all.map((e) => e.position));
      await subscription.close();
      console.log(
        `restart (${signal}) under load: ${acked.length} appends acknowledged (${ackedBeforeRestart} before the restart), ` +
          `${errorsSeen} failed attempts retried by the writers`,
      );
    });
  });
});
