// NATS connection settings from the environment (or explicit configuration), and a connect() that fails with an
// error a person can act on.
//
//   NATS_URL              server URL(s), comma-separated (default nats://127.0.0.1:4222); may carry user:pass@
//   NATS_USER, NATS_PASSWORD   user/password authentication
//   NATS_TOKEN            token authentication
//   NATS_NKEY_SEED_FILE   file holding an nkey seed (SU…)
//   NATS_CREDS_FILE       a .creds file (JWT + nkey seed), as `nsc` writes it
//   NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY   PEM files: CA to verify the server; client certificate and key
//
// Once connected, the connection reconnects forever, with a backoff that grows with the length of the outage
// (250 ms up to 5 s, with jitter). Only the first connection fails fast: a service that cannot reach NATS at
// start says so and exits instead of hanging.
import { readFileSync } from 'node:fs';

import {
  AuthorizationError,
  ConnectionError,
  credsAuthenticator,
  InvalidArgumentError,
  nkeyAuthenticator,
  TimeoutError,
  tokenAuthenticator,
  UserAuthenticationExpiredError,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export interface NatsConfig {
  /** One or more server URLs. */
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
  nkeySeedFile?: string;
  credsFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Connection name shown by the server (`nats server report connections`). */
  name?: string;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** Reads the NATS_* variables; `overrides` (e.g. from `--nats URL`) win over the environment. */
export function natsConfigFromEnv(env: NodeJS.ProcessEnv = process.env, overrides: Partial<NatsConfig> & { url?: string } = {}): NatsConfig {
  const url = nonEmpty(overrides.url) ?? nonEmpty(env.NATS_URL) ?? DEFAULT_NATS_URL;
  const config: NatsConfig = {
    servers: overrides.servers ?? url.split(',').map((s) => s.trim()).filter((s) => s !== ''),
  };
  const pick = <K extends keyof NatsConfig>(key: K, envName: string) => {
    const v = (overrides[key] as string | undefined) ?? nonEmpty(env[envName]);
    if (v !== undefined) (config as unknown as Record<string, string>)[key] = v;
  };
  pick('user', 'NATS_USER');
  pick('password', 'NATS_PASSWORD');
  pick('token', 'NATS_TOKEN');
  pick('nkeySeedFile', 'NATS_NKEY_SEED_FILE');
  pick('credsFile', 'NATS_CREDS_FILE');
  pick('tlsCa', 'NATS_TLS_CA');
  pick('tlsCert', 'NATS_TLS_CERT');
  pick('tlsKey', 'NATS_TLS_KEY');
  if (overrides.name !== undefined) config.name = overrides.name;
  if (config.password !== undefined && config.user === undefined) {
    throw new Error('NATS_PASSWORD is set but NATS_USER is not: set both, or neither');
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new Error('NATS_TLS_CERT and NATS_TLS_KEY go together: set both (client certificate and its key), or neither');
  }
  return config;
}

function readSecretFile(variable: string, path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`${variable}=${path}: cannot read the file: ${(error as Error).message}`);
  }
}

/**
 * A delay handler whose wait grows with the length of the current outage: about half the time since the outage
 * began, between minMs and maxMs, plus up to 20 % jitter. nats.js calls it on every pass of its reconnect loop;
 * a pause longer than twice maxMs between calls means a new outage.
 */
export function outageBackoff(minMs = 250, maxMs = 5_000): () => number {
  let outageStart = 0;
  let lastCall = 0;
  return () => {
    const now = Date.now();
    if (now - lastCall > maxMs * 2) outageStart = now;
    lastCall = now;
    const base = Math.min(maxMs, Math.max(minMs, (now - outageStart) / 2));
    return Math.round(base + Math.random() * base * 0.2);
  };
}

