// `vmledger --nats URL shell …`: the same virsh commands, decided by a running service instead of a local store.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { ledgerOnFile, startStack, tempDir, type LedgerOnFile, type Stack } from './fixtures';

const BIN = fileURLToPath(new URL('../../bin/vmledger.mjs', import.meta.url));
const WEB1 = fileURLToPath(new URL('../../examples/web1.xml', import.meta.url));

/** Runs the CLI without blocking this process's event loop: the service under test lives in it. */
function vmledger(args: string[], cwd: string): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ status: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('vmledger --nats URL shell', () => {
  let server: NatsServerHandle;
  let ledger: LedgerOnFile;
  let stack: Stack;
  const tmp = tempDir('vmledger-remote-shell-');

  beforeAll(async () => {
    server = await startNatsServer();
    ledger = await ledgerOnFile(join(tmp.dir, 'service.sqlite'));
    stack = await startStack(server.url, ledger.ledger);
  });

  afterAll(async () => {
    await stack?.stop();
    await ledger?.close();
    await server?.stop();
    tmp.remove();
  });

  it('sends each command to the service, which decides and records it; no local store is created', async () => {
    const run = await vmledger(
      ['--nats', server.url, '--json', 'shell', '-e', `define ${WEB1}; start web1; snapshot-create-as web1 s1; destroy web1; undefine web1`],
      tmp.dir,
    );
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ok: boolean; rule?: string | null; message?: string | null });
    expect(lines.map((l) => l.ok)).toEqual([true, true, true, true, false]);
    expect(lines[4]).toMatchObject({ rule: 'UND-SNAPSHOTS', message: 'Requested operation is not valid: cannot delete inactive domain with 1 snapshots' });
    expect(run.status).toBe(1);
    // The service's store holds the facts; the client wrote nothing locally.
    const state = await ledger.ledger.loadDomain('local', 'web1');
    expect(Object.keys(state.state.snapshots)).toEqual(['s1']);
    expect(readdirSync(tmp.dir)).not.toContain('vmledger.sqlite');
  });

  it('answers queries from the service', async () => {
    const run = await vmledger(['--nats', server.url, 'shell', '-e', 'list --all; snapshot-current web1 --name'], tmp.dir);
    expect(run.stdout).toMatch(/web1\s+shut off/);
    expect(run.stdout).toContain('s1');
    expect(run.status).toBe(0);
  });

  it('says how to start NATS when it cannot reach the URL', async () => {
    const run = await vmledger(['--nats', 'nats://127.0.0.1:1', 'list', '--all'], tmp.dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^error: cannot reach NATS at nats:\/\/127\.0\.0\.1:1: .*nats-server -js/);
  });
});
