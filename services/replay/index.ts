// Audit replay over the recorded log, one job per module:
//
//   recheck.ts     replayCheck: re-runs every recorded decision through the current machine (decide on the state
//                  before it, with the host as it was then) and reports the ones today's rules would refuse;
//                  verifies every stream's hash chain (which covers each decision's recorded command) and names
//                  each changed, removed or reordered fact, and each decision whose metadata disagrees with its
//                  recorded command. Its parts: pass.ts (what the pass does with each record), auditRecords.ts
//                  (accepted no-ops and refusals re-decided), chains.ts (findings on one record, the anchor at
//                  the log's head), streamCheck.ts (the second look at a flagged stream), types.ts (the report).
//   timeTravel.ts  stateAt: the domain list and snapshot trees as of a global position or a time.
//   whatIf.ts      whatIf: replays the recorded commands (accepted and refused) with some rules switched off and
//                  lists every decision that would come out differently; switchableRules, assertSwitchableRules.
//   outcome.ts     decide() made safe for damaged records, and what a decision came to (Outcome).
//   progress.ts    progress reports of a pass.
//
// All three fold the global log once, in position order, with plain reducers (machines/evolve), never an
// XState actor per event.
export { ANCHOR_COLLECTION, ANCHOR_KEY, type TamperFinding, type TamperProblem } from './chains';
export type { Outcome } from './outcome';
export type { ReplayProgress } from './progress';
export { replayCheck } from './recheck';
export type { RefusalDrift, ReplayOptions, ReplaySummary, ReplayViolation } from './types';
export { stateAt, type StateAt } from './timeTravel';
export { assertSwitchableRules, switchableRules, whatIf, type WhatIfChange, type WhatIfOptions, type WhatIfReport } from './whatIf';
