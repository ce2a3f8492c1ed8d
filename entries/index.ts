// `vmledger`: the ledger and the stores it runs on. The NATS client is `vmledger/client`, the pure machine
// `vmledger/machine`.
export * from './ledger';
export * from './stores';
