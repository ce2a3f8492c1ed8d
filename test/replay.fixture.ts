// Logs for the projection and replay tests: a seeded script of a few hundred virsh-like commands over a
// handful of domains on two hosts (accepted and refused mixed), executed through the real ledger.
import type { CommandInput } from '../machines/commands';
import { prng } from './support/prng';
import type { Ledger } from '../services/ledger-types';

export type Executor = Pick<Ledger, 'execute'>;

const T0 = Date.parse('2024-03-01T08:00:00Z');
export const timeOf = (n: number) => new Date(T0 + n * 1000).toISOString();

export function uuidOf(host: string, name: string, life = 0): string {
  const hex = Buffer.from(`${host}/${name}/${life}`).toString('hex').padEnd(32, '0').slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export const config = (host: string, name: string, life = 0) => ({
  name,
  uuid: uuidOf(host, name, life),
  disks: [
    { target: 'vda', source: `/var/lib/libvirt/images/${name}.qcow2` },
    { target: 'vdb', source: `/var/lib/libvirt/images/${name}-data.qcow2` },
  ],
});

export interface ScriptStats {
  commands: number;
  accepted: number;
  refused: number;
  byRule: Record<string, number>;
}

/**
 * Runs `count` commands (a migration counts its phases) picked by a seeded PRNG over `domains` names on each
 * of two hosts. Undefine flags are mixed so that UND-SNAPSHOTS refusals occur; about a third of all commands
 * are refused.
 */
export async function runScript(ledger: Executor, options: { seed?: number; count?: number; domains?: number } = {}): Promise<ScriptStats> {
  const rnd = prng(options.seed ?? 7);
  const count = options.count ?? 300;
  const hosts = ['h1', 'h2'];
  const names = Array.from({ length: options.domains ?? 5 }, (_, i) => `vm${i}`);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const stats: ScriptStats = { commands: 0, accepted: 0, refused: 0, byRule: {} };
  let n = 0;
  let snap = 0;
  const lives = new Map<string, number>();
  let notFound: Record<string, unknown> | undefined;

  const run = async (input: Record<string, unknown>) => {
    n++;
    const outcome = await ledger.execute({
      ...input,
      meta: { commandId: `cmd-${String(n).padStart(5, '0')}`, actor: pick(['alice', 'bob', 'ops-bot']), time: timeOf(n) },
    } satisfies Record<string, unknown> as CommandInput);
    stats.commands++;
    if (!outcome.ok && outcome.rule === 'DOM-NOTFOUND') notFound = input;
    if (outcome.ok) stats.accepted++;
    else {
      stats.refused++;
      stats.byRule[outcome.rule ?? '?'] = (stats.byRule[outcome.rule ?? '?'] ?? 0) + 1;
    }
    return outcome;
  };

  while (stats.commands < count) {
    // After "no such domain", usually define it: keeps most commands about domains that exist.
    const missing = notFound;
    notFound = undefined;
    if (missing && typeof missing.domain === 'string' && rnd() < 0.7) {
      const host = String(missing.host);
      await run({ verb: 'define', host, config: config(host, missing.domain, lives.get(`${host}/${missing.domain}`) ?? 0) });
      continue;
    }
    const host = pick(hosts);
    let domain = pick(names);
    const key = `${host}/${domain}`;
    const r = rnd();
    if (r < 0.1) {
      const out = await run({ verb: 'define', host, config: config(host, domain, lives.get(key) ?? 0) });
      if (!out.ok && rnd() < 0.5) lives.set(key, (lives.get(key) ?? 0) + 1);
    } else if (r < 0.14) {
      await run({ verb: 'create', host, config: config(host, domain, lives.get(key) ?? 0), paused: rnd() < 0.2 });
    } else if (r < 0.26) {
      await run({ verb: 'start', host, domain, forceBoot: rnd() < 0.2 });
    } else if (r < 0.32) {
      await run({ verb: 'suspend', host, domain });
    } else if (r < 0.38) {
      await run({ verb: 'resume', host, domain });
    } else if (r < 0.44) {
      await run({ verb: pick(['shutdown', 'destroy']), host, domain });
    } else if (r < 0.58) {
      await run({
        verb: 'snapshot-create',
        host,
        domain,
        snapshot: { name: rnd() < 0.05 ? `bad/${snap++}` : `s${snap++}`, disks: [] },
        halt: rnd() < 0.1,
        diskOnly: rnd() < 0.1,
      });
    } else if (r < 0.63) {
      await run({ verb: 'snapshot-delete', host, domain, snapshotname: `s${Math.max(0, snap - 1 - Math.floor(rnd() * 4))}`, children: rnd() < 0.2 });
    } else if (r < 0.67) {
      await run({ verb: 'snapshot-revert', host, domain, snapshotname: `s${Math.max(0, snap - 1 - Math.floor(rnd() * 4))}`, force: rnd() < 0.5 });
    } else if (r < 0.72) {
      await run({ verb: 'managedsave', host, domain });
    } else if (r < 0.86) {
      await run({ verb: 'undefine', host, domain, snapshotsMetadata: rnd() < 0.3, managedSave: rnd() < 0.6 });
    } else if (r < 0.9) {
      await run({ verb: 'guest-event', host, domain, event: pick(['poweroff', 'reboot', 'crash'] as const) });
    } else {
      // The ledger runs the whole saga (Begin, Prepare, Perform, Finish on the destination, Confirm).
      const dest = hosts.find((h) => h !== host)!;
      if (rnd() < 0.5) {
        // A fresh running domain with no snapshots, so that some migrations get all the way through.
        domain = `mig${n}`;
        await run({ verb: 'define', host, config: config(host, domain) });
        await run({ verb: 'start', host, domain });
      }
      await run({ verb: 'migrate', host, domain, desthost: dest, persistent: rnd() < 0.7, undefinesource: rnd() < 0.3 });
    }
  }
  return stats;
}
