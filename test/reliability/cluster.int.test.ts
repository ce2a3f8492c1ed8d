// vmledger on a three-node JetStream cluster under faults (test/support/natsCluster.ts): the log stream and both
// buckets with 3 replicas, two `vmledger serve --store jetstream://…` processes on different nodes in one queue
// group, and 12 clients spread over the three nodes racing on 8 shared domains. Under that load:
//   1. kill -9 the node leading the log stream; later start it again;
//   2. kill -9 one service instance (and start another on the same node);
//   3. cut a node that was never killed off from the other two (its routes; it keeps running, with its clients
//      and one service instance), so it is a minority of one; later heal it. (A killed node's clients and service
//      reconnected elsewhere and would not be on the minority side.)
// Afterwards every acknowledged command is in the log exactly once and where its reply said, nothing is in the
// log that no reply accounts for, the idempotency records (KV) give every acknowledged command its first result,
// a resend gets that result without appending, the rules held on the fold and replay is clean; and while the node
// was cut off, its clients were refused in so many words (STORE-UNAVAILABLE), never acknowledged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createVmledgerClient } from '../../services/client';
import { openEventStore } from '../../services/eventstore/index';
import {
  DEFAULT_COMMANDS_BUCKET,
  DEFAULT_DOCS_BUCKET,
  DEFAULT_STREAM_NAME,
  openJetStreamEventStore,
  parseJetStreamSpec,
} from '../../services/eventstore/jetstream';
import { StoreUnavailableError, type EventStore, type NewEvent } from '../../services/eventstore/types';
import type { CommandOutcome } from '../../services/ledger-types';
import { connectLikeProduction, waitFor } from '../nats/fixtures';
import { startNatsCluster, type NatsClusterHandle } from '../support/natsCluster';
import { bounded, trackStore } from '../support/trackedStore';
import { checkLog, describeRun, killServeChildren, mixedCommand, runSeed, sleep, spawnServe, startLoad, type ServeProcess } from '../support/reliability';

const CLIENTS = 12;
const DOMAINS = Array.from({ length: 8 }, (_, i) => `cl-${i}`);
const ACCEPTED_PER_PHASE = 40;
const PARTITION_MS = 10_000;
/**
 * Store settings for a cluster (the README's): each request 1 s, give up (STORE-UNAVAILABLE) after 3 s, so a
 * command is answered within about 4 s; the clients wait 8 s (a loaded CI machine needs the margin).
 */
const STORE_QUERY = 'replicas=3&timeout=1000&retry=3000';

let cluster: NatsClusterHandle;

beforeAll(async () => {
  cluster = await startNatsCluster();
  // Every node a current peer: the first service creates the log with 3 replicas.
  await cluster.waitForJetStream(60_000, undefined, { allPeers: true });
}, 60_000);

afterAll(async () => {
  await killServeChildren();
  await cluster?.stop();
});

const storeSpec = (node: string) => `jetstream://${cluster.node(node).url.replace('nats://', '')}?${STORE_QUERY}`;

/** The longest time between two consecutive acknowledgements in [from, to] (the edges count as acknowledgements). */
function longestGap(times: number[], from: number, to: number): number {
  const inside = [from, ...times.filter((t) => t > from && t < to).sort((a, b) => a - b), to];
  let gap = 0;
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
  return gap;
}

describe('store spec for a cluster', () => {
  it('takes replicas, timeout and retry, and names what is wrong', () => {
    expect(parseJetStreamSpec('jetstream://h1:1,h2:2?replicas=3&timeout=1000&retry=3000')).toEqual({
      servers: ['nats://h1:1', 'nats://h2:2'],
      replicas: 3,
      requestTimeoutMs: 1000,
      retryBudgetMs: 3000,
    });
    expect(() => parseJetStreamSpec('jetstream://h:1?replicas=0')).toThrow(/replicas must be an integer from 1 to 5, got '0'/);
    expect(() => parseJetStreamSpec('jetstream://h:1?replicas=three')).toThrow(/replicas must be an integer/);
    expect(() => parseJetStreamSpec('jetstream://h:1?timeout=-5')).toThrow(/timeout must be an integer from 100/);
    expect(() => parseJetStreamSpec('jetstream://h:1?retry=1e3')).toThrow(/retry must be an integer/);
  });
});

