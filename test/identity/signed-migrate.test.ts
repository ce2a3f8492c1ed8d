// A signed migrate through the real ledger: the saga's Begin is the signed command itself (its signature still
// verifies), its later steps carry who asked but not that signature, and replay is clean.
import { createUser } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';

import { createMemoryEventStore } from '../../services/eventstore/memory';
import type { RecordedEvent } from '../../services/eventstore/types';
import { signCommand, verifyCommandSignature } from '../../services/identity/signature';
import { createLedger } from '../../services/ledger';
import { replayCheck } from '../../services/replay';

const key = createUser();
let ids = 0;
const signed = (spec: Record<string, unknown>) =>
  signCommand({ host: 'h1', ...spec, meta: { commandId: `s-${++ids}`, actor: 'ops', time: '2026-11-22T00:00:00Z' } }, key);
const config = { name: 'mig', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', disks: [{ target: 'vda', source: '/var/lib/libvirt/images/mig.qcow2' }] };

describe('a signed migrate', () => {
  it('is recorded with its signature on Begin only, every stored signature verifies, and replay is clean', async () => {
    const store = createMemoryEventStore();
    const ledger = createLedger(store);
    for (const spec of [{ verb: 'define', config }, { verb: 'start', domain: 'mig' }, { verb: 'migrate', domain: 'mig', desthost: 'h2', persistent: true, undefinesource: true }]) {
      const outcome = await ledger.execute(signed(spec));
      expect(outcome, JSON.stringify(outcome)).toMatchObject({ ok: true });
    }
    const events: RecordedEvent[] = [];
    for await (const e of store.readAll(0)) events.push(e);
    const commands = events.map((e) => e.metadata.command as { verb: string; meta: { signature?: unknown } } | undefined).filter((c) => c !== undefined);
    const withSignature = commands.filter((c) => c.meta.signature !== undefined);
    expect(withSignature.map((c) => c.verb)).toEqual(['define', 'start', 'migrate']);
    expect(commands.some((c) => c.verb === 'migrate-phase' && c.meta.signature === undefined)).toBe(true);
    for (const c of withSignature) expect(verifyCommandSignature(c)).toEqual({ ok: true, key: key.getPublicKey() });
    const summary = await replayCheck(store, { anchor: false });
    expect(summary.tampered).toEqual([]);
    expect(summary.violations).toEqual([]);
    await ledger.close();
  });
});
