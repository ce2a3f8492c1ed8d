// Issue 14, replay: a log written by 24 racing clients through two `vmledger serve` processes on one SQLite file
// replays with nothing flagged (no violation, no tampering, and no refusal "decided differently today": each is
// re-decided on the domain as it was when refused); and the same replay reports each of a changed fact, a damaged
// page and a flipped byte inside a record.
import { closeSync, copyFileSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openEventStore } from '../../services/eventstore/index';
import { replayCheck } from '../../services/replay';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { killServeChildren, mixedCommand, runSeed, spawnServe, startLoad } from '../support/reliability';
import { tempDir } from '../nats/fixtures';

const CLIENTS = 24;
const COMMANDS_PER_CLIENT = 40;

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
let file: string;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir('vmledger-hostile-replay-');
  file = join(tmp.dir, 'raced.sqlite');
  // Generous start-up: the whole suite shares two cores.
  const serves = [await spawnServe(server.url, file, { startTimeoutMs: 120_000 }), await spawnServe(server.url, file, { startTimeoutMs: 120_000 })];
  const load = startLoad({
    url: server.url,
    clients: CLIENTS,
    idPrefix: 'race',
    seed: runSeed(),
    maxPerClient: COMMANDS_PER_CLIENT,
    next: (rand) => mixedCommand(rand, { domains: ['r-a', 'r-b', 'r-c'], hosts: ['local', 'dst'], migrate: true, snapshots: ['s1', 's2'] }),
    requestTimeoutMs: 15_000,
  });
  await load.done;
  for (const serve of serves) expect((await serve.terminate()).code, serve.output()).toBe(0);
  const db = new Database(file);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}, 240_000);

afterAll(async () => {
  await killServeChildren();
  await server?.stop();
  tmp?.remove();
});

function copy(edit?: (path: string) => void): string {
  const to = join(tmp.dir, `copy-${Math.random().toString(36).slice(2)}.sqlite`);
  copyFileSync(file, to);
  edit?.(to);
  return to;
}

async function replayOf(path: string) {
  const store = await openEventStore(`sqlite:${path}`, { purpose: 'read' });
  try {
    return await replayCheck(store, { anchor: false });
  } finally {
    await store.close();
  }
}

describe('replay of a log written by racing writers', () => {
  it('reports nothing: no violation, no tampering, no refusal drift', async () => {
    const summary = await replayOf(copy());
    expect(summary.refusals, 'the race produced refusals to re-decide').toBeGreaterThan(50);
    expect(summary.violations).toEqual([]);
    expect(summary.tampered).toEqual([]);
    expect(summary.refusalDrift).toEqual([]);
  });

  it('reports a changed fact', async () => {
    const path = copy((p) => {
      const db = new Database(p);
      // A start that did not pause (a random `start --paused` has nothing to flip), and the update must land.
      const row = db
        .prepare(`SELECT position FROM events WHERE stream LIKE 'domain-%' AND type = 'DomainStarted' AND data LIKE '%"paused":false%' LIMIT 1`)
        .get() as { position: number };
      const changed = db.prepare(`UPDATE events SET data = replace(data, '"paused":false', '"paused":true') WHERE position = ?`).run(row.position);
      expect(changed.changes).toBe(1);
      db.close();
    });
    const summary = await replayOf(path);
    expect(summary.tampered.map((t) => t.problem)).toContain('changed');
  });

  it('reports a damaged page', async () => {
    const path = copy((p) => {
      const page = 4096;
      const offset = Math.floor(statSync(p).size / page / 2) * page;
      const fd = openSync(p, 'r+');
      writeSync(fd, randomBytes(page), 0, page, offset);
      closeSync(fd);
    });
    const summary = await replayOf(path);
    expect(summary.tampered.map((t) => t.problem)).toContain('damaged');
  });

  it('reports a byte flipped inside a record', async () => {
    const path = copy((p) => {
      // The stored bytes of one fact's data, found in the file itself; one byte of its uuid flipped in place.
      // Page splits leave stale copies of a record on free pages, so the byte is flipped in every copy: the
      // first one in the file need not be the one SQLite reads.
      const db = new Database(p, { readonly: true });
      const data = db.prepare(`SELECT data FROM events WHERE type = 'DomainDefined' LIMIT 1`).pluck().get() as string;
      db.close();
      const bytes = readFileSync(p);
      const needle = Buffer.from(data);
      const fd = openSync(p, 'r+');
      let copies = 0;
      for (let record = bytes.indexOf(needle); record >= 0; record = bytes.indexOf(needle, record + 1)) {
        const at = record + Buffer.byteLength(data.slice(0, data.indexOf('"uuid":"') + 9));
        writeSync(fd, Buffer.from([bytes[at]! ^ 0x01]), 0, 1, at);
        copies++;
      }
      closeSync(fd);
      expect(copies).toBeGreaterThan(0);
    });
    const summary = await replayOf(path);
    expect(summary.ok).toBe(false);
    expect(summary.tampered.length).toBeGreaterThan(0);
  });
});
