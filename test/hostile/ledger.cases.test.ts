// Issue 14's cases, as a hostile client tried them against the ledger: each must be refused (or kept apart) and
// leave the store as it was. The NATS-specific ones (public subjects, headers) are in nats.int.test.ts.
import { describe, expect, it } from 'vitest';

import type { CommandInput } from '../../machines/commands';
import { createMemoryEventStore } from '../../services/eventstore/memory';
import type { EventStore } from '../../services/eventstore/types';
import { factHash, factToEventData } from '../../services/factHash';
import { createLedger, OldStreamLayoutError } from '../../services/ledger';
import type { Ledger } from '../../services/ledger-types';
import { replayCheck } from '../../services/replay';

let ids = 0;
const TIME = '2026-12-01T00:00:00Z';

function cmd(spec: Record<string, unknown>, meta: Record<string, unknown> = {}): CommandInput {
  return { ...spec, meta: { commandId: `h-${++ids}`, actor: 'test', time: TIME, ...meta } } as CommandInput;
}

function config(name: string, uuid = uuidFor(name)) {
  return { name, uuid, disks: [{ target: 'vda', source: `/img/${name.length}.qcow2` }] };
}

function uuidFor(name: string): string {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)!) >>> 0;
  return `00000000-0000-4000-8000-${h.toString(16).padStart(12, '0')}`;
}

async function headOf(store: EventStore): Promise<number> {
  return store.headPosition();
}

function fresh(): { store: EventStore; ledger: Ledger } {
  const store = createMemoryEventStore();
  return { store, ledger: createLedger(store) };
}

async function ok(ledger: Ledger, spec: Record<string, unknown>, meta?: Record<string, unknown>) {
  const outcome = await ledger.execute(cmd(spec, meta));
  expect(outcome, JSON.stringify(outcome)).toMatchObject({ ok: true });
  return outcome;
}

describe('case 1: stream names cannot collide across host and domain', () => {
  it("host 'a' + domain 'b-c' and host 'a-b' + domain 'c' are two domains", async () => {
    const { store, ledger } = fresh();
    await ok(ledger, { verb: 'define', host: 'a', config: config('b-c') });
    await ok(ledger, { verb: 'start', host: 'a', domain: 'b-c' });
    await ok(ledger, { verb: 'snapshot-create', host: 'a', domain: 'b-c', snapshot: { name: 's1' } });
    for (const spec of [
      { verb: 'destroy', host: 'a-b', domain: 'c' },
      { verb: 'snapshot-delete', host: 'a-b', domain: 'c', snapshotname: 's1' },
      { verb: 'undefine', host: 'a-b', domain: 'c' },
    ]) {
      const outcome = await ledger.execute(cmd(spec));
      expect(outcome).toMatchObject({ ok: false, codeName: 'VIR_ERR_NO_DOMAIN' });
    }
    const real = await ledger.loadDomain('a', 'b-c');
    expect(real.state).toMatchObject({ life: 'exists', active: true });
    expect(Object.keys(real.state.snapshots)).toEqual(['s1']);
    expect((await ledger.loadDomain('a-b', 'c')).state.life).toBe('none');
    expect((await replayCheck(store)).ok).toBe(true);
  });

  it("a host with '%' and '-' in it keeps its own domains too", async () => {
    const { ledger } = fresh();
    await ok(ledger, { verb: 'define', host: 'x%2Dy', config: config('z') });
    await ok(ledger, { verb: 'define', host: 'x-y', config: config('z', uuidFor('other')) });
    expect((await ledger.loadDomain('x%2Dy', 'z')).state.config?.uuid).toBe(uuidFor('z'));
    expect((await ledger.loadDomain('x-y', 'z')).state.config?.uuid).toBe(uuidFor('other'));
  });
});

describe('case 1: a store with the old stream names', () => {
  async function oldStore(host: string, name: string): Promise<EventStore> {
    const store = createMemoryEventStore();
    const data = factToEventData({ type: 'DomainDefined', config: { ...config(name), disks: [], hostdevs: [] } });
    const hash = factHash(undefined, 'DomainDefined', data);
    await store.append(`domain-${host}-${name}`, [{ type: 'DomainDefined', data, metadata: { commandId: 'old-1', actor: 't', time: TIME, host, domain: name, hash } }], {
      expectedRevision: 'no-stream',
    });
    return store;
  }

  it('keeps hosts without - or % readable under the same stream names', async () => {
    const store = await oldStore('local', 'web-1');
    const ledger = createLedger(store);
    expect((await ledger.loadDomain('local', 'web-1')).state.life).toBe('exists');
    await ok(ledger, { verb: 'start', domain: 'web-1' });
  });

  it('refuses to write to a store whose old stream names were ambiguous, saying why', async () => {
    const store = await oldStore('a-b', 'c');
    const ledger = createLedger(store);
    await expect(ledger.execute(cmd({ verb: 'start', host: 'a-b', domain: 'c' }))).rejects.toThrow(OldStreamLayoutError);
    await expect(ledger.execute(cmd({ verb: 'start', host: 'a-b', domain: 'c' }))).rejects.toThrow(/domain-a-b-c.*domain-a%2Db-c/);
    expect(await store.headPosition()).toBe(1);
  });
});

