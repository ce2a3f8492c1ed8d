// Conversions between vmledger's numbers and the client's: bigint revisions, expected revisions, $all
// positions, event ids derived from a command id, and a client event as a RecordedEvent.

import { createHash } from 'node:crypto';

import { ANY, NO_STREAM, type AppendExpectedRevision, type Position, type ResolvedEvent } from '@eventstore/db-client';

import type { ExpectedRevision, RecordedEvent } from '../types';

export function toSafeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(
      `${what} ${value.toString()} from EventStoreDB is beyond Number.MAX_SAFE_INTEGER: vmledger cannot represent it exactly`,
    );
  }
  return Number(value);
}

/** Our expected revision as the client wants it: numbers become bigints, 'no-stream' NO_STREAM, 'any' ANY. */
export function toEsdbExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  if (expected === 'any') return ANY;
  if (expected === 'no-stream') return NO_STREAM;
  return BigInt(expected);
}

/** The actual revision an ESDB WrongExpectedVersionError reports, as our WrongExpectedRevisionError wants it. */
export function fromEsdbCurrentRevision(current: bigint | string | undefined): number | 'no-stream' {
  if (typeof current === 'bigint') return current < 0n ? 'no-stream' : toSafeNumber(current, 'stream revision');
  return 'no-stream';
}

export function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

/** A UUID derived from the command id and the fact's index, so a command's facts can be found again. */
export function commandEventId(commandId: string, index: number): string {
  const hex = createHash('sha256').update(`vmledger\u0000${commandId}\u0000${index}`, 'utf8').digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}


/** A point of $all: every fact with a position at or before `pos` is counted in `ordinal` (pos null: the start). */
export interface Point {
  ordinal: number;
  pos: Position | null;
}

export interface PositionsEntry {
  revision: number;
  position: number;
  count: number;
}

export type EsdbEvent = NonNullable<ResolvedEvent['event']>;

export function toRecorded(stream: string, event: EsdbEvent, position: number): RecordedEvent {
  // The client parsed the JSON; a JSON round trip gives every reader its own copy.
  return {
    stream,
    revision: toSafeNumber(event.revision, 'stream revision'),
    position,
    type: event.type,
    data: JSON.parse(JSON.stringify(event.data ?? null)) as unknown,
    metadata: JSON.parse(JSON.stringify(event.metadata ?? {})) as RecordedEvent['metadata'],
  };
}
