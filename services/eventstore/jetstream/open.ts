// Opening the JetStream store: connect (or use the caller's connection), then create or check the stream, its
// format marker and the two KV buckets, each step retried while the server is busy or electing a leader.

import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { headers as makeHeaders, nanos } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

import { StoreCorruptError, type EventStore } from '../types';
import {
  JS_STREAM_NOT_FOUND,
  describeTransient,
  isJetStreamNoResponders,
  isTransient,
  isWrongLastSequence,
  jsErrorCode,
  withTransientRetries,
} from './errors';
import { JetStreamLog } from './log';
import { HEADER_COUNT, HEADER_POSITION, HEADER_PREVIOUS, HEADER_REVISION, decoder } from './messages';
import {
  DEFAULT_COMMANDS_BUCKET,
  DEFAULT_DOCS_BUCKET,
  DEFAULT_STREAM_NAME,
  DEFAULT_SUBJECT_PREFIX,
  JETSTREAM_STORE_FORMAT,
  assertReplicas,
  assertSubjectPrefix,
  type JetStreamEventStoreOptions,
} from './options';
import { jetStreamEventStore } from './store';

export async function openJetStreamEventStore(options: JetStreamEventStoreOptions): Promise<EventStore> {
  const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  assertSubjectPrefix(prefix);
  if (!/^[A-Za-z0-9_-]+$/.test(streamName)) {
    throw new TypeError(`streamName must be letters, digits, '-' or '_', got '${streamName}'`);
  }
  const timeout = options.requestTimeoutMs ?? 5_000;
  assertReplicas(options.replicas);

  let nc = options.nc;
  const ownConnection = nc === undefined;
  if (!nc) {
    if (!options.servers) throw new TypeError('openJetStreamEventStore needs `servers` or an open connection `nc`');
    try {
      nc = await connect({
        name: 'vmledger-eventstore',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        ...options.connectionOptions,
        servers: options.servers,
      });
    } catch (error) {
      throw new Error(`cannot connect to NATS at ${String(options.servers)}: ${(error as Error).message}`, { cause: error });
    }
  }
  try {
    // Each step is idempotent, so a JetStream request that timed out (a busy or restarting server) is repeated.
    const setUp = <T>(what: string, work: () => Promise<T>) =>
      withTransientRetries(
        options.retryBudgetMs ?? 30_000,
        work,
        (error) =>
          new Error(`cannot open the JetStream store '${streamName}': could not ${what}: ${describeTransient(error)}`, {
            cause: error,
          }),
      );
    const jsm = await setUp('reach the JetStream API', () =>
      jetstreamManager(nc!, { timeout }).catch((error: unknown) => {
        // No responders on $JS.API (nats.js: JetStreamNotEnabled caused by a no-responders RequestError): the
        // server runs without JetStream. Not worth retrying. A 503 that JetStream answered itself ("temporarily
        // unavailable": a cluster without a meta leader yet) is a JetStreamApiError, and is retried.
        if (!isJetStreamNoResponders(error)) throw error;
        throw new Error(
          `NATS at ${nc!.getServer()} has no JetStream (start nats-server with -js): ${(error as Error).message}`,
          { cause: error },
        );
      }),
    );
    const js = jetstream(nc, { timeout });
    const kvm = new Kvm(js);
    const info = await setUp('read or create the stream', () => ensureStream(jsm, streamName, prefix, options));
    await setUp('check the format marker', () => ensureFormatMarker(js, jsm, streamName, prefix));
    // Buckets get the log's replicas. On a cluster their reads go to the leader (no direct get from a follower,
    // which may lag): an idempotency record read stale could let a retry look new.
    const replicas = options.replicas ?? info.config.num_replicas ?? 1;
    const bucketOptions = replicas > 1 ? { history: 1, replicas, allow_direct: false } : { history: 1, replicas };
    const bucket = (name: string) => setUp(`open the bucket '${name}'`, () => kvm.create(name, bucketOptions));
    const commands = await bucket(options.commandsBucket ?? DEFAULT_COMMANDS_BUCKET);
    const docs = await bucket(options.docsBucket ?? DEFAULT_DOCS_BUCKET);
    const duplicateWindowMs = Math.floor((info.config.duplicate_window ?? nanos(120_000)) / 1_000_000);
    const retryBudgetMs = Math.max(0, Math.min(options.retryBudgetMs ?? 30_000, duplicateWindowMs / 2));
    return jetStreamEventStore(
      new JetStreamLog(nc, ownConnection, js, jsm, commands, docs, {
        streamName,
        prefix,
        retryBudgetMs,
        hooks: options.testHooks ?? {},
      }),
    );
  } catch (error) {
    if (ownConnection) await nc.close().catch(() => {});
    throw error;
  }
}

