// A libvirt connection: one long-lived `virsh -q -c URI` child with its stdin piped, fed one command at a time.
//
// Why virsh and not a binding: the npm bindings either lack snapshots, block jobs and migration
// (@unraid/libvirt) or do not build on Node 20 (libvirt); libvirt-dbus needs a D-Bus bus and its daemon. virsh
// speaks the whole API, prints libvirt's own error texts, and kept alive it costs about a millisecond a command
// (a fresh `virsh` process costs ~20 ms: connecting, probing the driver). bench/libvirt.ts measures both.
//
// Framing. virsh reading a pipe echoes `virsh # LINE` for every line and prints nothing at the end of a
// command, so each command is followed by two marker lines (one line each: virsh skips the rest of a line once
// a word on it is an unknown command):
//   MARK-N                    an unknown command: `error: unknown command: 'MARK-N'` ends the command's stderr
//   echo --xml '<MARK-N>'     prints `&lt;MARK-N&gt;`, which ends its stdout (an XML-escaped token, so no
//                             output of the command itself can contain it: virsh prints `<` of XML as `<`)
// MARK carries a random nonce per connection. The command's stdout is what lies between the echo of its own line
// and the echo of MARK-N's; its stderr is everything before the marker error.
//
// Commands are serialised (one in flight: virsh is sequential anyway). A child that dies fails the command in
// flight with LibvirtConnectionError and is respawned for the next one.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import { quoteArg } from '../virsh/tokenize';

export interface VirshResult {
  /** What the command printed on stdout (virsh's own text, prompt and echo removed). */
  stdout: string;
  /** What it printed on stderr: libvirt's `error: …` lines when it failed. */
  stderr: string;
  /** virsh printed at least one `error: ` line: the command failed. */
  failed: boolean;
}

/** The connection itself failed (virsh could not start, died, or did not answer in time), not the command. */
export class LibvirtConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LibvirtConnectionError';
  }
}

export interface LibvirtConnectionOptions {
  /** The virsh binary (default: $VIRSH_BIN, else `virsh` from PATH). */
  virsh?: string;
  /** A command that takes longer than this fails the connection (the child is killed and respawned). Default 120 s. */
  timeoutMs?: number;
  /** virsh -q (default): no confirmation lines (`Domain 'x' started`). False: virsh's full output, as a user sees it. */
  quiet?: boolean;
  /** Working directory of virsh (where relative file names on its command lines are read). */
  cwd?: string;
}

export interface LibvirtConnection {
  readonly uri: string;
  /** Runs one virsh command (its argv, e.g. `['start', 'web1']`), after every command sent before it. */
  run(argv: readonly string[]): Promise<VirshResult>;
  /** Commands run over this connection (for tests and the bench). */
  readonly commandsRun: number;
  /** Children spawned so far (1 after the first command; more after a respawn). */
  readonly spawned: number;
  close(): Promise<void>;
}

