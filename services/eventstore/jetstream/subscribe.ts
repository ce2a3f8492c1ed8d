// The live source behind subscribe(): facts after a position, then new ones, from an ordered consumer.
// follow.ts reopens it after a failure.

import type { RecordedEvent } from '../types';
import type { JetStreamLog } from './log';
import { factsOf, parseAppend } from './messages';
import { seqOfPosition } from './read';

/** Facts after `after`, then live ones, from an ordered consumer (which re-creates itself after a restart). */
export async function* liveFacts(log: JetStreamLog, after: number, signal: AbortSignal): AsyncIterable<RecordedEvent> {
  const head = await log.readHead();
  const startSeq = after >= head.lastPosition ? head.seq + 1 : await seqOfPosition(log, after + 1, head);
  if (signal.aborted) return;
  const consumer = await log.js.consumers.get(log.streamName, { opt_start_seq: startSeq });
  const messages = await consumer.consume({ max_messages: 128 });
  const stop = () => messages.stop();
  signal.addEventListener('abort', stop);
  try {
    for await (const m of messages) {
      if (signal.aborted) return;
      if (m.subject === log.metaSubject) continue;
      yield* factsOf(parseAppend({ seq: m.seq, subject: m.subject, header: m.headers, data: m.data }));
    }
  } finally {
    signal.removeEventListener('abort', stop);
    messages.stop();
    await consumer.delete().catch(() => {});
  }
}
