// append() without its docs (see "Global positions" in index.ts): the payload of one message, published under
// the two expectations; conflicts with other writers and transport failures are retried here.

import { randomUUID } from 'node:crypto';

import { headers as makeHeaders, TimeoutError } from '@nats-io/nats-core';

import { NO_STREAM_REVISION, checkExpectedRevision, encodeEvents, sleep, type EncodedEvent } from '../common';
import { WrongExpectedRevisionError, type AppendOptions, type AppendResult, type ExpectedRevision, type NewEvent } from '../types';
import { commandKey, commandMsgId, encodeRecord, lookupCommand, reserveCommand } from './commands';
import { isTransient, isWrongLastSequence, withTransientRetries } from './errors';
import type { JetStreamLog } from './log';
import {
  HEADER_COUNT,
  HEADER_POSITION,
  HEADER_PREVIOUS,
  HEADER_REVISION,
  lastPositionOf,
  lastRevisionOf,
  parseAppend,
  parsePayload,
  resultOf,
  toRawFromStored,
  type SubjectHead,
} from './messages';

export async function appendWithoutDocs(log: JetStreamLog, stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
  const encoded = encodeEvents(stream, events);
  const { commandId } = options;
  const subject = log.subjectFor(stream);
  const appendId = randomUUID();
  const payload = encoded.length > 0 ? buildPayload(log, stream, appendId, commandId, encoded) : undefined;

  if (commandId === undefined) {
    if (!payload) return emptyAppend(log, stream, subject, options.expectedRevision);
    return log.appendQueue.run(() => publishAppend(log, stream, subject, payload, encoded.length, options.expectedRevision, appendId, undefined));
  }

  const key = commandKey(commandId);
  if (!payload) {
    const known = await lookupCommand(log, commandId, key);
    if (known.result) return known.result;
    return emptyAppend(log, stream, subject, options.expectedRevision);
  }

  const reservation = await reserveCommand(log, commandId, key, stream, subject);
  if ('result' in reservation) return reservation.result;
  await log.settings.hooks.afterReserve?.(commandId);

  let result: AppendResult;
  try {
    result = await log.appendQueue.run(() =>
      publishAppend(log, stream, subject, payload, encoded.length, options.expectedRevision, appendId, commandId),
    );
  } catch (error) {
    if (error instanceof WrongExpectedRevisionError || error instanceof TypeError) {
      // Refused: nothing was written, the id stays free. If someone took the reservation over, it is theirs.
      await log.retry('release a command reservation', () =>
        log.commands.delete(key, { previousSeq: reservation.revision }),
      ).catch(() => {});
    }
    // Otherwise the outcome may be unknown: the pending record stays and the next look-up resolves it.
    throw error;
  }
  await log.settings.hooks.afterPublish?.(commandId);
  try {
    await log.retry('record the command result', () =>
      log.commands.update(key, encodeRecord({
        state: 'done',
        commandId,
        stream,
        subject,
        afterSeq: reservation.afterSeq,
        revision: result.revision,
        position: result.position,
      }), reservation.revision),
    );
  } catch (error) {
    // The facts are stored; the pending record is completed by the next look-up of this id.
    if (!isWrongLastSequence(error)) {
      console.warn(`vmledger: command '${commandId}' was appended but its record stays pending (${(error as Error).message}); the next look-up completes it`);
    }
  }
  return result;
}

export function buildPayload(log: JetStreamLog, stream: string, appendId: string, commandId: string | undefined, events: EncodedEvent[]): Uint8Array {
  const facts = events.map((e) => `{"type":${JSON.stringify(e.type)},"data":${e.data},"metadata":${e.metadata}}`);
  const head = `{"v":1,"stream":${JSON.stringify(stream)},"appendId":${JSON.stringify(appendId)}` +
    (commandId === undefined ? '' : `,"commandId":${JSON.stringify(commandId)}`);
  const bytes = Buffer.from(`${head},"facts":[${facts.join(',')}]}`, 'utf8');
  const max = log.nc.info?.max_payload ?? 1024 * 1024;
  if (bytes.length + 1024 > max) {
    throw new RangeError(
      `append to stream '${stream}' is ${bytes.length} bytes, more than the NATS server's max_payload ` +
        `(${max} bytes, less 1 KiB for headers): nothing was appended; split the facts or raise max_payload`,
    );
  }
  return bytes;
}

export async function emptyAppend(log: JetStreamLog, stream: string, subject: string, expected: ExpectedRevision): Promise<AppendResult> {
  const last = await log.lastOnSubject(subject);
  checkExpectedRevision(stream, expected, last ? lastRevisionOf(last) : 'no-stream');
  return last
    ? { revision: lastRevisionOf(last), position: lastPositionOf(last), duplicate: false }
    : { revision: NO_STREAM_REVISION, position: 0, duplicate: false };
}

