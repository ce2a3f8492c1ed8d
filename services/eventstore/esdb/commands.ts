// Command records `vmledger.commands-<id>`: Reserved → Completed (or Released), and resolving a reservation
// whose appender crashed by looking for its first fact's derived id.

import { NO_STREAM, WrongExpectedVersionError, jsonEvent, type JSONEventType } from '@eventstore/db-client';

import { StoreCorruptError, type AppendResult } from '../types';
import { commandEventId, toSafeNumber } from './convert';
import type { EsdbLog } from './log';
import { positionsOf } from './sidecar';

export interface CommandState {
  /** Revision of the record's last event in its stream, or undefined when there is no record. */
  recordRevision: bigint | undefined;
  kind: 'none' | 'reserved' | 'completed' | 'released';
  data: Record<string, unknown>;
}

export async function commandState(log: EsdbLog, commandId: string): Promise<CommandState> {
  const last = await log.lastEvent(log.names.command(commandId));
  if (!last) return { recordRevision: undefined, kind: 'none', data: {} };
  const kind =
    last.type === 'CommandReserved' ? 'reserved' : last.type === 'CommandCompleted' ? 'completed' : last.type === 'CommandReleased' ? 'released' : undefined;
  if (!kind) throw new StoreCorruptError(`command record of '${commandId}' ends with an unknown event '${last.type}'`);
  return { recordRevision: last.revision, kind, data: (last.data ?? {}) as Record<string, unknown> };
}

/** The first result of a command id, completing a reservation whose facts are stored. */
export async function resolveCommand(log: EsdbLog, commandId: string): Promise<{ result?: AppendResult; state: CommandState }> {
  const state = await commandState(log, commandId);
  if (state.kind === 'completed') {
    return {
      result: { revision: Number(state.data.revision), position: Number(state.data.position), duplicate: true },
      state,
    };
  }
  if (state.kind !== 'reserved') return { state };
  const stream = String(state.data.stream);
  const count = Number(state.data.count);
  const firstId = commandEventId(commandId, 0);
  const afterRevision = Number(state.data.afterRevision);
  for await (const event of log.readFactStream(stream, afterRevision + 1)) {
    if (event.id !== firstId) continue;
    const revision = toSafeNumber(event.revision, 'stream revision') + count - 1;
    const lastEvents = [];
    for await (const e of log.readFactStream(stream, revision)) {
      lastEvents.push(e);
      break;
    }
    const [position] = await positionsOf(log, stream, lastEvents);
    const result = { revision, position: position!, duplicate: true };
    await writeCommand(log, commandId, 'CommandCompleted', { stream, revision, position }, state.recordRevision!).catch(() => {});
    return { result, state };
  }
  return { state };
}

export async function reserve(
  log: EsdbLog,
  commandId: string,
  stream: string,
  count: number,
  state: CommandState,
): Promise<{ revision: bigint; at: number } | { result: AppendResult }> {
  for (let attempt = 0; ; attempt++) {
    if (state.kind === 'reserved') {
      const age = Date.now() - Date.parse(String(state.data.at));
      if (!(age >= log.leaseMs)) {
        throw new Error(
          `command '${commandId}' is being appended by another writer (reserved ${Math.round(age / 1000)} s ago); ` +
            `retry after ${Math.ceil((log.leaseMs - age) / 1000)} s`,
        );
      }
    }
    const last = await log.lastEvent(log.names.fact(stream));
    const at = Date.now();
    const data = {
      stream,
      count,
      afterRevision: last ? toSafeNumber(last.revision, 'stream revision') : -1,
      at: new Date(at).toISOString(),
    };
    try {
      const revision = await writeCommand(log, commandId, 'CommandReserved', data, state.recordRevision ?? 'no-stream');
      return { revision, at };
    } catch (error) {
      if (!(error instanceof WrongExpectedVersionError) || attempt > 20) throw error;
      const again = await resolveCommand(log, commandId);
      if (again.result) return { result: again.result };
      state = again.state;
    }
  }
}

export async function writeCommand(
  log: EsdbLog,
  commandId: string,
  type: string,
  data: Record<string, unknown>,
  expected: bigint | 'no-stream',
): Promise<bigint> {
  const result = await log.client.appendToStream(log.names.command(commandId), jsonEvent({ type, data: data as JSONEventType['data'] }), {
    expectedRevision: expected === 'no-stream' ? NO_STREAM : expected,
  });
  if (!result.success) {
    throw new WrongExpectedVersionError(undefined, {
      streamName: log.names.command(commandId),
      expected: expected === 'no-stream' ? NO_STREAM : expected,
      current: result.nextExpectedRevision,
    });
  }
  return result.nextExpectedRevision;
}

export async function commandResult(log: EsdbLog, commandId: string): Promise<AppendResult | undefined> {
  return (await resolveCommand(log, commandId)).result;
}
