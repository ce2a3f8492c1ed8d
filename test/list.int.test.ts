// `vmledger list` and its filters against the real virsh (`virsh -c test:///default`): the same script of
// defines, starts, suspends and snapshots, then every filter, and the printed outputs must be byte-identical.
// virsh runs on an empty test node (no built-in `test` domain); the script starts domains in name order, so
// libvirt's ids (given in start order) are vmledger's (the active domains numbered in name order).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { runVmledger } from './support/cli';

const dir = mkdtempSync(join(tmpdir(), 'vmledger-list-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function domainXml(name: string): string {
  const file = join(dir, `${name}.xml`);
  writeFileSync(file, `<domain type='test'><name>${name}</name><memory>1024</memory><os><type>hvm</type></os></domain>\n`);
  return file;
}

const SETUP = [
  `define ${domainXml('web')}`,
  `define ${domainXml('db')}`,
  `define ${domainXml('cache')}`,
  'start db',
  'suspend db',
  `create ${domainXml('scratch')}`,
  'start web',
  'snapshot-create-as cache s1',
];

const LISTS = [
  'list',
  'list --all',
  'list --inactive',
  'list --all --inactive',
  'list --state-running',
  'list --state-paused',
  'list --state-shutoff',
  'list --state-running --state-paused',
  'list --inactive --state-running',
  'list --transient',
  'list --persistent',
  'list --persistent --all',
  'list --persistent --transient --all',
  'list --with-snapshot',
  'list --with-snapshot --all',
  'list --without-snapshot --all',
  'list --name --all',
  'list --uuid --inactive',
  'list --name --state-paused',
];

/** Each list command's output, split on an `echo` marker between them (vmledger's echo adds a blank line). */
function outputs(text: string): string[] {
  return text.split('=====\n').slice(1).map((chunk) => chunk.replace(/^\n/, '').replace(/\n$/, ''));
}

function script(commands: string[]): string {
  return commands.flatMap((c) => ['echo =====', c]).join('; ');
}

describe('vmledger list agrees with virsh list', () => {
  it('prints what virsh prints for every filter', async () => {
    const node = join(dir, 'node.xml');
    writeFileSync(node, '<node></node>\n');
    const virsh = execFileSync('virsh', ['-c', `test://${node}`, [...SETUP, script(LISTS)].join('; ')], {
      encoding: 'utf8',
    });
    const ours = await runVmledger(['--store', 'memory', 'shell', '-e', [...SETUP, script(LISTS)].join('; ')], dir);
    expect(ours.stderr).toBe('');
    const theirs = outputs(virsh);
    const mine = outputs(ours.stdout);
    expect(theirs).toHaveLength(LISTS.length);
    // virsh's UUIDs are random: compare the --uuid output by line count only.
    const uuidAt = LISTS.indexOf('list --uuid --inactive');
    expect(mine[uuidAt]!.split('\n').filter((l) => /^[0-9a-f-]{36}$/.test(l))).toHaveLength(theirs[uuidAt]!.split('\n').filter((l) => /^[0-9a-f-]{36}$/.test(l)).length);
    for (let i = 0; i < LISTS.length; i++) {
      if (i === uuidAt) continue;
      expect(mine[i], LISTS[i]).toBe(theirs[i]);
    }
  });

  it('refuses --table with --name as virsh does', async () => {
    const run = await runVmledger(['--store', 'memory', 'list', '--table', '--name'], dir);
    expect(run.stderr).toContain('error: Options --table and --name are mutually exclusive');
    expect(run.code).toBe(1);
  });
});
