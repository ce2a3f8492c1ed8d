// Section i of `npm run bench`: vmledger in front of a real libvirtd against virsh alone, same private daemon
// (test/support/libvirtd.ts: session mode, qemu driver, a tiny TCG guest), same run, interleaved rounds.
//
//   baseline   one long-lived `virsh -q -c URI` (services/libvirt/connection.ts) running the sequence
//   vmledger   what `vmledger --connect URI shell` runs, in-process: the virsh session, the ledger on a durable
//              SQLite store (decide, hash, append), the libvirt driver performing each accepted command on its
//              own long-lived virsh
//   sequence   define, start, snapshot-create-as, destroy, undefine --snapshots-metadata (one guest at a time)
//
// Also the cost of one command: a long-lived virsh (`domstate`, a round trip to the daemon) against a fresh
// `virsh` process per command.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { createLibvirtDriver } from '../services/drivers/libvirt';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { createLedger } from '../services/ledger';
import { openLibvirtConnection } from '../services/libvirt/connection';
import { VirshSession } from '../services/virsh/session';
import { startLibvirtd } from '../test/support/libvirtd';

export interface LibvirtBenchResult {
  sequences: number;
  rounds: number;
  /** Sequences per second, one figure per round. */
  virsh: number[];
  vmledger: number[];
  median: { virsh: number; vmledger: number };
  ratio: number;
  perCommandMs: { longLived: number; freshProcess: number };
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function libvirtBench(options: { dir: string; rounds?: number; sequences?: number; log?: (l: string) => void }): Promise<LibvirtBenchResult> {
  const rounds = options.rounds ?? 3;
  const sequences = options.sequences ?? 2;
  const lv = await startLibvirtd();
  const work = mkdtempSync(join(options.dir, 'libvirt-bench-'));
  try {
    const xmlFile = join(work, 'bench.xml');
    writeFileSync(xmlFile, lv.domainXml('bench', lv.image('bench.qcow2')));
    const sequence = ['define ' + xmlFile, 'start bench', 'snapshot-create-as bench s1', 'destroy bench', 'undefine bench --snapshots-metadata'];
    // The first connection probes qemu's capabilities (seconds): before anything is timed.
    if (lv.virsh(['capabilities']).status !== 0) throw new Error(`libvirtd does not answer:\n${lv.log()}`);

    const virsh = openLibvirtConnection(lv.qemuUri);
    const runVirsh = async () => {
      const t = performance.now();
      for (let i = 0; i < sequences; i++) {
        for (const line of sequence) {
          const r = await virsh.run(line.split(' '));
          if (r.failed) throw new Error(`virsh ${line}: ${r.stderr}`);
        }
      }
      return (sequences / (performance.now() - t)) * 1000;
    };

    const store = openSqliteEventStore(join(work, 'ledger.sqlite'));
    const driver = createLibvirtDriver(openLibvirtConnection(lv.qemuUri));
    const ledger = createLedger(store, { driver });
    const session = new VirshSession(ledger, { actor: 'bench', connected: true });
    const runVmledger = async () => {
      const t = performance.now();
      for (let i = 0; i < sequences; i++) {
        for (const line of sequence) {
          let failure: string | undefined;
          await session.runText(line, (r) => {
            if (!r.ok) failure = r.stderr;
          });
          if (failure !== undefined) throw new Error(`vmledger ${line}: ${failure}`);
        }
      }
      return (sequences / (performance.now() - t)) * 1000;
    };

    try {
      // Warm both paths once, unmeasured.
      await runVirsh();
      await runVmledger();
      const v: number[] = [];
      const m: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const steps = [async () => v.push(await runVirsh()), async () => m.push(await runVmledger())];
        if (round % 2 === 1) steps.reverse();
        for (const step of steps) await step();
        options.log?.(`i: round ${round + 1}: virsh ${v.at(-1)!.toFixed(3)}/s, vmledger ${m.at(-1)!.toFixed(3)}/s`);
      }

      // One command: long-lived (a daemon round trip) against a fresh process.
      const n = 300;
      let t = performance.now();
      for (let i = 0; i < n; i++) await virsh.run(['domstate', 'no-such-domain']);
      const longLived = (performance.now() - t) / n;
      const fresh = 20;
      t = performance.now();
      for (let i = 0; i < fresh; i++) spawnSync('virsh', ['-q', '-c', lv.qemuUri, 'domstate', 'no-such-domain']);
      const freshProcess = (performance.now() - t) / fresh;

      const med = { virsh: median(v), vmledger: median(m) };
      const r3 = (x: number) => Math.round(x * 1000) / 1000;
      return {
        sequences,
        rounds,
        virsh: v.map(r3),
        vmledger: m.map(r3),
        median: { virsh: r3(med.virsh), vmledger: r3(med.vmledger) },
        ratio: r3(med.vmledger / med.virsh),
        perCommandMs: { longLived: r3(longLived), freshProcess: r3(freshProcess) },
      };
    } finally {
      await ledger.close();
      await driver.close();
      await store.close();
      await virsh.close();
    }
  } finally {
    await lv.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
