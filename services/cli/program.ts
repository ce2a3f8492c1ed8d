// The `vmledger` command line: a commander program with a registry for subcommands that other modules own.
//
// Adding a subcommand (serve, audit, replay, diagram, ui, copy-store, …): export a registrar from your module,
//
//   import { storeOption, openCliLedger, fail } from './program';
//   export function registerAuditCommands(program: Command): void {
//     program.command('audit').description('…').addOption(storeOption()).action(async (opts, cmd) => { … });
//   }
//
// and add one line to the SUBCOMMANDS list in services/cli/subcommands.ts (its names, and how to import it).
// Use `cliGlobals(cmd)` for --store/--host/--json (given before or after the subcommand name), `openCliLedger()`
// to open the store and ledger with one-line errors, and `fail()` to stop with `error: …` and exit status 1.
import { Command, Option } from 'commander';

import { DEFAULT_HOST } from '../../machines/model';
import { DEFAULT_STORE_FILE, openEventStore } from '../eventstore/index';
import type { EventStore } from '../eventstore/types';
import { createLedger, type LedgerOptions } from '../ledger';
import type { Ledger } from '../ledger-types';
import { connectOption, type ConnectSpec } from '../libvirt/connect';
import { VMLEDGER_VERSION } from '../version';
import { COMMANDS } from '../virsh/definitions';

/** `--store` when none is given: the SQLite file `vmledger.sqlite` in the working directory. */
export const DEFAULT_STORE_SPEC = `sqlite:./${DEFAULT_STORE_FILE}`;

export type SubcommandRegistrar = (program: Command) => void;

const registrars: SubcommandRegistrar[] = [];

/** Adds a subcommand to every program built afterwards (call it at import time of your module). */
export function registerSubcommand(registrar: SubcommandRegistrar): void {
  registrars.push(registrar);
}

/** An error the CLI reports as one `error: …` line with exit status 1 (no stack trace). */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export function fail(message: string): never {
  throw new CliError(message);
}

export function storeOption(): Option {
  return new Option(
    '--store <spec>',
    `event store: sqlite:PATH (embedded, durable) or memory (nothing kept) (default: ${DEFAULT_STORE_SPEC}, i.e. ${DEFAULT_STORE_FILE} in the working directory)`,
  );
}

export function hostOption(): Option {
  return new Option('--host <name>', `the hypervisor host the commands address (default: ${DEFAULT_HOST})`);
}

export function jsonOption(): Option {
  return new Option('--json', 'print one JSON object per command instead of virsh text');
}

export function natsOption(): Option {
  return new Option('--nats <url>', 'send the commands to a running vmledger service over NATS instead of using a local store');
}

export function signWithOption(): Option {
  return new Option('--sign-with <keyfile>', 'sign every command with the user nkey seed in KEYFILE (SU…; see `vmledger keygen`)');
}

export interface CliGlobals {
  store: string;
  host: string;
  json: boolean;
  /** Set when the commands go to a remote service over NATS. */
  nats?: string;
  /** A key file: sign every command. */
  signWith?: string;
  /** `--connect URI` / `--connect HOST=URI` (repeatable): the libvirt connections accepted commands are performed on. */
  connect?: ConnectSpec;
}

/** --store/--host/--json from the command and its parents (the nearest one given wins), with defaults. */
export function cliGlobals(cmd: Command): CliGlobals {
  const all = cmd.optsWithGlobals() as { store?: string; host?: string; json?: boolean; nats?: string; signWith?: string; connect?: ConnectSpec };
  let store = all.store;
  let host = all.host;
  let json = all.json;
  // optsWithGlobals lets a parent's value override an unset child one; the child's own value must win.
  const own = cmd.opts() as { store?: string; host?: string; json?: boolean; connect?: ConnectSpec };
  store = own.store ?? store;
  host = own.host ?? host;
  json = own.json ?? json;
  const connect = own.connect ?? all.connect;
  return { store: store ?? DEFAULT_STORE_SPEC, host: host ?? DEFAULT_HOST, json: json ?? false, nats: all.nats, signWith: all.signWith, ...(connect !== undefined ? { connect } : {}) };
}

/** Opens the store a spec names; a malformed spec or an unusable file becomes a CliError (one line). */
export async function openCliStore(spec: string): Promise<EventStore> {
  try {
    return await openEventStore(spec);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

/** Opens store and ledger; `close()` on the result closes both. */
export async function openCliLedger(spec: string, options: LedgerOptions = {}): Promise<Ledger> {
  const store = await openCliStore(spec);
  const ledger = createLedger(store, options);
  const closeLedger = ledger.close.bind(ledger);
  ledger.close = async () => {
    try {
      await closeLedger();
    } finally {
      await store.close();
    }
  };
  return ledger;
}

export interface ProgramHandlers {
  /** `vmledger shell …` */
  shell: (opts: { exec?: string }, cmd: Command) => Promise<void>;
  /** `vmledger <virsh-verb> args…` */
  verb: (verb: string, args: string[], cmd: Command) => Promise<void>;
}

export function buildProgram(handlers: ProgramHandlers): Command {
  const program = new Command('vmledger');
  program
    .usage('[options] <virsh-command> [args...]  |  [options] shell [-e CMDS]  |  <subcommand> ...')
    .description(
      'libvirt domain lifecycles as an event-sourced ledger: every libvirt rule an explicit, replayable guard. ' +
        'Speaks the virsh language: `vmledger undefine test --snapshots-metadata` runs one virsh command, ' +
        '`vmledger shell` runs many (from -e, from a script on stdin, or at an interactive prompt).',
    )
    .version(VMLEDGER_VERSION, '-V, --version')
    .addOption(storeOption())
    .addOption(hostOption())
    .addOption(jsonOption())
    .addOption(natsOption())
    .addOption(signWithOption())
    .addOption(connectOption())
    .enablePositionalOptions()
    .passThroughOptions()
    .helpCommand(false)
    .argument('[virsh-command]', 'a virsh command (`vmledger help` lists them)')
    .argument('[args...]', "the virsh command's arguments and options")
    .showHelpAfterError('(run `vmledger --help` for usage)')
    .action(async (verb: string | undefined, args: string[], _opts: unknown, cmd: Command) => {
      if (verb === undefined) {
        cmd.outputHelp();
        return;
      }
      await handlers.verb(verb, args, cmd);
    });

  program
    .command('shell')
    .description('run virsh commands through the ledger: from -e, from a script on stdin, or at a prompt when stdin is a terminal')
    .option('-e, --exec <commands>', "commands to run, separated by ';' or newlines")
    .addOption(storeOption())
    .addOption(hostOption())
    .addOption(jsonOption())
    .addOption(connectOption())
    .action(async (opts: { exec?: string }, cmd: Command) => handlers.shell(opts, cmd));

  // Subcommands owned by other modules (see the header of this file).
  for (const register of registrars) register(program);

  const verbs = COMMANDS.filter((c) => c.group !== 'virsh').map((c) => c.name);
  program.addHelpText(
    'after',
    `\nVirsh commands (global options go before the command):\n  ${wrap(verbs, 100).join('\n  ')}\n` +
      `\nExamples:\n  vmledger define test.xml\n  vmledger snapshot-create-as test s1\n  vmledger undefine test --snapshots-metadata\n` +
      `  vmledger --store memory shell -e 'define test.xml; start test; list --all'\n  vmledger help undefine\n` +
      `\nExit status: that of the last command (0 ok, 1 error), as virsh.\n`,
  );
  return program;
}

function wrap(words: string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines;
}
