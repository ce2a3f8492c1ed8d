// Idempotency records in the commands bucket (see "Idempotency that outlives the 120 s dedup window" in index.ts):
// reserving a command id, completing or releasing it, and resolving a pending one left by a crashed appender.

import { createHash } from 'node:crypto';

import type { KvEntry } from '@nats-io/kv';

import { StoreCorruptError, type AppendResult } from '../types';
import { isWrongLastSequence } from './errors';
import type { JetStreamLog } from './log';
import { resultOf } from './messages';

export interface CommandRecord {
  state: 'pending' | 'done';
  commandId: string;
  stream: string;
  subject: string;
  /** pending: every message of this command has a sequence above this. */
  afterSeq: number;
  /** done: the first result. */
  revision?: number;
  position?: number;
}

export function commandKey(commandId: string): string {
  return /^[A-Za-z0-9_-]{1,200}$/.test(commandId)
    ? `id.${commandId}`
    : `h.${createHash('sha256').update(commandId, 'utf8').digest('hex')}`;
}

export function commandMsgId(commandId: string): string {
  return `c-${createHash('sha256').update(commandId, 'utf8').digest('hex')}`;
}

export function encodeRecord(record: CommandRecord): string {
  return JSON.stringify(record);
}

export function decodeRecord(entry: KvEntry, commandId: string): CommandRecord {
  let record: CommandRecord;
  try {
    record = JSON.parse(entry.string()) as CommandRecord;
  } catch {
    throw new StoreCorruptError(`command record '${entry.key}' in bucket '${entry.bucket}' is not JSON`);
  }
  if (record.commandId !== commandId) {
    throw new StoreCorruptError(`command record '${entry.key}' belongs to '${record.commandId}', not '${commandId}'`);
  }
  return record;
}

/**
 * The first result of a command id, completing a pending record whose facts are stored. `pending` is set when
 * a reservation exists whose facts were not found (a crashed appender, or one still publishing).
 */
export async function lookupCommand(
  log: JetStreamLog,
  commandId: string,
  key: string,
): Promise<{ result?: AppendResult; entry?: KvEntry; record?: CommandRecord }> {
  const entry = await log.retry('read a command record', () => log.commands.get(key));
  if (!entry || entry.operation !== 'PUT') return {};
  const record = decodeRecord(entry, commandId);
  if (record.state === 'done') {
    return { result: { revision: record.revision!, position: record.position!, duplicate: true }, entry, record };
  }
  const stored = await log.findOnSubject(record.subject, record.afterSeq, (p) => p.commandId === commandId);
  if (!stored) return { entry, record };
  const result = resultOf(stored, true);
  await log.retry('complete a command record', () =>
    log.commands.update(key, encodeRecord({ ...record, state: 'done', revision: result.revision, position: result.position }), entry.revision),
  ).catch(() => {}); // someone else completed it: same message, same result
  return { result, entry, record };
}

/** Reserves the id for this append, or returns the first result when the command was already appended. */
export async function reserveCommand(
  log: JetStreamLog,
  commandId: string,
  key: string,
  stream: string,
  subject: string,
): Promise<{ revision: number; afterSeq: number } | { result: AppendResult }> {
  for (let attempt = 0; ; attempt++) {
    // A new command id (the usual case) is reserved by `create` alone; a known one is looked up first.
    const known = attempt === 0 ? {} : await lookupCommand(log, commandId, key);
    if (known.result) return { result: known.result };
    const afterSeq = (log.head ?? (await log.readHead())).seq;
    const record = encodeRecord({ state: 'pending', commandId, stream, subject, afterSeq });
    try {
      const revision = known.entry && known.entry.operation === 'PUT'
        ? await log.retry('take over a command reservation', () => log.commands.update(key, record, known.entry!.revision))
        : await log.retry('reserve a command id', () => log.commands.create(key, record));
      return { revision, afterSeq };
    } catch (error) {
      if (!isWrongLastSequence(error) || attempt > 20) throw error;
      // Someone reserved or completed it between our read and write: look again.
    }
  }
}

export async function commandResult(log: JetStreamLog, commandId: string): Promise<AppendResult | undefined> {
  return (await lookupCommand(log, commandId, commandKey(commandId))).result;
}
