// The host index: which domains exist on which host, and under which UUID (the HostView of DEF-NAME), kept
// current from the log. One index serves the ledger (decisions and `list`/`query.domains` pages, saved as the
// 'indexes' doc, services/hostIndexDoc.ts) and replay (the host as each recorded decision saw it).
import { evolve } from '../machines/evolve';
import type { HostView } from '../machines/guards';
import { domainStream, initialDomainState, type DomainState } from '../machines/model';
import { hostNeedsEncoding } from '../machines/names';
import { compareSummaries } from './domainQuery';
import type { RecordedEvent } from './eventstore/types';
import { factFromEvent } from './factHash';
import { indexDoc, type IndexDoc, type IndexEntry } from './hostIndexDoc';

function indexKey(host: string, uuid: string): string {
  return `${host}\u0000${uuid}`;
}

/**
 * Thrown when the store holds streams named the way vmledger named them before stream names were made unambiguous
 * (`domain-<host>-<name>` with a raw host): only hosts containing '-' or '%' were named differently then.
 */
export class OldStreamLayoutError extends Error {
  constructor(stream: string, host: string, name: string) {
    super(
      `the store holds stream '${stream}' for domain '${name}' on host '${host}', named as before hosts containing ` +
        `'-' or '%' were encoded (now '${domainStream(host, name)}'): under the old names host 'a' with domain 'b-c' ` +
        `and host 'a-b' with domain 'c' were one stream, so this store is not written to; ` +
        `read it with 'vmledger audit' and 'vmledger replay', and define that host's domains again in a new store`,
    );
    this.name = 'OldStreamLayoutError';
  }
}

/** Refuses a stream named by the old layout (see OldStreamLayoutError); other mismatches are not the index's to judge. */
function assertCurrentLayout(stream: string, host: string, name: string): void {
  if (hostNeedsEncoding(host) && stream === `domain-${host}-${name}` && stream !== domainStream(host, name)) {
    throw new OldStreamLayoutError(stream, host, name);
  }
}

function entryOf(state: DomainState, revision: number): IndexEntry {
  return {
    host: state.host,
    name: state.name,
    life: state.life,
    uuid: state.uuid,
    active: state.active,
    paused: state.paused,
    persistent: state.persistent,
    hasManagedSave: state.hasManagedSave,
    snapshots: Object.keys(state.snapshots),
    revision,
  };
}

/** Whether two entries hold a UUID for the same domain (what DEF-NAME looks up): then the UUID map stays as it is. */
function sameIdentity(a: IndexEntry, b: IndexEntry): boolean {
  return a.life === b.life && a.uuid === b.uuid && a.name === b.name && a.host === b.host;
}

/**
 * The part of a state an index entry keeps, as a DomainState `evolve` can take: snapshot facts add and remove
 * names (their records are only copied), so placeholder records keep the names exact.
 */
function stateOfEntry(entry: IndexEntry): DomainState {
  const snapshots = Object.fromEntries(entry.snapshots.map((name) => [name, { name } as DomainState['snapshots'][string]]));
  const { host, name, life, uuid, active, paused, persistent, hasManagedSave } = entry;
  return { ...initialDomainState(host, name), life, uuid, active, paused, persistent, hasManagedSave, snapshots };
}

export class HostIndex implements HostView {
  private readonly entries = new Map<string, IndexEntry>();
  /** Built on first use (only decisions need it; a `list` does not), then kept current. */
  private byUuidMap: Map<string, string> | undefined;
  /** The streams in host/name order, for paged queries; dropped when a stream is added. */
  private sortedStreams: string[] | undefined;
  /** Their entries, for queries between changes (a page of 1,000 should not copy 100,000 references). */
  private sortedEntries: IndexEntry[] | undefined;
  /** Highest global position read from the log (local appends update entries, not this). */
  position = 0;

  domainNameByUuid(host: string, uuid: string): string | undefined {
    if (!this.byUuidMap) {
      // DEF-NAME keeps a UUID to one existing domain per host, so the order entries are met in does not matter.
      this.byUuidMap = new Map();
      for (const e of this.entries.values()) if (e.life === 'exists' && e.uuid) this.byUuidMap.set(indexKey(e.host, e.uuid), e.name);
    }
    return this.byUuidMap.get(indexKey(host, uuid));
  }

