// `vmledger/client`: the typed client of the vmledger command service on NATS. Bring your own connection
// (`connect()` from the nats package) and call `createVmledgerClient(nc)`.
export * from '../services/client';
export { commandSubject, eventSubject, eventSubjectFilter, type CommandReply, type ErrorReply } from '../services/nats/protocol';
