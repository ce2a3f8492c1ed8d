// Which ledger hosts a libvirt domain seen on a connection can belong to (services/libvirt/watch.ts): the hosts
// LocalLedger.domainHosts names for it, among those whose commands run there (LibvirtDriver.watchedHosts).
import { describe, expect, it } from 'vitest';

import { bookkeepingDriver, type HypervisorDriver } from '../services/drivers/types';
import { createLibvirtDriver } from '../services/drivers/libvirt';
import { createMemoryEventStore } from '../services/eventstore/index';
import { createLedger } from '../services/ledger';
import type { LibvirtConnection } from '../services/libvirt/connection';

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

describe('LibvirtDriver.watchedHosts', () => {
  const connection = (uri: string): LibvirtConnection => ({ uri, run: async () => ({ failed: false, stdout: '', stderr: '' }), close: async () => {} }) as unknown as LibvirtConnection;

  it('watches the default connection for the default host and every host without a connection of its own', async () => {
    const fallback = connection('qemu:///system');
    const plain = createLibvirtDriver(fallback);
    expect(plain.watchedHosts).toEqual([{ host: 'local', connection: fallback, hostsWithOwnConnection: [] }]);

    const a = connection('qemu+ssh://a/system');
    const both = createLibvirtDriver({ default: fallback, hosts: new Map([['a', a]]) });
    expect(both.watchedHosts).toEqual([
      { host: 'local', connection: fallback, hostsWithOwnConnection: ['a'] },
      { host: 'a', connection: a },
    ]);
    await plain.close();
    await both.close();
  });
});
