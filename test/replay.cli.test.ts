// `vmledger audit` and `vmledger replay` output. In-process through the CLI's own program (services/cli/program.ts,
// with its global --store/--host/--json), and by spawning `node bin/vmledger.mjs`.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CommandInput } from '../machines/commands';
import { buildProgram } from '../services/cli/program';
import { registerAuditCommands, EXIT_ERROR, EXIT_OK, EXIT_TAMPERED, EXIT_VIOLATIONS } from '../services/audit-cli';
import { openSqliteEventStore } from '../services/eventstore/sqlite';
import { factHash } from '../services/factHash';
import { createLedger } from '../services/ledger';
import { auditEntries } from '../projections/queries';
import { config, timeOf } from './replay.fixture';

let dir: string;
let file: string;

const SCRIPT: Record<string, unknown>[] = [
  { verb: 'define', config: config('h1', 'web') },
  { verb: 'define', config: config('h1', 'db') },
  { verb: 'snapshot-create', domain: 'web', snapshot: { name: 'base', disks: [] } },
  { verb: 'snapshot-create', domain: 'web', snapshot: { name: 'patched', disks: [] } },
  { verb: 'undefine', domain: 'web' }, // refused: UND-SNAPSHOTS
  { verb: 'start', domain: 'db' },
  { verb: 'start', domain: 'db' }, // refused: STA-ACTIVE
  { verb: 'undefine', domain: 'web', snapshotsMetadata: true },
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-cli-'));
  file = join(dir, 'ledger.sqlite');
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store);
  let n = 0;
  for (const c of SCRIPT) {
    n++;
    await ledger.execute({ ...c, host: 'h1', meta: { commandId: `c${n}`, actor: n % 2 ? 'alice' : 'bob', time: timeOf(n) } } as CommandInput);
  }
  await ledger.close();
  await store.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | undefined;
  stdout: string;
  stderr: string;
}

/** Runs `vmledger …args` in-process: the CLI's program with the audit commands registered, output captured. */
async function vmledger(args: string[], options: { tty?: boolean } = {}): Promise<Run> {
  const run: Run = { code: undefined, stdout: '', stderr: '' };
  const program = buildProgram({ shell: async () => {}, verb: async () => {} });
  program.exitOverride();
  registerAuditCommands(program, {
    stdout: { write: (t: string) => (run.stdout += t) },
    stderr: { write: (t: string) => (run.stderr += t), isTTY: options.tty ?? false },
    env: {},
    exit: (code) => (run.code = code),
  });
  await program.parseAsync(['node', 'vmledger', ...args]);
  return run;
}

function copyOf(edit?: (db: Database.Database) => void): string {
  const copy = join(dir, `copy-${Math.random().toString(36).slice(2)}.sqlite`);
  copyFileSync(file, copy);
  if (edit) {
    const db = new Database(copy);
    edit(db);
    db.close();
  }
  return copy;
}

