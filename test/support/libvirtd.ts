// A private libvirtd for tests and the bench: a session-mode daemon (qemu:///session's driver) with every
// directory under one temporary folder, its own unix socket, no authentication, its own virtlogd.
//
// Why session mode and not `libvirtd` as root with a private unix_sock_dir: a privileged daemon keeps its
// drivers' state in fixed places (/run/libvirt/*/driver.pid, /etc/libvirt/qemu, /var/lib/libvirt), so a second
// one on the machine fails to start ("Failed to acquire pid file '/run/libvirt/network/driver.pid'") and every
// domain it defines lands in /etc. A session daemon keeps everything under $XDG_* (here: the temp folder), so
// test files and other users' runs each get their own, and it needs no /dev/kvm change (guests run under TCG).
// When the tests run as root, the daemon runs as `nobody` (setpriv), since libvirtd as root is always privileged.
//
//   const lv = await startLibvirtd();
//   lv.qemuUri                     qemu+unix:///session?socket=DIR/sock/libvirt-sock
//   lv.testUri                     test+unix:///default?socket=… (libvirt's test driver, through the same daemon)
//   lv.image('web1.qcow2')         a blank 32 MiB qcow2 the daemon's user can write
//   lv.domainXml('web1', disk)     a tiny TCG guest: 64 MiB, no video, a pty serial (no disk without `disk`)
//
// Two hosts (test/support/netns.ts): `netns` runs the daemon (and so its guests) in a network namespace,
// `hostUuid` gives it libvirt's host UUID (two daemons on one machine otherwise share the machine's, and libvirt
// refuses a migration between them as one to the same host), `migrationAddress` is the address its qemu.conf
// announces and listens on for incoming migrations (migration_host, migration_address).
//   await lv.stop()                destroys what still runs, stops the daemons, removes the folder (idempotent)
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const NOBODY = 65534;

export interface LibvirtBinaries {
  libvirtd: string;
  virsh: string;
  qemuImg: string;
  setpriv?: string;
}

export interface LibvirtdHandle {
  dir: string;
  socket: string;
  qemuUri: string;
  testUri: string;
  /** Where images go (writable by the daemon's user). */
  imagesDir: string;
  /** Creates a blank qcow2 image in imagesDir (default 32 MiB) and returns its path. */
  image(name: string, size?: string): string;
  /** A tiny TCG guest's domain XML, on the given disk image (none: a guest without disks). */
  domainXml(name: string, disk?: string): string;
  /** Runs one `virsh -c URI …` (a fresh process: the independent view of libvirt's state). */
  virsh(args: string[], uri?: string): { status: number; stdout: string; stderr: string };
  log(): string;
  /** Kills libvirtd alone (SIGKILL; its guests' qemu processes go on, as after a daemon crash). */
  kill(): Promise<void>;
  /** Starts libvirtd again on the same folders after kill(): it reconnects to the guests that still run. */
  start(): Promise<void>;
  /** The public API calls the daemon served so far (`virDomainUndefineFlags`, …), in order, with their domain. */
  apiCalls(): { api: string; line: string }[];
  stop(): Promise<void>;
}

function findBinary(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const dir of dirs) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // next
    }
  }
  return undefined;
}

/** The binaries a private libvirtd needs, or the names of those missing. */
export function libvirtBinaries(): LibvirtBinaries | { missing: string[] } {
  const names = { libvirtd: 'libvirtd', virsh: 'virsh', qemuImg: 'qemu-img', qemu: 'qemu-system-x86_64', setpriv: 'setpriv' } as const;
  const found = Object.fromEntries(Object.entries(names).map(([k, n]) => [k, findBinary(n)])) as Record<keyof typeof names, string | undefined>;
  const needed: (keyof typeof names)[] = ['libvirtd', 'virsh', 'qemuImg', 'qemu', ...(process.getuid?.() === 0 ? (['setpriv'] as const) : [])];
  const missing = needed.filter((k) => found[k] === undefined).map((k) => names[k]);
  if (missing.length > 0) return { missing };
  return { libvirtd: found.libvirtd!, virsh: found.virsh!, qemuImg: found.qemuImg!, ...(found.setpriv ? { setpriv: found.setpriv } : {}) };
}

