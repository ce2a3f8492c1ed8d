// What the hypervisor reports on its own after an accepted command (HypervisorDriver.pendingReports: a mirror
// that became ready, a guest that stopped), run as commands of their own.
import { CommandSchema, type Command } from '../../machines/commands';
import type { DomainState } from '../../machines/model';
import type { HypervisorDriver } from '../drivers/types';
import type { IntentAttempt } from '../intents';
import type { CommandOutcome } from '../ledger-types';
import type { Discard } from './options';

/** Rounds of hypervisor reports run after one command (each round may report what the last one made possible). */
const MAX_REPORT_ROUNDS = 8;

export interface HypervisorReportParts {
  driver: HypervisorDriver;
  /** LedgerOptions.hypervisorReports (default true). */
  enabled: boolean;
  loadState: (host: string, name: string) => Promise<DomainState>;
  recall: (commandId: string) => Promise<CommandOutcome | undefined>;
  handle: (c: Command) => Promise<IntentAttempt>;
  saveOutcome: (outcome: CommandOutcome) => Promise<void>;
  discard: Discard;
}

/**
 * Each report is run as a command of its own (its id is the driver's, deterministic, so a report made twice is an
 * idempotent retry), then the driver is asked again, until it has nothing new to say about the domain. The command
 * that was accepted stays accepted whatever happens here: a report that cannot be run is left for the next command.
 */
export async function runHypervisorReports(parts: HypervisorReportParts, host: string, name: string, after?: DomainState): Promise<void> {
  const { driver } = parts;
  if (!driver.pendingReports || !parts.enabled) return;
  const seen = new Set<string>();
  let state = after;
  try {
    for (let round = 0; round < MAX_REPORT_ROUNDS; round++) {
      state ??= await parts.loadState(host, name);
      const reports = (await driver.pendingReports(state)).filter((r) => !seen.has(r.meta.commandId));
      if (reports.length === 0) return;
      for (const input of reports) {
        seen.add(input.meta.commandId);
        const parsed = CommandSchema.safeParse(input);
        if (!parsed.success) {
          parts.discard('report', input.meta.commandId, parsed.error.message);
          continue;
        }
        if (await parts.recall(parsed.data.meta.commandId)) continue;
        const attempt = await parts.handle(parsed.data);
        if (attempt.save) await parts.saveOutcome(attempt.outcome);
      }
      state = undefined;
    }
  } catch (error) {
    parts.discard('report', `${host}/${name}`, error instanceof Error ? error.message : String(error));
  }
}
