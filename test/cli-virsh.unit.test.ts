// The virsh language layer in-process: tokenizer, argv parser, printers, and the session over a memory ledger.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { VERBS } from '../machines/commands';
import { createMemoryEventStore } from '../services/eventstore/memory';
import { createLedger } from '../services/ledger';
import { COMMANDS, parseArgv } from '../services/virsh/definitions';
import { VirshSession, destinationHost, parseDiskspec, type CommandReport } from '../services/virsh';
import { splitCommaList, tokenize } from '../services/virsh/tokenize';

/** Scripts name their files `libvirt-examples/…`, relative to test/fixtures. */
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

describe('tokenize (virsh quoting rules)', () => {
  it.each([
    ['domstate test', [['domstate', 'test']]],
    ["domstate 'te st'; domstate \"a b\"", [['domstate', 'te st'], ['domstate', 'a b']]],
    ['domstate te\\ st', [['domstate', 'te st']]],
    ["domstate 'te''st'", [['domstate', 'test']]],
    ['domstate te"st"x', [['domstate', 'testx']]],
    ["echo 'a\\b' \"c\\\"d\"", [['echo', 'a\\b', 'c"d']]],
    ['list # a comment; not a command\nlist --all', [['list'], ['list', '--all']]],
    ['a#b', [['a#b']]],
    ['list;;\n\n list', [['list'], ['list']]],
    ["domstate 'unterminated", [['domstate', 'unterminated']]],
    ["echo ''", [['echo', '']]],
    ['echo a\\\nb', [['echo', 'ab']]],
  ])('%j', (text, commands) => {
    expect(tokenize(text)).toEqual({ ok: true, commands });
  });

  it('reports an unterminated double quote and a dangling backslash, as virsh', () => {
    expect(tokenize('domstate "test')).toEqual({ ok: false, error: 'missing "' });
    expect(tokenize('domstate test\\')).toEqual({ ok: false, error: 'dangling \\' });
  });

  it('splits comma lists with ,, as a literal comma', () => {
    expect(splitCommaList('vda,/path/a,,b,')).toEqual(['vda', '/path/a,b', '']);
  });
});

describe('parseArgv (virsh option rules)', () => {
  const opts = (argv: string[]) => {
    const p = parseArgv(argv);
    if (!p.ok) throw new Error(p.error);
    return Object.fromEntries(p.opts);
  };

  it('fills positional arguments into the options in order, like virsh', () => {
    expect(opts(['undefine', 'test', 'vda'])).toEqual({ domain: 'test', storage: 'vda' });
    expect(opts(['snapshot-create-as', 'test', 's1', 'desc', 'vda,snapshot=external'])).toEqual({
      domain: 'test',
      name: 's1',
      description: 'desc',
      diskspec: ['vda,snapshot=external'],
    });
    expect(opts(['snapshot-create-as', '--domain=test', '--diskspec', 'vda', '--diskspec', 'vdb', '--halt'])).toEqual({
      domain: 'test',
      diskspec: ['vda', 'vdb'],
      halt: true,
    });
    expect(opts(['migrate', 'test', 'qemu+ssh://dst/system', '--persistent'])).toEqual({ domain: 'test', desturi: 'qemu+ssh://dst/system', persistent: true });
    expect(opts(['domstate', '--', '--odd-name'])).toEqual({ domain: '--odd-name' });
  });

  it.each([
    [['frob'], "unknown command: 'frob'"],
    [['undefine'], "command 'undefine' requires <domain> option"],
    [['migrate', 'test'], "command 'migrate' requires <desturi> option"],
    [['undefine', 'test', '--bogus'], "command 'undefine' doesn't support option --bogus"],
    [['domstate', 'test', 'more'], "unexpected data 'more'"],
    [['domstate', '--domain', 'a', '--domain', 'b'], 'option --domain already seen'],
    [['undefine', 'test', '--storage'], 'expected syntax: --storage <string>'],
    [['domstate', 'test', '--reason=1'], "invalid '=' after option --reason"],
    [['migrate-incoming', 'x.xml'], "command 'migrate-incoming' requires --source option"],
  ])('%j → %s', (argv, error) => {
    expect(parseArgv(argv)).toEqual({ ok: false, error });
  });

  it('has a virsh command for every verb of the machine', () => {
    const names = new Set(COMMANDS.map((c) => c.name));
    for (const verb of VERBS) expect(names.has(verb), verb).toBe(true);
    expect(names.has('snapshot-create-as')).toBe(true);
  });

  it('understands diskspecs (with the seed-002 mirror) and migration URIs', () => {
    expect(parseDiskspec('vda,snapshot=external,file=/p,mirror=/m')).toEqual({ target: 'vda', snapshot: 'external', file: '/p', mirror: '/m' });
    expect(parseDiskspec('vd,,a,file=/x,,y')).toEqual({ target: 'vd,a', snapshot: 'external', file: '/x,y' });
    expect(parseDiskspec('vdb,snapshot=no')).toEqual({ target: 'vdb', snapshot: 'no' });
    expect(parseDiskspec('vda,foo=bar')).toBeUndefined();
    expect(destinationHost('qemu+ssh://root@dst:22/system')).toBe('dst');
    expect(destinationHost('qemu+tcp://[fd00::1]:16509/system')).toBe('fd00::1');
    expect(destinationHost('dst')).toBe('dst');
    expect(destinationHost('qemu:///system')).toBeUndefined();
  });
});

async function session(script: string, host = 'local') {
  const ledger = createLedger(createMemoryEventStore());
  const s = new VirshSession(ledger, { host, readFile: (p) => readFileSync(join(FIXTURES, p), 'utf8'), now: () => '2026-11-21T22:39:32.000Z' });
  const reports: CommandReport[] = [];
  const { status } = await s.runText(script, (r) => void reports.push(r));
  return { reports, status, ledger, text: reports.map((r) => r.stderr + r.stdout).join('') };
}