describe('vmledger audit', () => {
  it('prints a table: position, time, actor, verb, domain, outcome, rule, message', async () => {
    const run = await vmledger(['audit', '--store', `sqlite:${file}`]);
    expect(run.code).toBe(EXIT_OK);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^POSITION\s+TIME\s+ACTOR\s+VERB\s+DOMAIN\s+OUTCOME\s+RULE\s+MESSAGE$/);
    expect(lines).toHaveLength(1 + SCRIPT.length);
    const refused = lines.find((l) => l.includes('UND-SNAPSHOTS'))!;
    expect(refused).toMatch(/^\d+\s+2024-03-01T08:00:05\.000Z\s+alice\s+undefine\s+h1\/web\s+refused\s+UND-SNAPSHOTS\s+Requested operation is not valid: cannot delete inactive domain with 2 snapshots$/);
    expect(lines.find((l) => l.includes('STA-ACTIVE'))).toMatch(/alice\s+start\s+h1\/db\s+refused\s+STA-ACTIVE\s+Requested operation is not valid: domain is already running/);
    expect(lines.filter((l) => /\saccepted$/.test(l))).toHaveLength(6);
  });

  it('filters by domain and --since (position or time); --json (also given globally) is the entries', async () => {
    const spec = `sqlite:${file}`;
    const db = await vmledger(['audit', 'db', '--store', spec, '--json']);
    const entries = JSON.parse(db.stdout) as { domain: string; position: number; commandId: string }[];
    expect(entries.map((e) => e.commandId)).toEqual(['c2', 'c6', 'c7']);
    expect(entries.every((e) => e.domain === 'db')).toBe(true);

    const store = openSqliteEventStore(file);
    const all = await auditEntries(store);
    await store.close();
    const global = await vmledger(['--store', spec, '--json', 'audit']);
    expect(JSON.parse(global.stdout)).toEqual(JSON.parse(JSON.stringify(all)));

    const since = all[4]!;
    const byPosition = JSON.parse((await vmledger(['audit', '--store', spec, '--json', '--since', String(since.position)])).stdout);
    expect(byPosition.map((e: { commandId: string }) => e.commandId)).toEqual(['c5', 'c6', 'c7', 'c8']);
    const byTime = JSON.parse((await vmledger(['audit', '--store', spec, '--json', '--since', timeOf(6)])).stdout);
    expect(byTime.map((e: { commandId: string }) => e.commandId)).toEqual(['c6', 'c7', 'c8']);
  });

  it('says what is wrong, in one line, for a store that is not there and for a bad --since', async () => {
    const missing = await vmledger(['audit', '--store', `sqlite:${join(dir, 'nope.sqlite')}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: no ledger at '.*nope\.sqlite'/);
    const bad = await vmledger(['audit', '--store', `sqlite:${file}`, '--since', 'yesterday']);
    expect(bad.stderr).toBe("error: 'yesterday' is neither a global position (a whole number) nor an ISO-8601 time (e.g. 2024-05-01T12:00:00Z)\n");
  });
});

describe('vmledger replay', () => {
  it('prints a summary and exits 0 on a clean log; a progress bar only on a TTY', async () => {
    const spec = `sqlite:${copyOf()}`;
    const run = await vmledger(['replay', '--store', spec]);
    expect(run.code).toBe(EXIT_OK);
    expect(run.stdout).toMatch(/^replayed 8 facts \(6 decisions, 2 refusals, 0 hypervisor reports, 2 domain streams\) in \d+\.\d\d s: [\d,]+ facts\/s\n/);
    expect(run.stdout).toContain('hash chains: intact\n');
    expect(run.stdout).toContain("rules: every recorded decision passes today's rules\n");
    expect(run.stderr).toBe('');
    const tty = await vmledger(['replay', '--store', spec], { tty: true });
    expect(tty.stderr).toMatch(/\rreplay \[#+\] 100% 8\/8 facts/);
    expect(tty.stderr.endsWith('\r\x1b[K')).toBe(true);
  });

  it('exits 2 and names the fact when the log was tampered with', async () => {
    const copy = copyOf((db) => db.prepare(`UPDATE events SET data = json_set(data, '$.config.uuid', 'forged') WHERE position = 2`).run());
    const run = await vmledger(['replay', '--store', `sqlite:${copy}`]);
    expect(run.code).toBe(EXIT_TAMPERED);
    expect(run.stdout).toContain('hash chains: 1 problem(s): the log was changed');
    expect(run.stdout).toMatch(/TAMPERED\nPOSITION\s+STREAM\s+REVISION\s+PROBLEM\s+DETAIL\n2\s+domain-h1-db\s+0\s+changed\s+its DomainDefined content does not match its recorded hash/);
    const json = JSON.parse((await vmledger(['replay', '--store', `sqlite:${copy}`, '--json'])).stdout);
    expect(json.tampered).toEqual([expect.objectContaining({ stream: 'domain-h1-db', revision: 0, position: 2, problem: 'changed' })]);
  });

  it('exits 1 when a recorded decision breaks today’s rules', async () => {
    const copy = copyOf();
    const store = openSqliteEventStore(copy);
    // A start of a running domain recorded as accepted (a ledger with older rules), hash chain intact.
    let previous: string | undefined;
    for await (const e of store.readStream('domain-h1-db')) previous = e.metadata.hash as string;
    const data = { paused: false, autodestroy: false, reason: 'booted', managedSaveConsumed: false };
    const command = { verb: 'start', host: 'h1', domain: 'db', paused: false, autodestroy: false, forceBoot: false, meta: { commandId: 'old-1', actor: 'old', time: timeOf(20) } };
    await store.append(
      'domain-h1-db',
      [{ type: 'DomainStarted', data, metadata: { commandId: 'old-1', actor: 'old', time: timeOf(20), host: 'h1', domain: 'db', command, hash: factHash(previous, 'DomainStarted', data, command) } }],
      { expectedRevision: 1 },
    );
    await store.close();
    const run = await vmledger(['replay', '--store', `sqlite:${copy}`]);
    expect(run.code).toBe(EXIT_VIOLATIONS);
    expect(run.stdout).toMatch(/VIOLATIONS\nPOSITION\s+STREAM\s+REVISION\s+COMMAND\s+VERB\s+RULE\s+MESSAGE\n9\s+domain-h1-db\s+2\s+old-1\s+start\s+STA-ACTIVE\s+Requested operation is not valid: domain is already running/);
  });

  it('--at prints the domain list and snapshot trees as of then', async () => {
    const spec = `sqlite:${copyOf()}`;
    const store = openSqliteEventStore(file);
    const all = await auditEntries(store);
    await store.close();
    const beforeUndefine = all.find((e) => e.commandId === 'c8')!.position - 1;
    const run = await vmledger(['replay', '--store', spec, '--at', String(beforeUndefine)]);
    expect(run.code).toBe(EXIT_OK);
    expect(run.stdout).toBe(
      `as of position ${beforeUndefine} (${timeOf(7)}): 2 domain(s)\n` +
        'HOST  NAME  STATE     RUN      PERSISTENT  MANAGED-SAVE  SNAPSHOTS  CURRENT  JOBS\n' +
        'h1    db    running   running  yes         no            0          -        -\n' +
        'h1    web   inactive  -        yes         no            2          patched  -\n' +
        '\nsnapshots of h1/web:\n  base\n  └─ patched *\n',
    );
    const now = await vmledger(['replay', '--store', spec, '--at', timeOf(100), '--json']);
    expect(JSON.parse(now.stdout).domains.map((d: { name: string }) => d.name)).toEqual(['db']);
  });

  it('--without lists the decisions that would change', async () => {
    const spec = `sqlite:${copyOf()}`;
    const run = await vmledger(['replay', '--store', spec, '--without', 'UND-SNAPSHOTS']);
    expect(run.code).toBe(EXIT_OK);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('what if UND-SNAPSHOTS did not exist: 2 of 8 decisions change (1 decided by the rule itself, 1 as consequences)');
    expect(lines[1]).toMatch(/^POSITION\s+COMMAND\s+VERB\s+DOMAIN\s+CAUSE\s+WAS\s+WOULD BE$/);
    expect(lines[2]).toMatch(/^\d+\s+c5\s+undefine\s+h1\/web\s+rule\s+refused UND-SNAPSHOTS\s+accepted$/);
    expect(lines[3]).toMatch(/^\d+\s+c8\s+undefine\s+h1\/web\s+consequence\s+accepted\s+refused DOM-NOTFOUND: Domain not found: no domain with matching name 'web'$/);
    const json = JSON.parse((await vmledger(['replay', '--store', spec, '--without', 'UND-SNAPSHOTS,SC-NAME', '--json'])).stdout);
    expect(json.without).toEqual(['UND-SNAPSHOTS', 'SC-NAME']);
    expect(json.changes).toHaveLength(2);
  });

  it('exits 3 with one line for an unknown rule, a bad --at, or both modes at once', async () => {
    const spec = `sqlite:${copyOf()}`;
    const unknown = await vmledger(['replay', '--store', spec, '--without', 'NOPE']);
    expect(unknown.code).toBe(EXIT_ERROR);
    expect(unknown.stderr).toMatch(/^error: unknown rule 'NOPE'; rules that can be switched off: DOM-NOTFOUND, /);
    expect((await vmledger(['replay', '--store', spec, '--at', 'soon'])).code).toBe(EXIT_ERROR);
    const both = await vmledger(['replay', '--store', spec, '--at', '3', '--without', 'UND-SNAPSHOTS']);
    expect(both.stderr).toBe('error: --at and --without cannot be combined\n');
  });
});

// The real executable, as users run it.

describe('node bin/vmledger.mjs', () => {
  const bin = new URL('../bin/vmledger.mjs', import.meta.url).pathname;
  const node = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, VMLEDGER_STORE: '' } });

  it('audit and replay run from the command line with their exit codes', () => {
    const audit = node(['audit', 'web', '--store', `sqlite:${file}`]);
    expect(audit.status).toBe(0);
    expect(audit.stdout).toMatch(/refused\s+UND-SNAPSHOTS/);
    const clean = node(['replay', '--store', `sqlite:${copyOf()}`]);
    expect(clean.status).toBe(0);
    expect(clean.stderr).toBe(''); // not a TTY: no progress bar
    const tampered = node(['replay', '--store', `sqlite:${copyOf((db) => db.prepare('DELETE FROM events WHERE position = 3').run())}`]);
    expect(tampered.status).toBe(2);
    expect(tampered.stdout).toMatch(/removed/);
  });
});
