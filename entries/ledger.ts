// `vmledger/ledger`: the embedded ledger (validate, decide, append durably, answer) and the replay that
// re-checks a store's history against today's rules.
export { createLedger, openLedger, type LedgerOptions } from '../services/ledger';
export type { CommandOutcome, Ledger, LoadedDomain } from '../services/ledger-types';
export { replayCheck, stateAt, whatIf, type ReplaySummary, type StateAt, type WhatIfReport } from '../services/replay';
