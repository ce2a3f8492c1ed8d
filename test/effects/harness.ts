// A ledger over an event store with the simulated hypervisor, for the effects tests: commands are written as
// clients write them, without `meta` (a counter id, actor `test` and a clock that ticks one second per command).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'vitest';

import type { CommandInput } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import type { DomainState } from '../../machines/model';
import type { HypervisorDriver } from '../../services/drivers/types';
import { createSimulatedDriver, runsOnHost, type SimulatedDriver, type SimulatedDriverOptions } from '../../services/drivers/simulated';
import { foldDomainEvent, type StreamFold } from '../../projections/domainList';
import { createMemoryEventStore, openSqliteEventStore, type EventStore, type RecordedEvent } from '../../services/eventstore/index';
import { createLedger, reportFromHypervisor, type LedgerOptions } from '../../services/ledger';
import type { CommandOutcome, Ledger } from '../../services/ledger-types';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type Spec = DistributiveOmit<CommandInput, 'meta'> & { meta?: Partial<CommandInput['meta']> };

export interface Rig {
  store: EventStore;
  driver: SimulatedDriver;
  ledger: Ledger;
  /** Execute a command (meta filled in). */
  run(spec: Spec): Promise<CommandOutcome>;
  /** Execute a command that must be accepted. */
  ok(spec: Spec): Promise<CommandOutcome>;
  /**
   * Report what the hypervisor has pending (blockjob-ready) through the ledger: the ledger does this itself after
   * each accepted command, so this finds something only with `ledger: { hypervisorReports: false }`.
   */
  flush(): Promise<number>;
  state(name: string, host?: string): Promise<DomainState>;
  /** Every fact of the domain stream, in order. */
  facts(name: string, host?: string): Promise<Fact[]>;
  close(): Promise<void>;
}

export interface RigOptions extends Omit<SimulatedDriverOptions, 'store'> {
  /** `sqlite`: a real SQLite file in a temporary folder (removed on close). Default: the memory store. */
  store?: 'memory' | 'sqlite' | EventStore;
  /** Put a test double around the driver the ledger uses (the rig's `driver` stays the simulated one). */
  wrapDriver?: (driver: SimulatedDriver, store: EventStore) => HypervisorDriver;
  /** Ledger options (e.g. `hypervisorReports: false`, to see a job before the hypervisor reports it ready). */
  ledger?: Omit<LedgerOptions, 'driver'>;
}

let rigCounter = 0;

export async function rig(options: RigOptions = {}): Promise<Rig> {
  let dir: string | undefined;
  let store: EventStore;
  if (options.store !== undefined && typeof options.store === 'object') {
    store = options.store;
  } else if (options.store === 'sqlite') {
    dir = mkdtempSync(join(tmpdir(), 'vmledger-effects-'));
    store = openSqliteEventStore(join(dir, 'ledger.sqlite'));
  } else {
    store = createMemoryEventStore();
  }
  const driver = createSimulatedDriver({ store, world: options.world, faults: options.faults });
  const ledger = createLedger(store, { ...options.ledger, driver: options.wrapDriver ? options.wrapDriver(driver, store) : driver });
  const prefix = `r${++rigCounter}`;
  let n = 0;
  const run = (spec: Spec) => {
    n++;
    const meta = { commandId: `${prefix}-c${n}`, actor: 'test', time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(), ...spec.meta };
    return ledger.execute({ ...spec, meta });
  };
  const r: Rig = {
    store,
    driver,
    ledger,
    run,
    async ok(spec) {
      const o = await run(spec);
      expect(o.ok, `${spec.verb} refused: ${o.rule} ${o.message}`).toBe(true);
      return o;
    },
    flush: () => driver.flushGuestEvents((c) => reportFromHypervisor(ledger, c)),
    async state(name, host = 'local') {
      return (await ledger.loadDomain(host, name)).state;
    },
    async facts(name, host = 'local') {
      const out: Fact[] = [];
      for await (const e of store.readStream(`domain-${host}-${name}`)) out.push(factOf(e));
      return out;
    },
    async close() {
      await ledger.close();
      if (typeof options.store === 'object') return; // the caller's store
      await store.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return r;
}

export function factOf(e: RecordedEvent): Fact {
  return { ...(e.data as object), type: e.type } as Fact;
}

/** The facts an outcome appended. */
export function factsOf(o: CommandOutcome): Fact[] {
  return o.events.map(factOf);
}

export function disk(target: string, source: string) {
  return { target, source, device: 'disk' as const, readonly: false, shareable: false, storage: 'managed' as const };
}

/**
 * Folds the whole global log, fact by fact, and returns every point at which a domain (by UUID) ran on two hosts
 * at once (runsOnHost: active and not a migration source past Perform). Empty when the invariant held throughout.
 */
export async function twoHostViolations(store: EventStore): Promise<string[]> {
  const streams: Record<string, StreamFold> = {};
  const out: string[] = [];
  for await (const e of store.readAll(0)) {
    if (foldDomainEvent(streams, e) === undefined) continue;
    const hostsByUuid = new Map<string, Set<string>>();
    for (const { state } of Object.values(streams)) {
      if (!state.uuid || !runsOnHost(state)) continue;
      const hosts = hostsByUuid.get(state.uuid) ?? new Set<string>();
      hosts.add(state.host);
      hostsByUuid.set(state.uuid, hosts);
    }
    for (const [uuid, hosts] of hostsByUuid) if (hosts.size > 1) out.push(`position ${e.position} (${e.type}): ${uuid} runs on ${[...hosts].join(', ')}`);
  }
  return out;
}
