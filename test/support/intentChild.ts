// A ledger in a process of its own, for the exactly-once crash tests: opens the SQLite file with a journal
// hypervisor (services/drivers/journal.ts), runs the commands given as JSON (argv), prints each outcome as a JSON
// line, and exits. VMLEDGER_FAULT_PAUSE (services/intents.ts) makes it stop between an intent and its result,
// where the test kills it with SIGKILL.
import { createJournalDriver } from '../../services/drivers/journal';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import { createLedger } from '../../services/ledger';

const [file, journal, commands] = process.argv.slice(2);
const store = openSqliteEventStore(file!);
const ledger = createLedger(store, { driver: createJournalDriver(journal!) });
for (const command of JSON.parse(commands!) as unknown[]) {
  const outcome = await ledger.execute(command);
  process.stdout.write(`${JSON.stringify({ ok: outcome.ok, commandId: outcome.commandId, rule: outcome.rule, revision: outcome.revision })}\n`);
}
await ledger.close();
await store.close();
