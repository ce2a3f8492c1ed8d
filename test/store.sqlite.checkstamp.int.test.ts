// The remembered clean check of a SQLite store (services/eventstore/sqlite/checkStamp.ts), on real files: a store
// opened through openEventStore is checked once and then not again while the file is unchanged; any change (a
// write of ours, bytes written from outside) brings the check back, so a damaged page is still refused.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { openEventStore } from '../services/eventstore/index';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { fileStamp, stampPath } from '../services/eventstore/sqlite/checkStamp';
import { StoreCorruptError } from '../services/eventstore/types';
import { fact } from './store-contract';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-checkstamp-'));
  file = join(dir, 'ledger.sqlite');
  const store = openSqliteEventStore(file);
  for (let i = 0; i < 400; i++) await store.append(`domain-local-vm${i}`, [fact('DomainDefined', i)], { expectedRevision: 'no-stream' });
  await store.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const remembered = () => JSON.parse(readFileSync(stampPath(file), 'utf8')) as Record<string, string>;

function damageMiddlePage(path: string): void {
  const page = 4096;
  const offset = Math.floor(statSync(path).size / page / 2) * page;
  const fd = openSync(path, 'r+');
  writeSync(fd, randomBytes(page), 0, page, offset);
  closeSync(fd);
}

describe('remembered clean check', () => {
  it('a clean check is remembered with the file as it was checked; a session that only reads leaves it valid', async () => {
    expect(existsSync(stampPath(file))).toBe(false); // openSqliteEventStore alone does not remember
    const store = await openEventStore(`sqlite:${file}`);
    let n = 0;
    for await (const _ of store.readAll(0)) n++;
    await store.close();
    expect(n).toBe(400);
    expect(remembered()).toMatchObject({ ...fileStamp(file), check: 'quick' });
  });

  it('a write changes the file: the stamp no longer matches, and the next open checks and remembers again', async () => {
    await (await openEventStore(`sqlite:${file}`)).close();
    const writer = await openEventStore(`sqlite:${file}`);
    await writer.append('domain-local-new', [fact('DomainDefined', 0)], { expectedRevision: 'no-stream' });
    await writer.close();
    expect(remembered()).not.toMatchObject(fileStamp(file)!);
    await (await openEventStore(`sqlite:${file}`)).close();
    expect(remembered()).toMatchObject({ ...fileStamp(file), check: 'quick' });
  });

  it('a damaged page written after a clean check is still refused, and never remembered', async () => {
    await (await openEventStore(`sqlite:${file}`)).close();
    damageMiddlePage(file);
    const before = readFileSync(file);
    await expect(openEventStore(`sqlite:${file}`)).rejects.toThrow(/damaged vmledger store: quick_check found/);
    expect(readFileSync(file).equals(before), 'the damaged file was left as it is').toBe(true);
    expect(remembered()).not.toMatchObject(fileStamp(file)!);
    // For reading (audit, replay) it opens read-only with the damage named, every time.
    const reader = await openEventStore(`sqlite:${file}`, { purpose: 'read' });
    expect(reader.damage).toMatch(/quick_check found/);
    await expect(reader.append('domain-local-x', [fact('DomainDefined', 0)], { expectedRevision: 'any' })).rejects.toBeInstanceOf(StoreCorruptError);
    await reader.close();
  });

  it('the check is really skipped while the stamp matches: a stamp made to match a damaged file lets it open', async () => {
    damageMiddlePage(file);
    await expect(openEventStore(`sqlite:${file}`)).rejects.toThrow(/quick_check found/);
    // What a stale stamp could do at worst (it takes someone able to write beside the store): skip the check.
    writeFileSync(stampPath(file), JSON.stringify({ ...fileStamp(file), check: 'quick' }));
    const store = await openEventStore(`sqlite:${file}`);
    expect(store.damage).toBeUndefined();
    await store.close();
    // A 'quick' stamp does not stand for a full check.
    expect(() => openSqliteEventStore(file, { rememberCleanCheck: true, integrityCheck: 'full' })).toThrow(/integrity_check found/);
  });
});
