// Shared set-up for the NATS integration tests: a real ledger on a real SQLite file in a temp dir, the command
// service on a private nats-server (test/support/natsServer.ts), and clients.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

import { createVmledgerClient, type VmledgerClient, type VmledgerClientOptions } from '../../services/client';
import { openEventStore, type EventStore } from '../../services/eventstore/index';
import { createLedger, type LedgerOptions } from '../../services/ledger';
import type { Ledger } from '../../services/ledger-types';
import { natsConfigFromEnv, natsConnectionOptions } from '../../services/nats/config';
import { createLogger, type Logger } from '../../services/log';
import { startCommandService, type CommandService, type CommandServiceOptions } from '../../services/nats/service';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';

export function tempDir(prefix = 'vmledger-nats-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface LedgerOnFile {
  file: string;
  store: EventStore;
  ledger: Ledger;
  close(): Promise<void>;
}

/** The real ledger on a SQLite file (created when missing). */
export async function ledgerOnFile(file: string, options: LedgerOptions = { follow: true }): Promise<LedgerOnFile> {
  const store = await openEventStore(`sqlite:${file}`);
  const ledger = createLedger(store, options);
  return {
    file,
    store,
    ledger,
    async close() {
      await ledger.close();
      await store.close();
    },
  };
}

/** A connection as the service and clients make them in production: reconnect forever, with backoff. */
export function connectLikeProduction(url: string, name = 'vmledger-test'): Promise<NatsConnection> {
  return connect(natsConnectionOptions(natsConfigFromEnv({}, { url, name })));
}

/**
 * Collects what the service logs, instead of printing it: a real pino logger (services/log.ts) whose JSON lines
 * are parsed back into level, message and the other fields (cmd, host, domain, subject, err...).
 */
export function captureLog(): { log: Logger; entries: { level: string; message: string; details: Record<string, unknown> }[] } {
  const entries: { level: string; message: string; details: Record<string, unknown> }[] = [];
  const log = createLogger({
    format: 'json',
    level: 'info',
    destination: {
      write(line: string) {
        const { level, msg, time: _time, pid: _pid, hostname: _hostname, name: _name, ...details } = JSON.parse(line) as Record<string, unknown>;
        entries.push({ level: String(level), message: String(msg), details });
      },
    },
  });
  return { entries, log };
}

export interface Stack {
  service: CommandService;
  serviceNc: NatsConnection;
  clientNc: NatsConnection;
  client: VmledgerClient;
  stop(): Promise<void>;
}

/** One service instance on its own connection, over the given ledger, plus a client on another connection. */
export async function startStack(
  url: string,
  ledger: Ledger,
  options: Partial<CommandServiceOptions> = {},
  clientOptions: VmledgerClientOptions = {},
): Promise<Stack> {
  const serviceNc = await connectLikeProduction(url, 'vmledger-test-service');
  const service = await startCommandService({ ledger, nc: serviceNc, log: captureLog().log, ...options });
  const clientNc = await connectLikeProduction(url, 'vmledger-test-client');
  const client = createVmledgerClient(clientNc, { timeoutMs: 10_000, ...clientOptions });
  return {
    service,
    serviceNc,
    clientNc,
    client,
    async stop() {
      await service.stop();
      await clientNc.close();
      await serviceNc.close();
    },
  };
}

/** A stable UUID per domain name, so DEF-NAME never sees two UUIDs for one name by accident. */
export function uuidFor(name: string): string {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `00000000-0000-4000-8000-${h.toString(16).padStart(12, '0').slice(-12)}`;
}

export function domainConfig(name: string) {
  return {
    name,
    uuid: uuidFor(name),
    disks: [{ target: 'vda', source: `/var/lib/libvirt/images/${name}.qcow2` }],
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A raw request (no typed client): the body as given, the reply parsed, plus its headers. */
export async function rawRequest(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  timeout = 10_000,
): Promise<{ reply: Record<string, unknown>; headers: Record<string, string> }> {
  const data = body instanceof Uint8Array ? body : typeof body === 'string' ? encoder.encode(body) : encoder.encode(JSON.stringify(body));
  const msg = await nc.request(subject, data, { timeout });
  const headers: Record<string, string> = {};
  for (const key of msg.headers?.keys() ?? []) headers[key] = msg.headers!.get(key);
  return { reply: JSON.parse(decoder.decode(msg.data)) as Record<string, unknown>, headers };
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A private nats-server whose max_payload is `bytes` (the paging tests: every reply must fit it), its config in `dir`. */
export function startServerWithMaxPayload(dir: string, bytes: number): Promise<NatsServerHandle> {
  const config = join(dir, 'nats.conf');
  writeFileSync(config, `max_payload: ${bytes}\n`);
  return startNatsServer({ args: ['-c', config] });
}
