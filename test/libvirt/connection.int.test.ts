// The libvirt connection (services/libvirt/connection.ts) against a real private libvirtd: framing of output and
// errors, serialisation, libvirt's error codes, and a respawn after the virsh child dies.
import { expect, it } from 'vitest';

import { LibvirtConnectionError, openLibvirtConnection } from '../../services/libvirt/connection';
import { libvirtRefusal } from '../../services/libvirt/errors';
import { describeLibvirt, useLibvirtd } from './daemon';

describeLibvirt('libvirt connection (a long-lived virsh)', () => {
  const lv = useLibvirtd();

  it('frames each command: its stdout, its stderr, and whether it failed', async () => {
    const c = openLibvirtConnection(lv.current.testUri);
    try {
      const list = await c.run(['list', '--all']);
      expect(list.failed).toBe(false);
      expect(list.stderr).toBe('');
      expect(list.stdout).toMatch(/^\s*1\s+test\s+running\s*$/m);
      // Quoting survives (spaces, quotes, markup, a semicolon virsh would otherwise split on).
      const echo = await c.run(['echo', "it's a <b>test</b>; list"]);
      expect(echo.stdout.trim()).toBe("it's a <b>test</b>; list");
      const missing = await c.run(['domstate', 'no-such-domain']);
      expect(missing.failed).toBe(true);
      expect(missing.stdout).toBe('');
      expect(missing.stderr).toContain("error: failed to get domain 'no-such-domain'");
      const xml = await c.run(['dumpxml', 'test']);
      expect(xml.stdout).toMatch(/^<domain type='test'[\s\S]*<\/domain>\n$/);
    } finally {
      await c.close();
    }
  });

  it('serialises concurrent commands and keeps each answer with its command', async () => {
    const c = openLibvirtConnection(lv.current.testUri);
    try {
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => c.run(['echo', `n${i}`])));
      expect(answers.map((a) => a.stdout.trim())).toEqual(Array.from({ length: 40 }, (_, i) => `n${i}`));
      expect(c.spawned).toBe(1);
    } finally {
      await c.close();
    }
  });

  it("reads libvirt's refusal into its code and message", async () => {
    const c = openLibvirtConnection(lv.current.testUri);
    try {
      const r = await c.run(['resume', 'test']);
      expect(r.failed).toBe(true);
      expect(r.stderr).toContain("error: Failed to resume domain 'test'");
      expect(libvirtRefusal(r.stderr)).toEqual({
        rule: 'LIBVIRT',
        code: 1,
        codeName: 'VIR_ERR_INTERNAL_ERROR',
        message: "internal error: domain 'test' not paused",
      });
      const snap = await c.run(['snapshot-revert', 'test', 'nosuch']);
      expect(libvirtRefusal(snap.stderr)).toMatchObject({ code: 72, codeName: 'VIR_ERR_NO_DOMAIN_SNAPSHOT' });
      // virsh's own client-side check: its text, no libvirt prefix.
      const start = await c.run(['start', 'test']);
      expect(libvirtRefusal(start.stderr).message).toBe('Domain is already active');
    } finally {
      await c.close();
    }
  });

  it('fails the command in flight when virsh dies, and respawns for the next one', async () => {
    const c = openLibvirtConnection(lv.current.testUri);
    try {
      await c.run(['list']);
      // `quit` ends the child like a crash would from the connection's point of view.
      await expect(c.run(['quit'])).rejects.toBeInstanceOf(LibvirtConnectionError);
      const again = await c.run(['domstate', 'test']);
      expect(again.stdout.trim()).toBe('running');
      expect(c.spawned).toBe(2);
    } finally {
      await c.close();
    }
  });

  it('says why when the daemon cannot be reached', async () => {
    const c = openLibvirtConnection(`test+unix:///default?socket=${lv.current.dir}/no-such-socket`);
    try {
      await expect(c.run(['list'])).rejects.toThrow(/Failed to connect socket/);
    } finally {
      await c.close();
    }
  });
});
