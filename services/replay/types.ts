// What replayCheck reports: its options, the violations of today's rules, the refusals that would be decided
// differently, and the summary (tamper findings are chains.ts's).
import type { RecordedEvent } from '../eventstore/types';
import type { TamperFinding } from './chains';
import type { Outcome } from './outcome';
import type { ReplayProgress } from './progress';

export interface ReplayOptions {
  onProgress?: (progress: ReplayProgress) => void;
  /** Report progress every this many facts (default 10 000) and once at the end. */
  progressEvery?: number;
  /**
   * Keep a verified anchor (head position and hash, in docs `replay/anchor`) and check the log still holds it:
   * that is how facts cut from the end of the log are noticed. Default true.
   */
  anchor?: boolean;
}

/** A recorded decision (or hypervisor report) the current rules would refuse. */
export interface ReplayViolation {
  position: number;
  stream: string;
  revision: number;
  commandId: string;
  verb: string;
  host: string;
  domain: string;
  rule: string;
  code: number;
  message: string;
}

/** A recorded refusal the current rules would decide differently (informational: nothing was applied). */
export interface RefusalDrift {
  position: number;
  commandId: string;
  verb: string;
  host: string;
  domain: string;
  recorded: { rule: string; message: string };
  now: Outcome;
}

export interface ReplaySummary {
  /** True when there is no violation and no tampering. */
  ok: boolean;
  /**
   * Facts read (every stream), decisions re-run (accepted commands that appended facts), refusals read, accepted
   * no-ops re-run (on the domain revision each names), hypervisor reports.
   */
  facts: number;
  decisions: number;
  refusals: number;
  noops: number;
  hypervisorReports: number;
  /** Effects recorded as intended before they were performed (services/intents.ts), and how many are still open. */
  intents: number;
  openIntents: number;
  /** Domain streams seen. */
  domains: number;
  head: number;
  elapsedMs: number;
  /** Facts per second. */
  rate: number;
  violations: ReplayViolation[];
  tampered: TamperFinding[];
  refusalDrift: RefusalDrift[];
}

/** Where the re-check puts a refusal of today's rules. */
export type ViolationSink = (event: RecordedEvent, verb: string, host: string, domain: string, refusal: { rule: string; code: number; message: string }) => void;
