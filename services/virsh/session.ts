// Runs virsh command lines against a ledger: parse (virsh rules) → build a CommandInput or answer a query →
// print what virsh prints. One report per command, handed to the caller as soon as the command is done, so a
// printed success always means the facts are already durable.
//
// Output layout follows virsh exactly: each command prints its own text (with or without a final newline, as
// virsh's handlers do), then virsh prints one more newline after every command it ran; errors go to stderr as
// `error: …` lines. A syntax error (unknown command or option, missing argument) stops the whole command string
// before anything of it runs, as in virsh.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import type { CommandInput, CommandOf, SnapshotDefinition } from '../../machines/commands';
import { ERROR_CODES } from '../../machines/errors';
import { snapshotName } from '../../machines/guards';
import { blockJobOn, snapshotNamed, type DomainState, type Snapshot, type SnapshotDisk } from '../../machines/model';
import type { RecordedEvent } from '../eventstore/types';
import type { CommandOutcome, Ledger } from '../ledger-types';
import { allDomains, queryOfFlags } from '../domainQuery';
import { XmlError, formatDomainXml, formatSnapshotXml, parseDomainXml, parseSnapshotXml } from '../xml';
import { commandHelp, findCommand, groupHelp, parseArgv, type CmdDef, type CmdGroup } from './definitions';
import {
  dominfo,
  domblklist,
  listOutput,
  selectSnapshots,
  snapshotInfo,
  snapshotTable,
  snapshotTree,
  stateWithReason,
} from './print';
import { fail, flag, list, noSnapshot, notFound, optionError, str, type Opts, type Result } from './result';
import { parseDiskspec, parseMemspec, snapshotArgsXml } from './snapshotArgs';
import { formatCommandLine, splitCommaList, tokenize } from './tokenize';

export { parseDiskspec } from './snapshotArgs';

/** What a session needs of a ledger: a local one, or a remote one over NATS (which has no store). */
export type SessionLedger = Pick<Ledger, 'execute' | 'loadDomain' | 'queryDomains' | 'close'>;

export interface SessionOptions {
  host?: string;
  actor?: string;
  /** Reads XML files named on the command line (default: fs, UTF-8, relative to the working directory). */
  readFile?: (path: string) => string;
  newCommandId?: () => string;
  /** ISO time stamped on each command (default: now). */
  now?: () => string;
  /** UUID for a `<domain>` without one (default: random, as libvirt does). */
  newUuid?: () => string;
  /** Errors that end the whole session (rethrown) instead of failing one command, e.g. a store that cannot open. */
  isFatal?: (error: unknown) => boolean;
  /** The ledger performs commands on libvirt (`--connect`): blockcopy --wait can wait for libvirt's copy. */
  connected?: boolean;
}

/** One command's result in `--json` mode. */
export interface JsonReport {
  /** The command as typed (re-quoted). */
  command: string;
  verb: string;
  ok: boolean;
  /** libvirt's error code (0 on success). */
  code: number;
  codeName?: string;
  /** The docs/rules.md id that refused the command, or a vmledger-side id (VALIDATION, VIRSH-ARGS, VIRSH-FILE, XML). */
  rule: string | null;
  /** Error text as libvirt renders it; on success virsh's confirmation line (null when virsh prints none). */
  message: string | null;
  /** Facts the command appended: stream, revision, position, type and data. */
  events: { stream: string; revision: number; position: number; type: string; data: unknown }[];
  /** Queries: the answer as data. */
  result?: unknown;
  commandId?: string;
  duplicate?: boolean;
}

export interface CommandReport {
  argv: string[];
  verb: string;
  ok: boolean;
  /** Exactly what virsh prints on stdout for this command, its trailing newline included. */
  stdout: string;
  /** `error: …` lines for stderr. */
  stderr: string;
  json: JsonReport;
  outcome?: CommandOutcome;
  /** `quit`/`exit`: stop reading commands. */
  quit?: boolean;
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
};

/** Where a migrate DESTURI points: `qemu+ssh://user@dst:22/system` → `dst`; a bare `dst` → `dst`. */
export function destinationHost(uri: string): string | undefined {
  if (!uri.includes('://')) return /^[^/\s]+$/.test(uri) ? uri : undefined;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri);
  if (!m) return undefined;
  let authority = m[1]!;
  authority = authority.slice(authority.lastIndexOf('@') + 1);
  const host = authority.startsWith('[') ? authority.slice(1, authority.indexOf(']')) : authority.replace(/:\d*$/, '');
  return host === '' ? undefined : host;
}

