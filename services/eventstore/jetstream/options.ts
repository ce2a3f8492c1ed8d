// Options of the JetStream store, their defaults, and the checks made before anything is opened.

import type { NatsConnection } from '@nats-io/nats-core';
import type { NodeConnectionOptions } from '@nats-io/transport-node';

import { subjectsCollide } from '../../nats/protocol';

/** Format marker kept in the stream's first message; bump the suffix when the layout changes incompatibly. */
export const JETSTREAM_STORE_FORMAT = 'vmledger-jetstream/1';
export const DEFAULT_STREAM_NAME = 'VMLEDGER';
export const DEFAULT_SUBJECT_PREFIX = 'vmledger.log';
export const DEFAULT_COMMANDS_BUCKET = 'vmledger-commands';
export const DEFAULT_DOCS_BUCKET = 'vmledger-docs';

/**
 * Subjects the command service (services/nats) answers or publishes on, plus NATS's service discovery. The log
 * stream must capture none of them: a stream on a request subject swallows the request.
 */
export const COMMAND_SERVICE_SUBJECTS = ['vmledger.cmd.>', 'vmledger.query.>', 'vmledger.schema', 'vmledger.evt.>', '$SRV.>'];

export interface JetStreamEventStoreOptions {
  /** Server URL(s), e.g. `nats://127.0.0.1:4222`. Either this or `nc`. */
  servers?: string | string[];
  /** An open connection to use; the store does not close it. */
  nc?: NatsConnection;
  /** Extra connection options when the store connects itself (user, pass, token, tls...). */
  connectionOptions?: Partial<NodeConnectionOptions>;
  streamName?: string;
  subjectPrefix?: string;
  commandsBucket?: string;
  docsBucket?: string;
  /** Duplicate window of the stream when this store creates it. Default 120 s (JetStream's default). */
  duplicateWindowMs?: number;
  /** Replicas of the stream and buckets when this store creates them. Default 1. */
  replicas?: number;
  /** Timeout of each JetStream request. Default 5 s. */
  requestTimeoutMs?: number;
  /**
   * How long an operation keeps retrying transport failures (timeouts, no responders while the server
   * restarts). Capped at half the stream's duplicate window, so a re-published append is always deduplicated.
   * Default 30 s.
   */
  retryBudgetMs?: number;
  /** Test hooks that simulate a crash at the two points of the idempotency protocol. Not for production. */
  testHooks?: JetStreamTestHooks;
}

export interface JetStreamTestHooks {
  /** Called after the command id was reserved, before the facts are published. Throwing simulates a crash. */
  afterReserve?: (commandId: string) => void | Promise<void>;
  /** Called after the facts were stored, before the command record is completed. Throwing simulates a crash. */
  afterPublish?: (commandId: string) => void | Promise<void>;
  /** Called with each PubAck; returning true drops it as if the connection had failed (the message is stored). */
  loseAck?: () => boolean;
}

/** JetStream keeps 1 to 5 copies of a stream; a cluster needs a majority of them to accept a write. */
export function assertReplicas(replicas: number | undefined): void {
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 5)) {
    throw new TypeError(`replicas must be an integer from 1 to 5 (3 on a three-node cluster), got ${String(replicas)}`);
  }
}

export function assertSubjectPrefix(prefix: string): void {
  const tokens = prefix.split('.');
  if (prefix === '' || tokens.some((t) => t === '' || /[\s*>]/.test(t)) || prefix.startsWith('$')) {
    throw new TypeError(
      `subjectPrefix must be dot-separated literal tokens without wildcards, spaces or a leading '$', got '${prefix}'`,
    );
  }
  const captured = `${prefix}.>`;
  const clash = COMMAND_SERVICE_SUBJECTS.find((reserved) => subjectsCollide(captured, reserved));
  if (clash) {
    throw new TypeError(
      `subjectPrefix '${prefix}' would make the log stream capture '${captured}', which overlaps the command ` +
        `service's '${clash}' (a stream on a request subject swallows the requests); use e.g. '${DEFAULT_SUBJECT_PREFIX}'`,
    );
  }
}
