// Runs virsh command lines against a ledger: parse (virsh rules) → look the verb up in the table (verbs/), whose
// handler builds a CommandInput or answers a query → print what virsh prints. One report per command, handed to the caller as soon as the command is done, so a
// printed success always means the facts are already durable.
//
// Output layout follows virsh exactly: each command prints its own text (with or without a final newline, as
// virsh's handlers do), then virsh prints one more newline after every command it ran; errors go to stderr as
// `error: …` lines. A syntax error (unknown command or option, missing argument) stops the whole command string
// before anything of it runs, as in virsh.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { ERROR_CODES } from '../../machines/errors';
import type { RecordedEvent } from '../eventstore/types';
import type { CommandOutcome } from '../ledger-types';
import { verbCall, type SessionEnv, type SessionLedger } from './call';
import { commandHelp, parseArgv, type CmdDef } from './definitions';
import { fail, optionError, type Opts, type Result } from './result';
import { formatCommandLine, tokenize } from './tokenize';
import { VERBS } from './verbs';

export type { SessionLedger } from './call';

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

function compactEvents(events: readonly RecordedEvent[]): JsonReport['events'] {
  return events.map((e) => ({ stream: e.stream, revision: e.revision, position: e.position, type: e.type, data: e.data }));
}

export class VirshSession {
  readonly host: string;
  private readonly env: SessionEnv;
  private readonly isFatal: (error: unknown) => boolean;

  constructor(
    readonly ledger: SessionLedger,
    options: SessionOptions = {},
  ) {
    this.host = options.host ?? 'local';
    this.env = {
      ledger,
      host: this.host,
      actor: options.actor ?? 'vmledger-cli',
      readFile: options.readFile ?? ((path) => readFileSync(path, 'utf8')),
      newCommandId: options.newCommandId ?? randomUUID,
      now: options.now ?? (() => new Date().toISOString()),
      newUuid: options.newUuid ?? randomUUID,
      connected: options.connected ?? false,
    };
    this.isFatal = options.isFatal ?? (() => false);
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

  /** Looks the verb up in the table and runs its handler. */
  private async run(def: CmdDef, o: Opts): Promise<Result> {
    const entry = VERBS.get(def.name);
    if (!entry) return optionError(`unknown command: '${def.name}'`);
    return entry.run(verbCall(this.env, def.name, entry, o));
  }
}
