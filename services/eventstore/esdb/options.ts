// Options of the EventStoreDB store, the part of the client it uses, and the stream names of one ledger.

import type { EventStoreDBClient } from '@eventstore/db-client';

export const DEFAULT_NAMESPACE = 'vmledger';

/** The part of the client this store uses (so tests can hand in a double of it). */
export type EsdbClient = Pick<
  EventStoreDBClient,
  'appendToStream' | 'readStream' | 'readAll' | 'subscribeToAll' | 'setStreamMetadata' | 'dispose'
>;

export interface EsdbEventStoreOptions {
  /** An open client to use instead of a connection string; the store disposes it on close only if `ownClient`. */
  client?: EsdbClient;
  ownClient?: boolean;
  /** How long a command reservation protects an appender before another may take it over. Default 30 s. */
  leaseMs?: number;
  /** How long an appender waits to see its own events in $all before failing. Default 10 s. */
  visibilityTimeoutMs?: number;
  /**
   * First part of every stream name: facts in `<namespace>-<stream>`, bookkeeping in `<namespace>.…`. Default
   * `vmledger`. Lets several ledgers (or test runs) share one server; must not contain '-' or '.'.
   */
  namespace?: string;
}

/** Stream names of one ledger on the server. */
export class Names {
  readonly factPrefix: string;
  readonly positionsPrefix: string;
  readonly checkpoints: string;
  readonly commandsPrefix: string;
  readonly docsPrefix: string;
  constructor(namespace: string) {
    if (!/^[A-Za-z0-9_]+$/.test(namespace)) {
      throw new TypeError(`namespace must be letters, digits or '_' (no '-' or '.'), got '${namespace}'`);
    }
    this.factPrefix = `${namespace}-`;
    this.positionsPrefix = `${namespace}.positions-`;
    this.checkpoints = `${namespace}.checkpoints`;
    this.commandsPrefix = `${namespace}.commands-`;
    this.docsPrefix = `${namespace}.docs-`;
  }
  fact(stream: string): string {
    return `${this.factPrefix}${stream}`;
  }
  command(commandId: string): string {
    return `${this.commandsPrefix}${commandId}`;
  }
  positions(stream: string): string {
    return `${this.positionsPrefix}${stream}`;
  }
  doc(collection: string, key: string): string {
    return `${this.docsPrefix}${encodeURIComponent(collection)}/${encodeURIComponent(key)}`;
  }
}

// ------------------------------------------------------------------------------------------------------------
