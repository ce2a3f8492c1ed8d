// `vmledger/stores`: the event stores behind one interface. `openEventStore(spec)` opens `memory`,
// `sqlite:PATH`, `jetstream://HOST:PORT` or `esdb://HOST:PORT` (the last two load their client on first use).
export * from '../services/eventstore/index';
