// vmledger in front of a private libvirtd for tests: a ledger on a memory store, the libvirt driver on its own
// connection, and a virsh session speaking to both. `run(line)` returns the reports of that line's commands.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { createLibvirtDriver, type LibvirtDriver, type LibvirtDriverOptions } from '../../services/drivers/libvirt';
import { createMemoryEventStore } from '../../services/eventstore/index';
import { createLedger } from '../../services/ledger';
import type { Ledger } from '../../services/ledger-types';
import { openLibvirtConnection } from '../../services/libvirt/connection';
import { VirshSession, type CommandReport } from '../../services/virsh/session';
import type { DomainState } from '../../machines/model';
import type { LibvirtdHandle } from '../support/libvirtd';

export interface VmledgerOnLibvirt {
  ledger: Ledger;
  driver: LibvirtDriver;
  session: VirshSession;
  /** Runs a line of virsh commands through vmledger; the last report is the line's last command. */
  run(line: string): Promise<CommandReport[]>;
  /** The domain's state as vmledger recorded it. */
  state(name: string): Promise<DomainState>;
  /** Writes a tiny guest's XML (on a fresh blank image) and returns the XML file's path. */
  guest(name: string): string;
  close(): Promise<void>;
}

export function vmledgerOn(lv: LibvirtdHandle, uri = lv.qemuUri, options: LibvirtDriverOptions = {}): VmledgerOnLibvirt {
  const store = createMemoryEventStore();
  const driver = createLibvirtDriver(openLibvirtConnection(uri), options);
  const ledger = createLedger(store, { driver });
  const session = new VirshSession(ledger, { actor: 'test', connected: true });
  return {
    ledger,
    driver,
    session,
    async run(line) {
      const reports: CommandReport[] = [];
      await session.runText(line, (r) => void reports.push(r));
      return reports;
    },
    async state(name) {
      return (await ledger.loadDomain('local', name)).state;
    },
    guest(name) {
      const file = join(lv.dir, `${name}.xml`);
      writeFileSync(file, lv.domainXml(name, lv.image(`${name}.qcow2`)));
      return file;
    },
    async close() {
      await ledger.close();
      await store.close();
      await driver.close();
    },
  };
}
