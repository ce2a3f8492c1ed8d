// Append-rate measurements for the embedded store. `rawSqliteAppendRate` is the floor-level baseline: plain
// better-sqlite3, WAL + synchronous = FULL, one single-row INSERT per transaction, no vmledger code. The
// ledger's command rate is later compared with it to see what our layers cost on top of the fsync.

import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

import { openSqliteEventStore } from '../services/eventstore/sqlite';
import type { NewEvent } from '../services/eventstore/types';

export interface AppendRate {
  appendsPerSecond: number;
  count: number;
  elapsedMs: number;
}

/** A payload about the size of a real lifecycle fact (~200 bytes of JSON). */
function benchEvent(n: number): NewEvent {
  return {
    type: 'DomainStarted',
    data: { domain: `vm-${n % 100}`, host: 'bench-host', uuid: '6b0f8a5e-1d1c-4b8e-9d55-0c2f4d0e7a11', n },
    metadata: { commandId: `bench-${n}`, actor: 'bench', time: '2024-01-01T00:00:00.000Z' },
  };
}

function rate(count: number, startedAt: bigint): AppendRate {
  const elapsedMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
  return { appendsPerSecond: Math.round((count / elapsedMs) * 1000), count, elapsedMs: Math.round(elapsedMs) };
}

/** Durable single-row appends straight through better-sqlite3, in a fresh file under `dir` (removed after). */
export async function rawSqliteAppendRate(dir: string, count: number): Promise<AppendRate> {
  const workDir = mkdtempSync(join(dir, 'raw-sqlite-'));
  const db = new Database(join(workDir, 'raw.sqlite'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, data TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO events (stream, data) VALUES (?, ?)');
    const appendOne = db.transaction((stream: string, data: string) => insert.run(stream, data));
    const payloads = Array.from({ length: count }, (_, n) => JSON.stringify(benchEvent(n)));

    const startedAt = process.hrtime.bigint();
    for (let n = 0; n < count; n++) appendOne.immediate(`vm-${n % 100}`, payloads[n]!);
    return rate(count, startedAt);
  } finally {
    db.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

/**
 * The same appends through openSqliteEventStore: one fact per append, each with a command id and an expected
 * revision, as the command service will do.
 */
export async function sqliteStoreAppendRate(dir: string, count: number): Promise<AppendRate> {
  const workDir = mkdtempSync(join(dir, 'store-sqlite-'));
  const store = openSqliteEventStore(join(workDir, 'store.sqlite'));
  try {
    const events = Array.from({ length: count }, (_, n) => benchEvent(n));
    const streams = 100;

    const startedAt = process.hrtime.bigint();
    for (let n = 0; n < count; n++) {
      const revisionBefore = Math.floor(n / streams) - 1;
      await store.append(`vm-${n % streams}`, [events[n]!], {
        expectedRevision: revisionBefore < 0 ? 'no-stream' : revisionBefore,
        commandId: `bench-${n}`,
      });
    }
    return rate(count, startedAt);
  } finally {
    await store.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}
