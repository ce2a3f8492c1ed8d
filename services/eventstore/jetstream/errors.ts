// JetStream's answers told apart (a conflict, no message, a transient failure) and the retry budget for the
// transient ones.

import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { ConnectionError, RequestError, TimeoutError } from '@nats-io/nats-core';
import pRetry from 'p-retry';

/** JetStream's error codes for a failed expected-last-sequence (stream or subject) check. */
export const JS_WRONG_LAST_SEQUENCE = JetStreamApiCodes.StreamWrongLastSequence; // 10071
/** The same check failing when the server cannot tell the last sequence (newer servers). */
export const JS_WRONG_LAST_SEQUENCE_UNKNOWN = JetStreamApiCodes.StreamWrongLastSequenceUnknown; // 10164
export const JS_STREAM_NOT_FOUND = JetStreamApiCodes.StreamNotFound; // 10059

/** JetStream's own error code (`err_code`, e.g. 10071) of an API error; undefined for any other failure. */
export function jsErrorCode(error: unknown): number | undefined {
  return error instanceof JetStreamApiError ? error.code : undefined;
}

/** The HTTP-like status JetStream answered with (503 no leader, 408 timed out, 400 …); undefined when it did not answer. */
function jsStatus(error: unknown): number | undefined {
  return error instanceof JetStreamApiError ? error.status : undefined;
}

export function isWrongLastSequence(error: unknown): boolean {
  const code = jsErrorCode(error);
  return code === JS_WRONG_LAST_SEQUENCE || code === JS_WRONG_LAST_SEQUENCE_UNKNOWN;
}

/**
 * Nobody answered on the JetStream API subject: nats.js v3 wraps the no-responders of a JetStream request in
 * `JetStreamNotEnabled` ("jetstream is not enabled"; the class is internal to @nats-io/jetstream, hence the name
 * check), its cause the RequestError. On a server without JetStream that is final; on a cluster it is what a
 * stream without a leader looks like for a moment. (The same class is also thrown for an account without
 * JetStream, code 10039: that one has a JetStreamApiError as its cause and is not a no-responders.)
 */
export function isJetStreamNoResponders(error: unknown): boolean {
  if (error instanceof RequestError) return error.isNoResponders();
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return (error as Error | undefined)?.name === 'JetStreamNotEnabled' && cause instanceof RequestError && cause.isNoResponders();
}

/** Failures after which the same request may succeed: timeouts, no responders, a dropped or restarting server. */
export function isTransient(error: unknown): boolean {
  if (!error) return false;
  if (error instanceof JetStreamApiError) return error.status === 503 || error.status === 408;
  if (error instanceof TimeoutError || error instanceof ConnectionError) return true;
  if (isJetStreamNoResponders(error)) return true;
  // A request cut by the connection ("connection disconnected", "connection closed"): a RequestError with nothing
  // behind it, or (nats-core's request wraps what cut it) behind another RequestError. Not one caused by a
  // permissions violation or anything else the server said.
  return error instanceof RequestError && (error.cause === undefined || error.cause instanceof RequestError);
}

/** A transient failure in words: JetStream's "no responders"/503 means no leader (or no quorum) answered. */
export function describeTransient(error: unknown): string {
  const message = (error as Error | undefined)?.message ?? String(error);
  if (isJetStreamNoResponders(error)) {
    // Named by the RequestError ("no responders: '<subject>'"), not by JetStreamNotEnabled's "jetstream is not
    // enabled", which is wrong on a cluster that merely has no leader for the stream right now.
    const request = error instanceof RequestError ? error : ((error as { cause?: unknown }).cause as RequestError);
    return `no JetStream leader or quorum answered: ${request.message}`;
  }
  if (jsStatus(error) === 503) return `no JetStream leader or quorum answered: ${message}`;
  if (error instanceof TimeoutError || jsStatus(error) === 408) return `request timed out: ${message}`;
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