/** The message a test prints when it skips for want of libvirt (loudly: CI installs it, so this must not pass quietly). */
export function libvirtMissingMessage(missing: readonly string[]): string {
  return (
    `SKIPPED: libvirt integration tests need ${missing.join(', ')} ` +
    '(apt-get install libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils; .ci/run installs them)'
  );
}

export interface StartLibvirtdOptions {
  /** A capabilities cache shared between daemons of one test run (the first probe of qemu takes seconds). */
  cacheDir?: string;
  /** How long to wait for the socket. Default 30 s. */
  startTimeoutMs?: number;
  /** Run the daemon inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** libvirtd.conf `host_uuid`. */
  hostUuid?: string;
  /** qemu.conf `migration_host` and `migration_address`: where incoming migrations are announced and received. */
  migrationAddress?: string;
}

/** Every process started here, for the exit handler: a test process that dies still leaves nothing running. */
const live = new Set<() => void>();
let exitHookInstalled = false;

function killPidFile(path: string, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1) process.kill(pid, signal);
  } catch {
    // gone already
  }
}

export async function startLibvirtd(options: StartLibvirtdOptions = {}): Promise<LibvirtdHandle> {
  const bins = libvirtBinaries();
  if ('missing' in bins) throw new Error(libvirtMissingMessage(bins.missing));
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? NOBODY : process.getuid!();
  const gid = asRoot ? NOBODY : process.getgid!();

  const dir = mkdtempSync(join(tmpdir(), 'vmledger-libvirtd-'));
  const home = join(dir, 'home');
  const run = join(dir, 'run');
  const sockDir = join(dir, 'sock');
  const imagesDir = join(dir, 'images');
  const cache = options.cacheDir ?? join(home, '.cache');
  const libvirtConfig = join(home, '.config', 'libvirt');
  for (const d of [home, run, sockDir, imagesDir, cache, libvirtConfig]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const qemuConf = join(libvirtConfig, 'qemu.conf');
  const address = options.migrationAddress;
  writeFileSync(qemuConf, address !== undefined ? `migration_host = "${address}"\nmigration_address = "${address}"\n` : '');
  const conf = join(dir, 'libvirtd.conf');
  writeFileSync(
    conf,
    [
      `unix_sock_dir = "${sockDir}"`,
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'unix_sock_rw_perms = "0770"',
      ...(options.hostUuid !== undefined ? [`host_uuid = "${options.hostUuid}"`] : []),
      `log_outputs = "3:file:${join(dir, 'libvirtd.log')} 1:file:${join(dir, 'api.log')}"`,
      // libvirt's public API entry points, one debug line per call: what the daemon was asked to do (apiCalls()).
      // qemu.qemu_migration: where a migration's stream was set up (`Setting up incoming migration with URI …`).
      'log_filters = "1:libvirt.domain 1:libvirt.domain_snapshot 1:libvirt.domain-snapshot 1:qemu.qemu_migration 4:*"',
      '',
    ].join('\n'),
  );
  if (asRoot) {
    for (const d of [dir, home, run, sockDir, imagesDir, cache, join(home, '.config'), libvirtConfig, qemuConf, conf]) chownSync(d, uid, gid);
    // The folder itself must be reachable for the daemon's user; only its own subfolders are private.
  }
  const env = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    XDG_RUNTIME_DIR: run,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: cache,
    LC_ALL: 'C',
  };
  const argv = [bins.libvirtd, '-f', conf];
  // --pdeathsig: libvirtd dies with the test process, even one killed without running its exit handlers.
  const privileged = bins.setpriv
    ? [bins.setpriv, '--pdeathsig', 'SIGKILL', ...(asRoot ? ['--reuid', String(uid), '--regid', String(gid), '--clear-groups'] : []), ...argv]
    : argv;
  // `ip netns exec` execs the rest (no process in between), so the daemon's parent is still this process.
  const full = options.netns !== undefined ? [findBinary('ip') ?? 'ip', 'netns', 'exec', options.netns, ...privileged] : privileged;
  const [command, ...args] = full as [string, ...string[]];
  let output = '';
  let exited = false;
  const spawnDaemon = (): ChildProcess => {
    const c: ChildProcess = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    exited = false;
    c.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    c.on('exit', () => {
      if (child === c) exited = true;
    });
    return c;
  };
  let child: ChildProcess = spawnDaemon();

  const socket = join(sockDir, 'libvirt-sock');
  const qemuUri = `qemu+unix:///session?socket=${socket}`;
  const testUri = `test+unix:///default?socket=${socket}`;
  const logFile = join(dir, 'libvirtd.log');
  const log = () => `${output}${existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''}`;

  const virsh = (a: string[], uri = qemuUri) => {
    const r = spawnSync(bins.virsh, ['-q', '-c', uri, ...a], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };

  /** Last resort: every qemu and virtlogd this daemon started (their pid files are under our run dir). */
  const killStragglers = () => {
    const qemuRun = join(run, 'libvirt', 'qemu', 'run');
    if (existsSync(qemuRun)) for (const f of readdirSync(qemuRun)) if (f.endsWith('.pid')) killPidFile(join(qemuRun, f));
    killPidFile(join(run, 'libvirt', 'virtlogd.pid'));
  };
  const hardStop = () => {
    if (!exited) child.kill('SIGKILL');
    killStragglers();
    rmSync(dir, { recursive: true, force: true });
  };
  live.add(hardStop);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    const stopAll = () => {
      for (const stop of live) stop();
    };
    process.once('exit', stopAll);
    // A test worker ended by a signal runs no exit handlers: stop everything, then die of the same signal.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        stopAll();
        process.kill(process.pid, signal);
      });
    }
  }

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    live.delete(hardStop);
    if (!exited) {
      // Destroy what still runs (qemu outlives libvirtd by design), then stop the daemon.
      const running = virsh(['list', '--name']).stdout.split('\n').map((s) => s.trim()).filter((s) => s !== '');
      for (const name of running) virsh(['destroy', name]);
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    }
    killStragglers();
    rmSync(dir, { recursive: true, force: true });
  };

  const waitForSocket = async () => {
    const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
    while (!existsSync(socket)) {
      if (exited || Date.now() > deadline) {
        const why = log();
        hardStop();
        live.delete(hardStop);
        throw new Error(`libvirtd did not start (${exited ? 'it exited' : 'no socket'}):\n${why}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitForSocket();

  return {
    dir,
    socket,
    qemuUri,
    testUri,
    imagesDir,
    image(name, size = '32M') {
      const path = join(imagesDir, name);
      execFileSync(bins.qemuImg, ['create', '-q', '-f', 'qcow2', path, size]);
      if (asRoot) chownSync(path, uid, gid);
      return path;
    },
    domainXml: (name, disk) => tinyGuestXml(name, disk),
    virsh,
    log,
    async kill() {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await gone;
      // libvirtd leaves its socket behind when killed: the next start must not be taken as up before it listens.
      rmSync(socket, { force: true });
    },
    async start() {
      if (!exited) return;
      child = spawnDaemon();
      await waitForSocket();
    },
    apiCalls() {
      const file = join(dir, 'api.log');
      if (!existsSync(file)) return [];
      return [...readFileSync(file, 'utf8').matchAll(/^.* : (vir(?:Domain|Snapshot)\w+):\d+ : (.*)$/gm)].map((m) => ({ api: m[1]!, line: m[2]! }));
    },
    stop,
  };
}

/**
 * A tiny guest libvirt runs under TCG: 64 MiB, one qcow2 disk (or none), no video, a pty serial (no OS needed).
 * Without a disk it is one libvirt migrates between two daemons on one machine: with a writable local disk it
 * refuses (`Unsafe migration: Migration without shared storage is unsafe`).
 * `bootFromDisk`: boots the disk's boot sector, with ACPI (test/support/poweroffGuest.ts).
 */
export function tinyGuestXml(name: string, disk?: string, options: { bootFromDisk?: boolean } = {}): string {
  const boot = options.bootFromDisk ? "<boot dev='hd'/>" : '';
  const disks =
    disk === undefined
      ? ''
      : `
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>`;
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>${boot}</os>${options.bootFromDisk ? '\n  <features><acpi/></features>' : ''}
  <devices>${disks}
    <serial type='pty'/>
    <console type='pty'/>
    <video><model type='none'/></video>
  </devices>
</domain>
`;
}
