// One append message of the log stream: the subject token of a stream name, the headers saying where its facts
// sit, the JSON payload holding them, and the facts read back out of it.

import { createHash } from 'node:crypto';

import type { StoredMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';

import { NO_STREAM_REVISION } from '../common';
import { StoreCorruptError, type AppendResult, type RecordedEvent } from '../types';

export const HEADER_POSITION = 'Vmledger-Position';
export const HEADER_REVISION = 'Vmledger-Revision';
export const HEADER_COUNT = 'Vmledger-Count';
export const HEADER_PREVIOUS = 'Vmledger-Previous';
export const MAX_TOKEN_BYTES = 200;

/**
 * One subject token (or KV key token) for any string: bytes outside [A-Za-z0-9-] become `_XX` (upper-case hex of
 * the UTF-8 byte), the empty string becomes `_`, and a token longer than 200 bytes becomes `=` + sha256 hex.
 * Escaped tokens never contain `=` and a lone `_` is never an escape, so the forms cannot collide.
 */
export function encodeToken(name: string): string {
  if (name === '') return '_';
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out.length > MAX_TOKEN_BYTES) return `=${createHash('sha256').update(name, 'utf8').digest('hex')}`;
  return out;
}

/** A message of the log stream as read by get or by a consumer. */
export interface RawMsg {
  seq: number;
  subject: string;
  header: MsgHdrs | undefined;
  data: Uint8Array;
}

/** What the headers of one append message say. */
export interface AppendMessage extends RawMsg {
  firstPosition: number;
  firstRevision: number;
  count: number;
  previous: number;
}

export interface Payload {
  v: 1;
  stream: string;
  appendId: string;
  commandId?: string;
  facts: Array<{ type: string; data: unknown; metadata: RecordedEvent['metadata'] }>;
}

export interface Head {
  seq: number;
  lastPosition: number;
}

/** A stream's last message: sequence 0 and revision -1 when the stream has none. */
export interface SubjectHead {
  seq: number;
  lastRevision: number;
  lastPosition: number;
}

export const NO_SUBJECT_HEAD: SubjectHead = { seq: 0, lastRevision: NO_STREAM_REVISION, lastPosition: 0 };

export const decoder = new TextDecoder();

export function headerInt(msg: RawMsg, name: string): number {
  const text = msg.header?.get(name);
  const value = text === undefined || text === '' ? Number.NaN : Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new StoreCorruptError(
      `message ${msg.seq} on '${msg.subject}' is not a vmledger append: header ${name} is ${JSON.stringify(text ?? null)}`,
    );
  }
  return value;
}

export function parseAppend(msg: RawMsg): AppendMessage {
  return {
    ...msg,
    firstPosition: headerInt(msg, HEADER_POSITION),
    firstRevision: headerInt(msg, HEADER_REVISION),
    count: headerInt(msg, HEADER_COUNT),
    previous: headerInt(msg, HEADER_PREVIOUS),
  };
}

export function lastPositionOf(msg: AppendMessage): number {
  return msg.firstPosition + msg.count - 1;
}

export function lastRevisionOf(msg: AppendMessage): number {
  return msg.firstRevision + msg.count - 1;
}

export function parsePayload(msg: RawMsg): Payload {
  let payload: Payload;
  try {
    payload = JSON.parse(decoder.decode(msg.data)) as Payload;
  } catch (error) {
    throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' is not JSON: ${(error as Error).message}`);
  }
  if (payload?.v !== 1 || typeof payload.stream !== 'string' || !Array.isArray(payload.facts)) {
    throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' is not a vmledger append`);
  }
  return payload;
}

export function toRawFromStored(m: StoredMsg): RawMsg {
  return { seq: m.seq, subject: m.subject, header: m.header, data: m.data };
}

export function* factsOf(msg: AppendMessage, stream?: string, fromRevision = 0): Iterable<RecordedEvent> {
  const payload = parsePayload(msg);
  if (stream !== undefined && payload.stream !== stream) {
    throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' belongs to stream '${payload.stream}', not '${stream}'`);
  }
  if (payload.facts.length !== msg.count) {
    throw new StoreCorruptError(`message ${msg.seq} on '${msg.subject}' holds ${payload.facts.length} facts, its header says ${msg.count}`);
  }
  for (let i = 0; i < payload.facts.length; i++) {
    const revision = msg.firstRevision + i;
    if (revision < fromRevision) continue;
    const fact = payload.facts[i]!;
    yield {
      stream: payload.stream,
      revision,
      position: msg.firstPosition + i,
      type: fact.type,
      data: fact.data,
      metadata: fact.metadata,
    };
  }
}

export function resultOf(msg: AppendMessage, duplicate: boolean): AppendResult {
  return { revision: lastRevisionOf(msg), position: lastPositionOf(msg), duplicate };
}
