// vmledger on a three-node JetStream cluster (replicas 3) against one JetStream server, in the same run: the same
// `vmledger serve` process and the same commands (bench/nats.ts measureCommands: 64 in flight, no conflicts), first
// on a single nats-server, then on a loopback cluster of three (test/support/natsCluster.ts). Then, on the cluster,
// a leader change under load: 64 workers keep sending (a STORE-UNAVAILABLE reply or a timeout is resent with the
// same command id, as a client should), the node leading the log stream is killed with SIGKILL, and the longest
// time without any acknowledged command is what a client sees of the leader change.
//
// The service and the client connect to a node that does not lead the stream, so the figure is the election, not
// the reconnect of the service's own connection.
import { join } from 'node:path';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

import { createVmledgerClient, type CommandRequest } from '../services/client';
import { DEFAULT_STREAM_NAME, openJetStreamEventStore } from '../services/eventstore/jetstream';
import { startNatsCluster } from '../test/support/natsCluster';
import { startNatsServer } from '../test/support/natsServer';
import { measureCommands, SERVE_ENV, SERVE_READY, spawnResponder, stopResponder, type RateAndLatency } from './nats';

/** Store settings the README recommends for a cluster behind clients that wait 5 s. */
export const CLUSTER_STORE_QUERY = 'replicas=3&timeout=1000&retry=3000';

export interface ClusterBenchResult {
  inFlight: number;
  /** vmledger serve on `jetstream://` of one nats-server (replicas 1). */
  oneNode: RateAndLatency;
  /** The same on a three-node cluster, replicas 3. */
  threeNodes: RateAndLatency;
  /** threeNodes / oneNode. */
  ratio: number;
  leaderChange: {
    killed: string;
    newLeader: string | undefined;
    /** Longest time without an acknowledged command, from the kill until acknowledgements flow again. */
    longestGapMs: number;
    /** Longest gap in the same length of time before the kill (the baseline of that figure). */
    gapBeforeMs: number;
    acknowledged: number;
    storeUnavailableReplies: number;
    timeouts: number;
  };
}

const hostPort = (url: string) => url.replace('nats://', '');
const REPO_BIN = join(import.meta.dirname, '..', 'bin', 'vmledger.mjs');

async function throughServe(natsUrl: string, store: string, inFlight: number, durationMs: number): Promise<RateAndLatency> {
  const serve = await spawnResponder([REPO_BIN, 'serve', '--store', store, '--nats', natsUrl], SERVE_ENV, SERVE_READY);
  const nc = await connect({ servers: natsUrl, name: 'bench-cluster-client' });
  try {
    const client = createVmledgerClient(nc, { timeoutMs: 30_000, retries: 0 });
    return await measureCommands((c) => client.execute(c), inFlight, Math.min(1_000, durationMs / 4), durationMs);
  } finally {
    await nc.close().catch(() => {});
    await stopResponder(serve);
  }
}

/** Workers alternating start/destroy on their own domain, resending each command until it is acknowledged. */
function ackLoop(nc: NatsConnection, workers: number, prefix: string) {
  const client = createVmledgerClient(nc, { timeoutMs: 5_000, retries: 0 });
  const acks: number[] = [];
  let unavailable = 0;
  let timeouts = 0;
  let stopped = false;
  let n = 0;
  const send = async (command: CommandRequest) => {
    for (;;) {
      try {
        const out = await client.execute(command);
        if (!out.ok && out.rule === 'STORE-UNAVAILABLE') {
          unavailable++;
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (!out.ok) throw new Error(`bench: ${out.command} refused: ${out.rule} ${out.message}`);
        acks.push(Date.now());
        return;
      } catch (error) {
        if ((error as Error).message.startsWith('bench:')) throw error;
        timeouts++;
      }
    }
  };
  const meta = () => ({ commandId: `${prefix}-${n++}`, time: new Date().toISOString(), actor: 'bench' });
  const done = Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const domain = `${prefix}-${w}`;
      const uuid = `00000000-0000-4000-9000-${String(w).padStart(12, '0')}`;
      await send({ verb: 'define', config: { name: domain, uuid }, meta: meta() } as CommandRequest);
      for (let running = false; !stopped; running = !running) {
        await send({ verb: running ? 'destroy' : 'start', domain, meta: meta() } as CommandRequest);
      }
    }),
  );
  return {
    acks,
    stats: () => ({ unavailable, timeouts }),
    async stop() {
      stopped = true;
      await done;
    },
  };
}

