// Audit replay over the recorded log, one job per module:
//
//   recheck.ts     replayCheck: re-runs every recorded decision through the current machine (decide on the state
//                  before it, with the host as it was then) and reports the ones today's rules would refuse;
//                  verifies every stream's hash chain (which covers each decision's recorded command) and names
//                  each changed, removed or reordered fact, and each decision whose metadata disagrees with its
//                  recorded command.
//   chains.ts      the hash chains and tamper findings replayCheck reports: a record's metadata and signature
//                  against its hashed command, the anchor at the log's head, the second look at a flagged stream.
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
export { replayCheck, type RefusalDrift, type ReplayOptions, type ReplaySummary, type ReplayViolation } from './recheck';
export { stateAt, type StateAt } from './timeTravel';
export { assertSwitchableRules, switchableRules, whatIf, type WhatIfChange, type WhatIfOptions, type WhatIfReport } from './whatIf';