/** The `error: Failed to …` line virsh prints before libvirt's message, per verb. */
function failureHeader(verb: string, domain: string, o: Opts): string | undefined {
  switch (verb) {
    case 'start':
    case 'destroy':
    case 'suspend':
    case 'resume':
    case 'shutdown':
    case 'reboot':
    case 'undefine':
      return `Failed to ${verb} domain '${domain}'`;
    case 'managedsave':
      return `Failed to save domain '${domain}' state`;
    case 'managedsave-remove':
      return `Failed to remove managed save image for domain '${domain}'`;
    case 'save':
      return `Failed to save domain '${domain}' to ${str(o, 'file')}`;
    case 'define':
      return `Failed to define domain from ${str(o, 'file')}`;
    case 'create':
      return `Failed to create domain from ${str(o, 'file')}`;
    case 'snapshot-delete':
      return `Failed to delete snapshot ${str(o, 'snapshotname')}`;
    case 'snapshot-revert':
      return `Failed to revert snapshot ${str(o, 'snapshotname')}`;
    default:
      return undefined; // snapshot-create(-as), migrate, blockcopy, blockjob: virsh prints libvirt's error alone
  }
}

/** Refusals virsh reports before calling libvirt (a lookup or its own check): printed without the header. */
const NO_HEADER_RULES = new Set(['VALIDATION', 'UND-STORAGE-RUNNING', 'UND-STORAGE-FLAGS', 'SD-NOTFOUND']);

function compactEvents(events: readonly RecordedEvent[]): JsonReport['events'] {
  return events.map((e) => ({ stream: e.stream, revision: e.revision, position: e.position, type: e.type, data: e.data }));
}

export class VirshSession {
  readonly host: string;
  private readonly actor: string;
  private readonly readFile: (path: string) => string;
  private readonly newCommandId: () => string;
  private readonly now: () => string;
  private readonly newUuid: () => string;
  private readonly isFatal: (error: unknown) => boolean;
  private readonly connected: boolean;

  constructor(
    readonly ledger: SessionLedger,
    options: SessionOptions = {},
  ) {
    this.host = options.host ?? 'local';
    this.actor = options.actor ?? 'vmledger-cli';
    this.readFile = options.readFile ?? ((path) => readFileSync(path, 'utf8'));
    this.newCommandId = options.newCommandId ?? randomUUID;
    this.now = options.now ?? (() => new Date().toISOString());
    this.newUuid = options.newUuid ?? randomUUID;
    this.isFatal = options.isFatal ?? (() => false);
    this.connected = options.connected ?? false;
  }

  /**
   * Runs a command string (`cmd; cmd` or several lines). Each report goes to `onReport` as soon as its command
   * finished. Returns the exit status virsh would give: that of the last command (0 when nothing ran).
   */
  async runText(text: string, onReport: (r: CommandReport) => void | Promise<void>): Promise<{ status: number; quit: boolean }> {
    const tokens = tokenize(text);
    if (!tokens.ok) {
      await onReport(this.syntaxError([], tokens.error));
      return { status: 1, quit: false };
    }
    return this.runCommands(tokens.commands, onReport);
  }

  /** Runs commands already split into argv (e.g. `vmledger undefine test --snapshots-metadata`). */
  async runCommands(
    commands: readonly string[][],
    onReport: (r: CommandReport) => void | Promise<void>,
  ): Promise<{ status: number; quit: boolean }> {
    // virsh parses everything first: one syntax error and nothing runs.
    const parsed = [];
    for (const argv of commands) {
      const p = parseArgv(argv);
      if (!p.ok) {
        await onReport(this.syntaxError(argv, p.error));
        return { status: 1, quit: false };
      }
      parsed.push({ argv, p });
    }
    let status = 0;
    for (const { argv, p } of parsed) {
      let result: Result;
      try {
        result = p.help ? { ok: true, out: commandHelp(p.def) } : await this.run(p.def, p.opts);
      } catch (error) {
        if (this.isFatal(error)) throw error;
        // The ledger or the store failed (disk full, damaged file, …): report it like virsh reports a failure.
        const message = error instanceof Error ? error.message : String(error);
        result = fail([message], ERROR_CODES.VIR_ERR_INTERNAL_ERROR, 'STORE', message, 'VIR_ERR_INTERNAL_ERROR');
      }
      const report = this.report(argv, p.def.name, result);
      status = report.ok ? 0 : 1;
      await onReport(report);
      if (result.quit) return { status, quit: true };
    }
    return { status, quit: false };
  }

  private syntaxError(argv: string[], error: string): CommandReport {
    return {
      argv,
      verb: argv[0] ?? '',
      ok: false,
      stdout: '',
      stderr: `error: ${error}\n`,
      json: {
        command: formatCommandLine(argv),
        verb: argv[0] ?? '',
        ok: false,
        code: ERROR_CODES.VIR_ERR_INVALID_ARG,
        codeName: 'VIR_ERR_INVALID_ARG',
        rule: 'VIRSH-SYNTAX',
        message: error,
        events: [],
      },
    };
  }

