// JetStream's answers told apart (a conflict, no message, a transient failure) and the retry budget for the
// transient ones.

import type { NatsError } from 'nats';
import pRetry from 'p-retry';

/** JetStream's error code for a failed expected-last-sequence (stream or subject) check. */
export const JS_WRONG_LAST_SEQUENCE = 10071;
export const JS_NO_MESSAGE_FOUND = 10037;
export const JS_STREAM_NOT_FOUND = 10059;

export function jsErrorCode(error: unknown): number | undefined {
  return (error as NatsError | undefined)?.api_error?.err_code;
}

export function isWrongLastSequence(error: unknown): boolean {
  return jsErrorCode(error) === JS_WRONG_LAST_SEQUENCE;
}

export function isNoMessage(error: unknown): boolean {
  return jsErrorCode(error) === JS_NO_MESSAGE_FOUND || (error as NatsError | undefined)?.code === '404';
}

/** Failures after which the same request may succeed: timeouts, no responders, a dropped or restarting server. */
export function isTransient(error: unknown): boolean {
  const e = error as NatsError | undefined;
  if (!e) return false;
  if (e.api_error) return e.api_error.code === 503 || e.api_error.code === 408;
  return ['TIMEOUT', '503', 'DISCONNECT', 'CONNECTION_REFUSED', 'CONNECTION_TIMEOUT', 'REQUEST_ERROR'].includes(e.code);
}

/** A transient failure in words: JetStream's "no responders"/503 means no leader (or no quorum) answered. */
export function describeTransient(error: unknown): string {
  const e = error as NatsError | undefined;
  const message = e?.api_error?.description ?? (error as Error | undefined)?.message ?? String(error);
  if (e?.code === '503' || e?.api_error?.code === 503) {
    return `no JetStream leader or quorum answered: ${message === '503' ? '503 no responders' : message}`;
  }
  if (e?.code === 'TIMEOUT' || e?.api_error?.code === 408) return `request timed out: ${message}`;
  return message;
}

/**
 * Runs `work` (which must be safe to repeat), retrying transient failures with a backoff of 50 ms doubling up to
 * 1 s, never past the budget (so the caller hears back within budget + one request timeout), until `budgetMs` has
 * passed; then the last one is handed to `giveUp` to explain. `check` runs before each attempt and after each
 * failure (e.g. to stop at once when the store was closed meanwhile). Any other failure is thrown as it is.
 */
export async function withTransientRetries<T>(
  budgetMs: number,
  work: () => Promise<T>,
  giveUp: (error: unknown) => Error,
  check: () => void = () => {},
): Promise<T> {
  try {
    return await pRetry(
      () => {
        check();
        return work();
      },
      {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 50,
        factor: 2,
        maxTimeout: 1_000,
        maxRetryTime: budgetMs,
        onFailedAttempt: () => check(),
        shouldRetry: ({ error }) => isTransient(error),
      },
    );
  } catch (error) {
    // p-retry hands back the last failure: a transient one only when the budget ran out.
    throw isTransient(error) ? giveUp(error) : error;
  }
}
