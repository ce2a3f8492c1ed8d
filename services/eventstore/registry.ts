// The one table of store specs: which scheme (`memory`, `sqlite:PATH`, `jetstream://…`, `esdb://…`) is opened by
// which module. Each backend parses its own spec (memory.ts, sqlite.ts, jetstream/spec.ts, esdb/spec.ts); this
// file only finds the backend. The networked ones are imported on first use of their scheme, so nobody pays for
// a client library they do not use, and no backend imports this file (no import circle).

import type { EventStore, OpenStoreOptions, StoreOpener } from './types';

interface SchemeEntry {
  /** How the spec is written, for error messages: e.g. `jetstream://HOST:PORT`. */
  usage: string;
  load: () => Promise<StoreOpener>;
}

const BUILT_IN: Record<string, SchemeEntry> = {
  memory: { usage: 'memory', load: async () => (await import('./memory')).openMemorySpec },
  sqlite: { usage: 'sqlite:PATH', load: async () => (await import('./sqlite')).openSqliteSpec },
  jetstream: { usage: 'jetstream://HOST:PORT', load: async () => (await import('./jetstream')).openJetStreamSpec },
  esdb: { usage: 'esdb://HOST:PORT', load: async () => (await import('./esdb')).openEsdbSpec },
  'esdb+discover': { usage: 'esdb+discover://HOST:PORT', load: async () => (await import('./esdb')).openEsdbSpec },
};

/** Schemes registered at run time; they come before the built-in ones (tests use this to substitute a backend). */
const registered = new Map<string, { opener: StoreOpener; usage: string }>();

/**
 * Lets a backend module serve specs of the form `<scheme>:...` (for example `jetstream://127.0.0.1:4222`).
 * Registering a scheme twice replaces the opener, and a registered scheme replaces a built-in one.
 */
export function registerStoreScheme(scheme: string, opener: StoreOpener, usage = `${scheme}://HOST:PORT`): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) {
    throw new TypeError(`store scheme must be lower-case letters, digits, '+', '.' or '-', got '${scheme}'`);
  }
  registered.set(scheme, { opener, usage });
}

/** Opens the store a spec names, or throws an error that says which specs exist. */
export async function openEventStore(spec: string, options: OpenStoreOptions = {}): Promise<EventStore> {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new Error(`no store spec given; ${describeSchemes()}`);
  }
  const colon = spec.indexOf(':');
  const scheme = colon === -1 ? spec : spec.slice(0, colon);
  const entry = registered.get(scheme);
  if (entry) return entry.opener(spec, options);
  const builtIn = Object.hasOwn(BUILT_IN, scheme) ? BUILT_IN[scheme] : undefined;
  if (builtIn) return (await builtIn.load())(spec, options);
  const hint = colon === -1 ? ` (for a SQLite file write sqlite:${spec})` : '';
  throw new Error(`unknown store spec '${spec}'${hint}; ${describeSchemes()}`);
}

function describeSchemes(): string {
  const usages = new Map<string, string>();
  for (const [scheme, entry] of Object.entries(BUILT_IN)) usages.set(scheme, entry.usage);
  for (const [scheme, entry] of registered) usages.set(scheme, entry.usage);
  return `valid specs: ${[...usages.values()].join(', ')}`;
}
