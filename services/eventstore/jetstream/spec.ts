// Store specs `jetstream://[USER:PASS@]HOST:PORT[,HOST:PORT...][?…]` → options of openJetStreamEventStore.

import type { EventStore } from '../types';
import { openJetStreamEventStore } from './open';
import type { JetStreamEventStoreOptions } from './options';

/**
 * Options from a spec `jetstream://[USER:PASS@]HOST:PORT[,HOST:PORT...][?stream=NAME&prefix=SUBJECTS&replicas=N
 * &timeout=MS&retry=MS]`: `replicas` of the stream and buckets when created (1-5), `timeout` of each JetStream
 * request, `retry` how long an operation keeps retrying before it fails with StoreUnavailableError.
 */
export function parseJetStreamSpec(spec: string): JetStreamEventStoreOptions {
  const match = /^jetstream:\/\/(?:([^@/?]*)@)?([^/?]+)\/?(?:\?(.*))?$/.exec(spec);
  if (!match) {
    throw new Error(`bad store spec '${spec}': write jetstream://HOST:PORT, e.g. jetstream://127.0.0.1:4222`);
  }
  const [, userinfo, hosts, query] = match;
  const servers = hosts!.split(',').map((host) => {
    if (!/^[^:\s]+:\d+$/.test(host) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(host)) {
      throw new Error(`bad store spec '${spec}': '${host}' is not HOST:PORT`);
    }
    return `nats://${host}`;
  });
  const options: JetStreamEventStoreOptions = { servers };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    options.connectionOptions =
      colon === -1
        ? { token: decodeURIComponent(userinfo) }
        : { user: decodeURIComponent(userinfo.slice(0, colon)), pass: decodeURIComponent(userinfo.slice(colon + 1)) };
  }
  const params = new URLSearchParams(query ?? '');
  for (const [name, value] of params) {
    if (name === 'stream') options.streamName = value;
    else if (name === 'prefix') options.subjectPrefix = value;
    else if (name === 'replicas') options.replicas = specInteger(spec, name, value, 1, 5);
    else if (name === 'timeout') options.requestTimeoutMs = specInteger(spec, name, value, 100, 600_000);
    else if (name === 'retry') options.retryBudgetMs = specInteger(spec, name, value, 0, 3_600_000);
    else {
      throw new Error(`bad store spec '${spec}': unknown parameter '${name}' (known: stream, prefix, replicas, timeout, retry)`);
    }
  }
  return options;
}

export function specInteger(spec: string, name: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new Error(`bad store spec '${spec}': ${name} must be an integer from ${min} to ${max}, got '${value}'`);
  }
  return n;
}

/** Opens the store of a spec `jetstream://HOST:PORT[?…]` (registry.ts). */
export function openJetStreamSpec(spec: string): Promise<EventStore> {
  return openJetStreamEventStore(parseJetStreamSpec(spec));
}