  private report(argv: string[], verb: string, r: Result): CommandReport {
    const errorLines = [...(r.warnings ?? []), ...(r.failure?.lines ?? [])];
    const outcome = r.outcome;
    const message = r.ok ? (r.message !== undefined ? r.message : r.out.trim() || null) : (r.failure?.message ?? null);
    return {
      argv,
      verb,
      ok: r.ok,
      stdout: r.quit ? '' : r.out + '\n',
      stderr: errorLines.map((l) => `error: ${l}\n`).join(''),
      outcome,
      ...(r.quit ? { quit: true } : {}),
      json: {
        command: formatCommandLine(argv),
        verb,
        ok: r.ok,
        code: r.ok ? 0 : (r.failure?.code ?? 1),
        ...(r.failure?.codeName ? { codeName: r.failure.codeName } : {}),
        rule: r.ok ? null : (r.failure?.rule ?? null),
        message,
        events: compactEvents(outcome?.events ?? []),
        ...(r.result !== undefined ? { result: r.result } : {}),
        ...(outcome ? { commandId: outcome.commandId } : {}),
        ...(outcome?.duplicate ? { duplicate: true } : {}),
      },
    };
  }

  // -------------------------------------------------------------------------------------------------

  private meta() {
    return { commandId: this.newCommandId(), actor: this.actor, time: this.now() };
  }

  private async execute(
    input: Record<string, unknown>,
    verb: string,
    domain: string,
    o: Opts,
    success: (outcome: CommandOutcome) => string,
  ): Promise<Result> {
    const outcome = await this.ledger.execute({ ...input, host: this.host, meta: this.meta() } as CommandInput);
    if (outcome.ok) {
      const out = success(outcome);
      const warnings: string[] = [];
      if (verb === 'undefine') {
        for (const e of outcome.events) {
          if (e.type !== 'DomainUndefined') continue;
          const d = e.data as { storageKept: { target: string; source: string; reason: string }[] };
          for (const kept of d.storageKept) if (kept.reason.startsWith('Storage volume')) warnings.push(kept.reason);
        }
      }
      return { ok: true, out, outcome, warnings };
    }
    return this.refused(outcome, verb, domain, o);
  }

  private refused(outcome: CommandOutcome, verb: string, domain: string, o: Opts): Result {
    const message = outcome.message ?? 'unknown error';
    const base = { code: outcome.code ?? 1, codeName: outcome.codeName, rule: outcome.rule ?? null, message };
    if (outcome.rule === 'DOM-NOTFOUND') return { ...notFound(domain), outcome };
    // virsh checks that the domain is inactive itself before calling start.
    if (verb === 'start' && outcome.rule === 'STA-ACTIVE') {
      return { ok: false, out: '', outcome, failure: { ...base, lines: ['Domain is already active'] } };
    }
    // Without flags, virsh looks for a managed-save image itself and refuses with its own text: no header, no
    // prefix (T39). With flags it calls libvirt, whose refusal it prints as usual (T86).
    if (verb === 'undefine' && outcome.rule === 'UND-MANAGED-SAVE' && [...o.keys()].every((k) => k === 'domain')) {
      return { ok: false, out: '', outcome, failure: { ...base, lines: [message.replace(/^Requested operation is not valid: /, '')] } };
    }
    const header = NO_HEADER_RULES.has(outcome.rule ?? '') ? undefined : failureHeader(verb, domain, o);
    // virsh makes this check itself and prints it without libvirt's prefix (T05).
    const printed = outcome.rule === 'UND-STORAGE-RUNNING' ? message.replace(/^Requested operation is not valid: /, '') : message;
    return { ok: false, out: '', outcome, failure: { ...base, lines: header ? [header, printed] : [printed] } };
  }

  /** Reads a file named on the command line; virsh's wording when it cannot. */
  private read(path: string): { text: string } | { error: Result } {
    try {
      return { text: this.readFile(path) };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      const reason = ERRNO_TEXT[code] ?? (error as Error).message;
      const verb = code === 'EISDIR' ? 'read' : 'open';
      const line = `Failed to ${verb} file '${path}': ${reason}`;
      return { error: fail([line], 38, 'VIRSH-FILE', line, 'VIR_ERR_SYSTEM_ERROR') };
    }
  }

  /** Reads and parses the domain XML in a file named on the command line; the failure to report when it cannot. */
  private readDomainXml(path: string, header?: string): { config: ReturnType<typeof parseDomainXml>; xml: string } | { error: Result } {
    const read = this.read(path);
    if ('error' in read) return read;
    try {
      return { config: parseDomainXml(read.text, this.newUuid), xml: read.text };
    } catch (error) {
      return { error: this.xmlFailure(error, header) };
    }
  }

