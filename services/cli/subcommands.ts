// The subcommands beside the virsh language, one line each: the modules export a register function and this
// list is the only place that wires them into `vmledger` (so a reader sees every subcommand here).
//
// Each module is imported only when the command line may need it (it names one of the module's commands, or
// asks for help), so `vmledger list` never loads NATS, Graphviz or the UI server. A module added here with a
// plain `registerSubcommand(…)` at import time also works; it is just loaded on every start.
import { registerSubcommand, type SubcommandRegistrar } from './program';

interface LazySubcommands {
  /** The command names the module registers. */
  names: readonly string[];
  load: () => Promise<SubcommandRegistrar>;
}

const SUBCOMMANDS: readonly LazySubcommands[] = [
  { names: ['serve'], load: async () => (await import('../nats/serve')).registerServeCommand }, // the command service on NATS
  { names: ['audit', 'replay'], load: async () => (await import('../audit-cli')).registerAuditCommands }, // time travel, what-if
  { names: ['diagram', 'diagram-diff', 'ui'], load: async () => (await import('../diagram-cli')).registerDiagramCommands },
  { names: ['copy-store'], load: async () => (await import('../copyStore')).registerCopyStoreCommand },
  { names: ['schema'], load: async () => (await import('../nats/jsonSchema')).registerSchemaCommand }, // JSON Schema of every command
  { names: ['adopt', 'reconcile'], load: async () => (await import('../reconcile-cli')).registerReconcileCommands }, // the ledger brought to what libvirt shows
  { names: ['keygen'], load: async () => (await import('../identity/keygen-cli')).registerKeygenCommand }, // a key for --sign-with
];

/** Words that make commander print every command: the whole list must be registered then. */
const HELP_WORDS = new Set(['help', '--help', '-h']);

/**
 * Registers the subcommands `args` (the command line after `node vmledger`) may run. A word that merely equals a
 * command name (a domain called `audit`) loads that module needlessly, which is harmless; a missing one would not
 * be, so help and an empty command line load them all.
 */
export async function registerSubcommandsFor(args: readonly string[]): Promise<void> {
  const all = args.length === 0 || args.some((a) => HELP_WORDS.has(a));
  const wanted = SUBCOMMANDS.filter((s) => all || s.names.some((n) => args.includes(n)));
  for (const registrar of await Promise.all(wanted.map((s) => s.load()))) registerSubcommand((program) => registrar(program));
}
