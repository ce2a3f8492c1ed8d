// Opening an event store from a store spec, as written on the command line or in configuration:
//   memory              in-process, nothing persists
//   sqlite:PATH         embedded SQLite file (relative paths resolve against the working directory)
// Other backends (jetstream://HOST:PORT, esdb://HOST:PORT) live in their own modules, imported on first use
// of their scheme, so nobody pays for a client library they do not use.

import { resolve } from 'node:path';

import { createMemoryEventStore } from './memory';
import { openSqliteEventStore } from './sqlite';
import type { EventStore } from './types';

export * from './types';
export { createMemoryEventStore } from './memory';
export { openSqliteEventStore, type GroupCommitStats, type SqliteEventStore, type SqliteEventStoreOptions } from './sqlite';

/** File name used when the configuration names no store: `sqlite:vmledger.sqlite` in the working directory. */
export const DEFAULT_STORE_FILE = 'vmledger.sqlite';

/** How a store is opened: 'read' (audit, replay) opens a damaged store read-only instead of refusing it. */
export interface OpenStoreOptions {
  purpose?: 'write' | 'read';
}

/** Opens a store from a spec whose scheme the opener was registered for; receives the whole spec. */
export type StoreOpener = (spec: string, options?: OpenStoreOptions) => EventStore | Promise<EventStore>;

interface SchemeEntry {
  opener: StoreOpener;
  /** How the spec is written, for error messages: e.g. `jetstream://HOST:PORT`. */
  usage: string;
}

const schemes = new Map<string, SchemeEntry>();

/** Schemes that other modules provide; named here only so an error can say where they come from. */
const EXTERNAL_SCHEMES: Record<string, { usage: string; load: () => Promise<unknown> }> = {
  jetstream: { usage: 'jetstream://HOST:PORT', load: () => import('./jetstream') },
  esdb: { usage: 'esdb://HOST:PORT', load: () => import('./esdb') },
  'esdb+discover': { usage: 'esdb+discover://HOST:PORT', load: () => import('./esdb') },
};

/**
 * Lets a backend module serve specs of the form `<scheme>:...` (for example `jetstream://127.0.0.1:4222`).
 * Registering a scheme twice replaces the opener (tests use this to substitute a backend).
 */
export function registerStoreScheme(scheme: string, opener: StoreOpener, usage = `${scheme}://HOST:PORT`): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) {
    throw new TypeError(`store scheme must be lower-case letters, digits, '+', '.' or '-', got '${scheme}'`);
  }
  schemes.set(scheme, { opener, usage });
}

registerStoreScheme('memory', (spec) => {
  if (spec !== 'memory') throw new Error(`bad store spec '${spec}': the in-memory store is written just 'memory'`);
  return createMemoryEventStore();
}, 'memory');

registerStoreScheme('sqlite', (spec, options) => {
  const path = spec.slice('sqlite:'.length);
  if (path.trim() === '') {
    throw new Error(`bad store spec '${spec}': the path is missing; write sqlite:PATH, e.g. sqlite:${DEFAULT_STORE_FILE}`);
  }
  if (path.startsWith('//')) {
    throw new Error(
      `bad store spec '${spec}': write sqlite:PATH with a plain path, e.g. sqlite:./${DEFAULT_STORE_FILE} ` +
        `or sqlite:/var/lib/vmledger/${DEFAULT_STORE_FILE} (no '//')`,
    );
  }
  return openSqliteEventStore(resolve(path), options?.purpose === 'read' ? { whenDamaged: 'read-only' } : {});
}, 'sqlite:PATH');

/** Opens the store a spec names, or throws an error that says which specs exist. */
export async function openEventStore(spec: string, options: OpenStoreOptions = {}): Promise<EventStore> {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new Error(`no store spec given; ${describeSchemes()}`);
  }
  const colon = spec.indexOf(':');
  const scheme = colon === -1 ? spec : spec.slice(0, colon);
  const entry = schemes.get(scheme);
  if (entry) return entry.opener(spec, options);

  // Backends with their own client libraries are loaded on first use; importing one registers its scheme.
  const external = EXTERNAL_SCHEMES[scheme];
  if (external) {
    await external.load();
    const loaded = schemes.get(scheme);
    if (loaded) return loaded.opener(spec, options);
    throw new Error(`store spec '${spec}': the '${scheme}' backend (${external.usage}) did not register itself; ${describeSchemes()}`);
  }
  const hint = colon === -1 ? ` (for a SQLite file write sqlite:${spec})` : '';
  throw new Error(`unknown store spec '${spec}'${hint}; ${describeSchemes()}`);
}

function describeSchemes(): string {
  const available = [...schemes.values()].map((entry) => entry.usage);
  const elsewhere = Object.entries(EXTERNAL_SCHEMES)
    .filter(([scheme]) => !schemes.has(scheme))
    .map(([, entry]) => entry.usage);
  const tail = elsewhere.length > 0 ? `; ${elsewhere.join(' and ')} are served by their own modules` : '';
  return `valid specs: ${available.join(', ')}${tail}`;
}