describe('three-node JetStream cluster under faults', () => {
  it('loses and duplicates nothing acknowledged through a leader kill, a service kill and a partition', async () => {
    const seed = runSeed();
    const started = Date.now();
    // n1 and n2 each get a service instance; n3 none. One of n1 and n2 is cut off later.
    const serves: ServeProcess[] = [];
    serves.push(await spawnServe(cluster.node('n1').url, storeSpec('n1'), { startTimeoutMs: 60_000 }));
    serves.push(await spawnServe(cluster.node('n2').url, storeSpec('n2'), { startTimeoutMs: 60_000 }));

    // The log and both buckets are replicated three times.
    for (const stream of [DEFAULT_STREAM_NAME, `KV_${DEFAULT_COMMANDS_BUCKET}`, `KV_${DEFAULT_DOCS_BUCKET}`]) {
      const { leader, replicas } = await cluster.streamLeader(stream);
      expect([leader, ...replicas.map((r) => r.name)].sort(), stream).toEqual(['n1', 'n2', 'n3']);
    }

    const urlOf = (c: number) => cluster.nodes[c % 3]!.url;
    const nodeOfClient = (id: string) => cluster.nodes[Number(id.split('-')[1]) % 3]!.name;
    const load = startLoad({
      url: cluster.urls[0]!,
      urlFor: urlOf,
      clients: CLIENTS,
      idPrefix: 'cl',
      seed,
      next: (rand) => mixedCommand(rand, { domains: DOMAINS }),
      requestTimeoutMs: 8_000,
      commandDeadlineMs: 60_000,
      retryPauseMs: 200,
      retryRules: ['STORE-UNAVAILABLE'],
    });
    const phases: Record<string, number> = {};
    let phaseStart = Date.now();
    // Progress on stderr, so a run that stalls shows where.
    const note = (what: string) =>
      process.stderr.write(`cluster test +${((Date.now() - started) / 1000).toFixed(1)} s: ${what} (${JSON.stringify(load.stats)})\n`);
    const accepted = async (n: number, what: string) => {
      const target = load.stats.okWithFacts + n;
      await waitFor(() => load.stats.okWithFacts >= target, 45_000, `${n} accepted commands ${what}`);
      phases[what] = Date.now() - phaseStart;
      phaseStart = Date.now();
      note(`${n} accepted ${what}`);
    };

    try {
      await accepted(ACCEPTED_PER_PHASE, 'before the faults');

      // 1. kill -9 the leader of the log stream; the others elect a new one; then it comes back.
      const { leader } = await cluster.streamLeader(DEFAULT_STREAM_NAME);
      expect(leader).toBeDefined();
      const leaderKilledAt = Date.now();
      await cluster.kill(leader!);
      note(`killed the stream leader ${leader!}`);
      await accepted(ACCEPTED_PER_PHASE, `after killing the stream leader ${leader}`);
      const leaderBackAt = Date.now();
      await cluster.start(leader!);
      await cluster.waitForJetStream(60_000, leader);
      note(`${leader!} is back`);
      const newLeader = (await cluster.streamLeader(DEFAULT_STREAM_NAME)).leader;

      // 2. kill -9 a service instance mid-load; the other takes all requests; a new one starts on the same node.
      // The one whose node was killed in 1 (its connections moved to other nodes then; the new one is back home),
      // else the one on n2.
      const victim = leader === 'n1' ? 0 : 1;
      const victimNode = victim === 0 ? 'n1' : 'n2';
      await serves[victim]!.kill9();
      await accepted(ACCEPTED_PER_PHASE / 2, `after killing the service instance on ${victimNode}`);
      serves[victim] = await spawnServe(cluster.node(victimNode).url, storeSpec(victimNode), { startTimeoutMs: 60_000 });
      await accepted(ACCEPTED_PER_PHASE / 2, 'with the new service instance');

      // 3. cut off the service node that was never killed (so its clients and its service instance are still
      // connected to it, not moved elsewhere by a reconnect): the other two keep a quorum; it, its clients and its
      // service instance are a minority of one.
      const cut = leader === 'n2' ? 'n1' : 'n2';
      const cutServe = serves[cut === 'n1' ? 0 : 1]!;
      const unavailableBefore = load.retryReplies.length;
      const leadersBeforeCut: Record<string, string | undefined> = {};
      for (const stream of [DEFAULT_STREAM_NAME, `KV_${DEFAULT_COMMANDS_BUCKET}`, `KV_${DEFAULT_DOCS_BUCKET}`]) {
        leadersBeforeCut[stream] = (await cluster.streamLeader(stream)).leader;
      }
      // The observer waits out elections (the cut may take leaders away): a long retry budget, unlike the services.
      const observer = await openJetStreamEventStore({ servers: cluster.node('n3').url, retryBudgetMs: 30_000 });
      const isolatedAt = Date.now();
      cluster.isolate(cut);
      // Everything committed before the cut is at or below this position (read on the majority side after it).
      const headAtCut = await observer.headPosition().finally(() => observer.close());
      note(`${cut} cut off at position ${headAtCut}`);
      await sleep(PARTITION_MS);
      const healedAt = Date.now();
      cluster.heal(cut);
      note(`${cut} healed`);
      await cluster.waitForJetStream(60_000, cut);
      await accepted(ACCEPTED_PER_PHASE, 'after healing the partition');
      await load.stop();
      note('load stopped');
      // Read once the load has stopped: a refusal decided during the cut may arrive after the heal (one command
      // runs several store operations, each with its own retry budget, so on a busy machine it comes late).
      const refusedWhileCutOff = load.retryReplies.filter((r) => r.at > isolatedAt && r.at <= healedAt + 15_000);
      const elapsed = Date.now() - started;

      for (const serve of serves) expect(serve.alive(), serve.output()).toBe(true);
      expect(serves[0]!.output()).not.toMatch(/handler for .* threw/);

      // Every command got one final reply (STORE-UNAVAILABLE ones were resent with the same id until they did).
      expect(load.gaveUp, `seed ${seed}`).toEqual([]);
      expect(load.outcomes.size).toBe(load.sent.size);

      // The cut-off node's clients were refused clearly, and nothing was acknowledged to them that was written
      // while they had no quorum: a reply during the cut is only the late answer to a write committed before it
      // (its facts at or below the head at the cut), or the first outcome of an earlier command (duplicate).
      expect(
        refusedWhileCutOff.length,
        `STORE-UNAVAILABLE replies while ${cut} was cut off (leaders before: ${JSON.stringify(leadersBeforeCut)}); ` +
          `the service on ${cut} said:\n${cutServe.output().slice(-3_000)}`,
      ).toBeGreaterThan(0);
      for (const r of refusedWhileCutOff) {
        expect(r.code, r.message).toBe(68);
        expect(r.message).toMatch(/^Timed out during operation: event store unavailable: .*retry with the same command id/);
      }
      const lastPosition = (o: CommandOutcome) => Math.max(0, ...o.events.map((e) => e.position), o.audit?.position ?? 0);
      const ackedOnMinority = [...load.repliedAt]
        .filter(([id, at]) => nodeOfClient(id) === cut && at > isolatedAt && at <= healedAt)
        .map(([id, at]) => ({ id, at: at - isolatedAt, outcome: load.outcomes.get(id)! }))
        .filter(({ outcome }) => !outcome.duplicate && lastPosition(outcome) > headAtCut);
      expect(ackedOnMinority, `new writes acknowledged to ${cut} clients while ${cut} had no quorum (head at the cut ${headAtCut})`).toEqual([]);
      const lateReplies = [...load.repliedAt].filter(([id, at]) => nodeOfClient(id) === cut && at > isolatedAt && at <= healedAt).length;

      // Each read-back step is bounded: a stall fails at once, naming the step, the store call in flight and what
      // the cluster says of its streams and consumers.
      const streams = [DEFAULT_STREAM_NAME, `KV_${DEFAULT_COMMANDS_BUCKET}`, `KV_${DEFAULT_DOCS_BUCKET}`];
      let tracked: ReturnType<typeof trackStore> | undefined;
      const readBack = async <T>(ms: number, what: string, work: () => Promise<T>): Promise<T> => {
        const t0 = Date.now();
        const result = await bounded(ms, what, work, async () => `${tracked?.pending() ?? 'no store yet'}\n${await cluster.describe(streams)}\n${cluster.log()}`);
        note(`${what} took ${Date.now() - t0} ms`);
        return result;
      };
      tracked = trackStore(await readBack(30_000, 'opening the store on n1', () => openEventStore(storeSpec('n1'))));
      const store = tracked.store;
      try {
        const check = await readBack(90_000, 'checkLog (the log read back through n1)', () => checkLog(store, load.outcomes.values(), { complete: true }));
        const kv = await readBack(60_000, 'the idempotency records read back through n1', () => checkCommandRecords(store, load.outcomes.values()));
        const resending = { now: 'nothing yet' };
        const resend = await bounded(
          60_000,
          'resending acknowledged commands through n3',
          () => resendAcknowledged(cluster.urls[2]!, load, 40, resending),
          async () => `${resending.now}\n${await cluster.describe(streams)}\n${cluster.log()}`,
        );

        // What each node holds itself: a replica left behind (seen after the heal on nats-server 2.9) shows here.
        const replicaLastSeqs = await cluster.localLastSeqs(DEFAULT_STREAM_NAME);
        const okTimes = [...load.repliedAt].filter(([id]) => load.outcomes.get(id)!.ok).map(([, at]) => at);
        const numbers = {
          acknowledged: load.outcomes.size,
          acceptedWithFacts: load.stats.okWithFacts,
          lost: check.problems.filter((p) => /missing|differs|replied facts/.test(p)).length,
          duplicated: check.problems.filter((p) => /more than once/.test(p)).length,
          storeUnavailableReplies: load.retryReplies.length,
          unavailableWhileCutOff: load.retryReplies.length - unavailableBefore,
          repliesToCutOffClientsOfEarlierWrites: lateReplies,
          longestGapAfterLeaderKillMs: longestGap(okTimes, leaderKilledAt, leaderBackAt),
          longestGapWholeRunMs: longestGap(okTimes, okTimes[0]!, Math.max(...okTimes)),
          longestGapWhileCutOffMs: longestGap(okTimes, isolatedAt, healedAt),
          longestGapAfterHealMs: longestGap(okTimes, healedAt, Math.max(...okTimes)),
          leadersBeforeCut,
          replicaLastSeqs,
          killedLeader: leader,
          cutOff: cut,
          newLeader,
          phasesMs: phases,
        };
        console.log(`${describeRun(`3-node JetStream cluster under faults (seed ${seed})`, load.stats, check, elapsed)}; ${JSON.stringify(numbers)}`);
        expect(check.problems, `seed ${seed}`).toEqual([]);
        expect(kv.problems, `seed ${seed}`).toEqual([]);
        expect(resend.problems, `seed ${seed}`).toEqual([]);
        const recorded = [...load.outcomes.values()].filter((o) => o.events.length > 0 || o.audit !== undefined).length;
        expect(check.commandIds).toBe(recorded);
        expect(check.replay.ok).toBe(true);
        expect(await readBack(10_000, 'the head position read through n1', () => store.headPosition())).toBe(check.facts);
      } finally {
        await store.close();
      }
    } finally {
      await load.stop();
    }
  }, 240_000);
});

