// Progress of a pass over the log, for the CLI's progress bar.

export interface ReplayProgress {
  /** Facts read so far, and the log's head when the check started. */
  done: number;
  total: number;
  elapsedMs: number;
  /** Facts per second so far. */
  rate: number;
}

export function progressOf(done: number, total: number, started: number): ReplayProgress {
  const elapsedMs = performance.now() - started;
  return { done, total: Math.max(total, done), elapsedMs, rate: Math.round((done / Math.max(elapsedMs, 1e-3)) * 1000) };
}
