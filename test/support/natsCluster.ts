// A three-node NATS JetStream cluster on loopback for tests: three `nats-server -js` processes (test/support/
// natsServer.ts does the process work), each with its server name, its own store folder and a random client port,
// joined by cluster routes.
//
//   const cluster = await startNatsCluster();
//   await cluster.waitForJetStream(60_000, undefined, { allPeers: true }); // every node a current JetStream peer
//   await cluster.kill('n1');                     // kill -9 (store kept) ...
//   await cluster.start('n1');                    // ... and back on the same ports and store
//   await cluster.isolate('n2');                  // n2 keeps running, but no route reaches it: a minority of one
//   await cluster.heal('n2');
//   await cluster.stop();
//
// Partitions without iptables: every route goes through a small TCP relay of ours, one per ordered pair of nodes
// (n1 reaches n2 only through relay n1→n2). isolate(n) cuts every relay from and to n and refuses new
// connections on them until heal(n); the nodes and their client connections stay up. Each node advertises a
// dead cluster address, so no node learns another's real route port by gossip and bypasses the relays.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

import { startNatsServer, type NatsServerHandle } from './natsServer';

export const CLUSTER_NAME = 'vmledger-test';

export interface ClusterNode {
  /** Server name: n1, n2, n3. */
  readonly name: string;
  /** `nats://127.0.0.1:<port>` of this node (stable across restarts). */
  readonly url: string;
  readonly server: NatsServerHandle;
  /** Whether the process runs (false between kill() and start()). */
  readonly running: boolean;
  readonly isolated: boolean;
}

export interface NatsClusterHandle {
  readonly nodes: readonly ClusterNode[];
  /** Every node's client URL. */
  readonly urls: string[];
  node(name: string): ClusterNode;
  /** kill -9 (or `signal`) one node, keeping its store. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Start a killed node again: same name, ports and store folder. */
  start(name: string): Promise<void>;
  /** Cut every route to and from the node (it keeps running and serving its clients). */
  isolate(name: string): void;
  /** Let the node's routes connect again. */
  heal(name: string): void;
  /** Resolves once JetStream answers through `via` (default: the first running node): a meta leader exists. With
   * `allPeers`, also once that leader counts every running, reachable node as a current peer (a stream with 3
   * replicas can be placed: right after the start it is refused with "no suitable peers for placement"). */
  waitForJetStream(timeoutMs?: number, via?: string, options?: { allPeers?: boolean }): Promise<void>;
  /** The server name leading a stream's raft group, and its other replicas, as seen through `via` (retried while
   * the API answers 503 or no leader is elected, up to `timeoutMs`, default 15 s). */
  streamLeader(stream: string, via?: string, timeoutMs?: number): Promise<{ leader: string | undefined; replicas: { name: string; current: boolean }[] }>;
  /** Stops every node, removes store folders and relays. Idempotent. */
  stop(): Promise<void>;
  /** Every node's output, for a failed test's message. */
  log(): string;
  /**
   * What each running node says of `streams` (leader, replicas with lag, last sequence) and of their consumers
   * (where each lives, how far it delivered), plus which relays are cut: for the message of a step that stalled.
   * Each question is bounded (2 s); one that fails is reported as such.
   */
  describe(streams: readonly string[]): Promise<string>;
  /** The last sequence of `stream` in each running node's own store (its /jsz), by node; undefined if it did not say. */
  localLastSeqs(stream: string): Promise<Record<string, number | undefined>>;
}