/**
 * Publishes one append message under both expectations, retrying global conflicts and transport failures.
 * Runs inside appendQueue: one append of this process at a time.
 */
export async function publishAppend(
  log: JetStreamLog,
  stream: string,
  subject: string,
  payload: Uint8Array,
  count: number,
  expected: ExpectedRevision,
  appendId: string,
  commandId: string | undefined,
): Promise<AppendResult> {
  log.assertOpen();
  const msgID = commandId === undefined ? `a-${appendId}` : commandMsgId(commandId);
  /** Set once a publish may have reached the server without us seeing the ack: the subject seq before it. */
  let uncertainAfter: number | undefined;
  /** Whether the latest attempt failed while publishing (its message may be stored). */
  let publishing = false;
  return withTransientRetries(
    log.settings.retryBudgetMs,
    async () => {
      for (let conflicts = 0; ; conflicts++) {
        publishing = false;
        let last: SubjectHead | undefined;
        try {
          if (uncertainAfter !== undefined) {
            const mine = await log.findOnSubject(subject, uncertainAfter, (p) => p.appendId === appendId);
            if (mine) {
              log.forgetSubjectHead(subject);
              return resultOf(mine, false);
            }
          }
          last = log.subjectHeads.get(subject);
          const cached = last !== undefined;
          if (!last) last = await log.readSubjectHead(subject);
          try {
            checkExpectedRevision(stream, expected, last.seq === 0 ? 'no-stream' : last.lastRevision);
          } catch (conflict) {
            if (!cached) throw conflict;
            last = await log.readSubjectHead(subject);
            checkExpectedRevision(stream, expected, last.seq === 0 ? 'no-stream' : last.lastRevision);
          }
          let head = log.head;
          if (!head || last.seq > head.seq) head = await log.readHead();
          const firstPosition = head.lastPosition + 1;
          const firstRevision = last.lastRevision + 1;
          const hdrs = makeHeaders();
          hdrs.set(HEADER_POSITION, String(firstPosition));
          hdrs.set(HEADER_REVISION, String(firstRevision));
          hdrs.set(HEADER_COUNT, String(count));
          hdrs.set(HEADER_PREVIOUS, String(last.seq));
          publishing = true;
          const ack = await log.js.publish(subject, payload, {
            headers: hdrs,
            msgID,
            expect: { lastSequence: head.seq, lastSubjectSequence: last.seq, streamName: log.streamName },
          });
          if (log.settings.hooks.loseAck?.()) {
            // What nats.js throws when the PubAck does not come back in time (its message is just 'timeout').
            throw new TimeoutError({ cause: new Error('simulated: the PubAck was lost') });
          }
          if (ack.duplicate) {
            // The server already holds a message with this id: our own earlier attempt, or (for a command id) the
            // first append of this command. Either way its result is the answer.
            log.forgetSubjectHead(subject);
            const stored = parseAppend(toRawFromStored(await log.getBySeq(ack.seq)));
            const storedPayload = parsePayload(stored);
            return resultOf(stored, storedPayload.appendId !== appendId);
          }
          const lastPosition = firstPosition + count - 1;
          const lastRevision = firstRevision + count - 1;
          log.head = { seq: ack.seq, lastPosition };
          log.remember(ack.seq, firstPosition, count);
          log.rememberSubjectHead(subject, { seq: ack.seq, lastRevision, lastPosition });
          return { revision: lastRevision, position: lastPosition, duplicate: false };
        } catch (error) {
          if (log.closed) throw log.closedError();
          if (isWrongLastSequence(error)) {
            // Someone appended (to this stream or another): re-read the heads and try again at once (not a failure
            // of the store: no backoff, no budget).
            log.head = undefined;
            log.forgetSubjectHead(subject);
            if (conflicts >= 3) await sleep(Math.min(50, conflicts) * Math.random());
            continue;
          }
          if (isTransient(error)) {
            // Retried by withTransientRetries (its backoff, within the budget), after re-reading both heads.
            if (publishing && uncertainAfter === undefined) uncertainAfter = last?.seq ?? 0;
            log.head = undefined;
            log.forgetSubjectHead(subject);
          }
          throw error;
        }
      }
    },
    (error) =>
      publishing || uncertainAfter !== undefined
        ? log.unavailable(
            `append to stream '${stream}' was not acknowledged`,
            error,
            'it may or may not have been stored (a retry with the same command id finds out and applies it at most once)',
          )
        : log.unavailable(`could not append to stream '${stream}'`, error),
    () => log.assertOpen(),
  );
}
