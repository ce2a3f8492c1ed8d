// `vmledger` as users run it: the README quick start on the default store file, help, errors, --json, scripts.
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runVmledger, type CliRun } from './support/cli';

const EXAMPLES = fileURLToPath(new URL('./fixtures/libvirt-examples/', import.meta.url));

let dir: string;

function vmledger(args: string[], input = '', cwd = dir): Promise<CliRun> {
  return runVmledger(args, cwd, input);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-cli-'));
  for (const f of ['test.xml', 't2.xml', 'other_same_uuid.xml']) copyFileSync(join(EXAMPLES, f), join(dir, f));
  writeFileSync(join(dir, 'broken.xml'), '<domain><name>x</name>');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the README quick start', () => {
  it('define, start, snapshot, destroy, a refused undefine, undefine --snapshots-metadata; the store keeps it all', async () => {
    const qs = join(dir, 'quickstart');
    rmSync(qs, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(qs);
    copyFileSync(join(EXAMPLES, 'test.xml'), join(qs, 'test.xml'));
    const run = (...args: string[]) => vmledger(args, '', qs);

    expect(await run('define', 'test.xml')).toEqual({ code: 0, stdout: "Domain 'test' defined from test.xml\n\n", stderr: '' });
    // The default store is vmledger.sqlite in the working directory.
    expect(existsSync(join(qs, 'vmledger.sqlite'))).toBe(true);
    expect(await run('start', 'test')).toEqual({ code: 0, stdout: "Domain 'test' started\n\n", stderr: '' });
    expect(await run('snapshot-create-as', 'test', 's1')).toEqual({ code: 0, stdout: 'Domain snapshot s1 created\n', stderr: '' });
    expect(await run('destroy', 'test')).toEqual({ code: 0, stdout: "Domain 'test' destroyed\n\n", stderr: '' });

    const refused = await run('undefine', 'test');
    expect(refused).toEqual({
      code: 1,
      stdout: '\n',
      stderr:
        "error: Failed to undefine domain 'test'\n" +
        'error: Requested operation is not valid: cannot delete inactive domain with 1 snapshots\n',
    });
    const json = await run('--json', 'undefine', 'test');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      command: 'undefine test',
      ok: false,
      code: 55,
      rule: 'UND-SNAPSHOTS',
      message: 'Requested operation is not valid: cannot delete inactive domain with 1 snapshots',
      events: [],
    });

    const undefined_ = await run('undefine', 'test', '--snapshots-metadata');
    expect(undefined_).toEqual({ code: 0, stdout: "Domain 'test' has been undefined\n\n", stderr: '' });
    // A second invocation on the same store sees it gone.
    expect(await run('list', '--all')).toEqual({ code: 0, stdout: ' Id   Name   State\n--------------------\n\n', stderr: '' });
  }, 180_000); // eight CLI processes, each starting node + tsx: generous on a loaded 2-core machine
});

