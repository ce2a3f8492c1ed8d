// `vmledger serve [--store SPEC] [--nats URL]` (and `npm start`): open the store, build the ledger, and run the
// command service on NATS until SIGINT/SIGTERM, which drain it (every request received is answered) and close
// the store. When NATS cannot be reached at start, it exits non-zero saying how to start one.
import type { Command } from 'commander';
import type { NatsConnection } from '@nats-io/nats-core';

import { DEFAULT_STORE_FILE, openEventStore, type EventStore } from '../eventstore/index';
import { accessControl } from '../identity/access';
import { loadPolicyFile } from '../identity/policy';
import type { LibvirtDriver } from '../drivers/libvirt';
import { createLedger } from '../ledger';
import { connectDriver, connectOption, describeConnect, parseConnectSpec, type ConnectSpec } from '../libvirt/connect';
import type { CommandOutcome, Ledger, LocalLedger } from '../ledger-types';
import { connectNats, natsConfigFromEnv, natsConnectionOptions, NatsUnreachableError, redactUrl } from './config';
import { createLogger, type Logger } from '../log';
import { startCommandService, type CommandService } from './service';

export const DEFAULT_STORE_SPEC = `sqlite:${DEFAULT_STORE_FILE}`;

export interface ServeOptions {
  /** Store spec (`sqlite:PATH`, `memory`, …). Default: $VMLEDGER_STORE, else `sqlite:vmledger.sqlite`. */
  store?: string;
  /** NATS URL. Default: $NATS_URL, else nats://127.0.0.1:4222. Credentials and TLS come from NATS_* (config.ts). */
  natsUrl?: string;
  env?: NodeJS.ProcessEnv;
  name?: string;
  queue?: string;
  maxPayloadBytes?: number;
  /** Access policy file (services/identity/policy.ts). Default: $VMLEDGER_POLICY, else none (nobody vouched, all allowed). */
  policy?: string;
  /** Where to log (services/log.ts). Default: createLogger() (stderr; JSON unless on a terminal). */
  log?: Logger;
  /** Stop gracefully on SIGINT/SIGTERM (a second signal exits at once). Default true. */
  handleSignals?: boolean;
  /** `--connect URI` / `HOST=URI` (repeatable): perform every accepted command on these libvirt connections. */
  connect?: ConnectSpec;
}

export interface RunningServe {
  service: CommandService;
  ledger: Ledger;
  store: EventStore;
  nc: NatsConnection;
  /** Drain the service, close the ledger and the store, close the NATS connection. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when stopped (by stop() or by a signal). */
  done: Promise<void>;
}

