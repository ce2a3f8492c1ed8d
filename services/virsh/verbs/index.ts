// The table of virsh verbs: name → handler. The verbs' names, options and help are described once, in
// ../definitions.ts; here each verb gets what it does, grouped as virsh's `help` groups them:
//   domain.ts     domain management: define, create, start, shutdown, destroy, suspend, resume, reboot,
//                 managedsave, save, managedsave-remove, undefine, dumpxml
//   blockjob.ts   block jobs: blockcopy, blockjob, blockpull
//   migration.ts  migrate (and destinationHost, its DESTURI reading)
//   monitor.ts    domain monitoring: list, domstate, dominfo, domblklist
//   snapshot.ts   snapshot-create(-as), -delete, -revert, -current, -parent, -info, -dumpxml, -list
//   vmledger.ts   vmledger's extensions: guest-event, migrate-phase, migrate-incoming
//   virsh.ts      virsh itself: echo, help, quit, exit
// What a handler is given (VerbCall) and returns (Result) is in ../call.ts and ../result.ts.
import type { VerbEntry, VerbTable } from '../call';
import { COMMANDS, findCommand } from '../definitions';
import { BLOCKJOB_VERBS } from './blockjob';
import { DOMAIN_VERBS } from './domain';
import { MIGRATION_VERBS } from './migration';
import { MONITOR_VERBS } from './monitor';
import { SNAPSHOT_VERBS } from './snapshot';
import { VIRSH_VERBS } from './virsh';
import { VMLEDGER_VERBS } from './vmledger';

/**
 * One table from the groups. Checked when the module loads, so a mismatch fails every test at once: each verb
 * handled once, each handled verb defined, each defined verb handled.
 */
function verbTable(groups: readonly VerbTable[]): ReadonlyMap<string, VerbEntry> {
  const table = new Map<string, VerbEntry>();
  for (const group of groups) {
    for (const [name, entry] of Object.entries(group)) {
      if (table.has(name)) throw new Error(`virsh verb '${name}' has two handlers`);
      if (!findCommand(name)) throw new Error(`virsh verb '${name}' has a handler but no definition in definitions.ts`);
      table.set(name, entry);
    }
  }
  for (const c of COMMANDS) if (!table.has(c.name)) throw new Error(`virsh verb '${c.name}' is defined but has no handler`);
  return table;
}

export const VERBS = verbTable([DOMAIN_VERBS, BLOCKJOB_VERBS, MIGRATION_VERBS, MONITOR_VERBS, SNAPSHOT_VERBS, VMLEDGER_VERBS, VIRSH_VERBS]);

export { destinationHost } from './migration';
