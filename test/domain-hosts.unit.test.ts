// Which ledger hosts a libvirt domain seen on a connection can belong to (services/libvirt/watch.ts): the hosts
// LocalLedger.domainHosts names for it, among those whose commands run there (LibvirtDriver.watchedHosts).
import { describe, expect, it } from 'vitest';

import { bookkeepingDriver, type HypervisorDriver } from '../services/drivers/types';
import { createLibvirtDriver } from '../services/drivers/libvirt';
import { createMemoryEventStore } from '../services/eventstore/index';
import { createLedger } from '../services/ledger';
import type { LibvirtConnection, VirshResult } from '../services/libvirt/connection';
import type { MigrationAwareDriver } from '../services/migration';
import { onConnectionOf, reconcileDomain } from '../services/reconcile';

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

describe('a migration in flight, into or out of a host on the default connection', () => {
  // libvirt as virsh answers it: the guest already running there (libvirt shows it on the destination during Perform).
  const ok = (stdout: string): VirshResult => ({ stdout, stderr: '', failed: false });
  const guestRunning = (name: string): LibvirtConnection => {
    const answers: Record<string, VirshResult> = {
      dominfo: ok(`Id:             1\nName:           ${name}\nUUID:           7c1f0f43-5a4e-4c5b-9d3e-1f2a3b4c5d6e\nState:          running\nPersistent:     no\nManaged save:   no\n`),
      domstate: ok('running (migrated)\n'),
      dumpxml: ok(`<domain type='qemu'><name>${name}</name><uuid>7c1f0f43-5a4e-4c5b-9d3e-1f2a3b4c5d6e</uuid><devices></devices></domain>\n`),
      'snapshot-list': ok(''),
      'snapshot-current': { stdout: '', stderr: `error: domain '${name}' has no current snapshot\n`, failed: true },
    };
    return { uri: 'qemu:///fake', commandsRun: 0, spawned: 1, run: async (argv) => answers[argv[0]!] ?? ok(''), close: async () => {} } as LibvirtConnection;
  };

  /** A ledger whose migrations stop before Perform until released: the guest running on `from`, migrating to `to`. */
  async function migrating(from: string, to: string) {
    let release!: () => void;
    let paused!: () => void;
    const atPerform = new Promise<void>((resolve) => (paused = resolve));
    const driver: MigrationAwareDriver = {
      ...bookkeepingDriver,
      async migrationPhase(phase) {
        if (phase === 'perform') {
          paused();
          await new Promise<void>((resolve) => (release = resolve));
        }
        return undefined;
      },
    };
    const store = createMemoryEventStore();
    const ledger = createLedger(store, { driver });
    expect((await ledger.execute({ verb: 'define', host: from, config: { name: 'web', uuid: '7c1f0f43-5a4e-4c5b-9d3e-1f2a3b4c5d6e', disks: [] }, meta: meta() })).ok).toBe(true);
    expect((await ledger.execute({ verb: 'start', host: from, domain: 'web', meta: meta() })).ok).toBe(true);
    const migration = ledger.execute({ verb: 'migrate', host: from, domain: 'web', desthost: to, meta: meta() });
    await atPerform;
    return {
      ledger,
      /** Lets the saga go on; its outcome once done. */
      async finish() {
        release();
        return migration;
      },
      async close() {
        await ledger.close();
        await store.close();
      },
    };
  }

  it('into a host on the default connection: domainHosts names the destination, whose watch leaves it to the saga', async () => {
    // -c a=URI_A -c URI_B: host 'b' has no connection of its own, so the default connection's watch (host 'local') covers it.
    const { ledger, finish, close } = await migrating('a', 'b');
    try {
      try {
        expect(await ledger.domainHosts('web')).toEqual(['a', 'b']);
        const defaultWatch = onConnectionOf('local', ['a']);
        expect((await ledger.domainHosts('web')).filter(defaultWatch)).toEqual(['b']);
        const found = await reconcileDomain(ledger, guestRunning('web'), 'web', { host: 'b', source: 'event', migrations: ledger });
        expect(found).toEqual([]);
        expect((await ledger.loadDomain('b', 'web')).state.life).toBe('none');
        expect((await ledger.loadDomain('local', 'web')).state.life).toBe('none');
      } finally {
        await finish();
      }
      expect((await finish()).ok).toBe(true);
      expect((await ledger.loadDomain('b', 'web')).state).toMatchObject({ life: 'exists', active: true });
      expect(await ledger.domainHosts('web')).toEqual(['a', 'b']);
    } finally {
      await close();
    }
  });

  it('out of a host on the default connection: the destination watch sees the source is not watched, and leaves it to the saga', async () => {
    // -c a=URI_A -c URI_C: host 'c' runs on the default connection; the watch of 'a' knows only 'local' and 'a' as watched.
    const { ledger, finish, close } = await migrating('c', 'a');
    try {
      try {
        expect(await ledger.domainHosts('web')).toEqual(['a', 'c']);
        expect((await ledger.domainHosts('web')).filter(onConnectionOf('a', undefined))).toEqual(['a']);
        const found = await reconcileDomain(ledger, guestRunning('web'), 'web', { host: 'a', source: 'event', migrations: ledger });
        expect(found).toEqual([]);
        expect((await ledger.loadDomain('a', 'web')).state.life).toBe('none');
      } finally {
        await finish();
      }
      // The saga recorded the arrival: the guest is a's, running.
      expect((await finish()).ok).toBe(true);
      expect((await ledger.loadDomain('a', 'web')).state).toMatchObject({ life: 'exists', active: true });
    } finally {
      await close();
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
