// kill -9 of `vmledger --connect` between the intent and the result, then restart: the open intent is settled to
// what libvirt really did (the libvirt driver reads the domain back), nothing is performed twice (libvirtd's API
// log counts the starts), and replay is clean.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { FAULT_ENV } from '../../services/intents';
import { runVmledger, VMLEDGER_BIN } from '../support/cli';
import { describeLibvirt, useLibvirtd } from './daemon';

const SLOW = 240_000;

/** Runs `vmledger ARGS` with the fault hook at `point`; resolves once it pauses there, after killing it with SIGKILL. */
function killedAt(point: string, args: string[], cwd: string): Promise<void> {
  const child = spawn(process.execPath, [VMLEDGER_BIN, ...args], { cwd, env: { ...process.env, [FAULT_ENV]: point }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`never paused at ${point}: ${stderr}`));
    }, 120_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes(`paused at ${point}`)) {
        clearTimeout(timer);
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }
    });
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') return;
      clearTimeout(timer);
      reject(new Error(`exited (${String(code)}) before pausing at ${point}: ${stderr}`));
    });
  });
}

describeLibvirt('kill -9 of vmledger --connect between the intent and the result', () => {
  const lv = useLibvirtd();
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'vmledger-kill9-'));
    expect(lv.current.virsh(['capabilities']).status).toBe(0);
  }, 180_000);
  afterAll(() => {
    for (const n of ['k9a', 'k9b']) {
      lv.current.virsh(['destroy', n]);
      lv.current.virsh(['undefine', n]);
    }
    rmSync(work, { recursive: true, force: true });
  });

  it.each([
    ['k9a', 'after-effect', true],
    ['k9b', 'after-intent', false],
  ] as const)('%s killed %s: settled to what libvirt did (started: %s), nothing twice, replay clean', async (name, point, happened) => {
    const store = `sqlite:${join(work, `${name}.sqlite`)}`;
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, lv.current.domainXml(name, lv.current.image(`${name}.qcow2`)));
    const uri = lv.current.qemuUri;
    expect((await runVmledger(['-c', uri, '--store', store, 'define', xml], work)).code).toBe(0);
    const starts = () => lv.current.apiCalls().filter((c) => /^virDomainCreate/.test(c.api) && c.line.includes(`name=${name},`)).length;

    await killedAt(point, ['-c', uri, '--store', store, 'start', name], work);
    expect(lv.current.virsh(['domstate', name]).stdout.trim()).toBe(happened ? 'running' : 'shut off');
    expect(starts()).toBe(happened ? 1 : 0);

    // Restart: opening the ledger settles the intent against libvirt before the command runs.
    const state = await runVmledger(['-c', uri, '--store', store, 'domstate', name], work);
    expect(state.stderr).toBe('');
    expect(state.stdout.trim()).toBe(happened ? 'running' : 'shut off');
    expect(starts()).toBe(happened ? 1 : 0);
    const replay = await runVmledger(['replay', '--store', store], work);
    expect(replay.code, replay.stdout + replay.stderr).toBe(0);
    // The domain is free again: the next command is performed once.
    const next = await runVmledger(['-c', uri, '--store', store, happened ? 'destroy' : 'start', name], work);
    expect(next.stderr).toBe('');
    expect(starts()).toBe(1);
  }, SLOW);
});