  existing(host?: string): IndexEntry[] {
    return [...this.entries.values()].filter((e) => e.life === 'exists' && (host === undefined || e.host === host));
  }

  /** Every entry (gone ones too) in host/name order: a new array after a change, never changed in place. */
  sorted(): IndexEntry[] {
    this.sortedEntries ??= this.sortedKeys().map((stream) => this.entries.get(stream)!);
    return this.sortedEntries;
  }

  private sortedKeys(): string[] {
    this.sortedStreams ??= [...this.entries.keys()].sort((a, b) => compareSummaries(this.entries.get(a)!, this.entries.get(b)!));
    return this.sortedStreams;
  }

  set(stream: string, entry: IndexEntry): void {
    const old = this.entries.get(stream);
    if (!old) this.sortedStreams = undefined;
    this.sortedEntries = undefined;
    this.entries.set(stream, entry);
    const byUuid = this.byUuidMap;
    if (!byUuid || (old && sameIdentity(old, entry))) return;
    if (old?.life === 'exists' && old.uuid && byUuid.get(indexKey(old.host, old.uuid)) === old.name) byUuid.delete(indexKey(old.host, old.uuid));
    if (entry.life === 'exists' && entry.uuid) byUuid.set(indexKey(entry.host, entry.uuid), entry.name);
  }

  /** After a local append: the state we just computed is the stream's state at `revision`. */
  applyState(stream: string, state: DomainState, revision: number): void {
    const old = this.entries.get(stream);
    if (old && old.revision >= revision) return;
    this.set(stream, entryOf(state, revision));
  }

  /**
   * For a reader that folds the log itself (replay, what-if): the stream's state as it has folded it, taken as it
   * is, without applyState's revision check: a tampered log may hold a stream's revisions out of order, and the
   * host each recorded decision saw is the one the pass has read so far.
   */
  trackState(stream: string, state: DomainState, revision: number): void {
    this.set(stream, entryOf(state, revision));
  }

  /** A fact read from the global log (ours or another process's); facts already folded are skipped by revision. */
  applyRecorded(e: RecordedEvent): void {
    if (e.position > this.position) this.position = e.position;
    if (!e.stream.startsWith('domain-')) return;
    const old = this.entries.get(e.stream);
    if (old && e.revision <= old.revision) return;
    const host = typeof e.metadata.host === 'string' ? e.metadata.host : old?.host;
    const name = typeof e.metadata.domain === 'string' ? e.metadata.domain : old?.name;
    if (host === undefined || name === undefined) return;
    assertCurrentLayout(e.stream, host, name);
    let fact;
    try {
      fact = factFromEvent(e);
    } catch {
      return; // not a machine fact: nothing the index can learn from it
    }
    const base: DomainState = old ? stateOfEntry(old) : initialDomainState(host, name);
    this.set(e.stream, entryOf(evolve(base, fact), e.revision));
  }

  /** Saved in host/name order, so the next start's sort finds it sorted. */
  toDoc(): IndexDoc {
    return indexDoc(this.position, this.sortedKeys().map((stream) => [stream, this.entries.get(stream)!] as [string, IndexEntry]));
  }

  /** Into an empty index. A doc saved in host/name order (as toDoc saves it) is taken as the order, unsorted. */
  load(doc: { position: number; entries: [string, IndexEntry][] }): void {
    let sorted = true;
    for (let i = 0; i < doc.entries.length; i++) {
      const [stream, entry] = doc.entries[i]!;
      assertCurrentLayout(stream, entry.host, entry.name);
      this.entries.set(stream, entry);
      if (i > 0 && compareSummaries(doc.entries[i - 1]![1], entry) >= 0) sorted = false;
    }
    this.byUuidMap = undefined;
    this.sortedEntries = undefined;
    this.sortedStreams = sorted && this.entries.size === doc.entries.length ? doc.entries.map(([stream]) => stream) : undefined;
    this.position = doc.position;
  }
}