interface Pending {
  mark: string;
  line: string;
  resolve: (r: VirshResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Child {
  proc: ChildProcessWithoutNullStreams;
  out: string;
  err: string;
  dead: boolean;
}

export function openLibvirtConnection(uri: string, options: LibvirtConnectionOptions = {}): LibvirtConnection {
  if (/[\n\r]/.test(uri)) throw new Error(`invalid libvirt URI ${JSON.stringify(uri)}: must be one line`);
  const virsh = options.virsh ?? (process.env.VIRSH_BIN || 'virsh');
  const timeoutMs = options.timeoutMs ?? 120_000;
  const nonce = randomBytes(6).toString('hex');
  let sequence = 0;
  let child: Child | undefined;
  let pending: Pending | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  let commandsRun = 0;
  let spawned = 0;

  const spawnChild = (): Child => {
    const proc = spawn(virsh, [...(options.quiet === false ? [] : ['-q']), '-c', uri], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    spawned++;
    const c: Child = { proc, out: '', err: '', dead: false };
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d: string) => {
      c.out += d;
      settle(c);
    });
    proc.stderr.on('data', (d: string) => {
      c.err += d;
      settle(c);
    });
    const died = (why: string) => {
      if (c.dead) return;
      c.dead = true;
      if (child === c) child = undefined;
      if (pending) {
        const p = pending;
        pending = undefined;
        clearTimeout(p.timer);
        const said = c.err.trim();
        p.reject(new LibvirtConnectionError(`virsh -c ${uri} ${why}${said ? `: ${said}` : ''}`));
      }
    };
    proc.on('error', (e) => died(`could not run: ${e.message}`));
    proc.on('exit', (code, signal) => died(`exited (${signal ?? `status ${code}`})`));
    proc.stdin.on('error', () => died('closed its input'));
    return c;
  };

  /** Completes the command in flight once both markers are in. */
  const settle = (c: Child) => {
    const p = pending;
    if (!p || child !== c) return;
    const outEnd = c.out.indexOf(`&lt;${p.mark}&gt;`);
    const errMarker = `error: unknown command: '${p.mark}'\n`;
    const errEnd = c.err.indexOf(errMarker);
    if (outEnd < 0 || errEnd < 0) return;
    let stdout = c.out.slice(0, outEnd);
    c.out = c.out.slice(outEnd + `&lt;${p.mark}&gt;`.length);
    const stderr = c.err.slice(0, errEnd);
    c.err = c.err.slice(errEnd + errMarker.length);
    // Cut the echo of the command's own line, and everything from the echo of the first marker on.
    const echo = `virsh # ${p.line}\n`;
    const start = stdout.indexOf(echo);
    if (start >= 0) stdout = stdout.slice(start + echo.length);
    const tail = stdout.lastIndexOf(`virsh # ${p.mark}\n`);
    if (tail >= 0) stdout = stdout.slice(0, tail);
    pending = undefined;
    clearTimeout(p.timer);
    commandsRun++;
    p.resolve({ stdout, stderr, failed: /^error: /m.test(stderr) });
  };

  const runNow = (argv: readonly string[]): Promise<VirshResult> =>
    new Promise<VirshResult>((resolve, reject) => {
      if (closed) return reject(new LibvirtConnectionError('the libvirt connection is closed'));
      if (argv.length === 0) return reject(new Error('no virsh command given'));
      for (const a of argv) {
        if (/[\n\r]/.test(a)) return reject(new Error(`invalid virsh argument ${JSON.stringify(a)}: must be one line`));
      }
      const c = child && !child.dead ? child : (child = spawnChild());
      const mark = `vmledger-end-${nonce}-${++sequence}`;
      const line = argv.map(quoteArg).join(' ');
      const timer = setTimeout(() => {
        if (pending?.mark !== mark) return;
        c.proc.kill('SIGKILL');
        // `exit` rejects it; make sure even a child that never exits does not hang the queue.
        setTimeout(() => {
          if (pending?.mark === mark) {
            pending = undefined;
            reject(new LibvirtConnectionError(`virsh -c ${uri}: no answer to '${line}' within ${timeoutMs} ms`));
          }
        }, 1000).unref();
      }, timeoutMs);
      pending = { mark, line, resolve, reject, timer };
      c.proc.stdin.write(`${line}\n${mark}\necho --xml '<${mark}>'\n`);
    });

  return {
    uri,
    get commandsRun() {
      return commandsRun;
    },
    get spawned() {
      return spawned;
    },
    run(argv) {
      const next = queue.then(
        () => runNow(argv),
        () => runNow(argv),
      );
      queue = next.catch(() => {});
      return next;
    },
    async close() {
      if (closed) return;
      await queue;
      closed = true;
      const c = child;
      child = undefined;
      if (!c || c.dead) return;
      const exited = new Promise<void>((resolve) => c.proc.once('exit', () => resolve()));
      c.proc.stdin.end('quit\n');
      const timer = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