describe('help', () => {
  it('--help names the default store and the virsh commands', async () => {
    const r = await vmledger(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--store <spec>');
    expect(r.stdout).toContain('sqlite:./vmledger.sqlite');
    expect(r.stdout).toContain('memory');
    expect(r.stdout).toContain('shell');
    expect(r.stdout).toMatch(/undefine/);
    const shell = await vmledger(['shell', '--help']);
    expect(shell.stdout).toContain('-e, --exec <commands>');
    expect(shell.stdout).toContain('sqlite:./vmledger.sqlite');
  });

  it('`help` lists the commands with one-line descriptions, `help CMD` its options; neither creates a store', async () => {
    const where = mkdtempSync(join(tmpdir(), 'vmledger-help-'));
    try {
      const all = await vmledger(['help'], '', where);
      expect(all.code).toBe(0);
      expect(all.stdout).toMatch(/^Grouped commands:\n\n Domain Management \(help keyword 'domain'\):\n/);
      expect(all.stdout).toContain('    undefine                       undefine a domain\n');
      expect(all.stdout).toContain('    snapshot-create-as             Create a snapshot from a set of args\n');
      const one = await vmledger(['help', 'undefine'], '', where);
      expect(one.stdout).toContain('  NAME\n    undefine - undefine a domain\n');
      expect(one.stdout).toContain('    undefine <domain> [--managed-save] [--storage <string>]');
      expect(one.stdout).toContain('    --snapshots-metadata  remove all domain snapshot metadata (vm must be inactive)\n');
      expect((await vmledger(['undefine', '--help'], '', where)).stdout).toBe(one.stdout);
      const missing = await vmledger(['help', 'nosuch'], '', where);
      expect(missing).toMatchObject({ code: 1, stderr: "error: command or command group 'nosuch' doesn't exist\n" });
      expect(existsSync(join(where, 'vmledger.sqlite'))).toBe(false);
    } finally {
      rmSync(where, { recursive: true, force: true });
    }
  });
});

describe('errors as virsh prints them', () => {
  it.each([
    [['foo'], "error: unknown command: 'foo'\n", ''],
    [['undefine'], "error: command 'undefine' requires <domain> option\n", ''],
    [['undefine', 'test', '--bogus'], "error: command 'undefine' doesn't support option --bogus\n", ''],
    [['domstate', 'test', 'extra'], "error: unexpected data 'extra'\n", ''],
    [['undefine', 'test', '--storage'], 'error: expected syntax: --storage <string>\n', ''],
    [['domstate', 'test', '--reason=yes'], "error: invalid '=' after option --reason\n", ''],
    [['define', 'nope.xml'], "error: Failed to open file 'nope.xml': No such file or directory\n", '\n'],
    [['--store', 'memory', 'dominfo', 'nosuch'], "error: failed to get domain 'nosuch'\n", '\n'],
    [['--store', 'memory', 'undefine', 'test', '--nvram', '--keep-nvram'], 'error: Options --nvram and --keep-nvram are mutually exclusive\n', '\n'],
  ])('vmledger %j', async (args, stderr, stdout) => {
    const r = await vmledger(['--store', 'memory', ...args.filter((a) => a !== '--store' && a !== 'memory')]);
    expect(r).toEqual({ code: 1, stdout, stderr });
  });

  it('invalid XML: virsh header, then the XmlError message', async () => {
    const r = await vmledger(['--store', 'memory', 'define', 'broken.xml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Failed to define domain from broken\.xml\nerror: XML error: failed to parse xml document: /);
  });
});

describe('vmledger shell', () => {
  it('--json: one object per command with command, ok, code, rule, message, events (queries: result)', async () => {
    const r = await vmledger([
      'shell',
      '--store',
      'memory',
      '--json',
      '-e',
      'define test.xml; start test; snapshot-create-as test s1; undefine test --remove-all-storage; domstate test --reason; list --all',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(6);
    for (const l of lines) expect(Object.keys(l)).toEqual(expect.arrayContaining(['command', 'ok', 'code', 'rule', 'message', 'events']));
    expect(lines[0]).toMatchObject({ command: 'define test.xml', ok: true, code: 0, rule: null, message: "Domain 'test' defined from test.xml" });
    expect((lines[0]!.events as { type: string; stream: string }[])[0]).toMatchObject({ type: 'DomainDefined', stream: 'domain-local-test', revision: 0 });
    expect(lines[2]).toMatchObject({ ok: true, message: 'Domain snapshot s1 created' });
    expect(lines[3]).toMatchObject({
      ok: false,
      code: 55,
      rule: 'UND-STORAGE-RUNNING',
      message: expect.stringMatching(/Storage volume deletion is supported only on stopped domains$/),
      events: [],
    });
    expect(lines[4]).toMatchObject({ ok: true, result: { state: 'running', reason: 'booted' } });
    expect(lines[5]).toMatchObject({ ok: true, result: [{ name: 'test', state: 'running', snapshots: 1 }] });
  });

  it('reads a script from stdin, keeps going after an error, exits with the last status', async () => {
    const script = [
      '# a comment line',
      'define test.xml',
      'start test   # trailing comment',
      'start test',
      'suspend test; domstate test --reason',
      '',
      'snapshot-create-as test "a snap" "its description"',
      'snapshot-list test --name',
      'resume nosuch',
    ].join('\n');
    const r = await vmledger(['shell', '--store', 'memory'], script);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      "Domain 'test' defined from test.xml\n\n" +
        "Domain 'test' started\n\n" +
        '\n' +
        "Domain 'test' suspended\n\n" +
        'paused (user)\n\n' +
        'Domain snapshot a snap created\n' +
        'a snap\n\n' +
        '\n',
    );
    expect(r.stderr).toBe("error: Domain is already active\nerror: failed to get domain 'nosuch'\n");
    const ok = await vmledger(['shell', '--store', 'memory'], 'define test.xml\nlist --all --name\n');
    expect(ok).toMatchObject({ code: 0, stdout: "Domain 'test' defined from test.xml\n\ntest\n\n" });
  });

  it('a syntax error stops the whole -e string before anything runs, as in virsh', async () => {
    const r = await vmledger(['shell', '--store', 'memory', '-e', 'define test.xml; frobnicate; list --all']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: "error: unknown command: 'frobnicate'\n" });
  });

  it('--host addresses another hypervisor host in the same store', async () => {
    const store = `sqlite:${join(dir, 'hosts.sqlite')}`;
    expect((await vmledger(['--store', store, '--host', 'h2', 'define', 'test.xml'])).code).toBe(0);
    expect((await vmledger(['--store', store, 'list', '--all', '--name'])).stdout).toBe('\n');
    expect((await vmledger(['shell', '--store', store, '--host', 'h2', '-e', 'list --all --name'])).stdout).toBe('test\n\n');
    // DEF-NAME is per host: the same UUID under another name on h2 is refused, on local it is not.
    const clash = await vmledger(['--store', store, '--host', 'h2', 'define', 'other_same_uuid.xml']);
    expect(clash.stderr).toContain("error: operation failed: domain 'test' is already defined with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f");
    expect((await vmledger(['--store', store, 'define', 'other_same_uuid.xml'])).code).toBe(0);
  });
});
