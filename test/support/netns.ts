// Two test hosts on one machine: two network namespaces joined by a veth pair, each end with its address, for two
// private libvirtd daemons (test/support/libvirtd.ts `netns`) whose guests migrate over that link.
//
//   const pair = createHostPair();          // root and iproute2 needed: hostPairUnavailable() says why not
//   pair.a.netns, pair.a.address            'vmledger-<pid>-<hex>-a', '10.213.0.1'; pair.b likewise (.2)
//   pair.remove()                           deletes both namespaces (their veth ends go with them); idempotent
//
// Names are unique per process and call, so parallel runs never meet; the addresses may repeat between pairs,
// since each pair's namespaces see only each other. Traffic stays inside the pair: nothing routes to the outside.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestHost {
  netns: string;
  address: string;
}

export interface HostPair {
  a: TestHost;
  b: TestHost;
  remove(): void;
}

const PREFIX_LENGTH = 30;
const ADDRESSES = ['10.213.0.1', '10.213.0.2'] as const;

/** Why two test hosts cannot be made here (not root, no `ip netns`), or undefined when they can. */
export function hostPairUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'two test hosts need network namespaces, which need root';
  // Listing works almost anywhere; adding one is what a container without CAP_SYS_ADMIN refuses.
  const name = `vmledger-probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  const probe = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `two test hosts need 'ip netns add' (iproute2) to work: ${probe.error?.message ?? probe.stderr.trim()}`;
  spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  return undefined;
}

/** Pairs alive in this process, removed on exit even when a test never reached its teardown. */
const live = new Set<HostPair>();
let exitHookInstalled = false;

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createHostPair(): HostPair {
  const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const netns = { a: `vmledger-${tag}-a`, b: `vmledger-${tag}-b` };
  // Interface names have at most 15 characters.
  const veth = { a: `vl${tag.slice(-6)}a`, b: `vl${tag.slice(-6)}b` };
  let removed = false;
  const pair: HostPair = {
    a: { netns: netns.a, address: ADDRESSES[0] },
    b: { netns: netns.b, address: ADDRESSES[1] },
    remove() {
      if (removed) return;
      removed = true;
      live.delete(pair);
      for (const ns of [netns.a, netns.b]) spawnSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    },
  };
  live.add(pair);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of live) p.remove();
    });
  }
  try {
    ip(['netns', 'add', netns.a]);
    ip(['netns', 'add', netns.b]);
    ip(['link', 'add', veth.a, 'netns', netns.a, 'type', 'veth', 'peer', 'name', veth.b, 'netns', netns.b]);
    for (const side of ['a', 'b'] as const) {
      const ns = netns[side];
      ip(['-n', ns, 'addr', 'add', `${pair[side].address}/${PREFIX_LENGTH}`, 'dev', veth[side]]);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'link', 'set', veth[side], 'up']);
    }
  } catch (error) {
    pair.remove();
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`could not make two test hosts: ${stderr || (error as Error).message}`);
  }
  return pair;
}