export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  prefix: string,
  options: JetStreamEventStoreOptions,
): Promise<StreamInfo> {
  const captured = `${prefix}.>`;
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(name);
  } catch (error) {
    if (jsErrorCode(error) !== JS_STREAM_NOT_FOUND) throw error;
  }
  if (!info) {
    const config: Partial<StreamConfig> & { name: string } = {
      name,
      subjects: [captured],
      description: `vmledger event log (${JETSTREAM_STORE_FORMAT}); one subject per domain stream`,
      duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
      num_replicas: options.replicas ?? 1,
      allow_direct: true,
      // Positions are derived from the message order: nothing may be removed from the middle of the log.
      deny_delete: true,
      deny_purge: true,
    };
    try {
      info = await jsm.streams.add(config);
    } catch (error) {
      // Another process created it first: use theirs (checked below). Anything else is explained.
      try {
        info = await jsm.streams.info(name);
      } catch {
        // A create that timed out (a busy server) may be asked again: setUp retries the whole step.
        if (isTransient(error)) throw error;
        throw new Error(
          `cannot create JetStream stream '${name}' on '${captured}': ${(error as Error).message} ` +
            `(another stream may already capture these subjects)`,
          { cause: error },
        );
      }
    }
  }
  const subjects = info.config.subjects ?? [];
  if (subjects.length !== 1 || subjects[0] !== captured) {
    throw new StoreCorruptError(
      `JetStream stream '${name}' is not a vmledger log: it captures ${JSON.stringify(subjects)}, not ['${captured}']; ` +
        `it was left as it is`,
    );
  }
  const has = info.config.num_replicas ?? 1;
  if (options.replicas !== undefined && options.replicas !== has) {
    // Changing replicas moves data between servers: an operator's decision, not a side effect of opening.
    throw new Error(
      `JetStream stream '${name}' has ${has} replica(s), the store spec asks for ${options.replicas}: open it without ` +
        `'replicas' (or with replicas=${has}), or change the stream first (nats stream edit ${name} --replicas ${options.replicas})`,
    );
  }
  return info;
}

export async function ensureFormatMarker(js: JetStreamClient, jsm: JetStreamManager, name: string, prefix: string): Promise<void> {
  const metaSubject = `${prefix}.meta`;
  const check = (msg: StoredMsg): void => {
    let format: unknown;
    try {
      format = (JSON.parse(decoder.decode(msg.data)) as { format?: unknown }).format;
    } catch {
      format = undefined;
    }
    if (msg.seq !== 1 || format !== JETSTREAM_STORE_FORMAT) {
      throw new StoreCorruptError(
        `JetStream stream '${name}' is not a vmledger log this version reads: its marker (message ${msg.seq} on ` +
          `'${metaSubject}') says ${JSON.stringify(format ?? null)}, expected '${JETSTREAM_STORE_FORMAT}' at sequence 1`,
      );
    }
  };
  const existing = await jsm.streams.getMessage(name, { last_by_subj: metaSubject });
  if (existing) return check(existing);
  const hdrs = makeHeaders();
  hdrs.set(HEADER_POSITION, '1');
  hdrs.set(HEADER_REVISION, '0');
  hdrs.set(HEADER_COUNT, '0');
  hdrs.set(HEADER_PREVIOUS, '0');
  try {
    // Only on an empty stream: a stream with messages but no marker is not ours.
    await js.publish(metaSubject, JSON.stringify({ format: JETSTREAM_STORE_FORMAT }), {
      headers: hdrs,
      msgID: 'vmledger-format-marker',
      expect: { lastSequence: 0, streamName: name },
    });
  } catch (error) {
    if (!isWrongLastSequence(error)) throw error;
  }
  const marker = await jsm.streams.getMessage(name, { last_by_subj: metaSubject });
  if (marker) return check(marker);
  throw new StoreCorruptError(
    `JetStream stream '${name}' has messages but no vmledger format marker on '${metaSubject}': not a vmledger log; ` +
      `it was left as it is`,
  );
}
