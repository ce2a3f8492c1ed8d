// A hypervisor driver performs the effect of an accepted decision and reports what actually happened,
// as facts. The simulated driver (default) can inject faults; a real libvirt driver would sit here too.
import type { Command } from '../../machines/commands';
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
}

/** The driver that performs nothing and reports the decided facts unchanged (the ledger as pure bookkeeping). */
export const bookkeepingDriver: HypervisorDriver = {
  name: 'bookkeeping',
  perform: async (_state, _command, decided) => ({ facts: decided }),
};
