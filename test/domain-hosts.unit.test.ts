// Which ledger hosts a libvirt domain seen on a connection can belong to (services/libvirt/watch.ts): the hosts
// LocalLedger.domainHosts names for it, among those whose commands run there (LibvirtDriver.watchedHosts).
import { describe, expect, it } from 'vitest';

import { bookkeepingDriver, type HypervisorDriver } from '../services/drivers/types';
import { createMemoryEventStore } from '../services/eventstore/index';
import { createLedger } from '../services/ledger';

let n = 0;
const meta = () => ({ commandId: `dh-${++n}`, actor: 'test', time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString() });
const config = (name: string) => ({ name, uuid: `uuid-${name}-${n}`, disks: [] });

describe('LocalLedger.domainHosts', () => {
  it('names every host holding the domain, and one defining it while libvirt performs the define', async () => {
    let release!: () => void;
    let performing!: () => void;
    const inPerform = new Promise<void>((resolve) => (performing = resolve));
    // An effect driver whose define on host 'b' waits: libvirt's Defined event comes while it is in flight.
    const driver: HypervisorDriver = {
      name: 'held',
      hasEffect: () => true,
      settle: bookkeepingDriver.settle!,
      async perform(state, c, decided) {
        if (c.verb === 'define' && c.host === 'b') {
          performing();
          await new Promise<void>((resolve) => (release = resolve));
        }
        return { facts: decided };
      },
    };
    const store = createMemoryEventStore();
    const ledger = createLedger(store, { driver });
    try {
      expect((await ledger.execute({ verb: 'define', config: config('web'), meta: meta() })).ok).toBe(true);
      expect((await ledger.execute({ verb: 'define', host: 'a', config: config('web'), meta: meta() })).ok).toBe(true);
      expect(await ledger.domainHosts('web')).toEqual(['a', 'local']);
      expect(await ledger.domainHosts('other')).toEqual([]);

      const defining = ledger.execute({ verb: 'define', host: 'b', config: config('db'), meta: meta() });
      await inPerform;
      expect(await ledger.domainHosts('db')).toEqual(['b']);
      release();
      expect((await defining).ok).toBe(true);
      expect(await ledger.domainHosts('db')).toEqual(['b']);

      expect((await ledger.execute({ verb: 'undefine', host: 'a', domain: 'web', meta: meta() })).ok).toBe(true);
      expect(await ledger.domainHosts('web')).toEqual(['local']);
    } finally {
      await ledger.close();
      await store.close();
    }
  });
});
