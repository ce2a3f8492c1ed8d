// Why the ledger and replay call decide() rather than the XState machine (issue 15): the cost of one command
// through each reading of the verb table (machines/verbs.ts), on the replay benchmark's workload (a running
// domain suspended and resumed in turn, one resume in 50 refused by ACT-REQ). Prints µs per command:
//   decide + evolve      the fast path (machines/decide.ts, evolve.ts);
//   machineStep          XState's pure transition() (machines/domainMachine.ts), which builds an inert actor
//                        on every call;
//   actor.send           one long-lived actor, for comparison (not pure: an actor per domain to keep).
//
//   npx tsx bench/machine.ts [COMMANDS]      (default 20 000)
import { fileURLToPath } from 'node:url';
import { createActor } from 'xstate';

import { CommandSchema, type Command, type CommandInput } from '../machines/commands';
import { decide } from '../machines/decide';
import { commandEvent, domainMachine, domainSnapshot, initialDomainSnapshot, machineStep } from '../machines/domainMachine';
import { evolveAll } from '../machines/evolve';

export interface MachineBenchResult {
  commands: number;
  decideUs: number;
  machineStepUs: number;
  actorSendUs: number;
}

function commands(n: number): Command[] {
  const parse = (input: Record<string, unknown>, i: number) =>
    CommandSchema.parse({ host: 'bench', meta: { commandId: `m-${i}`, time: '2024-01-01T00:00:00Z' }, ...input } as CommandInput);
  const out = [parse({ verb: 'define', config: { name: 'vm', uuid: 'u-1', disks: [{ target: 'vda', source: '/i/vm.qcow2' }] } }, 0), parse({ verb: 'start', domain: 'vm' }, 1)];
  for (let i = 0; out.length < n + 2; i++) {
    out.push(parse({ verb: 'suspend', domain: 'vm' }, out.length), parse({ verb: 'resume', domain: 'vm' }, out.length + 1));
    // One resume in 50 meets a running domain: ACT-REQ refuses it.
    if (i % 25 === 24) out.push(parse({ verb: 'resume', domain: 'vm' }, out.length));
  }
  return out;
}

function perCommand(n: number, run: () => void): number {
  const started = performance.now();
  run();
  return Math.round(((performance.now() - started) / n) * 1000 * 10) / 10;
}

export function machineBench(n = 20_000): MachineBenchResult {
  const all = commands(n);
  const decideUs = perCommand(all.length, () => {
    let s = initialDomainSnapshot('bench', 'vm').context;
    for (const c of all) {
      const d = decide(s, c);
      if (d.ok) s = evolveAll(s, d.facts);
    }
  });
  const machineStepUs = perCommand(all.length, () => {
    let snapshot = initialDomainSnapshot('bench', 'vm');
    for (const c of all) snapshot = machineStep(snapshot, c).snapshot;
  });
  const actorSendUs = perCommand(all.length, () => {
    const actor = createActor(domainMachine, { snapshot: domainSnapshot(initialDomainSnapshot('bench', 'vm').context), input: { host: 'bench', name: 'vm' } }).start();
    for (const c of all) actor.send(commandEvent(c));
    actor.stop();
  });
  return { commands: all.length, decideUs, machineStepUs, actorSendUs };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const n = Number(process.argv[2] ?? 20_000);
  machineBench(n); // warm-up
  const r = machineBench(n);
  console.log(`${r.commands} commands, µs per command: decide + evolve ${r.decideUs}, machineStep (transition) ${r.machineStepUs}, actor.send ${r.actorSendUs}`);
}