const PREAMBLE = 'define libvirt-examples/test.xml; start test; ';

describe('virsh output', () => {
  it('T26: the snapshot tree, current and parent as in the catalog', async () => {
    const { reports } = await session(
      PREAMBLE +
        'snapshot-create-as test s1; snapshot-create-as test s2; snapshot-create-as test s3; snapshot-revert test s2; ' +
        'snapshot-create-as test s4; snapshot-list test --tree; snapshot-current test --name; snapshot-parent test s4',
    );
    expect(reports.slice(2).map((r) => r.stdout).join('')).toBe(
      'Domain snapshot s1 created\nDomain snapshot s2 created\nDomain snapshot s3 created\nDomain snapshot s2 reverted\n\n' +
        'Domain snapshot s4 created\ns1\n  |\n  +- s2\n      |\n      +- s3\n      +- s4\n        \n\ns4\ns2\n',
    );
  });

  it('T14: snapshot-list as a table, domstate --reason', async () => {
    const { text } = await session(PREAMBLE + 'snapshot-create-as test s1 --halt; domstate test --reason; snapshot-list test');
    expect(text).toContain(
      'Domain snapshot s1 created\nshut off (from snapshot)\n\n' +
        ' Name   Creation Time               State\n---------------------------------------------\n s1     2026-11-21 22:39:32 +0000   running\n\n',
    );
  });

  it('dominfo prints the fields vmledger models', async () => {
    const { reports } = await session(PREAMBLE + 'dominfo test');
    expect(reports[2]!.stdout).toBe(
      'Id:             1\nName:           test\nUUID:           6695eb01-f6a4-8304-79aa-97f2502e193f\nOS Type:        hvm\n' +
        'State:          running\nPersistent:     yes\nAutostart:      disable\nManaged save:   no\n\n',
    );
  });

  it('snapshot-create-as --print-xml prints what virsh would send', async () => {
    const { reports } = await session('snapshot-create-as test s1 --diskspec vda,snapshot=external,file=/p --memspec file=/m,snapshot=external --print-xml');
    expect(reports[0]!.stdout).toBe(
      "<domainsnapshot>\n  <name>s1</name>\n  <memory snapshot='external' file='/m'/>\n  <disks>\n    <disk name='vda' snapshot='external'>\n" +
        "      <source file='/p'/>\n    </disk>\n  </disks>\n</domainsnapshot>\n\n\n",
    );
  });

  it('block copy and mirrored snapshots: started, not ready, ready, pivoted', async () => {
    const { reports, ledger } = await session(
      PREAMBLE +
        'blockcopy test vda /copy.img; blockcopy test vda /copy.img --transient-job; blockjob test vda --pivot; ' +
        'blockjob test vda; guest-event test blockjob-ready --disk vda; blockjob test vda --info; blockjob test vda --pivot; domblklist test',
    );
    const r = reports.slice(2);
    expect(r[0]).toMatchObject({ ok: false, stderr: 'error: Requested operation is not valid: domain is not transient\n' });
    expect(r[1]).toMatchObject({ ok: true, stdout: 'Block Copy started\n' });
    expect(r[2]).toMatchObject({ ok: false, stderr: "error: block copy still active: block job 'vda' not ready for pivot yet\n" });
    expect(r[3]!.stdout).toBe('Block Copy: [  0 %]\n\n');
    expect(r[5]!.stdout).toBe('Block Copy: [100 %]\n\n');
    expect(r[6]).toMatchObject({ ok: true, stdout: '\n' });
    expect(r[7]!.stdout).toBe(' Target   Source\n---------------------\n vda      /copy.img\n\n');
    expect((await ledger.loadDomain('local', 'test')).state.blockJobs).toEqual({});
  });

  it('blockcopy --wait/--pivot/--finish without a libvirt connection say why they cannot wait', async () => {
    const { reports, ledger } = await session(PREAMBLE + 'blockcopy test vda /copy.img --transient-job --pivot; blockcopy test vda /copy.img --wait');
    for (const r of reports.slice(2)) {
      expect(r).toMatchObject({ ok: false, json: { rule: 'VIRSH-ARGS', code: 8 } });
      expect(r.stderr).toMatch(/^error: blockcopy --wait needs a libvirt connection \(vmledger --connect URI\): without one nothing copies/);
    }
    expect((await ledger.loadDomain('local', 'test')).state.blockJobs).toEqual({});
  });

  it('migrate DOM DESTURI moves the domain to the host the URI names', async () => {
    const { reports, ledger, status } = await session(PREAMBLE + 'migrate test qemu+ssh://dst/system --persistent; migrate test qemu:///system');
    expect(reports[2]).toMatchObject({ ok: true, stdout: '\n' });
    expect(reports[2]!.json.events.map((e) => e.stream)).toContain('domain-dst-test');
    expect(reports[3]).toMatchObject({ ok: false, stderr: "error: migration destination URI 'qemu:///system' names no host\n" });
    expect(status).toBe(1);
    expect((await ledger.listDomains('dst')).map((s) => s.name)).toEqual(['test']);
  });

  it('undefine --remove-all-storage lists what it removed and what it kept', async () => {
    const { reports } = await session(PREAMBLE + 'destroy test; undefine test --remove-all-storage --wipe-storage');
    expect(reports[3]).toMatchObject({
      ok: true,
      stdout: "Domain 'test' has been undefined\nWiping volume 'vda'(/guest/diskimage1) ... Done.\nVolume 'vda'(/guest/diskimage1) removed.\n\n",
    });
  });
});
