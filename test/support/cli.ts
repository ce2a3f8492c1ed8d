// Running the `vmledger` binary (bin/vmledger.mjs) as a child process, as users do.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VMLEDGER_BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'bin/vmledger.mjs');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `vmledger ...args` in `cwd` with `input` on stdin; resolves once it exits. */
export function runVmledger(args: string[], cwd: string, input = ''): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [VMLEDGER_BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
