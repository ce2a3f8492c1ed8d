// The event-store contract: every backend (memory, SQLite, JetStream, EventStoreDB) runs this same suite.
// Written once as a function so a backend passes or fails on exactly the same expectations.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  WrongExpectedRevisionError,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from '../services/eventstore/types';

export interface OpenedStore {
  store: EventStore;
  cleanup: () => Promise<void>;
}

let factCounter = 0;

/** A fact with a recognisable payload; `n` lets tests check order. */
export function fact(type: string, n: number, commandId = `cmd-${++factCounter}`): NewEvent {
  return {
    type,
    data: { n, label: `fact ${n}` },
    metadata: { commandId, actor: 'contract-test', time: '2024-01-01T00:00:00.000Z' },
  };
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Resolves once `predicate` holds, polling briefly; fails with `what` after the timeout. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function describeStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`event store contract: ${name}`, () => {
    let store: EventStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('appends to one stream and reads it back in order, revisions starting at 0', async () => {
      const result = await store.append('vm-a', [fact('Defined', 1), fact('Started', 2)], {
        expectedRevision: 'no-stream',
      });
      expect(result).toEqual({ revision: 1, position: 2, duplicate: false });

      const events = await collect(store.readStream('vm-a'));
      expect(events.map((e) => [e.revision, e.position, e.type, e.data])).toEqual([
        [0, 1, 'Defined', { n: 1, label: 'fact 1' }],
        [1, 2, 'Started', { n: 2, label: 'fact 2' }],
      ]);
      expect(events[0]!.stream).toBe('vm-a');
      expect(events[0]!.metadata).toMatchObject({ actor: 'contract-test', time: '2024-01-01T00:00:00.000Z' });
      expect(await store.streamRevision('vm-a')).toBe(1);
      expect(await store.streamRevision('vm-unknown')).toBe('no-stream');
      expect(await collect(store.readStream('vm-unknown'))).toEqual([]);
    });

    it('reads a stream from a revision (inclusive)', async () => {
      await store.append('vm-a', [fact('A', 0), fact('B', 1), fact('C', 2)], { expectedRevision: 'no-stream' });
      const tail = await collect(store.readStream('vm-a', 1));
      expect(tail.map((e) => e.revision)).toEqual([1, 2]);
      expect(await collect(store.readStream('vm-a', 3))).toEqual([]);
    });

    it('numbers global positions from 1, strictly increasing and gap-free across streams', async () => {
      expect(await store.headPosition()).toBe(0);
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      await store.append('vm-b', [fact('B', 2), fact('B', 3)], { expectedRevision: 'no-stream' });
      await store.append('vm-a', [fact('A', 4)], { expectedRevision: 0 });
      await store.append('vm-c', [fact('C', 5)], { expectedRevision: 'any' });

      const all = await collect(store.readAll());
      expect(all.map((e) => e.position)).toEqual([1, 2, 3, 4, 5]);
      expect(all.map((e) => [e.stream, e.revision])).toEqual([
        ['vm-a', 0],
        ['vm-b', 0],
        ['vm-b', 1],
        ['vm-a', 1],
        ['vm-c', 0],
      ]);
      expect(await store.headPosition()).toBe(5);
    });

    it('reads the global log after a position (exclusive) with an optional limit', async () => {
      for (let n = 1; n <= 6; n++) await store.append(`vm-${n % 2}`, [fact('X', n)], { expectedRevision: 'any' });
      expect((await collect(store.readAll(4))).map((e) => e.position)).toEqual([5, 6]);
      expect((await collect(store.readAll(1, 2))).map((e) => e.position)).toEqual([2, 3]);
      expect(await collect(store.readAll(6))).toEqual([]);
      expect(await collect(store.readAll(0, 0))).toEqual([]);
    });

    describe('expected revision', () => {
      async function expectConflict(promise: Promise<unknown>, actual: number | 'no-stream'): Promise<void> {
        const error = await promise.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect((error as WrongExpectedRevisionError).actual).toBe(actual);
      }

      it("'no-stream' conflicts when the stream exists, and writes nothing", async () => {
        await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
        await expectConflict(store.append('vm-a', [fact('A', 2)], { expectedRevision: 'no-stream' }), 0);
        expect(await store.headPosition()).toBe(1);
        expect(await store.streamRevision('vm-a')).toBe(0);
      });

      it('a number conflicts unless it is the last revision, and writes nothing', async () => {
        await store.append('vm-a', [fact('A', 1), fact('A', 2)], { expectedRevision: 'no-stream' });
        await expectConflict(store.append('vm-a', [fact('A', 3)], { expectedRevision: 0 }), 1);
        await expectConflict(store.append('vm-a', [fact('A', 3)], { expectedRevision: 2 }), 1);
        await expectConflict(store.append('vm-new', [fact('N', 1)], { expectedRevision: 0 }), 'no-stream');
        expect(await store.headPosition()).toBe(2);
        expect(await store.streamRevision('vm-new')).toBe('no-stream');

        const ok = await store.append('vm-a', [fact('A', 3)], { expectedRevision: 1 });
        expect(ok).toEqual({ revision: 2, position: 3, duplicate: false });
      });

      it("'any' appends whatever the stream's revision", async () => {
        await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'any' });
        const second = await store.append('vm-a', [fact('A', 2)], { expectedRevision: 'any' });
        expect(second).toEqual({ revision: 1, position: 2, duplicate: false });
      });

      it('a conflicting append with a command id does not record the command', async () => {
        await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
        await expectConflict(
          store.append('vm-a', [fact('A', 2)], { expectedRevision: 'no-stream', commandId: 'cmd-conflict' }),
          0,
        );
        expect(await store.commandResult('cmd-conflict')).toBeUndefined();
        const retried = await store.append('vm-a', [fact('A', 2)], { expectedRevision: 0, commandId: 'cmd-conflict' });
        expect(retried).toEqual({ revision: 1, position: 2, duplicate: false });
      });

      it('refuses malformed expected revisions and stream names before writing', async () => {
        await expect(store.append('vm-a', [fact('A', 1)], { expectedRevision: -1 })).rejects.toThrow(TypeError);
        await expect(store.append('vm-a', [fact('A', 1)], { expectedRevision: 1.5 })).rejects.toThrow(TypeError);
        await expect(store.append('', [fact('A', 1)], { expectedRevision: 'any' })).rejects.toThrow(TypeError);
        expect(await store.headPosition()).toBe(0);
      });
    });

    it('appends several facts atomically: a fact that cannot be stored leaves the stream untouched', async () => {
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      const unserialisable: NewEvent = { ...fact('Bad', 3), data: { big: 10n } };
      await expect(
        store.append('vm-a', [fact('A', 2), unserialisable], { expectedRevision: 0, commandId: 'cmd-atomic' }),
      ).rejects.toThrow(/JSON/);
      expect(await store.headPosition()).toBe(1);
      expect((await collect(store.readStream('vm-a'))).map((e) => e.type)).toEqual(['A']);
      expect(await store.commandResult('cmd-atomic')).toBeUndefined();
    });

    it('an empty append writes nothing and reports the current revision', async () => {
      expect(await store.append('vm-a', [], { expectedRevision: 'no-stream' })).toEqual({
        revision: -1,
        position: 0,
        duplicate: false,
      });
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      expect(await store.append('vm-a', [], { expectedRevision: 0 })).toEqual({
        revision: 0,
        position: 1,
        duplicate: false,
      });
      await expect(store.append('vm-a', [], { expectedRevision: 'no-stream' })).rejects.toBeInstanceOf(
        WrongExpectedRevisionError,
      );
      expect(await store.headPosition()).toBe(1);
    });

    describe('idempotency by command id', () => {
      it('a second append with the same command id returns the first result and writes nothing', async () => {
        const first = await store.append('vm-a', [fact('A', 1), fact('A', 2)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-1',
        });
        expect(first).toEqual({ revision: 1, position: 2, duplicate: false });
        await store.append('vm-b', [fact('B', 3)], { expectedRevision: 'no-stream' });

        // Different facts and a now-stale expected revision: still the first result, nothing written.
        const retry = await store.append('vm-a', [fact('Other', 9)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-1',
        });
        expect(retry).toEqual({ revision: 1, position: 2, duplicate: true });
        expect(await store.headPosition()).toBe(3);
        expect((await collect(store.readStream('vm-a'))).map((e) => e.type)).toEqual(['A', 'A']);
        expect(await store.commandResult('cmd-1')).toEqual({ revision: 1, position: 2, duplicate: true });
        expect(await store.commandResult('cmd-never')).toBeUndefined();
      });

      it('the same command id on another stream is still a duplicate of the first append', async () => {
        await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-x' });
        const retry = await store.append('vm-b', [fact('B', 1)], { expectedRevision: 'no-stream', commandId: 'cmd-x' });
        expect(retry).toEqual({ revision: 0, position: 1, duplicate: true });
        expect(await store.streamRevision('vm-b')).toBe('no-stream');
      });
    });

    it('returns fresh copies: mutating a read fact does not change the store', async () => {
      await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
      const [first] = await collect(store.readStream('vm-a'));
      (first!.data as { n: number }).n = 999;
      const [again] = await collect(store.readStream('vm-a'));
      expect((again!.data as { n: number }).n).toBe(1);
    });

    it('stores JSON: dates come back as strings', async () => {
      const when = new Date('2024-05-06T07:08:09.000Z');
      await store.append('vm-a', [{ ...fact('A', 1), data: { when } }], { expectedRevision: 'no-stream' });
      const [event] = await collect(store.readAll());
      expect(event!.data).toEqual({ when: '2024-05-06T07:08:09.000Z' });
    });

    describe('subscribe', () => {
      it('delivers the facts after the checkpoint, then live ones, in order', async () => {
        for (let n = 1; n <= 5; n++) await store.append('vm-a', [fact('A', n)], { expectedRevision: 'any' });

        const seen: RecordedEvent[] = [];
        const subscription = store.subscribe(3, (event) => {
          seen.push(event);
        });
        await waitFor(() => seen.length === 2, 'the two facts after the checkpoint');
        expect(seen.map((e) => e.position)).toEqual([4, 5]);

        await store.append('vm-b', [fact('B', 6), fact('B', 7)], { expectedRevision: 'no-stream' });
        await store.append('vm-a', [fact('A', 8)], { expectedRevision: 'any' });
        await waitFor(() => seen.length === 5, 'three live facts');
        expect(seen.map((e) => e.position)).toEqual([4, 5, 6, 7, 8]);
        expect(seen.map((e) => (e.data as { n: number }).n)).toEqual([4, 5, 6, 7, 8]);
        await subscription.close();
      });

      it('awaits each callback before delivering the next fact', async () => {
        let inFlight = 0;
        let maxInFlight = 0;
        const seen: number[] = [];
        const subscription = store.subscribe(0, async (event) => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 2));
          seen.push(event.position);
          inFlight--;
        });
        for (let n = 1; n <= 10; n++) await store.append('vm-a', [fact('A', n)], { expectedRevision: 'any' });
        await waitFor(() => seen.length === 10, 'ten facts');
        expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(maxInFlight).toBe(1);
        await subscription.close();
      });

      it('delivers nothing after close', async () => {
        const seen: number[] = [];
        const subscription = store.subscribe(0, (event) => {
          seen.push(event.position);
        });
        await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'any' });
        await waitFor(() => seen.length === 1, 'the first fact');
        await subscription.close();
        await store.append('vm-a', [fact('A', 2)], { expectedRevision: 'any' });
        await new Promise((resolve) => setTimeout(resolve, 150));
        expect(seen).toEqual([1]);
      });

      it('a callback that throws stops only its own subscription, and says so on stderr', async () => {
        const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
        try {
          const failingSeen: number[] = [];
          const healthySeen: number[] = [];
          const failing = store.subscribe(0, (event) => {
            failingSeen.push(event.position);
            if (event.position === 2) throw new Error('projection bug');
          });
          const healthy = store.subscribe(0, (event) => {
            healthySeen.push(event.position);
          });
          for (let n = 1; n <= 4; n++) await store.append('vm-a', [fact('A', n)], { expectedRevision: 'any' });
          await waitFor(() => healthySeen.length === 4, 'the healthy subscription to see all facts');
          await waitFor(() => logged.mock.calls.length > 0, 'the failure to be logged');
          expect(failingSeen).toEqual([1, 2]);
          expect(String(logged.mock.calls[0]![0])).toMatch(/subscription stopped.*position 2/);
          await failing.close();
          await healthy.close();
        } finally {
          logged.mockRestore();
        }
      });
    });

    it('reads a large stream back in order across pages (20,000 facts)', async () => {
      const total = 20_000;
      const batch = 500;
      for (let start = 0; start < total; start += batch) {
        const events = Array.from({ length: batch }, (_, i) => fact('Tick', start + i));
        await store.append('vm-big', events, { expectedRevision: start === 0 ? 'no-stream' : start - 1 });
      }
      let expected = 0;
      for await (const event of store.readStream('vm-big')) {
        if (event.revision !== expected || (event.data as { n: number }).n !== expected) {
          throw new Error(`out of order at ${expected}: revision ${event.revision}`);
        }
        expected++;
      }
      expect(expected).toBe(total);

      let position = 1500;
      for await (const event of store.readAll(1500)) {
        position++;
        if (event.position !== position) throw new Error(`gap at position ${position}: got ${event.position}`);
      }
      expect(position).toBe(total);
      expect((await collect(store.readStream('vm-big', 19_998))).map((e) => e.revision)).toEqual([19_998, 19_999]);
      expect((await collect(store.readAll(0, 2500))).length).toBe(2500);
    });

    it('lets exactly one of several concurrent appenders with the same expected revision win', async () => {
      await store.append('vm-a', [fact('A', 0)], { expectedRevision: 'no-stream' });
      const contenders = 10;
      const outcomes = await Promise.allSettled(
        Array.from({ length: contenders }, (_, i) => store.append('vm-a', [fact('Race', i)], { expectedRevision: 0 })),
      );
      const winners = outcomes.filter((o) => o.status === 'fulfilled');
      const losers = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(contenders - 1);
      for (const loser of losers) expect(loser.reason).toBeInstanceOf(WrongExpectedRevisionError);
      expect(await store.streamRevision('vm-a')).toBe(1);
      expect(await store.headPosition()).toBe(2);
    });

    it('keeps docs: get after put returns the value, put replaces, unknown keys are undefined', async () => {
      expect(await store.getDoc('checkpoints', 'domain-list')).toBeUndefined();
      await store.putDoc('checkpoints', 'domain-list', { position: 41, at: 'x' });
      await store.putDoc('state', 'domain-list', [1, 2, 3]);
      expect(await store.getDoc('checkpoints', 'domain-list')).toEqual({ position: 41, at: 'x' });
      await store.putDoc('checkpoints', 'domain-list', { position: 42 });
      expect(await store.getDoc('checkpoints', 'domain-list')).toEqual({ position: 42 });
      expect(await store.getDoc('state', 'domain-list')).toEqual([1, 2, 3]);
      await store.putDoc('checkpoints', 'null-doc', null);
      expect(await store.getDoc('checkpoints', 'null-doc')).toBeNull();
      await expect(store.putDoc('checkpoints', 'bad', undefined)).rejects.toThrow(TypeError);
      expect(await store.headPosition()).toBe(0);
    });

    describe('docs written with an append', () => {
      it('writes the docs with the facts', async () => {
        const result = await store.append('vm-a', [fact('A', 1)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-docs',
          docs: [
            { collection: 'outcomes', key: 'cmd-docs', value: { ok: true, n: 1 } },
            { collection: 'checkpoints', key: 'vm-a', value: [1, 'two', null] },
          ],
        });
        expect(result).toEqual({ revision: 0, position: 1, duplicate: false });
        expect(await store.getDoc('outcomes', 'cmd-docs')).toEqual({ ok: true, n: 1 });
        expect(await store.getDoc('checkpoints', 'vm-a')).toEqual([1, 'two', null]);
        // A later append replaces a doc, as putDoc does.
        await store.append('vm-a', [fact('A', 2)], { expectedRevision: 0, docs: [{ collection: 'checkpoints', key: 'vm-a', value: 2 }] });
        expect(await store.getDoc('checkpoints', 'vm-a')).toBe(2);
      });

      it('calls a docs function once with the result (positions the store assigned)', async () => {
        await store.append('vm-b', [fact('B', 0)], { expectedRevision: 'no-stream' });
        const seen: unknown[] = [];
        const result = await store.append('vm-a', [fact('A', 1), fact('A', 2)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-fn',
          docs: (r) => {
            seen.push(r);
            return [{ collection: 'outcomes', key: 'cmd-fn', value: { revision: r.revision, position: r.position } }];
          },
        });
        expect(result).toEqual({ revision: 1, position: 3, duplicate: false });
        expect(seen).toEqual([{ revision: 1, position: 3, duplicate: false }]);
        expect(await store.getDoc('outcomes', 'cmd-fn')).toEqual({ revision: 1, position: 3 });
      });

      it('does not write the docs of a conflicting append', async () => {
        await store.append('vm-a', [fact('A', 1)], { expectedRevision: 'no-stream' });
        let called = false;
        await expect(
          store.append('vm-a', [fact('A', 2)], {
            expectedRevision: 'no-stream',
            commandId: 'cmd-lost',
            docs: [{ collection: 'outcomes', key: 'cmd-lost', value: 'list' }],
          }),
        ).rejects.toBeInstanceOf(WrongExpectedRevisionError);
        await expect(
          store.append('vm-a', [fact('A', 2)], {
            expectedRevision: 5,
            docs: () => {
              called = true;
              return [{ collection: 'outcomes', key: 'fn-lost', value: 'fn' }];
            },
          }),
        ).rejects.toBeInstanceOf(WrongExpectedRevisionError);
        expect(called).toBe(false);
        expect(await store.getDoc('outcomes', 'cmd-lost')).toBeUndefined();
        expect(await store.getDoc('outcomes', 'fn-lost')).toBeUndefined();
        expect(await store.headPosition()).toBe(1);
      });

      it('does not write the docs of a duplicate append', async () => {
        await store.append('vm-a', [fact('A', 1)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-dup',
          docs: [{ collection: 'outcomes', key: 'cmd-dup', value: 'first' }],
        });
        let called = false;
        const retry = await store.append('vm-a', [fact('A', 2)], {
          expectedRevision: 0,
          commandId: 'cmd-dup',
          docs: () => {
            called = true;
            return [{ collection: 'outcomes', key: 'cmd-dup', value: 'second' }];
          },
        });
        expect(retry).toEqual({ revision: 0, position: 1, duplicate: true });
        expect(called).toBe(false);
        await store.append('vm-b', [fact('B', 1)], {
          expectedRevision: 'no-stream',
          commandId: 'cmd-dup',
          docs: [{ collection: 'outcomes', key: 'cmd-dup', value: 'third' }],
        });
        expect(await store.getDoc('outcomes', 'cmd-dup')).toBe('first');
        expect(await store.headPosition()).toBe(1);
      });

      it('an empty append writes its docs only when its revision check passes', async () => {
        await store.append('vm-a', [], { expectedRevision: 'no-stream', docs: [{ collection: 'c', key: 'k', value: 1 }] });
        expect(await store.getDoc('c', 'k')).toBe(1);
        await expect(
          store.append('vm-a', [], { expectedRevision: 0, docs: [{ collection: 'c', key: 'k', value: 2 }] }),
        ).rejects.toBeInstanceOf(WrongExpectedRevisionError);
        expect(await store.getDoc('c', 'k')).toBe(1);
        expect(await store.headPosition()).toBe(0);
      });

      it('refuses a doc JSON cannot carry before writing anything', async () => {
        await expect(
          store.append('vm-a', [fact('A', 1)], {
            expectedRevision: 'no-stream',
            commandId: 'cmd-bad-doc',
            docs: [{ collection: 'c', key: 'k', value: { big: 10n } }],
          }),
        ).rejects.toThrow(TypeError);
        expect(await store.headPosition()).toBe(0);
        expect(await store.commandResult('cmd-bad-doc')).toBeUndefined();
        expect(await store.getDoc('c', 'k')).toBeUndefined();
      });

      it('concurrent appends with docs each write their own (or none when refused)', async () => {
        await store.append('vm-shared', [fact('S', 0)], { expectedRevision: 'no-stream' });
        const appends = Array.from({ length: 12 }, (_, i) =>
          store.append(i < 8 ? `vm-${i}` : 'vm-shared', [fact('X', i)], {
            expectedRevision: i < 8 ? 'no-stream' : 0,
            commandId: `cmd-c-${i}`,
            docs: (r) => [{ collection: 'outcomes', key: `cmd-c-${i}`, value: { position: r.position } }],
          }),
        );
        const settled = await Promise.allSettled(appends);
        expect(settled.slice(0, 8).every((s) => s.status === 'fulfilled')).toBe(true);
        expect(settled.slice(8).filter((s) => s.status === 'fulfilled')).toHaveLength(1);
        for (let i = 0; i < 12; i++) {
          const s = settled[i]!;
          const doc = await store.getDoc('outcomes', `cmd-c-${i}`);
          if (s.status === 'fulfilled') expect(doc).toEqual({ position: s.value.position });
          else expect(doc).toBeUndefined();
        }
        expect(await store.headPosition()).toBe(10);
      });
    });

    it('refuses work after close', async () => {
      await store.close();
      await expect(store.append('vm-a', [fact('A', 1)], { expectedRevision: 'any' })).rejects.toThrow(/closed/);
      await expect(store.headPosition()).rejects.toThrow(/closed/);
    });
  });
}