/** Starts serving; resolves once the service is listening. Throws NatsUnreachableError when NATS is unreachable. */
export async function runServe(options: ServeOptions = {}): Promise<RunningServe> {
  const env = options.env ?? process.env;
  const rootLog = options.log ?? createLogger();
  const log = rootLog.child({ component: 'serve' });
  const storeSpec = options.store ?? (env.VMLEDGER_STORE?.trim() || DEFAULT_STORE_SPEC);
  const policyFile = options.policy ?? (env.VMLEDGER_POLICY?.trim() || undefined);
  // Before anything is opened: a bad policy file, or --connect values that cannot stand together, are named at once.
  const access = policyFile !== undefined ? accessControl(loadPolicyFile(policyFile)) : undefined;
  if (options.connect !== undefined) parseConnectSpec(options.connect);
  const natsConfig = natsConfigFromEnv(env, options.natsUrl ? { url: options.natsUrl, name: 'vmledger serve' } : { name: 'vmledger serve' });

  // NATS first: when it is unreachable, fail before touching the store.
  const nc = await connectNats(natsConnectionOptions(natsConfig));
  let store: EventStore | undefined;
  let ledger: LocalLedger | undefined;
  let driver: LibvirtDriver | undefined;
  let service: CommandService;
  try {
    store = await openEventStore(storeSpec);
    // follow: keep the host index current with other processes appending to the same store.
    driver = options.connect !== undefined ? await connectDriver(options.connect) : undefined;
    ledger = createLedger(store, { follow: true, ...(driver ? { driver } : {}) });
    service = await startCommandService({
      ledger,
      nc,
      name: options.name,
      queue: options.queue,
      maxPayloadBytes: options.maxPayloadBytes,
      access,
      metadata: { store: storeSpec.startsWith('sqlite:') || storeSpec === 'memory' ? storeSpec : storeSpec.split(':')[0]! },
      log: rootLog,
    });
  } catch (error) {
    await ledger?.close().catch(() => {});
    await driver?.close().catch(() => {});
    await store?.close().catch(() => {});
    await nc.close().catch(() => {});
    throw error;
  }
  const openedStore = store;
  const openedLedger = ledger;
  // With --connect: what libvirt did while nobody listened, then what it does on its own (services/libvirt/watch.ts).
  const watch = driver ? await watchConnection(openedLedger, driver, log, (outcome) => service.publish(outcome)) : undefined;

  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') log.warn(`disconnected from NATS (${status.server}); reconnecting`);
      else if (status.type === 'reconnect') log.info(`reconnected to NATS (${status.server})`);
      else if (status.type === 'error') log.error(`NATS error: ${status.error.message}`);
    }
  })().catch(() => {});

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting without waiting`);
      process.exit(130);
    }
    log.info(`${signal}: draining (finishing the requests in flight), then closing the store`);
    void stop();
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await service.stop();
        await watch?.close().catch((e: unknown) => log.error(`stopping the libvirt watch: ${String(e)}`));
        await openedLedger.close().catch((e: unknown) => log.error(`closing the ledger: ${String(e)}`));
        await driver?.close().catch((e: unknown) => log.error(`closing the libvirt connection: ${String(e)}`));
        await openedStore.close().catch((e: unknown) => log.error(`closing the store: ${String(e)}`));
        if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolveDone();
      }
    })();
    return stopping;
  };
  if (options.handleSignals ?? true) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  log.info(
    `serving '${service.name}' ${service.version} (instance ${service.id}) on ${natsConfig.servers.map(redactUrl).join(',')}, ` +
      `store ${storeSpec}; commands on vmledger.cmd.<verb>, facts on vmledger.evt.<host>.<domain>` +
      (options.connect !== undefined ? `; performing them on libvirt at ${describeConnect(options.connect)}` : ''),
  );
  return { service, ledger: openedLedger, store: openedStore, nc, stop, done };
}

/**
 * For each watched host (LibvirtDriver.watchedHosts): the start-up reconcile (printed to the log), then the watch
 * of libvirt's events (loaded only with --connect). On the default connection both cover every host without a
 * connection of its own: a libvirt domain there is compared under the host holding one of its name, and only one
 * no such host holds is logged as not in the ledger (vmledger adopt). `publish`: what libvirt did is published on
 * vmledger.evt.<host>.<domain> like a command's facts.
 */
async function watchConnection(ledger: LocalLedger, driver: LibvirtDriver, log: Logger, publish: (outcome: CommandOutcome) => void) {
  const [{ reconcileHost }, { watchLibvirt }, { openLibvirtConnection }] = await Promise.all([
    import('../reconcile'),
    import('../libvirt/watch'),
    import('../libvirt/connection'),
  ]);
  // Every watch, and the reconcile before it, asks the ledger for migrations in flight: a migration between two
  // ledger hosts, on any connection, is left to the saga.
  const watches = await Promise.all(
    driver.watchedHosts.map(async ({ host, connection: commands, hostsWithOwnConnection }) => {
      const hostLog = log.child({ host });
      try {
        const found = await reconcileHost(ledger, commands, { source: 'reconcile', host, migrations: ledger, ...(hostsWithOwnConnection ? { hostsWithOwnConnection } : {}) });
        for (const f of found) {
          if (f.outcome) publish(f.outcome);
          const line = `reconcile at start-up: ${f.host ?? host}/${f.domain}: ${f.what}: ledger ${f.ledger}, libvirt ${f.libvirt}`;
          if (f.outcome && !f.outcome.ok) hostLog.warn({ rule: f.outcome.rule, message: f.outcome.message }, line);
          else hostLog.info(line);
        }
      } catch (error) {
        hostLog.warn(`reconcile of host '${host}' at start-up failed (the watch resynchronises): ${error instanceof Error ? error.message : String(error)}`);
      }
      // Its own connection: its reads do not queue behind a command's (a destroy takes seconds), nor delay them.
      const connection = openLibvirtConnection(commands.uri);
      const watchLog = log.child({ component: 'watch', host });
      const watch = watchLibvirt(ledger, connection, {
        host,
        ...(hostsWithOwnConnection ? { hostsWithOwnConnection } : {}),
        log: (level, message) => watchLog[level](message),
        onRecorded: (found) => found.outcome && publish(found.outcome),
      });
      const others = hostsWithOwnConnection ? ' and every host without a connection of its own' : '';
      hostLog.info(`watching libvirt at ${commands.uri} for host '${host}'${others}`);
      return { watch, connection };
    }),
  );
  return {
    async close() {
      await Promise.all(
        watches.map(async ({ watch, connection }) => {
          await watch.close();
          await connection.close();
        }),
      );
    },
  };
}

/**
 * Adds `serve [--store SPEC] [--nats URL]` to a commander program. `--nats` may also be a global option of the
 * program (`vmledger --nats URL serve`); the subcommand's own value wins.
 */
export function registerServeCommand(program: Command): Command {
  return program
    .command('serve')
    .description('run the command service on NATS (vmledger.cmd.<verb>) until SIGINT/SIGTERM')
    .option('--store <spec>', `event store: sqlite:PATH or memory (default: $VMLEDGER_STORE or ${DEFAULT_STORE_SPEC})`)
    .option('--nats <url>', 'NATS server URL (default: $NATS_URL or nats://127.0.0.1:4222)')
    .option('--policy <file>', 'access policy: trusted accounts, signing keys, roles (default: $VMLEDGER_POLICY)')
    .addOption(connectOption())
    .action(async (opts: { store?: string; nats?: string; policy?: string; connect?: ConnectSpec }, cmd: Command) => {
      const all = cmd.optsWithGlobals<{ store?: string; nats?: string; connect?: ConnectSpec }>();
      try {
        const connect = opts.connect ?? all.connect;
        const running = await runServe({ store: opts.store ?? all.store, natsUrl: opts.nats ?? all.nats, policy: opts.policy, ...(connect !== undefined ? { connect } : {}) });
        await running.done;
      } catch (error) {
        const message = error instanceof NatsUnreachableError ? error.message : `vmledger serve: ${(error as Error).message ?? String(error)}`;
        process.stderr.write(message + '\n');
        process.exitCode = 1;
      }
    });
}
