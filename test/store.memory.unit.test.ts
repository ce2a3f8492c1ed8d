import { describe, expect, it } from 'vitest';

import { createMemoryEventStore } from '../services/eventstore/memory';
import { describeStoreContract, fact } from './store-contract';

describeStoreContract('memory', async () => {
  const store = createMemoryEventStore();
  return { store, cleanup: () => store.close() };
});

describe('memory store: docs of an append', () => {
  it('a docs function that throws fails the append and writes nothing, as in a transaction', async () => {
    const store = createMemoryEventStore();
    await expect(
      store.append('vm-a', [fact('A', 1)], {
        expectedRevision: 'no-stream',
        commandId: 'cmd-throws',
        docs: () => {
          throw new Error('docs bug');
        },
      }),
    ).rejects.toThrow('docs bug');
    expect(await store.headPosition()).toBe(0);
    expect(await store.commandResult('cmd-throws')).toBeUndefined();
    expect(await store.streamRevision('vm-a')).toBe('no-stream');
    await store.close();
  });
});
