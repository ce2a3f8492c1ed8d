// `vmledger serve` as a child process, as users run it (bin/vmledger.mjs), for the crash tests: started with the
// fault hook of services/intents.ts when given a point, so that it pauses there until the test kills it.
import { spawn, type ChildProcess } from 'node:child_process';

import { FAULT_ENV } from '../../services/intents';
import { VMLEDGER_BIN } from './cli';

export interface ServeProcess {
  child: ChildProcess;
  /** What it wrote to stderr so far (its log; `vmledger: paused at POINT` once paused). */
  stderr(): string;
  /** Resolves once it paused at the point it was started with. */
  paused(timeoutMs?: number): Promise<void>;
  /** SIGKILL, resolved once it is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (it drains and closes the store), resolved once it is gone. */
  stop(): Promise<void>;
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every serve started here, killed when the test process exits (a failed test leaves nothing running). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** `vmledger serve ARGS` in `cwd`; resolves once it serves. With `pausePoint` it stops at that point of the protocol. */
export async function startServe(args: string[], cwd: string, pausePoint?: 'after-intent' | 'after-effect'): Promise<ServeProcess> {
  const env = { ...process.env };
  if (pausePoint !== undefined) env[FAULT_ENV] = pausePoint;
  else delete env[FAULT_ENV];
  const child = spawn(process.execPath, [VMLEDGER_BIN, 'serve', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => (live.delete(child), resolve())));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const end = async (signal: NodeJS.Signals) => {
    if (!gone()) child.kill(signal);
    await exited;
  };
  await waitUntil(() => stderr.includes("serving '") || gone(), 60_000, () => `serve to start: ${stderr}`);
  if (gone()) throw new Error(`serve exited early: ${stderr}`);
  return {
    child,
    stderr: () => stderr,
    paused: (timeoutMs = 60_000) => waitUntil(() => stderr.includes(`paused at ${pausePoint}`), timeoutMs, () => `serve to pause at ${pausePoint}: ${stderr}`),
    kill9: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
  };
}
