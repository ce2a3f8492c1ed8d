// The ledger as the migration saga (services/migration.ts) sees it: one step at a time, each idempotent by its own
// command id, Prepare's check on the destination, and `migrate` itself, whose outcome spans several command ids.
import type { Command, CommandOf } from '../../machines/commands';
import type { Refusal } from '../../machines/errors';
import type { HostView } from '../../machines/guards';
import type { HypervisorDriver } from '../drivers/types';
import type { CommandOutcome, LoadedDomain } from '../ledger-types';
import { runMigration, type MigrationOptions, type MigrationPort } from '../migration';
import type { CommandHandler } from './commandHandler';
import { decideOn } from './decider';
import type { OutcomeDocs } from './outcomeDocs';

export interface MigrationPortParts {
  handler: CommandHandler;
  docs: OutcomeDocs;
  hostView: HostView;
  load: (host: string, name: string) => Promise<LoadedDomain>;
  followLog: () => Promise<void>;
}

/** The saga's own two calls (the ledger's load, recall and hostView are the rest of its MigrationPort). */
export type SagaSteps = Pick<MigrationPort, 'step' | 'checkIncoming'>;

export function sagaSteps(parts: MigrationPortParts): SagaSteps {
  const { handler, docs } = parts;
  return {
    /** One command of the saga, idempotent by its own command id. */
    async step(command: Command, options: { save: boolean }): Promise<CommandOutcome> {
      const prior = await docs.recallOutcome(command.meta.commandId, options.save);
      if (prior) return prior;
      const attempt = await handler.handle(command, options.save);
      if (attempt.save && options.save) await docs.saveOutcome(attempt.outcome);
      return attempt.outcome;
    },
    /** Prepare's check on the destination, against a host view that has followed the log. */
    async checkIncoming(command: CommandOf<'migrate-incoming'>): Promise<Refusal | undefined> {
      await parts.followLog();
      const dest = await parts.load(command.host, command.config.name);
      const decision = decideOn(dest.state, command, parts.hostView);
      return decision.ok ? undefined : decision.refusal;
    },
  };
}

export interface MigrateParts {
  port: MigrationPort;
  docs: OutcomeDocs;
  driver: HypervisorDriver;
  options: MigrationOptions | undefined;
  /** The recorded refusal of a command its caller does not admit, or undefined. */
  notAdmitted: (command: Command) => Promise<CommandOutcome | undefined>;
  reports: (host: string, name: string) => Promise<void>;
}

/** `migrate` from a client: the saga, run again where it stopped unless its own outcome doc says it ended. */
export async function executeMigrate(parts: MigrateParts, command: CommandOf<'migrate'>): Promise<CommandOutcome> {
  const { docs } = parts;
  // Only the saga's own outcome doc ends it here: facts without one mean it was interrupted, so run it again
  // (each step is idempotent by its own command id and the saga continues where it stopped).
  const done = await docs.recallDoc(command.meta.commandId);
  if (done) return done;
  // A command id whose first use was another verb: that command's outcome, rebuilt from its records, as any
  // retry gets it (its doc, under outcomeDocs 'all', was found just above).
  const first = await docs.recallOutcome(command.meta.commandId, false);
  if (first && first.command !== 'migrate') return first;
  const denied = await parts.notAdmitted(command);
  if (denied) return denied;
  const outcome = await runMigration(parts.port, command, { ...parts.options, driver: parts.driver });
  // A saga's outcome spans several command ids: only its doc can tell it whole.
  const refusedAtBegin = !outcome.outcome.ok && outcome.outcome.events.length === 0 && outcome.outcome.audit !== undefined;
  if (!outcome.transient) await docs.saveOutcome(outcome.outcome, refusedAtBegin);
  if (outcome.outcome.ok) {
    await parts.reports(command.host, command.domain);
    await parts.reports(command.desthost, command.domain);
  }
  return outcome.outcome;
}
