// What a ledger can be opened with (createLedger / openLedger), and the defaults.
import type { HostView } from '../../machines/guards';
import type { HypervisorDriver } from '../drivers/types';
import type { IntentOptions } from '../intents';
import type { MigrationOptions } from '../migration';

export const DEFAULT_CHECKPOINT_EVERY = 100;
export const DEFAULT_CACHE_SIZE = 1000;

export interface LedgerOptions {
  /** Performs accepted decisions; default: `bookkeepingDriver` (records the decided facts). */
  driver?: HypervisorDriver;
  /** Save a state checkpoint after this many facts on a stream (default 100). */
  checkpointEvery?: number;
  /** Replaces the ledger's own host index for decisions (tests, what-if). */
  hostView?: HostView;
  /** Domain states kept in memory (LRU), default 1000. */
  cacheSize?: number;
  /** Fault injection and hooks for the migration saga (services/migration.ts). */
  migration?: MigrationOptions;
  /** Keep a store.subscribe() subscription so the host index follows other processes between commands. */
  follow?: boolean;
  /**
   * Run what the driver reports on its own (HypervisorDriver.pendingReports, e.g. a mirror that became ready) as
   * commands after each accepted command (default true). False: the caller reports them (flushGuestEvents).
   */
  hypervisorReports?: boolean;
  /**
   * Called when the ledger ignored a disposable doc (a bad checkpoint, index or outcome), or a hypervisor report
   * that could not be run (what = 'report'; it is reported again after the next command). For logs and tests.
   */
  onDiscard?: (what: string, key: string, reason: string) => void;
  /**
   * Which outcomes get a doc in 'outcomes'. 'unrecorded' (default): only outcomes that no record of their command
   * id tells whole (a migration's); the others are rebuilt, when a retry asks, from what their command id
   * appended (the domain's facts, or the `CommandAccepted` / `CommandRefused` audit record). 'all': every
   * outcome, so that a retry is one key lookup, at the price of a doc per command: on SQLite a bigger
   * transaction (about 8 % of the service's CPU on the NATS bench), on JetStream and EventStoreDB a second write.
   * Same answers either way.
   */
  outcomeDocs?: 'all' | 'unrecorded';
  /** Exactly-once effects (services/intents.ts): how long to wait for another process's job, its lease, hooks. */
  intents?: IntentOptions;
}

/** Where the ledger reports what it ignored (LedgerOptions.onDiscard). */
export type Discard = (what: string, key: string, reason: string) => void;
