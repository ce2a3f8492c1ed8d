// Reading the log stream: one domain stream (walking back along Vmledger-Previous), the global log from a
// position, heads, and seeking the message of a global position.

import type { StoredMsg } from '@nats-io/jetstream';

import { assertLimit, assertPosition, assertRevision, assertStreamName } from '../common';
import { StoreCorruptError, type RecordedEvent } from '../types';
import type { JetStreamLog } from './log';
import { factsOf, lastRevisionOf, parseAppend, toRawFromStored, type AppendMessage, type Head, type RawMsg } from './messages';

/** How many gets of a range of the log are in flight at once. */
export const READ_AHEAD = 32;
/** How many messages readStream fetches walking back along Vmledger-Previous before it reads the subject whole. */
export const MAX_WALK_BACK = 64;

export async function* readStream(log: JetStreamLog, stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
  log.assertOpen();
  assertStreamName(stream);
  assertRevision(fromRevision);
  const subject = log.subjectFor(stream);
  const last = await log.lastOnSubject(subject);
  if (!last || fromRevision > lastRevisionOf(last)) return;

  // Walk back along Vmledger-Previous: a read near the end (the usual case: after a state checkpoint) costs a
  // few gets and never scans the subject.
  const chain: AppendMessage[] = [last];
  while (chain[0]!.firstRevision > fromRevision && chain.length < MAX_WALK_BACK) {
    const next = chain[0]!;
    if (next.previous === 0) {
      throw new StoreCorruptError(`message ${next.seq} of stream '${stream}' starts at revision ${next.firstRevision} but has no previous message`);
    }
    const previous = parseAppend(toRawFromStored(await log.getBySeq(next.previous)));
    if (previous.subject !== subject || previous.firstRevision + previous.count !== next.firstRevision) {
      throw new StoreCorruptError(`stream '${stream}': message ${previous.seq} does not precede message ${next.seq}`);
    }
    chain.unshift(previous);
  }
  if (chain[0]!.firstRevision <= fromRevision) {
    for (const msg of chain) yield* factsOf(msg, stream, fromRevision);
    return;
  }
  let expected = fromRevision;
  for await (const raw of messages(log, 1, last.seq, subject)) {
    const msg = parseAppend(raw);
    for (const event of factsOf(msg, stream, fromRevision)) {
      if (event.revision !== expected) {
        throw new StoreCorruptError(`stream '${stream}' jumps from revision ${expected - 1} to ${event.revision}`);
      }
      expected++;
      yield event;
    }
  }
}

export async function streamRevision(log: JetStreamLog, stream: string): Promise<number | 'no-stream'> {
  log.assertOpen();
  assertStreamName(stream);
  const last = await log.lastOnSubject(log.subjectFor(stream));
  return last ? lastRevisionOf(last) : 'no-stream';
}

export async function* readAll(log: JetStreamLog, after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
  log.assertOpen();
  assertPosition(after);
  assertLimit(limit);
  if (limit === 0) return;
  const head = await log.readHead();
  if (after >= head.lastPosition) return;
  const startSeq = await seqOfPosition(log, after + 1, head);
  let expected = after + 1;
  let remaining = limit;
  for await (const raw of messages(log, startSeq, head.seq)) {
    if (raw.subject === log.metaSubject) continue;
    const msg = parseAppend(raw);
    for (const event of factsOf(msg)) {
      if (event.position < expected) continue;
      if (event.position !== expected) {
        throw new StoreCorruptError(`${log.label}: the log jumps from position ${expected - 1} to ${event.position}`);
      }
      expected++;
      yield event;
      if (--remaining === 0) return;
    }
  }
}

export async function headPosition(log: JetStreamLog): Promise<number> {
  log.assertOpen();
  return (await log.readHead()).lastPosition;
}

/**
 * Messages with sequence in [from, to] (on `subject` only, when given), in order, read from the stream leader.
 * Never through a consumer: the server places one on any replica, and on a cluster nats-server 2.9 was seen to
 * keep a healed node's copy at the sequence of the cut for minutes while the leader called it current (a read
 * waiting there for the last message never ended), and a read that went on past such a copy got one fact twice
 * (most likely a restarted leader's copy holding a message never committed). The leader holds exactly the
 * committed messages.
 */
export async function* messages(log: JetStreamLog, from: number, to: number, subject?: string): AsyncIterable<RawMsg> {
  if (subject === undefined) {
    // Every sequence holds a message (nothing is ever deleted from the log), so several gets are in flight.
    const inFlight: Promise<StoredMsg>[] = [];
    let nextSeq = from;
    const fill = () => {
      while (inFlight.length < READ_AHEAD && nextSeq <= to) {
        const get = log.getBySeq(nextSeq++);
        get.catch(() => {}); // awaited below; a read abandoned midway must not be an unhandled rejection
        inFlight.push(get);
      }
    };
    fill();
    while (inFlight.length > 0) {
      const msg = await inFlight.shift()!;
      fill();
      yield toRawFromStored(msg);
    }
    return;
  }
  for (let seq = from; seq <= to; ) {
    const msg = await log.getMessage('read a message', { seq, next_by_subj: subject });
    if (!msg || msg.seq > to) return;
    yield toRawFromStored(msg);
    seq = msg.seq + 1;
  }
}

/** Sequence of the message holding global position `position` (1 <= position <= head), by binary search. */
export async function seqOfPosition(log: JetStreamLog, position: number, head: Head): Promise<number> {
  // Every message after the marker holds at least one fact, so the message of `position` is at or before
  // sequence position + 1.
  let lo = 2;
  let hi = Math.min(head.seq, position + 1);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const first = await firstPositionAt(log, mid);
    if (first <= position) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export async function firstPositionAt(log: JetStreamLog, seq: number): Promise<number> {
  const known = log.seen.get(seq);
  if (known) return known.firstPosition;
  const msg = parseAppend(toRawFromStored(await log.getBySeq(seq)));
  log.remember(seq, msg.firstPosition, msg.count);
  return msg.firstPosition;
}
