// The subcommands beside the virsh language, one line each: the modules export a register function and this
// list is the only place that wires them into `vmledger` (so a reader sees every subcommand here).
import { registerAuditCommands } from '../audit-cli';
import { registerCopyStoreCommand } from '../copyStore';
import { registerDiagramCommands } from '../diagram-cli';
import { registerSchemaCommand } from '../nats/jsonSchema';
import { registerServeCommand } from '../nats/serve';
import { registerSubcommand } from './program';

registerSubcommand(registerServeCommand); // serve: the command service on NATS
registerSubcommand((program) => registerAuditCommands(program)); // audit, replay (time travel, what-if)
registerSubcommand((program) => registerDiagramCommands(program)); // diagram, diagram-diff, ui
registerSubcommand(registerCopyStoreCommand); // copy-store
registerSubcommand(registerSchemaCommand); // schema: JSON Schema of every command