interface Relay {
  from: string;
  to: string;
  port: number;
  blocked: boolean;
  sockets: Set<Socket>;
  server: Server;
  /** Where the target node's route port is (known once its config is written). */
  targetPort: number;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

async function startRelay(from: string, to: string): Promise<Relay> {
  const sockets = new Set<Socket>();
  const relay: Relay = { from, to, port: 0, blocked: false, sockets, targetPort: 0, server: undefined as unknown as Server };
  relay.server = createServer((inbound) => {
    if (relay.blocked) {
      inbound.destroy();
      return;
    }
    const outbound = tcpConnect({ host: '127.0.0.1', port: relay.targetPort });
    for (const s of [inbound, outbound]) {
      // Without it Nagle's algorithm meets delayed ACKs and every replicated write waits ~40 ms on the relay.
      s.setNoDelay(true);
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => relay.server.once('error', reject).listen(0, '127.0.0.1', resolve));
  relay.port = (relay.server.address() as AddressInfo).port;
  return relay;
}

function cutRelay(relay: Relay): void {
  relay.blocked = true;
  for (const s of relay.sockets) s.destroy();
}

export async function startNatsCluster(options: { names?: string[] } = {}): Promise<NatsClusterHandle> {
  const names = options.names ?? ['n1', 'n2', 'n3'];
  const configDir = mkdtempSync(join(tmpdir(), 'vmledger-nats-cluster-'));
  const relays: Relay[] = [];
  for (const from of names) for (const to of names) if (from !== to) relays.push(await startRelay(from, to));
  const routePorts = new Map<string, number>();
  for (const name of names) routePorts.set(name, await freePort());
  // The monitoring port (/jsz): what each node itself holds, which the JetStream API (answered by leaders) never says.
  const monitorPorts = new Map<string, number>();
  for (const name of names) monitorPorts.set(name, await freePort());
  for (const relay of relays) relay.targetPort = routePorts.get(relay.to)!;

  const configFor = (name: string): string => {
    const routes = relays.filter((r) => r.from === name).map((r) => `"nats-route://127.0.0.1:${r.port}"`);
    const file = join(configDir, `${name}.conf`);
    writeFileSync(
      file,
      [
        `server_name: ${name}`,
        `http: "127.0.0.1:${monitorPorts.get(name)!}"`,
        'cluster {',
        `  name: ${CLUSTER_NAME}`,
        `  listen: "127.0.0.1:${routePorts.get(name)!}"`,
        // Port 1 on loopback refuses: gossiped (implicit) routes fail, only the relayed explicit ones connect.
        '  advertise: "127.0.0.1:1"',
        '  connect_retries: 0',
        `  routes: [${routes.join(', ')}]`,
        '}',
        '',
      ].join('\n'),
    );
    return file;
  };

  const state = new Map<string, { server: NatsServerHandle; running: boolean; isolated: boolean }>();
  let stopped = false;
  try {
    const servers = await Promise.all(names.map((name) => startNatsServer({ args: ['-c', configFor(name)] })));
    names.forEach((name, i) => state.set(name, { server: servers[i]!, running: true, isolated: false }));
  } catch (error) {
    for (const relay of relays) {
      cutRelay(relay);
      relay.server.close();
    }
    rmSync(configDir, { recursive: true, force: true });
    throw error;
  }

  const get = (name: string) => {
    const s = state.get(name);
    if (!s) throw new Error(`no node '${name}' in the cluster (nodes: ${names.join(', ')})`);
    return s;
  };
  const nodeView = (name: string): ClusterNode => ({
    name,
    get url() {
      return get(name).server.url;
    },
    get server() {
      return get(name).server;
    },
    get running() {
      return get(name).running;
    },
    get isolated() {
      return get(name).isolated;
    },
  });
  const log = () => names.map((n) => `--- ${n}\n${get(n).server.log().slice(-4_000)}`).join('\n');
  const firstRunning = () => names.find((n) => get(n).running && !get(n).isolated) ?? names[0]!;

  /** A short-lived connection to one node only (no reconnects to others). */
  const connectTo = (name: string): Promise<NatsConnection> =>
    connect({ servers: get(name).server.url, ignoreClusterUpdates: true, reconnect: false, timeout: 2_000 });

  /** Running, reachable nodes that the meta leader (asked through its /jsz) does not list as current peers. */
  const missingMetaPeers = async (): Promise<string[]> => {
    const wanted = names.filter((n) => get(n).running && !get(n).isolated);
    for (const name of wanted) {
      const jsz = (await fetch(`http://127.0.0.1:${monitorPorts.get(name)!}/jsz`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => r.json())
        .catch(() => undefined)) as { meta_cluster?: { leader?: string; replicas?: { name: string; current: boolean; offline?: boolean }[] } } | undefined;
      if (jsz?.meta_cluster?.leader !== name) continue;
      const current = new Set((jsz.meta_cluster.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name));
      return wanted.filter((n) => n !== name && !current.has(n));
    }
    return ['(no meta leader among the reachable nodes)'];
  };

  const localLastSeqs = async (stream: string): Promise<Record<string, number | undefined>> => {
    const out: Record<string, number | undefined> = {};
    for (const name of names) {
      if (!get(name).running) continue;
      try {
        const response = await fetch(`http://127.0.0.1:${monitorPorts.get(name)!}/jsz?streams=true`, { signal: AbortSignal.timeout(2_000) });
        const jsz = (await response.json()) as { account_details?: { stream_detail?: { name: string; state: { last_seq: number } }[] }[] };
        const detail = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []).find((d) => d.name === stream);
        out[name] = detail?.state.last_seq;
      } catch {
        out[name] = undefined;
      }
    }
    return out;
  };

  return {
    nodes: names.map(nodeView),
    get urls() {
      return names.map((n) => get(n).server.url);
    },
    node: (name) => (get(name), nodeView(name)),
    async kill(name, signal = 'SIGKILL') {
      const s = get(name);
      await s.server.kill(signal);
      s.running = false;
    },
    async start(name) {
      const s = get(name);
      await s.server.restart();
      s.running = true;
    },
    isolate(name) {
      get(name).isolated = true;
      for (const r of relays) if (r.from === name || r.to === name) cutRelay(r);
    },
    heal(name) {
      get(name).isolated = false;
      for (const r of relays) {
        if (r.from === name || r.to === name) r.blocked = get(r.from).isolated || get(r.to).isolated;
      }
    },
    async waitForJetStream(timeoutMs = 30_000, via, options = {}) {
      const deadline = Date.now() + timeoutMs;
      let last: unknown;
      while (Date.now() < deadline) {
        const nc = await connectTo(via ?? firstRunning()).catch((e: unknown) => ((last = e), undefined));
        if (nc) {
          try {
            const jsm = await jetstreamManager(nc, { timeout: 2_000 });
            await jsm.getAccountInfo();
            const missing = options.allPeers ? await missingMetaPeers() : [];
            if (missing.length === 0) return;
            last = new Error(`the meta leader does not count ${missing.join(', ')} as current JetStream peers yet`);
          } catch (error) {
            last = error;
          } finally {
            await nc.close().catch(() => {});
          }
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`JetStream of the cluster did not answer within ${timeoutMs} ms: ${String(last)}\n${log()}`);
    },
    async streamLeader(stream, via, timeoutMs = 15_000) {
      // Right after a node joins or a leader dies, the API may answer 503 for a while: ask again until it knows.
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const nc = await connectTo(via ?? firstRunning());
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          const info = await jsm.streams.info(stream);
          if (info.cluster?.leader || Date.now() > deadline) {
            return {
              leader: info.cluster?.leader,
              replicas: (info.cluster?.replicas ?? []).map((r) => ({ name: r.name, current: r.current })),
            };
          }
        } catch (error) {
          if (Date.now() > deadline) throw error;
        } finally {
          await nc.close().catch(() => {});
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(names.map((n) => get(n).server.stop()));
      for (const relay of relays) {
        cutRelay(relay);
        relay.server.close();
      }
      rmSync(configDir, { recursive: true, force: true });
    },
    log,
    localLastSeqs,
    async describe(streams) {
      const lines: string[] = [];
      const cut = relays.filter((r) => r.blocked).map((r) => `${r.from}→${r.to}`);
      lines.push(`relays cut: ${cut.length > 0 ? cut.join(' ') : 'none'}; open route sockets: ${relays.map((r) => `${r.from}→${r.to}:${r.sockets.size}`).join(' ')}`);
      for (const name of names) {
        if (!get(name).running) {
          lines.push(`${name}: not running`);
          continue;
        }
        let nc: NatsConnection | undefined;
        try {
          nc = await connectTo(name);
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          for (const stream of streams) {
            try {
              const info = await jsm.streams.info(stream);
              const replicas = (info.cluster?.replicas ?? [])
                .map((r) => `${r.name}(${r.current ? 'current' : 'NOT current'}, lag ${r.lag ?? 0}, active ${Math.round((r.active ?? 0) / 1e6)} ms ago)`)
                .join(' ');
              lines.push(`${name}: ${stream} leader ${info.cluster?.leader ?? 'NONE'}, last seq ${info.state.last_seq}, replicas ${replicas}`);
              if (name === firstRunning()) lines.push(`  ${stream} in each node's own store (/jsz) ends at ${JSON.stringify(await localLastSeqs(stream))}`);
              const consumers = await jsm.consumers.list(stream).next();
              for (const c of consumers) {
                lines.push(
                  `${name}:   consumer ${c.name} on ${c.cluster?.leader ?? 'NO LEADER'} from seq ${c.config.opt_start_seq ?? 1}` +
                    `${c.config.filter_subject ? ` (${c.config.filter_subject})` : ''}: delivered up to ${c.delivered.stream_seq}, ` +
                    `${c.num_pending} pending, ${c.num_waiting} pull(s) waiting`,
                );
              }
            } catch (error) {
              lines.push(`${name}: ${stream}: ${String(error)}`);
            }
          }
        } catch (error) {
          lines.push(`${name}: ${String(error)}`);
        } finally {
          await nc?.close().catch(() => {});
        }
      }
      return lines.join('\n');
    },
  };
}
