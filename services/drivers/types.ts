// A hypervisor driver performs the effect of an accepted decision and reports what actually happened,
// as facts. The simulated driver (default) can inject faults; a real libvirt driver would sit here too.
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

export interface HypervisorDriver {
  readonly name: string;
  /** Perform the decided facts for this command on the domain. Must not throw for an expected failure: report it as facts. */
  perform(state: DomainState, command: Command, decided: Fact[]): Promise<EffectResult>;
  /**
   * What the hypervisor has to report on its own about this domain now (e.g. `guest-event blockjob-ready` for a
   * mirror that finished its first copy), given its state after an accepted command. The ledger executes each as
   * a command right away, and again after those, until nothing new is reported. Command ids must be deterministic
   * (the same report gets the same id), so that reporting something twice is an idempotent retry; actor
   * `hypervisor`. Optional: a driver without it leaves reporting to its caller.
   */
  pendingReports?(state: DomainState): Promise<CommandInput[]>;
}

/** The driver that performs nothing and reports the decided facts unchanged (the ledger as pure bookkeeping). */
export const bookkeepingDriver: HypervisorDriver = {
  name: 'bookkeeping',
  perform: async (_state, _command, decided) => ({ facts: decided }),
};
