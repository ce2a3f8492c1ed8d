// Signed commands through the real `vmledger` binary on a real SQLite file (`--sign-with KEYFILE`), and
// `vmledger replay` verifying every stored signature: a signature or a signed body altered in the store is
// tampering (exit 2), even when the forger recomputed the whole hash chain so that it holds again.
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { eventHash } from '../../services/factHash';
import { runVmledger } from '../support/cli';

const ROOT = resolve(import.meta.dirname, '../..');
let dir: string;
let pristine: string;
let publicKey: string;
let copies = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-signed-'));
  pristine = join(dir, 'ledger.sqlite');
  const keygen = await runVmledger(['keygen', '--out', join(dir, 'ops.seed')], dir);
  expect(keygen.code).toBe(0);
  publicKey = keygen.stdout.trim();
  expect(publicKey).toMatch(/^U[A-Z2-7]{55}$/);
  const signed = ['--store', `sqlite:${pristine}`, '--sign-with', join(dir, 'ops.seed')];
  for (const args of [['define', join(ROOT, 'examples/web1.xml')], ['start', 'web1'], ['start', 'web1']]) {
    const run = await runVmledger([...signed, ...args], dir);
    expect(run.stderr.includes('Traceback')).toBe(false);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the ledger with `edit` applied to its SQLite file. */
function copyOf(edit: (db: Database.Database) => void): string {
  const file = join(dir, `copy-${++copies}.sqlite`);
  copyFileSync(pristine, file);
  if (existsSync(`${pristine}-wal`)) copyFileSync(`${pristine}-wal`, `${file}-wal`);
  const db = new Database(file);
  edit(db);
  db.close();
  return file;
}

/** Recomputes every hash of a stream, as a forger with write access to the store could. */
function rehash(db: Database.Database, stream: string): void {
  const rows = db.prepare('SELECT position, type, data, metadata FROM events WHERE stream = ? ORDER BY revision').all(stream) as {
    position: number;
    type: string;
    data: string;
    metadata: string;
  }[];
  let previous = '';
  for (const row of rows) {
    const metadata = JSON.parse(row.metadata) as Record<string, unknown>;
    metadata.hash = eventHash(previous, { type: row.type, data: JSON.parse(row.data), metadata });
    previous = metadata.hash as string;
    db.prepare('UPDATE events SET metadata = ? WHERE position = ?').run(JSON.stringify(metadata), row.position);
  }
}

const firstSigned = (db: Database.Database) =>
  db.prepare("SELECT position, stream, metadata FROM events WHERE json_extract(metadata, '$.command.meta.signature.sig') IS NOT NULL ORDER BY position LIMIT 1").get() as {
    position: number;
    stream: string;
    metadata: string;
  };

describe('vmledger --sign-with, then vmledger replay', () => {
  it('records every command with its signature and key; replay verifies them and exits 0', async () => {
    const db = new Database(pristine, { readonly: true });
    const rows = db.prepare("SELECT json_extract(metadata, '$.command.meta.signature.key') AS key FROM events WHERE json_extract(metadata, '$.command') IS NOT NULL").all() as { key: string | null }[];
    db.close();
    expect(rows.length).toBe(3); // define, start, and the refused second start
    expect(rows.every((r) => r.key === publicKey)).toBe(true);
    const replay = await runVmledger(['replay', '--store', `sqlite:${copyOf(() => {})}`], dir);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain('hash chains: intact');
  });

  it('a signature altered in the store: exit 2', async () => {
    const file = copyOf((db) => {
      const row = firstSigned(db);
      const metadata = JSON.parse(row.metadata) as { command: { meta: { signature: { sig: string } } } };
      const bytes = Buffer.from(metadata.command.meta.signature.sig, 'base64');
      bytes[0] = bytes[0]! ^ 0xff;
      metadata.command.meta.signature.sig = bytes.toString('base64');
      db.prepare('UPDATE events SET metadata = ? WHERE position = ?').run(JSON.stringify(metadata), row.position);
    });
    const replay = await runVmledger(['replay', '--store', `sqlite:${file}`], dir);
    expect(replay.code).toBe(2);
  });

  it('a signature or a signed body altered and the chain rehashed: the hashes hold, the signature does not; exit 2', async () => {
    const alterations: [string, (m: { command: { paused?: boolean; meta: { signature: { sig: string; key: string } } } }) => void][] = [
      ['signature', (m) => (m.command.meta.signature.sig = Buffer.alloc(64, 7).toString('base64'))],
      ['key', (m) => (m.command.meta.signature.key = 'UCH2D5IDDJA6UTC2KQVPD3QN3X72QWE5NLYEHZC3EBITCJGJPKNP2RZ3')],
      ['body', (m) => (m.command.paused = !m.command.paused)],
    ];
    for (const [what, alter] of alterations) {
      const file = copyOf((db) => {
        const row = db.prepare("SELECT position, stream, metadata FROM events WHERE json_extract(metadata, '$.command.verb') = 'start' AND stream LIKE 'domain%' LIMIT 1").get() as { position: number; stream: string; metadata: string };
        const metadata = JSON.parse(row.metadata) as Parameters<(typeof alterations)[number][1]>[0];
        alter(metadata);
        db.prepare('UPDATE events SET metadata = ? WHERE position = ?').run(JSON.stringify(metadata), row.position);
        rehash(db, row.stream);
      });
      const replay = await runVmledger(['replay', '--json', '--store', `sqlite:${file}`], dir);
      expect(replay.code, what).toBe(2);
      const summary = JSON.parse(replay.stdout) as { tampered: { detail: string }[] };
      expect(summary.tampered.map((t) => t.detail), what).toEqual([expect.stringMatching(/^the recorded command's signature does not verify: /)]);
    }
  });

  it('a key file without a seed is named, and nothing is recorded', async () => {
    const bad = join(dir, 'not-a-key');
    writeFileSync(bad, 'hello\n');
    const run = await runVmledger(['--store', `sqlite:${join(dir, 'other.sqlite')}`, '--sign-with', bad, 'define', join(ROOT, 'examples/web1.xml')], dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`error: ${bad} holds no user nkey seed (a line starting 'SU', e.g. from 'vmledger keygen')\n`);
    expect(existsSync(join(dir, 'other.sqlite'))).toBe(false);
  });
});
