// A hypervisor driver performs the effect of an accepted decision and reports what actually happened,
// as facts. What lives in services/drivers/:
//   types.ts          the HypervisorDriver interface (this file) and the bookkeeping driver
//   simulated/        the simulated hypervisor, with fault injection (its index.ts lists its modules)
//   faults.ts         the faults of a run: --fault flags and faults files
//   journal.ts        a driver whose effects are journalled in a file of its own (exactly-once tests, bench)
//   libvirt.ts        the libvirt driver; libvirtSettle.ts settles its open intents from what libvirt shows
//   libvirtMigration.ts  migration between two libvirt connections, as the ledger's saga meets libvirt's own
import type { Command, CommandInput } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import type { Refusal } from '../../machines/errors';
import type { DomainState } from '../../machines/model';

export interface EffectResult {
  /** The facts to record: the decided ones, or what the hypervisor really managed (e.g. a partial snapshot). */
  facts: Fact[];
  /**
   * Set when the hypervisor failed up front and nothing changed (e.g. SC-ATOMIC with --atomic): the command
   * is then refused with this error and `facts` must be empty.
   */
  refusal?: Refusal;
}

/**
 * A command's effect the ledger recorded as intended (an `EffectIntended` record, durable) before it asked the
 * driver to perform it, and whose result it has not recorded: the process stopped (a crash, kill -9) or perform
 * threw. `settle` is asked what the hypervisor really did about it.
 */
export interface EffectIntent {
  command: Command;
  /** The domain's state the effect was decided on (the state `perform` was or would have been given). */
  state: DomainState;
  /** The facts the ledger decided (what `perform` was or would have been given). */
  decided: Fact[];
  /** Stream revision of the intent record. */
  revision: number;
  /** When the intent was recorded (ISO-8601, the recording process's clock). */
  recordedAt: string;
}

/**
 * What the hypervisor did about an intent. `performed: true`: the effect happened (or the hypervisor refused it
 * up front, `result.refusal`), and `result` is what `perform` would have reported for it, read from the
 * hypervisor's actual state. `performed: false`: the effect did not happen and never will (nothing is left
 * running that could still perform it); the ledger records the command as interrupted, and a client runs it again
 * under a new command id if it still wants it.
 */
export type Settlement = { performed: true; result: EffectResult } | { performed: false };

export interface HypervisorDriver {
  /**
   * Names the hypervisor the effects land on (e.g. the libvirt URI): an open intent is settled only by a ledger
   * whose driver has the same name, since only that driver can see what happened.
   */
  readonly name: string;
  /**
   * Perform the decided facts for this command on the domain. Must not throw for an expected failure: report it
   * as facts, or as a refusal when nothing changed. When `hasEffect` says so for this command, the ledger calls
   * it at most once per command id, after the intent is durable, and never for a command whose intent is settled.
   */
  perform(state: DomainState, command: Command, decided: Fact[]): Promise<EffectResult>;
  /**
   * True when performing this command changes something outside the ledger (a real hypervisor): the ledger then
   * records the intent before `perform` and the result after it, so the effect happens at most once per command
   * id whatever happens (a lost race with another writer, a retry, a crash). Absent or false: `perform` is
   * computed from the log alone (bookkeeping, simulated) and may run again when an append is retried.
   */
  hasEffect?(command: Command, decided: readonly Fact[]): boolean;
  /**
   * Settles an intent left open (its recorder died, or its perform threw) against the hypervisor's actual state,
   * as libvirt recovers its jobs after a restart. It must not perform anything itself, and must answer from what
   * the hypervisor shows now, not from what this process remembers (it may be a new process). A libvirt driver
   * compares the intent with the domain: `domstate` and `dominfo` for lifecycle verbs (did it start, stop,
   * pause?), `snapshot-list` / `snapshot-info` for snapshot-create/-delete/-revert, `domblklist` and
   * `blockjob --info` for blockcopy/blockjob/blockpull, `list --all` for define/undefine; and reports the facts
   * that match what it finds (`performed: true`), or `performed: false` when the domain is as `intent.state`
   * left it. A job still running on the hypervisor (a block copy not yet ready) is performed: its later progress
   * comes as reports. Throwing leaves the intent open (the domain stays busy) to be settled later.
   * Required with `hasEffect` (the ledger refuses such a driver without it); the others may answer anyway.
   */
  settle?(intent: EffectIntent): Promise<Settlement>;
  /**
   * What the hypervisor has to report on its own about this domain now (e.g. `guest-event blockjob-ready` for a
   * mirror that finished its first copy), given its state after an accepted command. The ledger executes each as
   * a command right away, and again after those, until nothing new is reported. Command ids must be deterministic
   * (the same report gets the same id), so that reporting something twice is an idempotent retry; actor
   * `hypervisor`. Optional: a driver without it leaves reporting to its caller.
   */
  pendingReports?(state: DomainState): Promise<CommandInput[]>;
  /**
   * True when the hypervisor itself reports what guests do (a real libvirt: the watch of `serve --connect`,
   * `vmledger reconcile`): the ledger then refuses a client's `guest-event`, which would record a power-off or a
   * crash libvirt never reported. Absent or false (simulated, bookkeeping): guest-event is how they are told.
   */
  readonly reportsGuestEvents?: boolean;
}

/** The driver that performs nothing and reports the decided facts unchanged (the ledger as pure bookkeeping). */
export const bookkeepingDriver: HypervisorDriver = {
  name: 'bookkeeping',
  perform: async (_state, _command, decided) => ({ facts: decided }),
  // It performs nothing, so what it "did" is what was decided (and it records no intents of its own).
  settle: async (intent) => ({ performed: true, result: { facts: intent.decided } }),
};
