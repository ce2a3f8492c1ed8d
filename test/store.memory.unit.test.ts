import { createMemoryEventStore } from '../services/eventstore/memory';
import { describeStoreContract } from './store-contract';

describeStoreContract('memory', async () => {
  const store = createMemoryEventStore();
  return { store, cleanup: () => store.close() };
});