  private xmlFailure(error: unknown, header?: string): Result {
    if (error instanceof XmlError) {
      return fail(header ? [header, error.message] : [error.message], error.code, 'XML', error.message, error.codeName);
    }
    throw error;
  }

  /**
   * blockcopy --wait/--pivot/--finish over a libvirt connection: the driver reported the copy ready before the
   * blockcopy was answered; then pivot (blockjob --pivot) or finish (blockjob --abort), as virsh does.
   */
  private async finishBlockCopy(
    dom: string,
    path: string,
    then: 'wait' | 'pivot' | 'finish',
    exec: (input: Record<string, unknown>, success: (outcome: CommandOutcome) => string) => Promise<Result>,
    started: Result,
  ): Promise<Result> {
    const state = await this.domain(dom);
    const disk = state?.config?.disks.find((d) => d.target === path || d.source === path);
    const job = disk ? state?.blockJobs[disk.target] : undefined;
    if (job?.phase !== 'ready') {
      const message = `block copy of '${path}' did not reach the mirroring phase in time; it goes on: end it with blockjob --pivot or --abort`;
      return fail([message], ERROR_CODES.VIR_ERR_OPERATION_TIMEOUT, 'LIBVIRT', `Timed out during operation: ${message}`, 'VIR_ERR_OPERATION_TIMEOUT');
    }
    if (then === 'wait') return { ...started, out: '\nNow in mirroring phase' };
    const pivot = then === 'pivot';
    return exec({ verb: 'blockjob', domain: dom, path, pivot, abort: !pivot }, () => (pivot ? '\nSuccessfully pivoted' : '\nSuccessfully copied'));
  }

  private async domain(name: string): Promise<DomainState | undefined> {
    const { state } = await this.ledger.loadDomain(this.host, name);
    return state.life === 'exists' ? state : undefined;
  }

  /** --snapshotname or --current, as snapshot-delete/revert/parent/info resolve them. */
  private async pickSnapshot(o: Opts, dom: string): Promise<{ state: DomainState; name: string } | { error: Result }> {
    const state = await this.domain(dom);
    if (!state) return { error: notFound(dom) };
    const name = str(o, 'snapshotname');
    if (name !== undefined) return { state, name };
    if (!flag(o, 'current')) return { error: optionError('--snapshotname or --current is required') };
    if (state.current === null) {
      const message = 'Domain snapshot not found: the domain does not have a current snapshot';
      return { error: fail([message], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, 'SD-NOTFOUND', message, 'VIR_ERR_NO_DOMAIN_SNAPSHOT') };
    }
    return { state, name: state.current };
  }

