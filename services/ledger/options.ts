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
   * Which outcomes get a doc in 'outcomes'. 'all' (default): every outcome, so a retry is one key lookup.
   * 'unrecorded': only outcomes no fact records (migrations); the others are rebuilt from the facts their command
   * id appended (the domain's facts, or the `CommandAccepted` / `CommandRefused` audit record). Same answers;
   * both write one durable transaction per command on SQLite (the doc rides with the facts), 'unrecorded' a
   * smaller one (see bench/ledger.ts).
   */
  outcomeDocs?: 'all' | 'unrecorded';
  /** Exactly-once effects (services/intents.ts): how long to wait for another process's job, its lease, hooks. */
  intents?: IntentOptions;
}

/** Where the ledger reports what it ignored (LedgerOptions.onDiscard). */
export type Discard = (what: string, key: string, reason: string) => void;
