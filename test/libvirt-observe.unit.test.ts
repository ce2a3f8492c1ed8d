// Reading a domain from libvirt (services/libvirt/observe.ts) when a read fails half-way: libvirtd killed between
// `dominfo` and `domstate` (the watch reads a domain right after its start event, and the restart test kills the
// daemon then). A connection that answers as virsh does, from a table, stands in for the dying daemon: a real one
// cannot be made to fail between two given commands.
import { describe, expect, it } from 'vitest';

import type { LibvirtConnection, VirshResult } from '../services/libvirt/connection';
import { readDomain } from '../services/libvirt/observe';

const DOMINFO = 'Id:             1\nName:           pw1\nUUID:           7c1f0f43-5a4e-4c5b-9d3e-1f2a3b4c5d6e\nState:          running\nPersistent:     yes\nManaged save:   no\n';
const ok = (stdout: string): VirshResult => ({ stdout, stderr: '', failed: false });
const err = (stderr: string): VirshResult => ({ stdout: '', stderr, failed: true });

function answering(answers: Record<string, VirshResult>): LibvirtConnection {
  return {
    uri: 'qemu+unix:///session?socket=/nowhere',
    commandsRun: 0,
    spawned: 1,
    run: async (argv) => answers[argv[0]!] ?? err(`error: unexpected ${argv.join(' ')}`),
    close: async () => {},
  };
}

const running = {
  dominfo: ok(DOMINFO),
  domstate: ok('running (booted)\n'),
  dumpxml: ok("<domain type='qemu'><name>pw1</name><devices></devices></domain>\n"),
  'snapshot-list': ok('s1\n'),
  'snapshot-current': ok('s1\n'),
};

describe('readDomain', () => {
  it('reads a running domain with its snapshots', async () => {
    const d = await readDomain(answering(running), 'pw1');
    expect(d).toMatchObject({ exists: true, state: 'running', reason: 'booted', active: true, persistent: true, snapshotNames: ['s1'], current: 's1' });
  });

  it("takes 'has no current snapshot' as no current snapshot", async () => {
    const d = await readDomain(answering({ ...running, 'snapshot-current': err("error: domain 'pw1' has no current snapshot\n") }), 'pw1');
    expect(d.current).toBeNull();
    expect(d.active).toBe(true);
  });

  it.each(['domstate', 'dumpxml', 'snapshot-list', 'snapshot-current'])(
    'refuses to answer when %s fails for another reason (the daemon gone): no stop, no lost snapshots',
    async (verb) => {
      const dying = answering({ ...running, [verb]: err('error: Disconnected from qemu+unix:///session due to end of file\n') });
      await expect(readDomain(dying, 'pw1')).rejects.toThrow(new RegExp(`${verb} pw1: error: Disconnected`));
    },
  );

  it('a domain libvirt does not find, and does not list, is gone', async () => {
    const d = await readDomain(answering({ ...running, dominfo: err("error: failed to get domain 'pw1'\n"), list: ok('other\n') }), 'pw1');
    expect(d).toMatchObject({ exists: false, active: false });
  });

  // virsh prints `failed to get domain` for any failed lookup, also one cut by libvirtd dying (issue 17's open
  // question: the restart test once saw pw1 recorded destroyed while libvirtd was being killed).
  it('a lookup cut by the daemon dying is no answer: the list read to confirm it fails, nothing is gone', async () => {
    const dying = answering({
      ...running,
      dominfo: err("error: failed to get domain 'pw1'\n"),
      list: err("error: Failed to reconnect to the hypervisor\nerror: Failed to connect socket to '/nowhere': No such file or directory\n"),
    });
    await expect(readDomain(dying, 'pw1')).rejects.toThrow(/dominfo pw1: error: failed to get domain 'pw1'; and the domain list, read to confirm it, failed: error: Failed to reconnect/);
  });

  it('a failed lookup of a domain libvirt still lists is read again, and never taken as gone', async () => {
    const d = readDomain(answering({ ...running, dominfo: err("error: failed to get domain 'pw1'\n"), list: ok('pw1\n') }), 'pw1');
    await expect(d).rejects.toThrow(/pw1: libvirt's answers changed under three reads in a row/);
  });
});
