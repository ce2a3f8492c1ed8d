// `vmledger adopt [--connect URI] [DOMAIN…]` and `vmledger reconcile [--connect URI] [--dry-run]`: the ledger
// brought to what a libvirt connection shows (services/reconcile.ts). Both print a table of what differed
// (domain, what, ledger, libvirt, and whether it was recorded), or with --json one object per difference.
// Without --connect they use $LIBVIRT_DEFAULT_URI, as virsh does.
import type { Command } from 'commander';

import { connectDriver, connectOption, type ConnectSpec } from './libvirt/connect';
import { cliGlobals, fail, hostOption, jsonOption, openCliLedger, storeOption } from './cli/program';
import { adoptDomains, formatFound, reconcileHost, type Found } from './reconcile';

function uriOf(connect: ConnectSpec | undefined, verb: string): ConnectSpec {
  const uri = connect ?? process.env.LIBVIRT_DEFAULT_URI?.trim();
  if (!uri) fail(`${verb} needs a libvirt connection: --connect URI (or $LIBVIRT_DEFAULT_URI)`);
  return uri;
}

function print(found: readonly Found[], json: boolean, dryRun: boolean): void {
  if (json) {
    for (const f of found) {
      const { command: _command, outcome, ...difference } = f;
      const result = outcome ? { recorded: outcome.ok, commandId: outcome.commandId, ...(outcome.ok ? {} : { rule: outcome.rule, message: outcome.message }) } : {};
      process.stdout.write(JSON.stringify({ ...difference, ...result }) + '\n');
    }
    return;
  }
  process.stdout.write(formatFound(found, dryRun));
}

async function withLibvirt(cmd: Command, verb: string, run: (ledger: Awaited<ReturnType<typeof openCliLedger>>, driver: Awaited<ReturnType<typeof connectDriver>>, host: string, json: boolean) => Promise<Found[]>): Promise<void> {
  const g = cliGlobals(cmd);
  let driver: Awaited<ReturnType<typeof connectDriver>>;
  try {
    driver = await connectDriver(uriOf(g.connect, verb));
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  // The libvirt driver settles intents left open on this connection before anything is compared.
  const ledger = await openCliLedger(g.store, { driver });
  let found: Found[] = [];
  try {
    found = await run(ledger, driver, g.host, g.json);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  } finally {
    await ledger.close();
    await driver.close();
  }
  if (found.some((f) => f.outcome && !f.outcome.ok)) process.exitCode = 1;
}

export function registerReconcileCommands(program: Command): void {
  program
    .command('adopt')
    .description('import domains libvirt has (all, or those named) into the ledger: definition, state, managed save, snapshots, block jobs')
    .argument('[domain...]', 'domains to adopt (default: every domain on the connection)')
    .addOption(connectOption())
    .addOption(storeOption())
    .addOption(hostOption())
    .addOption(jsonOption())
    .action(async (domains: string[], _opts: unknown, cmd: Command) =>
      withLibvirt(cmd, 'adopt', async (ledger, driver, host, json) => {
        const found = await adoptDomains(ledger, driver.connectionFor(host) ?? driver.connection, domains, { host });
        print(found, json, false);
        return found;
      }),
    );
  program
    .command('reconcile')
    .description('compare every domain in the ledger with libvirt and record each difference as what libvirt did (actor libvirt)')
    .option('--dry-run', 'only print the differences')
    .addOption(connectOption())
    .addOption(storeOption())
    .addOption(hostOption())
    .addOption(jsonOption())
    .action(async (opts: { dryRun?: boolean }, cmd: Command) =>
      withLibvirt(cmd, 'reconcile', async (ledger, driver, host, json) => {
        // The default host on the default connection: every host without a connection of its own is reconciled too.
        const hostsWithOwnConnection = driver.watchedHosts.find((w) => w.host === host)?.hostsWithOwnConnection;
        const found = await reconcileHost(ledger, driver.connectionFor(host) ?? driver.connection, {
          host,
          source: 'reconcile',
          dryRun: opts.dryRun === true,
          ...(hostsWithOwnConnection ? { hostsWithOwnConnection } : {}),
        });
        print(found, json, opts.dryRun === true);
        return found;
      }),
    );
}