function longestGap(times: number[], from: number, to: number): number {
  const inside = [from, ...times.filter((t) => t > from && t < to).sort((a, b) => a - b), to];
  let gap = 0;
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
  return gap;
}

export async function clusterBench(options: { inFlight?: number; durationMs?: number; log?: (line: string) => void } = {}): Promise<ClusterBenchResult> {
  const inFlight = options.inFlight ?? 64;
  const durationMs = options.durationMs ?? 5_000;
  const log = options.log ?? (() => {});

  const single = await startNatsServer();
  let oneNode: RateAndLatency;
  try {
    oneNode = await throughServe(single.url, `jetstream://${hostPort(single.url)}`, inFlight, durationMs);
  } finally {
    await single.stop();
  }
  log(`one node: ${oneNode.requestsPerSecond} commands/s`);

  const cluster = await startNatsCluster();
  try {
    await cluster.waitForJetStream(60_000, undefined, { allPeers: true });
    // Create the stream and buckets first, so the service can be put on a node that does not lead them.
    const setup = await openJetStreamEventStore({ servers: cluster.urls, replicas: 3 });
    await setup.close();
    const { leader } = await cluster.streamLeader(DEFAULT_STREAM_NAME);
    const node = cluster.nodes.find((n) => n.name !== leader)!;
    const spec = `jetstream://${hostPort(node.url)}?${CLUSTER_STORE_QUERY}`;
    const threeNodes = await throughServe(node.url, spec, inFlight, durationMs);
    log(`three nodes: ${threeNodes.requestsPerSecond} commands/s`);

    const serve = await spawnResponder([REPO_BIN, 'serve', '--store', spec, '--nats', node.url], SERVE_ENV, SERVE_READY);
    const nc = await connect({ servers: node.url, name: 'bench-leader-change' });
    try {
      const load = ackLoop(nc, inFlight, `lc${Date.now() % 100_000}`);
      await new Promise((r) => setTimeout(r, 3_000));
      const current = (await cluster.streamLeader(DEFAULT_STREAM_NAME)).leader ?? leader!;
      const killedAt = Date.now();
      await cluster.kill(current);
      // Wait until acknowledgements have flowed for 2 s after the kill (at most 60 s).
      while (Date.now() - killedAt < 60_000) {
        const recent = load.acks.filter((t) => t > Date.now() - 2_000 && t > killedAt).length;
        if (recent > 0 && Date.now() - killedAt > 4_000 && load.acks.filter((t) => t > killedAt).length > inFlight) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const endAt = Date.now();
      await load.stop();
      const newLeader = (await cluster.streamLeader(DEFAULT_STREAM_NAME, node.name)).leader;
      const window = endAt - killedAt;
      return {
        inFlight,
        oneNode,
        threeNodes,
        ratio: Math.round((threeNodes.requestsPerSecond / oneNode.requestsPerSecond) * 1000) / 1000,
        leaderChange: {
          killed: current,
          newLeader,
          longestGapMs: longestGap(load.acks, killedAt, endAt),
          gapBeforeMs: longestGap(load.acks, killedAt - Math.min(window, 2_500), killedAt),
          acknowledged: load.acks.length,
          storeUnavailableReplies: load.stats().unavailable,
          timeouts: load.stats().timeouts,
        },
      };
    } finally {
      await nc.close().catch(() => {});
      await stopResponder(serve);
    }
  } finally {
    await cluster.stop();
  }
}