describe('case 2: saga step ids are not the client’s to take', () => {
  for (const step of ['incoming', 'confirm', 'prepare', 'perform', 'finish']) {
    it(`a command with id 'M1/${step}' is refused at the schema and the migration runs whole`, async () => {
      const { store, ledger } = fresh();
      await ok(ledger, { verb: 'define', config: config('web') });
      await ok(ledger, { verb: 'start', domain: 'web' });
      const squat = await ledger.execute(cmd({ verb: 'suspend', domain: 'web' }, { commandId: `M1/${step}` }));
      expect(squat).toMatchObject({ ok: false, rule: 'VALIDATION', codeName: 'VIR_ERR_INVALID_ARG' });
      expect(squat.message).toContain('meta.commandId');
      const migrated = await ledger.execute(cmd({ verb: 'migrate', domain: 'web', desthost: 'dst', persistent: true }, { commandId: 'M1' }));
      expect(migrated.ok, JSON.stringify(migrated)).toBe(true);
      const src = (await ledger.loadDomain('local', 'web')).state;
      const dst = (await ledger.loadDomain('dst', 'web')).state;
      expect(src.active).toBe(false);
      expect(dst).toMatchObject({ life: 'exists', active: true });
      expect((await replayCheck(store)).ok).toBe(true);
    });
  }
});

describe('case 2, the same class: the hypervisor report ids are the ledger’s own', () => {
  it("a client cannot send a blockjob-ready report's id first: the copy still becomes ready", async () => {
    const store = createMemoryEventStore();
    const { createSimulatedDriver } = await import('../../services/drivers/simulated');
    const driver = createSimulatedDriver({ store });
    const ledger = createLedger(store, { driver });
    await ok(ledger, { verb: 'create', config: config('vm') });
    const copy = await ok(ledger, { verb: 'blockcopy', domain: 'vm', path: 'vda', dest: '/copy.qcow2' });
    const report = (await store.readStream('domain-local-vm', copy.revision + 1)[Symbol.asyncIterator]().next()).value;
    expect(report?.type).toBe('BlockJobReady');
    const id = String(report!.metadata.commandId);
    expect(id).toContain('/');
    const squat = await ledger.execute(cmd({ verb: 'suspend', domain: 'vm' }, { commandId: id }));
    expect(squat).toMatchObject({ ok: false, rule: 'VALIDATION' });
  });
});

describe('case 3: coordinator verbs are not accepted from clients', () => {
  it('migrate-incoming from a client is refused and changes nothing', async () => {
    const { store, ledger } = fresh();
    await ok(ledger, { verb: 'define', config: config('web') });
    await ok(ledger, { verb: 'start', domain: 'web' });
    const before = await headOf(store);
    const forged = await ledger.execute(
      cmd({ verb: 'migrate-incoming', host: 'dst', source: 'local', config: config('web'), persistent: true, active: true, paused: false }),
    );
    expect(forged).toMatchObject({ ok: false, codeName: 'VIR_ERR_OPERATION_DENIED' });
    expect(forged.message).toContain('migrate-incoming');
    const phase = await ledger.execute(cmd({ verb: 'migrate-phase', domain: 'web', phase: 'confirm' }));
    expect(phase).toMatchObject({ ok: false, codeName: 'VIR_ERR_OPERATION_DENIED' });
    expect((await ledger.loadDomain('dst', 'web')).state.life).toBe('none');
    expect(await headOf(store)).toBe(before);
  });
});

