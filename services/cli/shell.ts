// `vmledger shell` and `vmledger <virsh-verb> …`: virsh commands through the embedded ledger.
//
// Every command is printed as soon as the ledger has acknowledged it, and the ledger acknowledges only after the
// store made the facts durable (SQLite WAL with synchronous=FULL), so whatever the shell printed survives a crash
// or `kill -9` of the process.
import { createInterface } from 'node:readline';

import type { Command } from 'commander';

import { terminalText } from '../terminalText';
import { VirshSession, type CommandReport, type SessionLedger } from '../virsh/session';
import { connectDriver, type ConnectSpec } from '../libvirt/connect';
import { LazyLedger } from './lazyLedger';
import { CliError, cliGlobals } from './program';
import { prepareSessionLedger } from './signing';

export const PROMPT = 'vmledger # ';

function printer(json: boolean) {
  return (r: CommandReport) => {
    if (json) {
      process.stdout.write(`${JSON.stringify(r.json)}\n`);
      return;
    }
    // Whatever a stored name or message holds, it reaches the terminal escaped (services/terminalText.ts).
    if (r.stderr) process.stderr.write(terminalText(r.stderr));
    if (r.stdout) process.stdout.write(terminalText(r.stdout));
  };
}

async function withSession<T>(cmd: Command, work: (session: VirshSession, print: (r: CommandReport) => void) => Promise<T>): Promise<T> {
  const globals = cliGlobals(cmd);
  if (globals.nats && globals.connect) {
    throw new CliError('--connect and --nats do not go together: give --connect to the `vmledger serve` the commands go to');
  }
  const driver = globals.connect !== undefined ? await connectCliDriver(globals.connect) : undefined;
  const local = (): SessionLedger => new LazyLedger(globals.store, driver ? { driver } : {});
  const ledger = await prepareSessionLedger(globals.nats ? await remoteLedger(globals.nats) : local(), {
    remote: globals.nats !== undefined,
    signWith: globals.signWith,
  }).catch(async (error: unknown) => {
    await driver?.close();
    throw new CliError(error instanceof Error ? error.message : String(error));
  });
  try {
    const session = new VirshSession(ledger, {
      host: globals.host,
      actor: process.env.USER ? `${process.env.USER}@cli` : 'cli',
      isFatal: (error) => error instanceof CliError,
      connected: driver !== undefined,
    });
    return await work(session, printer(globals.json));
  } finally {
    try {
      await ledger.close();
    } finally {
      await driver?.close();
    }
  }
}

async function connectCliDriver(spec: ConnectSpec) {
  try {
    return await connectDriver(spec);
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}

/** `--nats URL`: the same commands, sent to a running `vmledger serve` (credentials and TLS from the NATS_* variables). */
async function remoteLedger(url: string): Promise<SessionLedger> {
  // Loaded only here: a local session never pays for the NATS client.
  const { connectNats, natsConfigFromEnv, natsConnectionOptions } = await import('../nats/config');
  const { createRemoteLedger } = await import('../nats/remoteLedger');
  try {
    const nc = await connectNats(natsConnectionOptions(natsConfigFromEnv(process.env, { url, name: 'vmledger shell' })));
    return createRemoteLedger(nc, { closeConnection: true });
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}

/** Reads commands line by line (a script on stdin, or a prompt on a terminal); returns the last command's status. */
async function readCommands(session: VirshSession, print: (r: CommandReport) => void): Promise<number> {
  const interactive = Boolean(process.stdin.isTTY);
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  if (interactive) {
    process.stdout.write('Welcome to vmledger, the virsh language over an event-sourced ledger.\n\n');
    process.stdout.write("Type:  'help' for help with commands\n       'quit' to quit\n\n");
    rl.setPrompt(PROMPT);
    rl.prompt();
  }
  let status = 0;
  try {
    for await (const line of rl) {
      const run = await session.runText(line, print);
      // A blank line or a comment runs nothing and leaves the status as it was.
      if (line.trim() !== '' && !line.trim().startsWith('#')) status = run.status;
      if (run.quit) break;
      if (interactive) rl.prompt();
    }
  } finally {
    rl.close();
  }
  if (interactive) process.stdout.write('\n');
  return status;
}

export async function shellCommand(opts: { exec?: string }, cmd: Command): Promise<void> {
  process.exitCode = await withSession(cmd, async (session, print) => {
    if (opts.exec !== undefined) return (await session.runText(opts.exec, print)).status;
    return readCommands(session, print);
  });
}

/** `vmledger undefine test --snapshots-metadata`: one virsh command, its arguments exactly as the shell gave them. */
export async function verbCommand(verb: string, args: string[], cmd: Command): Promise<void> {
  process.exitCode = await withSession(cmd, async (session, print) => (await session.runCommands([[verb, ...args]], print)).status);
}
