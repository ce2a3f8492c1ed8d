// libvirt's events, as `virsh -c URI event --all --loop --timestamp` prints them, one line each:
//   2026-12-01 19:23:26.813+0000: event 'lifecycle' for domain 'd': Stopped Shutdown
//   2026-12-01 19:23:27.001+0000: event 'block-job' for domain 'd': Block Copy for vda ready
//
// That child is long-lived and supervised here: when libvirtd goes away it prints `error: Disconnected …` and
// exits, and nothing reconnects it, so it is respawned with a growing pause (100 ms doubling to 2 s, back to
// 100 ms once a child has lived 10 s). It gives no signal of having subscribed, so `onSpawn` is called after each
// spawn: the caller resynchronises then (services/libvirt/watch.ts), which closes the gap an event may fall into.
//
// Why virsh and not libvirt-dbus: the same reason as services/libvirt/connection.ts (no D-Bus bus or daemon
// needed), and virsh prints the events with libvirt's own words.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface LibvirtEvent {
  /** libvirt's timestamp of the event (`YYYY-MM-DD HH:MM:SS.mmm+0000`). */
  time: string;
  /** `lifecycle`, `block-job`, `block-job-2`, `device-removed`, `reboot`, … */
  kind: string;
  domain: string;
  /** The rest of the line: `Stopped Shutdown`, `Block Copy for vda ready`, … */
  detail: string;
  /** The whole line, as virsh printed it. */
  line: string;
}

const EVENT_LINE = /^(\S+ \S+): event '([^']+)' for domain '(.*)': (.*)$/;

/** One line of `virsh event --timestamp`, or undefined for anything else (virsh's own messages). */
export function parseEventLine(line: string): LibvirtEvent | undefined {
  const m = EVENT_LINE.exec(line.trimEnd());
  if (!m) return undefined;
  return { time: m[1]!, kind: m[2]!, domain: m[3]!, detail: m[4]!, line: line.trimEnd() };
}

export interface EventWatchOptions {
  /** The virsh binary (default: $VIRSH_BIN, else `virsh` from PATH). */
  virsh?: string;
  onEvent: (event: LibvirtEvent) => void;
  /** After every (re)spawn of the child (1, 2, …): resynchronise from here. */
  onSpawn?: (spawned: number) => void;
  /** The child ended (its last words on stderr); it is respawned after `delayMs`. */
  onExit?: (why: string, delayMs: number) => void;
}

export interface EventWatch {
  /** Children spawned so far. */
  readonly spawned: number;
  /** Lines read that were events. */
  readonly events: number;
  /** The child spawned `spawned` is still running. */
  alive(spawned: number): boolean;
  /** Stops the child and does not respawn it. */
  close(): Promise<void>;
}

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 2000;
/** A child that lived this long was healthy: the next respawn starts from the first delay again. */
const HEALTHY_MS = 10_000;

export function watchLibvirtEvents(uri: string, options: EventWatchOptions): EventWatch {
  if (/[\n\r]/.test(uri)) throw new Error(`invalid libvirt URI ${JSON.stringify(uri)}: must be one line`);
  const virsh = options.virsh ?? (process.env.VIRSH_BIN || 'virsh');
  let child: ChildProcessWithoutNullStreams | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let spawned = 0;
  let events = 0;
  let delay = FIRST_DELAY_MS;

  const start = () => {
    if (closed) return;
    const startedAt = Date.now();
    const proc = spawn(virsh, ['-c', uri, 'event', '--all', '--loop', '--timestamp'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    child = proc;
    spawned++;
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d: string) => {
      out += d;
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const event = parseEventLine(out.slice(0, nl));
        out = out.slice(nl + 1);
        if (!event) continue;
        events++;
        options.onEvent(event);
      }
    });
    proc.stderr.on('data', (d: string) => {
      err = (err + d).slice(-2000);
    });
    let ended = false;
    const onEnd = (why: string) => {
      if (ended) return;
      ended = true;
      if (child === proc) child = undefined;
      if (closed) return;
      delay = Date.now() - startedAt >= HEALTHY_MS ? FIRST_DELAY_MS : delay;
      const wait = delay;
      delay = Math.min(delay * 2, MAX_DELAY_MS);
      options.onExit?.(`${why}${err.trim() ? `: ${err.trim()}` : ''}`, wait);
      timer = setTimeout(start, wait);
      timer.unref?.();
    };
    proc.on('error', (e) => onEnd(`could not run ${virsh}: ${e.message}`));
    proc.on('exit', (code, signal) => onEnd(`virsh event exited (${signal ?? `status ${code}`})`));
    options.onSpawn?.(spawned);
  };

  start();
  return {
    get spawned() {
      return spawned;
    },
    get events() {
      return events;
    },
    alive(n) {
      return n === spawned && child !== undefined && child.exitCode === null;
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      const kill = setTimeout(() => c.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(kill);
    },
  };
}