describe('no quorum at all', () => {
  it('refuses writes within the retry budget, keeps the log unchanged, and applies the retry once after recovery', async () => {
    const options = {
      replicas: 3,
      requestTimeoutMs: 1_000,
      retryBudgetMs: 3_000,
      streamName: 'VMLEDGER_NOQ',
      subjectPrefix: 'vmnoq.log',
      commandsBucket: 'vmnoq-commands',
      docsBucket: 'vmnoq-docs',
    };
    await cluster.waitForJetStream(60_000, 'n2');
    // A node that just rejoined may not be a placement peer yet ("no suitable peers"): ask again for a while.
    const store = await retryUntil(30_000, /no suitable peers/, () =>
      openJetStreamEventStore({ servers: cluster.node('n2').url, ...options }),
    );
    const fact = (n: number): NewEvent[] => [
      { type: 'DomainStarted', data: { n }, metadata: { commandId: `nq-${n}`, actor: 'test', time: '2026-01-01T00:00:00.000Z' } },
    ];
    try {
      await store.append('vm-q', fact(0), { expectedRevision: 'no-stream', commandId: 'nq-0' });
      // Two of three nodes gone: n2 alone is no majority.
      await cluster.kill('n1');
      await cluster.kill('n3');
      const t0 = Date.now();
      const refused = await store.append('vm-q', fact(1), { expectedRevision: 0, commandId: 'nq-1' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      const refusedAfterMs = Date.now() - t0;
      expect(refused).toBeInstanceOf(StoreUnavailableError);
      expect((refused as Error).message).toMatch(/^event store unavailable: JetStream stream 'VMLEDGER_NOQ' .* within 3000 ms .*retry with the same command id/);
      // Bounded: the retry budget plus one request in flight (and a loaded machine's slack).
      expect(refusedAfterMs).toBeLessThan(3_000 + 1_000 + 5_000);
      await expect(store.putDoc('d', 'k', { v: 1 })).rejects.toBeInstanceOf(StoreUnavailableError);

      await cluster.start('n1');
      await cluster.start('n3');
      await cluster.waitForJetStream(60_000, 'n2');
      // The retry of the refused command (same id) is applied once; a second retry gets the first result.
      const deadline = Date.now() + 30_000;
      let first;
      for (;;) {
        try {
          first = await store.append('vm-q', fact(1), { expectedRevision: 0, commandId: 'nq-1' });
          break;
        } catch (error) {
          if (!(error instanceof StoreUnavailableError) || Date.now() > deadline) throw error;
        }
      }
      const again = await store.append('vm-q', fact(1), { expectedRevision: 0, commandId: 'nq-1' });
      expect(first).toMatchObject({ revision: 1, position: 2, duplicate: false });
      expect(again).toMatchObject({ revision: 1, position: 2, duplicate: true });
      const facts = [];
      for await (const e of store.readAll(0)) facts.push(`${e.stream}@${e.revision}:${String(e.metadata.commandId)}`);
      expect(facts).toEqual(['vm-q@0:nq-0', 'vm-q@1:nq-1']);
      expect(await store.commandResult('nq-1')).toMatchObject({ revision: 1, position: 2 });
      // Another replica count for an existing log is refused, not silently applied.
      await expect(openJetStreamEventStore({ servers: cluster.node('n2').url, ...options, replicas: 1 })).rejects.toThrow(
        /stream 'VMLEDGER_NOQ' has 3 replica\(s\), the store spec asks for 1/,
      );
      console.log(`no quorum: append refused after ${refusedAfterMs} ms with: ${(refused as Error).message}`);
    } finally {
      await store.close();
      for (const n of ['n1', 'n3']) if (!cluster.node(n).running) await cluster.start(n);
    }
  }, 120_000);
});

async function retryUntil<T>(timeoutMs: number, retryable: RegExp, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (!retryable.test(String(error)) || Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}

/** Every recorded command's idempotency record gives its first result (the last fact of its reply). */
async function checkCommandRecords(store: EventStore, outcomes: Iterable<CommandOutcome>): Promise<{ problems: string[] }> {
  const problems: string[] = [];
  for (const out of outcomes) {
    const last = out.events.at(-1) ?? out.audit;
    const result = await store.commandResult(out.commandId);
    if (!last) continue;
    if (!result) problems.push(`command ${out.commandId}: no idempotency record`);
    else if (out.command !== 'migrate' && result.position !== last.position) {
      problems.push(`command ${out.commandId}: its record says position ${result.position}, its reply ${last.position}`);
    }
  }
  return { problems };
}

/** Resends `count` acknowledged commands (same ids) through another node: each gets its first outcome, nothing new. */
async function resendAcknowledged(
  url: string,
  load: ReturnType<typeof startLoad>,
  count: number,
  progress: { now: string },
): Promise<{ problems: string[] }> {
  const problems: string[] = [];
  const nc = await connectLikeProduction(url, 'cl-resend');
  try {
    const client = createVmledgerClient(nc, { timeoutMs: 10_000 });
    const ids = [...load.outcomes.keys()].filter((id) => load.outcomes.get(id)!.events.length > 0).slice(0, count);
    for (const [i, id] of ids.entries()) {
      const first = load.outcomes.get(id)!;
      progress.now = `resend ${i + 1} of ${ids.length}: ${id} (${first.command} ${first.host}/${first.domain}) sent ${new Date().toISOString()}`;
      const again = await client.execute(load.sent.get(id)!);
      const positions = (o: CommandOutcome) => o.events.map((e) => e.position).join(',');
      if (!again.duplicate || again.ok !== first.ok || positions(again) !== positions(first)) {
        problems.push(`resent ${id}: got ok=${again.ok} duplicate=${String(again.duplicate)} [${positions(again)}], first [${positions(first)}]`);
      }
    }
  } finally {
    await nc.close();
  }
  return { problems };
}
