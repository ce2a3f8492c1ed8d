// The Appendix A scripts through `vmledger --connect test+unix:///default?socket=…` agree with virsh on the same
// daemon, command by command. Both sides start from a fresh test driver (its state is dropped when the last
// connection closes): virsh runs the script on one long-lived connection; vmledger's ledger is first given the
// preamble the test driver starts from (`define test.xml; start test`, bookkeeping only), then runs the script
// with the libvirt driver performing every accepted command on the test driver.
//
// What is compared: accepted/refused for every command, the error text where virsh's own conformance test
// compares it (test/virsh-conformance.int.test.ts: the test driver's texts differ from qemu's where listed), and
// the printed output of the commands both print the same way. Over a connection the test driver has the last
// word, so commands the rules accept and the test driver refuses are refused with its text (counted below).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

import { createLibvirtDriver } from '../../services/drivers/libvirt';
import { createMemoryEventStore } from '../../services/eventstore/index';
import { createLedger } from '../../services/ledger';
import { openLibvirtConnection, type VirshResult } from '../../services/libvirt/connection';
import { VirshSession, type CommandReport } from '../../services/virsh/session';
import { tokenize } from '../../services/virsh/tokenize';
import { outputComparable, SCRIPTS } from '../support/appendixScripts';
import { describeLibvirt, useLibvirtd } from './daemon';

const FIXTURES = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'fixtures');
const PREAMBLE = 'define libvirt-examples/test.xml; start test';
const readFixture = (p: string) => readFileSync(join(FIXTURES, p), 'utf8');

describeLibvirt('Appendix A through vmledger --connect agrees with virsh on the same test driver', () => {
  const lv = useLibvirtd();
  const counted = { scripts: 0, verdicts: 0, texts: 0, outputs: 0, libvirtRefused: 0 };

  async function virshSide(commands: string[]): Promise<VirshResult[]> {
    const c = openLibvirtConnection(lv.current.testUri, { cwd: FIXTURES, quiet: false });
    try {
      const out: VirshResult[] = [];
      for (const command of commands) {
        const parsed = tokenize(command);
        if (!parsed.ok || parsed.commands.length !== 1) throw new Error(`not one virsh command: ${command}`);
        out.push(await c.run(parsed.commands[0]!));
      }
      return out;
    } finally {
      await c.close();
    }
  }

  async function vmledgerSide(commands: string[]): Promise<CommandReport[]> {
    const store = createMemoryEventStore();
    const seed = createLedger(store);
    const seeded: CommandReport[] = [];
    await new VirshSession(seed, { readFile: readFixture }).runText(PREAMBLE, (r) => void seeded.push(r));
    expect(seeded.map((r) => r.ok), 'preamble').toEqual([true, true]);
    await seed.close();
    const driver = createLibvirtDriver(openLibvirtConnection(lv.current.testUri));
    const ledger = createLedger(store, { driver });
    try {
      const reports: CommandReport[] = [];
      await new VirshSession(ledger, { readFile: readFixture, connected: true }).runText(commands.join('\n'), (r) => void reports.push(r));
      counted.libvirtRefused += reports.filter((r) => r.json.rule === 'LIBVIRT').length;
      return reports;
    } finally {
      await ledger.close();
      await driver.close();
      await store.close();
    }
  }

  // One script at a time: the test driver's state is the daemon's, shared by every connection.
  it.each(SCRIPTS)('$id: $commands', async (script) => {
    const theirs = await virshSide(script.commands);
    const ours = await vmledgerSide(script.commands);
    expect(ours).toHaveLength(script.commands.length);
    counted.scripts++;
    script.commands.forEach((command, i) => {
      const where = `${script.id} command ${i + 1} \`${command}\``;
      const t = theirs[i]!;
      const o = ours[i]!;
      expect(o.ok, `${where}: virsh ${t.failed ? `refused: ${t.stderr}` : 'accepted'}; vmledger: ${o.stderr}`).toBe(!t.failed);
      counted.verdicts++;
      if (t.failed && script.messageDiffers?.[i] === undefined) {
        expect(o.stderr, `${where}: error text`).toBe(t.stderr);
        counted.texts++;
      }
      if (!t.failed && outputComparable(command) && script.outputDiffers?.[i] === undefined) {
        expect(o.stdout, `${where}: output`).toBe(t.stdout);
        counted.outputs++;
      }
    });
  });

  // Last in the file (tests run in order): every command was compared, and enough texts and outputs.
  it('compared every command of every script', () => {
    expect(counted.scripts, 'every script ran and agreed').toBe(SCRIPTS.length);
    expect(counted.verdicts).toBe(SCRIPTS.reduce((n, s) => n + s.commands.length, 0));
    expect(counted.texts).toBeGreaterThanOrEqual(35);
    expect(counted.outputs).toBeGreaterThanOrEqual(130);
    console.log(`Appendix A over --connect: ${JSON.stringify(counted)}`);
  });
});
