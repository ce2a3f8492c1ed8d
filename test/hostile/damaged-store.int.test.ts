// Issue 14 cases 7 and 8 on a real SQLite file: a damaged store is refused for writing and replay names the
// damage with exit 2; the audit's text form cannot be forged by what a field holds.
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerAuditCommands } from '../../services/audit-cli';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import { createLedger } from '../../services/ledger';

const TIME = '2026-12-01T00:00:00Z';
let dir: string;
let file: string;

interface Run {
  code: number | undefined;
  stdout: string;
  stderr: string;
}

async function vmledger(args: string[]): Promise<Run> {
  const run: Run = { code: undefined, stdout: '', stderr: '' };
  const program = new Command('vmledger').exitOverride();
  registerAuditCommands(program, {
    stdout: { write: (t: string) => (run.stdout += t) },
    stderr: { write: (t: string) => (run.stderr += t), isTTY: false },
    env: {},
    exit: (code) => (run.code = code),
  });
  await program.parseAsync(['node', 'vmledger', ...args]);
  return run;
}

function copy(): string {
  const to = join(dir, `copy-${Math.random().toString(36).slice(2)}.sqlite`);
  copyFileSync(file, to);
  return to;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-hostile-'));
  file = join(dir, 'ledger.sqlite');
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store);
  let n = 0;
  const meta = (actor = 'alice') => ({ commandId: `d-${++n}`, actor, time: TIME });
  for (let i = 0; i < 120; i++) {
    const name = `vm${i}`;
    const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    await ledger.execute({ verb: 'define', config: { name, uuid, disks: [{ target: 'vda', source: `/img/${name}-${'x'.repeat(200)}.qcow2` }] }, meta: meta() });
    await ledger.execute({ verb: 'start', domain: name, meta: meta() });
    await ledger.execute({ verb: 'suspend', domain: name, meta: meta() });
  }
  // Fields a terminal would take for instructions: a bidi override in an actor and a snapshot name.
  await ledger.execute({ verb: 'resume', domain: 'vm0', meta: meta('eve\u202eelia') });
  await ledger.execute({ verb: 'snapshot-create', domain: 'vm1', snapshot: { name: 'snap\u202ejpg.exe' }, meta: meta() });
  await ledger.close();
  await store.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('case 7: a damaged store', () => {
  it('a 4 KiB page of random bytes mid-file: refused for writing, naming what SQLite found; replay exits 2 naming the damage', async () => {
    const damaged = copy();
    const size = statSync(damaged).size;
    const page = 4096;
    const offset = Math.floor(size / page / 2) * page;
    const fd = openSync(damaged, 'r+');
    writeSync(fd, randomBytes(page), 0, page, offset);
    closeSync(fd);
    const before = readFileSync(damaged);

    expect(() => openSqliteEventStore(damaged)).toThrow(/damaged vmledger store: quick_check found .*(Page|page|corrupt|malformed)/i);
    expect(readFileSync(damaged).equals(before), 'the damaged file was left as it is').toBe(true);

    const replay = await vmledger(['replay', '--store', `sqlite:${damaged}`]);
    expect(replay.code, replay.stdout + replay.stderr).toBe(2);
    expect(replay.stdout).toMatch(/damaged/);
    expect(replay.stdout).toMatch(/quick_check found|cannot be read past position/);
  });

  it('bytes flipped inside a record so that its JSON no longer parses: replay names that fact, exit 2 (not 3)', async () => {
    const damaged = copy();
    // The one record whose data holds this path: overwrite 16 bytes inside its JSON in the file itself.
    const marker = Buffer.from(`/img/vm77-`);
    const bytes = readFileSync(damaged);
    const at = bytes.indexOf(marker);
    expect(at).toBeGreaterThan(0);
    const fd = openSync(damaged, 'r+');
    writeSync(fd, Buffer.from('"}]{{{{{{{{{{{{{'), 0, 16, at);
    closeSync(fd);

    const db = new Database(damaged, { readonly: true });
    const quick = db.prepare('PRAGMA quick_check').pluck().get();
    db.close();
    const replay = await vmledger(['replay', '--store', `sqlite:${damaged}`]);
    expect(replay.code, `${replay.stdout}${replay.stderr} (quick_check: ${String(quick)})`).toBe(2);
    expect(replay.stdout).toMatch(/damaged/);
    expect(replay.stdout).toMatch(/stream 'domain-local-vm77' revision 0.*is not JSON/);
  });

  it('a fact changed so that it still parses: replay reports it changed (exit 2) and the ledger writes nothing after it', async () => {
    const changed = copy();
    const db = new Database(changed);
    db.prepare(`UPDATE events SET data = replace(data, '"paused":false', '"paused":true') WHERE stream = 'domain-local-vm5' AND revision = 1`).run();
    db.close();
    const replay = await vmledger(['replay', '--store', `sqlite:${changed}`]);
    expect(replay.code).toBe(2);
    expect(replay.stdout).toMatch(/domain-local-vm5\s+1\s+changed/);

    const store = openSqliteEventStore(changed);
    const ledger = createLedger(store);
    const head = await store.headPosition();
    await expect(ledger.execute({ verb: 'resume', domain: 'vm5', meta: { commandId: 'after-change', actor: 't', time: TIME } })).rejects.toThrow(
      /domain-local-vm5' revision 1 .*does not match its hash chain/,
    );
    expect(await store.headPosition()).toBe(head);
    await ledger.close();
    await store.close();
  });
});

describe('case 8: the audit text cannot be forged through a field', () => {
  it('an actor with a newline, ANSI escapes and U+202E prints as one escaped cell', async () => {
    const forged = copy();
    const db = new Database(forged);
    // What an old store (or one written before names were checked) can hold: a whole fake audit line in an actor.
    const fake = 'mallory\n9999  2026-12-01T00:00:00Z  root  undefine  local/vm3  accepted\u001b[2K\u001b[31m\u202e';
    db.prepare(`UPDATE events SET metadata = json_set(metadata, '$.actor', ?) WHERE stream = 'domain-local-vm3' AND revision = 0`).run(fake);
    db.close();
    const audit = await vmledger(['audit', 'vm3', '--store', `sqlite:${forged}`]);
    expect(audit.code).toBe(0);
    const lines = audit.stdout.trimEnd().split('\n');
    expect(lines.some((l) => l.startsWith('9999'))).toBe(false);
    expect(audit.stdout).not.toMatch(/[\u001b\u202e]/);
    expect(audit.stdout).toContain('mallory\\n9999');
    expect(audit.stdout).toContain('\\x1b[2K');
    expect(audit.stdout).toContain('\\u202e');
  });

  it('bidi controls accepted in names and actors reach the terminal escaped, in audit and in the state list', async () => {
    const audit = await vmledger(['audit', '--store', `sqlite:${file}`]);
    expect(audit.stdout).not.toContain('\u202e');
    expect(audit.stdout).toContain('eve\\u202eelia');
    const at = await vmledger(['replay', '--at', '1000000', '--store', `sqlite:${file}`]);
    expect(at.stdout).not.toContain('\u202e');
    expect(at.stdout).toContain('snap\\u202ejpg.exe');
  });
});
