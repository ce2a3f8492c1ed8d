// Opening the EventStoreDB store on a connection string or an open client; `esdb://…` store specs.

import { EventStoreDBClient } from '@eventstore/db-client';

import type { EventStore } from '../types';
import { EsdbLog } from './log';
import type { EsdbEventStoreOptions } from './options';
import { loadCheckpoints } from './ordinals';
import { esdbEventStore } from './store';

/**
 * Opens the store on a connection string (`esdb://HOST:PORT?tls=false`, any @eventstore/db-client form) with
 * optional settings, or on an open client (`{ client }`).
 */
export async function openEsdbEventStore(
  connection: string | EsdbEventStoreOptions,
  settings: Omit<EsdbEventStoreOptions, 'client' | 'ownClient'> = {},
): Promise<EventStore> {
  const options: EsdbEventStoreOptions = typeof connection === 'string' ? { ...settings } : { ...settings, ...connection };
  let client = options.client;
  let label = 'EventStoreDB';
  let own = options.ownClient ?? false;
  if (typeof connection === 'string') {
    try {
      client = EventStoreDBClient.connectionString(connection);
    } catch (error) {
      throw new Error(`bad EventStoreDB connection string '${connection}': ${(error as Error).message}`, { cause: error });
    }
    label = `EventStoreDB at ${connection.replace(/\/\/[^@/]*@/, '//***@')}`;
    own = true;
  }
  if (!client) throw new TypeError('openEsdbEventStore needs a connection string or a client');
  const log = new EsdbLog(client, own, label, options);
  try {
    await loadCheckpoints(log);
  } catch (error) {
    if (own) await client.dispose().catch(() => {});
    throw new Error(`cannot use ${label}: ${(error as Error).message}`, { cause: error });
  }
  return esdbEventStore(log);
}

/** Opens the store of a spec `esdb://HOST:PORT?tls=false` or `esdb+discover://…` (registry.ts). */
export function openEsdbSpec(spec: string): Promise<EventStore> {
  return openEsdbEventStore(spec);
}
