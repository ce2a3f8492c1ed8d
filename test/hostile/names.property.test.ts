// Issue 14's classes as a property: names and ids drawn from separators, prototype keys, surrogates, control
// characters, normalisation twins, overlong and header-hostile strings, sent as commands to the ledger. After every
// step: an invalid name changes nothing, valid names never share a stream, every domain loads as itself, and
// replay agrees with the live state (nothing flagged). Run counts are bounded (2 cores).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { domainStream } from '../../machines/model';
import { createMemoryEventStore } from '../../services/eventstore/memory';
import { createLedger } from '../../services/ledger';
import { replayCheck, stateAt } from '../../services/replay';

const hostile = fc.oneof(
  fc.constantFrom('a', 'a-b', 'b-c', 'c', 'a%2Db', '%', '-', '--', 'a-', '-a', 'x/y', 'local'),
  fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', 'valueOf', 'toString', 'prototype'),
  fc.constantFrom('\ud800', 'x\udc00', '\ud83d\ude00', 'caf\u00e9', 'cafe\u0301', 'A\u030a', '\u00c5'),
  fc.constantFrom('a\nb', 'a\r\nb', '\u0000', 'x\u001b[31m', '\u202eevil', 'Nats-Msg-Id: x', 'k: v\r\n'),
  fc.string({ minLength: 250, maxLength: 260 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
);

type Step = { verb: 'define' | 'start' | 'snapshot-create' | 'snapshot-delete' | 'undefine' | 'destroy'; host: string; name: string; snap: string; id: string };
const stepArb: fc.Arbitrary<Step> = fc.record({
  verb: fc.constantFrom('define', 'start', 'snapshot-create', 'snapshot-delete', 'undefine', 'destroy'),
  host: hostile,
  name: hostile,
  snap: hostile,
  id: fc.oneof(hostile, fc.uuid()),
});

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function isCleanName(s: string): boolean {
  return s.length > 0 && s.length <= 255 && !LONE_SURROGATE.test(s) && !/[\u0000-\u001f\u007f-\u009f]/.test(s) && s.normalize('NFC') === s;
}

describe('hostile names and ids against the ledger', () => {
  it('keep the invariants, and replay agrees with the live state after every run', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (steps) => {
        const store = createMemoryEventStore();
        const ledger = createLedger(store);
        const touched = new Map<string, { host: string; name: string }>();
        let n = 0;
        for (const s of steps) {
          const meta = { commandId: `${s.id}`.slice(0, 150) + `.${n++}`, actor: 'p', time: '2026-12-01T00:00:00Z' };
          const uuid = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
          const input =
            s.verb === 'define'
              ? { verb: s.verb, host: s.host, config: { name: s.name, uuid }, meta }
              : s.verb === 'snapshot-create'
                ? { verb: s.verb, host: s.host, domain: s.name, snapshot: { name: s.snap }, meta }
                : s.verb === 'snapshot-delete'
                  ? { verb: s.verb, host: s.host, domain: s.name, snapshotname: s.snap, meta }
                  : { verb: s.verb, host: s.host, domain: s.name, meta };
          const before = await store.headPosition();
          const outcome = await ledger.execute(input);
          const clean = isCleanName(s.host) && isCleanName(s.name) && (!s.verb.startsWith('snapshot') || isCleanName(s.snap));
          const idClean = !LONE_SURROGATE.test(meta.commandId) && !/[\u0000-\u001f\u007f-\u009f/]/.test(meta.commandId);
          if (!clean || !idClean) {
            expect(outcome, JSON.stringify(input)).toMatchObject({ ok: false, rule: 'VALIDATION' });
            expect(await store.headPosition()).toBe(before);
            continue;
          }
          expect(outcome.rule === 'VALIDATION', JSON.stringify(outcome)).toBe(false);
          touched.set(domainStream(s.host, s.name), { host: s.host, name: s.name });
          for (const e of outcome.events) expect(e.stream).toBe(domainStream(s.host, s.name));
        }
        // No two (host, name) pairs share a stream, and each domain loads as itself, with only own snapshots.
        const streams = new Map<string, string>();
        for (const [stream, t] of touched) {
          const key = JSON.stringify([t.host, t.name]);
          expect(streams.get(stream) ?? key).toBe(key);
          streams.set(stream, key);
          const { state } = await ledger.loadDomain(t.host, t.name);
          expect([state.host, state.name]).toEqual([t.host, t.name]);
          for (const [name, snap] of Object.entries(state.snapshots)) expect(snap.name).toBe(name);
          if (state.current !== null) expect(Object.hasOwn(state.snapshots, state.current)).toBe(true);
        }
        const summary = await replayCheck(store, { anchor: false });
        expect(summary.violations).toEqual([]);
        expect(summary.tampered).toEqual([]);
        expect(summary.refusalDrift).toEqual([]);
        // Replay's view of the domains is the live one.
        const replayed = await stateAt(store, { position: await store.headPosition() });
        const live = await ledger.listDomains();
        expect(replayed.domains.map((d) => [d.host, d.name, d.snapshots]).sort()).toEqual(
          live.map((d) => [d.host, d.name, Object.keys(d.snapshots).length]).sort(),
        );
        await ledger.close();
      }),
      { numRuns: 60 },
    );
  });
});