/** nats.js connection options for a config: authenticators, TLS, reconnect forever with backoff. */
export function natsConnectionOptions(config: NatsConfig): NodeConnectionOptions {
  const authenticators: Authenticator[] = [];
  if (config.user !== undefined) authenticators.push(usernamePasswordAuthenticator(config.user, config.password));
  if (config.token !== undefined) authenticators.push(tokenAuthenticator(config.token));
  if (config.nkeySeedFile !== undefined) {
    const seed = new TextDecoder().decode(readSecretFile('NATS_NKEY_SEED_FILE', config.nkeySeedFile)).trim();
    if (!seed.startsWith('S')) throw new Error(`NATS_NKEY_SEED_FILE=${config.nkeySeedFile}: does not hold an nkey seed (it starts with 'S', e.g. SU…)`);
    authenticators.push(nkeyAuthenticator(new TextEncoder().encode(seed)));
  }
  if (config.credsFile !== undefined) authenticators.push(credsAuthenticator(readSecretFile('NATS_CREDS_FILE', config.credsFile)));

  const options: NodeConnectionOptions = {
    servers: config.servers,
    name: config.name ?? 'vmledger',
    // The first connection fails fast (see connectNats); after that, reconnect forever.
    maxReconnectAttempts: -1,
    reconnectDelayHandler: outageBackoff(),
    waitOnFirstConnect: false,
    timeout: 5_000,
  };
  if (authenticators.length > 0) options.authenticator = authenticators.length === 1 ? authenticators[0] : authenticators;
  const wantsTls = config.tlsCa !== undefined || config.tlsCert !== undefined || config.servers.some((s) => s.startsWith('tls://'));
  if (wantsTls) {
    options.tls = {
      ...(config.tlsCa !== undefined ? { caFile: config.tlsCa } : {}),
      ...(config.tlsCert !== undefined ? { certFile: config.tlsCert } : {}),
      ...(config.tlsKey !== undefined ? { keyFile: config.tlsKey } : {}),
    };
  }
  return options;
}

/** Thrown by connectNats when the first connection fails; the message says what to do. */
export class NatsUnreachableError extends Error {
  readonly url: string;
  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super(
      `cannot reach NATS at ${url}: ${reason}. Start one with 'nats-server -js' (or 'docker compose up nats'), or set NATS_URL.`,
      options,
    );
    this.name = 'NatsUnreachableError';
    this.url = url;
  }
}

/** Node's TLS failures carry codes such as ERR_TLS_CERT_ALTNAME_INVALID, DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED. */
function isTlsFailure(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  return /TLS|CERT|SSL|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code) || /\b(tls|ssl|certificate)\b/i.test(message);
}

/** A one-line reason for a failed first connection, from nats.js's error (a class per failure, the cause behind it). */
export function describeConnectError(error: unknown): string {
  const message = (error as Error | undefined)?.message ?? String(error);
  const cause = (error as { cause?: unknown } | undefined)?.cause as { code?: unknown; message?: string } | undefined;
  const chained = cause?.message;
  if (error instanceof ConnectionError && cause?.code === 'ECONNREFUSED') {
    return chained ? `connection refused (${chained})` : 'connection refused (is nats-server running, and on this port?)';
  }
  if (error instanceof TimeoutError) return 'connection timed out';
  if (error instanceof AuthorizationError || error instanceof UserAuthenticationExpiredError) {
    return `the server refused the credentials (${message}); check NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE or NATS_CREDS_FILE`;
  }
  if ((error instanceof ConnectionError && isTlsFailure(cause ?? error)) || (error instanceof InvalidArgumentError && /\btls\b/i.test(message))) {
    return `TLS failed (${chained ?? message}); check NATS_TLS_CA/NATS_TLS_CERT/NATS_TLS_KEY`;
  }
  return chained && chained !== message ? `${message} (${chained})` : message;
}

/**
 * Connects to NATS (default: the NATS_* environment). The first attempt fails with NatsUnreachableError; once
 * connected, the connection reconnects forever (with natsConnectionOptions' settings).
 */
export async function connectNats(options: NodeConnectionOptions = natsConnectionOptions(natsConfigFromEnv())): Promise<NatsConnection> {
  const servers = options.servers === undefined ? [DEFAULT_NATS_URL] : Array.isArray(options.servers) ? options.servers : [options.servers];
  try {
    return await connect(options);
  } catch (error) {
    throw new NatsUnreachableError(servers.map(redactUrl).join(','), describeConnectError(error), { cause: error });
  }
}

/** A URL with its password (if any) replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]+):[^@/]*@/i, '$1:***@');
}
