// The `vmledger` command line: main(argv) runs it. Importing this module runs nothing; the executable is
// entries/cli.ts (built to dist/cli.mjs; bin/vmledger.mjs runs it from source through tsx).
//
//   vmledger shell [-e 'cmd; cmd'] [--json] [--store SPEC] [--host NAME]
//   vmledger [--store SPEC] [--host NAME] [--json] <virsh-command> [args…]
//   vmledger <subcommand> …          (serve, audit, replay, diagram, ui, copy-store: registered by their modules)
//
// Errors that are not a command's own (a malformed --store spec, a file that is not a vmledger store) are printed
// as one `error: …` line with exit status 1, never as a stack trace.

import { CommanderError } from 'commander';

import { StoreCorruptError } from '../eventstore/types';
import { buildProgram, CliError } from './program';
import { shellCommand, verbCommand } from './shell';
import { registerSubcommandsFor } from './subcommands';

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  // `vmledger list | head -1`: a closed pipe ends the output quietly, as for any Unix tool.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  try {
    // Every non-virsh subcommand is registered in subcommands.ts, before the program is built.
    await registerSubcommandsFor(argv.slice(2));
    const program = buildProgram({ shell: shellCommand, verb: verbCommand });
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    const known = error instanceof CliError || error instanceof StoreCorruptError;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`error: ${message}\n`);
    if (!known && process.env.VMLEDGER_DEBUG) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    process.exitCode = 1;
  }
}