  private async run(def: CmdDef, o: Opts): Promise<Result> {
    const dom = str(o, 'domain') ?? '';
    const verb = def.name;
    const exec = (input: Record<string, unknown>, success: (outcome: CommandOutcome) => string) =>
      this.execute(input, verb, dom, o, success);
    switch (verb) {
      // ------------------------------------------------------------------------------------ lifecycle
      case 'define':
      case 'create': {
        const file = str(o, 'file')!;
        const parsed = this.readDomainXml(file, failureHeader(verb, '', o));
        if ('error' in parsed) return parsed.error;
        const { config, xml } = parsed;
        const input =
          verb === 'define'
            ? { verb, config, xml }
            : { verb, config, xml, paused: flag(o, 'paused'), autodestroy: flag(o, 'autodestroy') };
        const r = await this.execute(input, verb, config.name, o, () =>
          `Domain '${config.name}' ${verb === 'define' ? 'defined' : 'created'} from ${file}\n`,
        );
        return r;
      }
      case 'start':
        return exec(
          { verb, domain: dom, paused: flag(o, 'paused'), autodestroy: flag(o, 'autodestroy'), forceBoot: flag(o, 'force-boot') },
          () => `Domain '${dom}' started\n`,
        );
      case 'shutdown':
        return exec({ verb, domain: dom }, () => `Domain '${dom}' is being shutdown\n`);
      case 'destroy':
        return exec({ verb, domain: dom, graceful: flag(o, 'graceful') }, () => `Domain '${dom}' destroyed\n`);
      case 'suspend':
        return exec({ verb, domain: dom }, () => `Domain '${dom}' suspended\n`);
      case 'resume':
        return exec({ verb, domain: dom }, () => `Domain '${dom}' resumed\n`);
      case 'reboot':
        return exec({ verb, domain: dom }, () => `Domain '${dom}' is being rebooted\n`);
      case 'managedsave':
      case 'save': {
        if (flag(o, 'running') && flag(o, 'paused')) {
          // libvirt's public API check (virDomainManagedSave / virDomainSaveFlags), after virsh's lookup.
          if (!(await this.domain(dom))) return notFound(dom);
          const message = "Flags 'VIR_DOMAIN_SAVE_RUNNING' and 'VIR_DOMAIN_SAVE_PAUSED' are mutually exclusive";
          return fail([failureHeader(verb, dom, o)!, message], ERROR_CODES.VIR_ERR_INVALID_ARG, 'VIRSH-ARGS', message, 'VIR_ERR_INVALID_ARG');
        }
        const file = str(o, 'file');
        return exec(
          { verb, domain: dom, running: flag(o, 'running'), paused: flag(o, 'paused'), ...(verb === 'save' ? { file } : {}) },
          () => (verb === 'save' ? `\nDomain '${dom}' saved to ${file}\n` : `\nDomain '${dom}' state saved by libvirt\n`),
        );
      }
      case 'managedsave-remove':
        return exec({ verb, domain: dom }, (outcome) =>
          outcome.events.length > 0
            ? `Removed managedsave image for domain '${dom}'`
            : `Domain '${dom}' has no manage save image; removal skipped`,
        );
      case 'undefine': {
        // virsh's own option checks come before it looks the domain up.
        if (flag(o, 'nvram') && flag(o, 'keep-nvram')) return optionError('Options --nvram and --keep-nvram are mutually exclusive');
        if (flag(o, 'tpm') && flag(o, 'keep-tpm')) return optionError('Options --tpm and --keep-tpm are mutually exclusive');
        if (flag(o, 'delete-storage-volume-snapshots') && !flag(o, 'remove-all-storage')) {
          return optionError('Option --remove-all-storage is required by option --delete-storage-volume-snapshots');
        }
        const storage = str(o, 'storage');
        const wipe = flag(o, 'wipe-storage');
        return exec(
          {
            verb,
            domain: dom,
            managedSave: flag(o, 'managed-save'),
            snapshotsMetadata: flag(o, 'snapshots-metadata'),
            ...(storage !== undefined ? { storage: splitCommaList(storage).filter((s) => s !== '') } : {}),
            removeAllStorage: flag(o, 'remove-all-storage'),
            wipeStorage: wipe,
          },
          (outcome) => {
            let out = `Domain '${dom}' has been undefined\n`;
            for (const e of outcome.events) {
              if (e.type !== 'DomainUndefined') continue;
              for (const v of (e.data as { storageRemoved: { target: string; source: string }[] }).storageRemoved) {
                if (wipe) out += `Wiping volume '${v.target}'(${v.source}) ... Done.\n`;
                out += `Volume '${v.target}'(${v.source}) removed.\n`;
              }
            }
            return out;
          },
        );
      }
      // ------------------------------------------------------------------------------------ snapshots
      case 'snapshot-create':
      case 'snapshot-create-as': {
        let snapshot: SnapshotDefinition = { disks: [] };
        let xml: string | undefined;
        const file = verb === 'snapshot-create' ? str(o, 'xmlfile') : undefined;
        if (file !== undefined) {
          const read = this.read(file);
          if ('error' in read) return read.error;
          try {
            snapshot = parseSnapshotXml(read.text);
            xml = read.text;
          } catch (error) {
            return this.xmlFailure(error);
          }
        }
        const memspec = str(o, 'memspec');
        if (verb === 'snapshot-create-as') {
          const disks: SnapshotDisk[] = [];
          for (const spec of list(o, 'diskspec')) {
            const disk = parseDiskspec(spec);
            if (!disk) return optionError(`unable to parse diskspec: ${spec}`);
            disks.push(disk);
          }
          let memory: SnapshotDefinition['memory'];
          if (memspec !== undefined) {
            const m = parseMemspec(memspec);
            if (m === 'error') return optionError(`unable to parse memspec: ${memspec}`);
            memory = m;
          }
          const name = str(o, 'name');
          const description = str(o, 'description');
          snapshot = {
            ...(name !== undefined ? { name } : {}),
            ...(description !== undefined ? { description } : {}),
            ...(memory !== undefined ? { memory } : {}),
            disks,
          };
          if (flag(o, 'print-xml')) return { ok: true, out: snapshotArgsXml(snapshot, memspec), message: null };
        }
        const time = this.now();
        const input = {
          verb: 'snapshot-create',
          domain: dom,
          snapshot,
          ...(xml !== undefined ? { xml } : {}),
          redefine: flag(o, 'redefine'),
          current: flag(o, 'current'),
          noMetadata: flag(o, 'no-metadata'),
          halt: flag(o, 'halt'),
          diskOnly: flag(o, 'disk-only'),
          reuseExternal: flag(o, 'reuse-external'),
          quiesce: flag(o, 'quiesce'),
          atomic: flag(o, 'atomic'),
          live: flag(o, 'live'),
        };
        const outcome = await this.ledger.execute({ ...input, host: this.host, meta: { ...this.meta(), time } });
        if (!outcome.ok) return this.refused(outcome, verb, dom, o);
        const created = outcome.events.find((e) => e.type === 'SnapshotCreated')?.data as { snapshot: Snapshot } | undefined;
        const name = created?.snapshot.name ?? snapshotName({ snapshot, meta: { time } } as CommandOf<'snapshot-create'>);
        return { ok: true, outcome, out: file !== undefined ? `Domain snapshot ${name} created from '${file}'` : `Domain snapshot ${name} created` };
      }
      case 'snapshot-delete':
      case 'snapshot-revert': {
        const picked = await this.pickSnapshot(o, dom);
        if ('error' in picked) return picked.error;
        const name = picked.name;
        if (!snapshotNamed(picked.state, name)) return noSnapshot(name); // virsh looks the snapshot up first
        o.set('snapshotname', name);
        if (verb === 'snapshot-delete') {
          return exec(
            {
              verb,
              domain: dom,
              snapshotname: name,
              children: flag(o, 'children'),
              childrenOnly: flag(o, 'children-only'),
              metadata: flag(o, 'metadata'),
              mirrorPivot: flag(o, 'mirror-pivot'),
              mirrorAbort: flag(o, 'mirror-abort'),
            },
            () => (flag(o, 'children-only') ? `Domain snapshot ${name} children deleted\n` : `Domain snapshot ${name} deleted\n`),
          );
        }
        return exec(
          { verb, domain: dom, snapshotname: name, running: flag(o, 'running'), paused: flag(o, 'paused'), force: flag(o, 'force') },
          () => `Domain snapshot ${name} reverted\n`,
        );
      }
      case 'snapshot-current': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        const target = str(o, 'snapshotname');
        if (target !== undefined) {
          // virsh sets the current snapshot by redefining it with --current (T70); the domain itself is untouched.
          const snap = snapshotNamed(state, target);
          if (!snap) return noSnapshot(target);
          const snapshot: SnapshotDefinition = {
            name: snap.name,
            ...(snap.description !== undefined ? { description: snap.description } : {}),
            ...(snap.parent !== null ? { parent: snap.parent } : {}),
            state: snap.state,
            creationTime: snap.creationTime,
            disks: snap.disks,
          };
          return exec(
            { verb: 'snapshot-create', domain: dom, snapshot, redefine: true, current: true, diskOnly: snap.state === 'disk-snapshot' },
            () => `Snapshot ${target} set as current`,
          );
        }
        if (state.current === null) {
          const line = `domain '${dom}' has no current snapshot`;
          return fail([line], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, null, line, 'VIR_ERR_NO_DOMAIN_SNAPSHOT');
        }
        const snap = snapshotNamed(state, state.current)!;
        const result = { name: snap.name };
        if (flag(o, 'name')) return { ok: true, out: snap.name, result, message: null };
        return { ok: true, out: formatSnapshotXml(snap, state.config), result: snap, message: null };
      }
      case 'snapshot-parent': {
        const picked = await this.pickSnapshot(o, dom);
        if ('error' in picked) return picked.error;
        const snap = snapshotNamed(picked.state, picked.name);
        if (!snap) return noSnapshot(picked.name);
        if (snap.parent === null) {
          const line = `snapshot '${snap.name}' has no parent`;
          return fail([line], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, null, `Domain snapshot not found: snapshot '${snap.name}' does not have a parent`, 'VIR_ERR_NO_DOMAIN_SNAPSHOT');
        }
        return { ok: true, out: snap.parent, result: { parent: snap.parent }, message: null };
      }
      case 'snapshot-info': {
        const picked = await this.pickSnapshot(o, dom);
        if ('error' in picked) return picked.error;
        const snap = snapshotNamed(picked.state, picked.name);
        if (!snap) return noSnapshot(picked.name);
        return { ok: true, out: snapshotInfo(picked.state, snap), result: { ...snap, current: picked.state.current === snap.name }, message: null };
      }
      case 'snapshot-dumpxml': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        const name = str(o, 'snapshotname')!;
        const snap = snapshotNamed(state, name);
        if (!snap) return noSnapshot(name);
        return { ok: true, out: formatSnapshotXml(snap, state.config), result: snap, message: null };
      }
      case 'snapshot-list': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        let from = str(o, 'from');
        if (flag(o, 'current')) {
          if (state.current === null) {
            const line = `domain '${dom}' has no current snapshot`;
            return fail([line], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, null, line, 'VIR_ERR_NO_DOMAIN_SNAPSHOT');
          }
          from = state.current;
        }
        if (from !== undefined && !snapshotNamed(state, from)) return noSnapshot(from);
        const snaps = selectSnapshots(state, {
          roots: flag(o, 'roots'),
          leaves: flag(o, 'leaves'),
          noLeaves: flag(o, 'no-leaves'),
          metadata: flag(o, 'metadata'),
          noMetadata: flag(o, 'no-metadata'),
          inactive: flag(o, 'inactive'),
          active: flag(o, 'active'),
          diskOnly: flag(o, 'disk-only'),
          internal: flag(o, 'internal'),
          external: flag(o, 'external'),
          ...(from !== undefined ? { from } : {}),
          descendants: flag(o, 'descendants') || (from !== undefined && flag(o, 'tree')),
          topological: flag(o, 'topological'),
        });
        const result = snaps.map((s) => ({ ...s, current: state.current === s.name }));
        if (flag(o, 'tree')) return { ok: true, out: snapshotTree(snaps), result, message: null };
        if (flag(o, 'name')) return { ok: true, out: snaps.map((s) => `${s.name}\n`).join(''), result, message: null };
        return { ok: true, out: snapshotTable(snaps, flag(o, 'parent')), result, message: null };
      }
      // ------------------------------------------------------------------------------------ queries
      case 'list': {
        if (flag(o, 'table') && (flag(o, 'name') || flag(o, 'uuid') || flag(o, 'id'))) {
          const other = flag(o, 'name') ? 'name' : flag(o, 'uuid') ? 'uuid' : 'id';
          return optionError(`Options --table and --${other} are mutually exclusive`);
        }
        const shown = await allDomains(this.ledger, queryOfFlags(this.host, {
          all: flag(o, 'all'),
          inactive: flag(o, 'inactive'),
          transient: flag(o, 'transient'),
          persistent: flag(o, 'persistent'),
          withSnapshot: flag(o, 'with-snapshot'),
          withoutSnapshot: flag(o, 'without-snapshot'),
          stateRunning: flag(o, 'state-running'),
          statePaused: flag(o, 'state-paused'),
          stateShutoff: flag(o, 'state-shutoff'),
          stateOther: flag(o, 'state-other'),
          withManagedSave: flag(o, 'with-managed-save'),
          withoutManagedSave: flag(o, 'without-managed-save'),
        }));
        const result = shown.map(({ host: _host, ...row }) => row);
        return { ok: true, out: listOutput(shown, { name: flag(o, 'name'), uuid: flag(o, 'uuid'), id: flag(o, 'id') }), result, message: null };
      }
      case 'domstate': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        const text = flag(o, 'reason') ? stateWithReason(state) : stateWithReason(state).replace(/ \(.*\)$/, '');
        return { ok: true, out: `${text}\n`, result: { state: text.replace(/ \(.*\)$/, ''), reason: /\((.*)\)$/.exec(stateWithReason(state))?.[1] }, message: null };
      }
      case 'dominfo': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        const id = (await this.ledger.queryDomains({ host: this.host, all: true, uuid: state.uuid ?? '' })).domains.find((d) => d.name === dom)?.id ?? undefined;
        return {
          ok: true,
          out: dominfo(state, id),
          result: {
            id: id ?? null,
            name: state.name,
            uuid: state.uuid,
            state: !state.active ? 'shut off' : state.paused ? 'paused' : 'running',
            persistent: state.persistent,
            managedSave: state.hasManagedSave,
            snapshots: Object.keys(state.snapshots).length,
            current: state.current,
            blockJobs: state.blockJobs,
            migration: state.migration,
          },
          message: null,
        };
      }
      case 'domblklist': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        return { ok: true, out: domblklist(state, flag(o, 'details')), result: state.config?.disks ?? [], message: null };
      }
      case 'dumpxml': {
        const state = await this.domain(dom);
        if (!state) return notFound(dom);
        return { ok: true, out: formatDomainXml(state.config!), result: state.config, message: null };
      }
      // ------------------------------------------------------------------------------------ block jobs, migration
      case 'blockcopy': {
        if (flag(o, 'pivot') && flag(o, 'finish')) return optionError('Options --pivot and --finish are mutually exclusive');
        const dest = str(o, 'dest');
        if (dest === undefined) return optionError('need either --dest or --xml');
        const wait = flag(o, 'wait') || flag(o, 'pivot') || flag(o, 'finish');
        if (wait && !this.connected) {
          return optionError(
            'blockcopy --wait needs a libvirt connection (vmledger --connect URI): without one nothing copies, and a copy ' +
              'becomes ready only through `guest-event DOM blockjob-ready --disk DISK`; end it with `blockjob DOM DISK --pivot` or `--abort`',
          );
        }
        const path = str(o, 'path')!;
        const started = await exec(
          { verb, domain: dom, path, dest, transientJob: flag(o, 'transient-job'), shallow: flag(o, 'shallow'), reuseExternal: flag(o, 'reuse-external') },
          () => (wait ? '' : 'Block Copy started'),
        );
        if (!wait || !started.ok) return started;
        return this.finishBlockCopy(dom, path, flag(o, 'pivot') ? 'pivot' : flag(o, 'finish') ? 'finish' : 'wait', exec, started);
      }
      case 'blockjob': {
        const abort = flag(o, 'abort') || flag(o, 'async') || flag(o, 'pivot');
        if (flag(o, 'info') && flag(o, 'abort')) return optionError('Options --info and --abort are mutually exclusive');
        if (flag(o, 'info') && (flag(o, 'pivot') || flag(o, 'async'))) {
          return optionError(`Options --info and --${flag(o, 'pivot') ? 'pivot' : 'async'} are mutually exclusive`);
        }
        if (!abort) {
          const state = await this.domain(dom);
          if (!state) return notFound(dom);
          const path = str(o, 'path')!;
          const disk = state.config?.disks.find((d) => d.target === path || d.source === path);
          const job = disk ? blockJobOn(state, disk.target) : undefined;
          if (!job) return { ok: true, out: `No current block job for ${path}\n`, result: null, message: null };
          const kind = job.kind === 'pull' ? 'Block Pull' : job.kind === 'commit' ? 'Block Commit' : 'Block Copy';
          return { ok: true, out: `${kind}: [${job.phase === 'ready' ? '100' : '  0'} %]\n`, result: job, message: null };
        }
        return exec({ verb, domain: dom, path: str(o, 'path'), pivot: flag(o, 'pivot'), abort: !flag(o, 'pivot') }, () => '');
      }
      case 'blockpull': {
        const base = str(o, 'base');
        return exec({ verb, domain: dom, path: str(o, 'path'), ...(base !== undefined ? { base } : {}) }, () =>
          flag(o, 'wait') ? '\nPull complete\n' : 'Block Pull started',
        );
      }
      case 'migrate': {
        const uri = str(o, 'desturi')!;
        const desthost = destinationHost(uri);
        if (desthost === undefined) return optionError(`migration destination URI '${uri}' names no host`);
        return exec(
          {
            verb,
            domain: dom,
            desthost,
            offline: flag(o, 'offline'),
            persistent: flag(o, 'persistent'),
            undefinesource: flag(o, 'undefinesource'),
            live: flag(o, 'live'),
          },
          () => '',
        );
      }
      // ------------------------------------------------------------------------------------ vmledger extensions
      case 'guest-event': {
        const event = str(o, 'event')!;
        const disk = str(o, 'disk');
        return exec({ verb, domain: dom, event, ...(disk !== undefined ? { disk } : {}) }, () => `Domain '${dom}' guest event ${event} recorded\n`);
      }
      case 'migrate-phase': {
        const phase = str(o, 'phase')!;
        const failed = str(o, 'failed');
        return exec(
          { verb, domain: dom, phase, ...(failed !== undefined ? { failed } : {}) },
          () => `Domain '${dom}' migration phase ${phase} ${failed !== undefined ? 'failed' : 'recorded'}\n`,
        );
      }
      case 'migrate-incoming': {
        const parsed = this.readDomainXml(str(o, 'file')!);
        if ('error' in parsed) return parsed.error;
        const { config } = parsed;
        return this.execute(
          {
            verb,
            config,
            source: str(o, 'source'),
            persistent: flag(o, 'persistent'),
            active: flag(o, 'active') || flag(o, 'paused'),
            paused: flag(o, 'paused'),
          },
          verb,
          config.name,
          o,
          () => `Domain '${config.name}' arrived from ${str(o, 'source')}\n`,
        );
      }
      // ------------------------------------------------------------------------------------ virsh itself
      case 'echo':
        return { ok: true, out: `${list(o, 'string').join(' ')}\n`, message: null };
      case 'quit':
      case 'exit':
        return { ok: true, out: '', quit: true, message: null };
      case 'help': {
        const topic = str(o, 'command');
        if (topic === undefined) return { ok: true, out: groupHelp(), message: null };
        const cmd = findCommand(topic);
        if (cmd) return { ok: true, out: commandHelp(cmd), message: null };
        const groups: CmdGroup[] = ['domain', 'snapshot', 'vmledger', 'virsh'];
        if ((groups as string[]).includes(topic)) return { ok: true, out: groupHelp([topic as CmdGroup]), message: null };
        return optionError(`command or command group '${topic}' doesn't exist`);
      }
    }
    return optionError(`unknown command: '${verb}'`);
  }
}