describe('case 4: JavaScript property names are names like any other', () => {
  for (const name of ['hasOwnProperty', 'constructor', 'valueOf', '__proto__', 'toString']) {
    it(`'${name}' is no snapshot or job on a domain that has none`, async () => {
      const { store, ledger } = fresh();
      await ok(ledger, { verb: 'define', config: config('web') });
      await ok(ledger, { verb: 'start', domain: 'web' });
      const before = await headOf(store);
      const refusedRevert = await ledger.execute(cmd({ verb: 'snapshot-revert', domain: 'web', snapshotname: name, running: true }));
      expect(refusedRevert).toMatchObject({ ok: false, codeName: 'VIR_ERR_NO_DOMAIN_SNAPSHOT' });
      const refusedDelete = await ledger.execute(cmd({ verb: 'snapshot-delete', domain: 'web', snapshotname: name }));
      expect(refusedDelete).toMatchObject({ ok: false, codeName: 'VIR_ERR_NO_DOMAIN_SNAPSHOT' });
      const refusedParent = await ledger.execute(
        cmd({ verb: 'snapshot-create', domain: 'web', redefine: true, snapshot: { name: 'child', parent: name, state: 'running', creationTime: '1' } }),
      );
      expect(refusedParent.ok).toBe(false);
      const refusedJob = await ledger.execute(cmd({ verb: 'blockjob', domain: 'web', path: name, abort: true }));
      expect(refusedJob.ok).toBe(false);
      expect((await ledger.loadDomain('local', 'web')).state.current).toBeNull();
      // Refusals append only their audit record: the domain stream is untouched.
      expect((await ledger.loadDomain('local', 'web')).revision).toBe(1);
      expect(await headOf(store)).toBe(before + 4);

      // And as a real snapshot name it works: created, listed, reverted to, deleted.
      await ok(ledger, { verb: 'snapshot-create', domain: 'web', snapshot: { name } });
      const withSnap = (await ledger.loadDomain('local', 'web')).state;
      expect(Object.keys(withSnap.snapshots)).toEqual([name]);
      expect(withSnap.current).toBe(name);
      await ok(ledger, { verb: 'snapshot-revert', domain: 'web', snapshotname: name, running: true });
      await ok(ledger, { verb: 'snapshot-delete', domain: 'web', snapshotname: name });
      expect(Object.keys((await ledger.loadDomain('local', 'web')).state.snapshots)).toEqual([]);
      expect((await replayCheck(store)).ok).toBe(true);
    });
  }

  it("'constructor' as a new snapshot name is not 'already exists'", async () => {
    const { ledger } = fresh();
    await ok(ledger, { verb: 'define', config: config('web') });
    await ok(ledger, { verb: 'snapshot-create', domain: 'web', snapshot: { name: 'constructor' } });
  });
});

describe('case 5 and 6: names and ids are well-formed Unicode without control characters', () => {
  const badNames: [string, string][] = [
    ['a lone high surrogate', '\ud800'],
    ['a lone low surrogate', 'x\udc00y'],
    ['a newline', 'a\nb'],
    ['a DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
  ];
  for (const [what, name] of badNames) {
    it(`a domain name with ${what} is refused, naming the field`, async () => {
      const { store, ledger } = fresh();
      const outcome = await ledger.execute(cmd({ verb: 'define', config: config(name) }));
      expect(outcome).toMatchObject({ ok: false, rule: 'VALIDATION', codeName: 'VIR_ERR_INVALID_ARG' });
      expect(outcome.message).toContain('config.name');
      expect(await headOf(store)).toBe(0);
    });
  }

  for (const [field, value] of [
    ['commandId', 'c1\r\nNats-Msg-Id: x'],
    ['commandId', 'c\ud800'],
    ['actor', 'eve\nroot'],
    ['correlationId', 'x\ty'],
  ] as const) {
    it(`meta.${field} ${JSON.stringify(value)} is refused`, async () => {
      const { store, ledger } = fresh();
      const outcome = await ledger.execute(cmd({ verb: 'define', config: config('web') }, { [field]: value }));
      expect(outcome).toMatchObject({ ok: false, rule: 'VALIDATION' });
      expect(outcome.message).toContain(`meta.${field}`);
      expect(await headOf(store)).toBe(0);
    });
  }
});

describe('also seen: misspelt fields and normalisation twins', () => {
  it('meta.expectedrevision (lower case) is refused, naming the field', async () => {
    const { store, ledger } = fresh();
    await ok(ledger, { verb: 'define', config: config('web') });
    const before = await headOf(store);
    const outcome = await ledger.execute(cmd({ verb: 'start', domain: 'web' }, { expectedrevision: 7 }));
    expect(outcome).toMatchObject({ ok: false, rule: 'VALIDATION', codeName: 'VIR_ERR_INVALID_ARG' });
    expect(outcome.message).toContain('meta');
    expect(outcome.message).toContain('expectedrevision');
    expect(await headOf(store)).toBe(before);
  });

  it('an unknown top-level field is refused, naming it', async () => {
    const { ledger } = fresh();
    const outcome = await ledger.execute(cmd({ verb: 'define', config: config('web'), forcee: true }));
    expect(outcome).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(outcome.message).toContain('forcee');
  });

  it('café decomposed is refused (names must be NFC); café composed is the one domain', async () => {
    const { ledger } = fresh();
    const composed = 'caf\u00e9';
    const decomposed = 'cafe\u0301';
    await ok(ledger, { verb: 'define', config: config(composed) });
    const twin = await ledger.execute(cmd({ verb: 'define', config: config(decomposed, uuidFor('twin')) }));
    expect(twin).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect(twin.message).toMatch(/NFC/);
    const start = await ledger.execute(cmd({ verb: 'start', domain: decomposed }));
    expect(start).toMatchObject({ ok: false, rule: 'VALIDATION' });
    expect((await ledger.listDomains()).map((d) => d.name)).toEqual([composed]);
  });
});
