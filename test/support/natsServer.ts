// A real `nats-server -js` for tests, as nats.js's own tests do: a private process on a random loopback port with
// a temporary JetStream store directory, so test runs never share state with each other or with a server on 4222.
//
//   const server = await startNatsServer();
//   ... connect({ servers: server.url }) ...
//   await server.restart();   // same port, same store dir: clients reconnect
//   await server.stop();      // kills the process and removes the store dir
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface NatsServerHandle {
  /** `nats://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** The JetStream store directory (`-sd`), removed by stop(). */
  storeDir: string;
  /** Stop the process (SIGTERM, then SIGKILL after 5 s) and remove the store directory. Idempotent. */
  stop(): Promise<void>;
  /** Stop the process (keeping the store) and start it again on the same port and store directory. */
  restart(): Promise<void>;
  /** Stop the process but keep the store (for outage tests); start() it again with restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** What the server wrote to stderr/stdout, for diagnosing a failed test. */
  log(): string;
}

export interface NatsServerOptions {
  /** Extra command-line arguments, e.g. `['--user', 'u', '--pass', 'p']`. */
  args?: string[];
  /** How long to wait for the server to accept connections. Default 15 s. */
  startTimeoutMs?: number;
  /** Use this binary instead of looking `nats-server` up. Default: $NATS_SERVER_BIN, then PATH. */
  binary?: string;
}

export const NATS_SERVER_NOT_FOUND = "nats-server not found on PATH: install it with 'apt-get install nats-server'";

/**
 * Finds the `nats-server` binary: $NATS_SERVER_BIN, then each directory of PATH, then the sbin directories Debian's
 * package installs into (they are not on a non-root user's PATH). Throws NATS_SERVER_NOT_FOUND otherwise.
 */
export function findNatsServer(
  env: NodeJS.ProcessEnv = process.env,
  fallbackDirs: readonly string[] = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'],
): string {
  const explicit = env.NATS_SERVER_BIN;
  if (explicit) {
    if (isExecutable(explicit)) return explicit;
    throw new Error(`NATS_SERVER_BIN=${explicit} is not an executable file; ${NATS_SERVER_NOT_FOUND}`);
  }
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...fallbackDirs];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(NATS_SERVER_NOT_FOUND);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A crashed test run must not leave servers behind: kill ours when this process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

const LISTEN_RE = /Listening for client connections on [^\s]*:(\d+)/;

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = options.binary ?? findNatsServer();
  const storeDir = mkdtempSync(join(tmpdir(), 'vmledger-nats-'));
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  installExitHook();

  let child: ChildProcess | undefined;
  let output = '';
  let port = -1;
  let removed = false;

  const launch = async (wantedPort: number): Promise<void> => {
    // `-p -1` makes nats-server pick a random free port and log it; a restart asks for the same port again.
    const args = ['-js', '-a', '127.0.0.1', '-p', String(wantedPort), '-sd', storeDir, ...(options.args ?? [])];
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    running.add(proc);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.once('exit', () => running.delete(proc));

    const portSeen = new Promise<number>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const m = LISTEN_RE.exec(output.slice(-4096));
        if (m) resolve(Number(m[1]));
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('error', reject);
      void exited.then((code) =>
        reject(new Error(`nats-server exited with code ${String(code)} before listening (${args.join(' ')}):\n${output}`)),
      );
    });
    const timer = setTimeoutPromise(startTimeoutMs, () =>
      new Error(`nats-server did not start listening within ${startTimeoutMs} ms:\n${output}`),
    );
    try {
      port = await Promise.race([portSeen, timer.promise]);
      await Promise.race([waitForInfo(port, startTimeoutMs), timer.promise]);
    } finally {
      timer.cancel();
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const force = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(force);
  };

  await launch(-1);

  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    async stop() {
      await kill();
      if (!removed) {
        removed = true;
        rmSync(storeDir, { recursive: true, force: true });
      }
    },
    async restart() {
      if (removed) throw new Error('nats-server was stopped for good; start a new one');
      await kill();
      // The port was just released; retry briefly in case the kernel has not let go of it yet.
      for (let attempt = 0; ; attempt++) {
        try {
          await launch(port);
          return;
        } catch (error) {
          if (attempt >= 10 || !/address already in use/i.test(String(error))) throw error;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
    kill,
    log: () => output,
  };
}

function setTimeoutPromise(ms: number, makeError: () => Error): { promise: Promise<never>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(makeError()), ms);
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Resolves once a TCP client gets the server's INFO line: the server accepts connections. */
async function waitForInfo(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ host: '127.0.0.1', port });
      let buf = '';
      const done = (v: boolean) => {
        socket.destroy();
        resolve(v);
      };
      socket.setTimeout(1_000, () => done(false));
      socket.on('data', (d) => {
        buf += d.toString();
        if (buf.startsWith('INFO ')) done(true);
      });
      socket.on('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server on port ${port} does not accept connections`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
