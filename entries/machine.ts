// `vmledger/machine`: the pure domain machine (no I/O): command and fact schemas, decide and evolve, the XState
// definition, the model with its derived states, the guards and the rule catalog of docs/rules.md.
export * from '../machines/commands';
export * from '../machines/decide';
export * from '../machines/domainMachine';
export * from '../machines/machineGraph';
export * from '../machines/states';
export * from '../machines/errors';
export * from '../machines/events';
export * from '../machines/evolve';
export { GUARDS, emptyHostView, type Guard, type GuardId, type HostView } from '../machines/guards';
export * from '../machines/model';
export * from '../machines/refusals';
export * from '../machines/rules';
export * from '../machines/verbs';
