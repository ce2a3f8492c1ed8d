// Exactly-once under faults, as a property: random commands on one domain from two ledgers sharing a store, some
// retried with an earlier command id, some interrupted (the ledger stops after the intent or after the effect and
// is replaced, as a crashed process would be; or the hypervisor call throws). After each sequence and a final
// ledger's recovery, on the hypervisor's side (its journal) and the ledger's:
//   - no command id was performed twice;
//   - every effect the hypervisor performed is recorded, and every recorded accepted change was performed;
//   - the domain's state is what the hypervisor's effects make of it (the journal's facts folded in order);
//   - no intent is left open, and replay is clean.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';
import { expect, test } from 'vitest';

import type { CommandInput } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import { evolve } from '../../machines/evolve';
import { domainStream, initialDomainState } from '../../machines/model';
import { createJournalDriver, readJournal } from '../../services/drivers/journal';
import type { HypervisorDriver } from '../../services/drivers/types';
import { createMemoryEventStore } from '../../services/eventstore/memory';
import { createLedger } from '../../services/ledger';
import type { Ledger } from '../../services/ledger-types';
import { replayCheck } from '../../services/replay';
import { parseDomainXml } from '../../services/xml';
import { EFFECT_INTENDED, isEffectRecord } from '../../projections/log';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIG = parseDomainXml(readFileSync(join(ROOT, 'examples/web1.xml'), 'utf8'));
const NAME = CONFIG.name;
const TIME = '2026-12-01T00:00:00.000Z';

/**
 * after-intent, after-effect: the ledger stops there (its hook throws; it is replaced). perform-throws: the
 * hypervisor call fails before doing anything; throws-after-effect: it did the work, then the call failed.
 */
type Fault = 'none' | 'after-intent' | 'after-effect' | 'perform-throws' | 'throws-after-effect';
const BODIES: Record<string, unknown>[] = [
  { verb: 'start', domain: NAME },
  { verb: 'destroy', domain: NAME },
  { verb: 'suspend', domain: NAME },
  { verb: 'resume', domain: NAME },
  { verb: 'snapshot-create-as', domain: NAME, name: 's1' },
  { verb: 'snapshot-delete', domain: NAME, snapshot: 's1' },
];

const stepArb = fc.record({
  body: fc.nat({ max: BODIES.length - 1 }),
  by: fc.nat({ max: 1 }),
  retry: fc.option(fc.nat({ max: 40 }), { freq: 4 }),
  fault: fc.constantFrom<Fault>('none', 'none', 'none', 'none', 'after-intent', 'after-effect', 'perform-throws', 'throws-after-effect'),
});

test('under faults every command id is performed at most once, and the ledger records exactly what was performed', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 25 }), async (steps) => {
      const dir = mkdtempSync(join(tmpdir(), 'vmledger-once-prop-'));
      const journal = join(dir, 'hypervisor.journal');
      const store = createMemoryEventStore();
      const faults = new Map<string, Fault>();
      const driver = (): HypervisorDriver => {
        const inner = createJournalDriver(journal);
        return {
          ...inner,
          perform: async (s, c, d) => {
            const fault = faults.get(c.meta.commandId);
            if (fault === 'perform-throws') throw new Error('the hypervisor connection broke');
            const result = await inner.perform(s, c, d);
            if (fault === 'throws-after-effect') throw new Error('the hypervisor connection broke after the call');
            return result;
          },
        };
      };
      const open = (): Ledger =>
        createLedger(store, {
          driver: driver(),
          intents: {
            jobWaitMs: 0,
            onPoint: (point, c) => {
              if (faults.get(c.meta.commandId) === point) throw new Error(`stopped at ${point}`);
            },
          },
        });
      const ledgers = [open(), open()];
      const sent: CommandInput[] = [];
      try {
        expect(await ledgers[0]!.execute({ verb: 'define', config: CONFIG, meta: { commandId: 'define', actor: 't', time: TIME } } as CommandInput)).toMatchObject({ ok: true });
        for (const [i, step] of steps.entries()) {
          const retried = step.retry !== null && sent.length > 0 ? sent[step.retry % sent.length]! : undefined;
          const input = retried ?? ({ ...BODIES[step.body]!, meta: { commandId: `c${i}`, actor: 't', time: TIME } } as CommandInput);
          if (!retried) {
            sent.push(input);
            faults.set(input.meta.commandId, step.fault);
          } else {
            faults.set(input.meta.commandId, 'none'); // a retry runs clean
          }
          try {
            await ledgers[step.by]!.execute(input);
          } catch {
            // The ledger stopped mid-command: replace it, as a restarted process.
            await ledgers[step.by]!.close();
            ledgers[step.by] = open();
          }
        }
        for (const l of ledgers) await l.close();
        const final = createLedger(store, { driver: driver() }); // recovery on opening
        const { state } = await final.loadDomain('local', NAME);
        const lines = readJournal(journal);
        // At most once per command id.
        expect(new Set(lines.map((l) => l.commandId)).size).toBe(lines.length);
        // Recorded exactly what was performed.
        const recorded = new Map<string, string[]>();
        for await (const e of store.readStream(domainStream('local', NAME))) {
          const id = String(e.metadata.commandId);
          if (!isEffectRecord(e.type)) recorded.set(id, [...(recorded.get(id) ?? []), e.type]);
          else if (e.type === EFFECT_INTENDED && !recorded.has(id)) recorded.set(id, []);
        }
        for (const l of lines) {
          expect(recorded.get(l.commandId) ?? 'not recorded', l.commandId).toEqual(l.refusal ? [] : (l.facts as Fact[]).map((f) => f.type));
        }
        for (const [id, types] of recorded) if (types.length > 0) expect(lines.some((l) => l.commandId === id), id).toBe(true);
        // The ledger's domain is what the hypervisor's effects made of it.
        let expected = initialDomainState('local', NAME);
        for (const l of lines) if (!l.refusal) for (const f of l.facts as Fact[]) expected = evolve(expected, f);
        expect(state).toEqual(expected);
        expect(await replayCheck(store)).toMatchObject({ ok: true, openIntents: 0 });
        await final.close();
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 60, seed: Number(process.env.VMLEDGER_PROPERTY_SEED ?? 20261201), endOnFailure: true },
  );
});
