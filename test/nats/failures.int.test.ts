// What happens when things go wrong inside the service: a throwing ledger, and a shutdown with requests in flight.
// Each test runs its service alone on a private nats-server (two instances in different queue groups would
// both receive every request).
import { join } from 'node:path';

import { NoRespondersError, RequestError, type NatsConnection } from '@nats-io/nats-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { Ledger } from '../../services/ledger-types';
import { commandSubject, QUERY_SUBJECTS } from '../../services/nats/protocol';
import { startCommandService, type CommandService } from '../../services/nats/service';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { captureLog, connectLikeProduction, domainConfig, ledgerOnFile, rawRequest, tempDir, waitFor, type LedgerOnFile } from './fixtures';

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
let db: LedgerOnFile;
let nc: NatsConnection;
let serviceNc: NatsConnection;
let service: CommandService | undefined;

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir();
  db = await ledgerOnFile(join(tmp.dir, 'ledger.sqlite'));
  nc = await connectLikeProduction(server.url, 'client');
  serviceNc = await connectLikeProduction(server.url, 'service');
});

afterEach(async () => {
  await service?.stop();
  service = undefined;
});

afterAll(async () => {
  await nc?.close();
  await serviceNc?.close();
  await db?.close();
  tmp?.remove();
  await server?.stop();
});

/** The real ledger, with a hook in front of execute and the queries. */
function hooked(ledger: Ledger, before: (what: string, input: unknown) => void | Promise<void>): Ledger {
  return {
    get store() {
      return ledger.store;
    },
    async execute(input) {
      await before('execute', input);
      return ledger.execute(input);
    },
    async loadDomain(host, name) {
      await before('loadDomain', { host, name });
      return ledger.loadDomain(host, name);
    },
    listDomains: (host) => ledger.listDomains(host),
    async queryDomains(query) {
      await before('queryDomains', query);
      return ledger.queryDomains(query);
    },
    recall: (id) => ledger.recall(id),
    close: async () => {},
  };
}

describe('a handler that throws', () => {
  it('still replies (INTERNAL, code 1, micro-service error headers) and logs the failure', async () => {
    const { log, entries } = captureLog();
    const broken = hooked(db.ledger, (what, input) => {
      if (what === 'execute' && (input as { domain?: string }).domain === 'boom') throw new Error('disk on fire');
      if (what === 'loadDomain') return Promise.reject(new TypeError('cannot read the checkpoint'));
      if (what === 'queryDomains') throw 'not even an Error';
    });
    service = await startCommandService({ ledger: broken, nc: serviceNc, log });

    const { reply, headers } = await rawRequest(nc, commandSubject('start'), { domain: 'boom', meta: { commandId: 'boom-1' } }, 3_000);
    expect(reply).toMatchObject({
      ok: false,
      rule: 'INTERNAL',
      code: 1,
      codeName: 'VIR_ERR_INTERNAL_ERROR',
      message: 'internal error: disk on fire',
      command: 'start',
      domain: 'boom',
      commandId: 'boom-1',
      events: [],
    });
    expect(headers['Nats-Service-Error-Code']).toBe('500');
    expect(headers['Nats-Service-Error']).toBe('internal error: disk on fire');
    const threw = entries.find((e) => e.level === 'error' && /handler for vmledger\.cmd\.start threw/.test(e.message));
    // A command's line says which command and domain, and carries the error with its stack.
    expect(threw?.details).toMatchObject({ cmd: 'boom-1', host: 'local', domain: 'boom', err: { message: 'disk on fire' } });
    expect(String((threw?.details.err as { stack?: string } | undefined)?.stack)).toMatch(/disk on fire\n\s+at /);

    const q = await rawRequest(nc, QUERY_SUBJECTS.domain, { domain: 'x' }, 3_000);
    expect(q.reply).toMatchObject({ ok: false, rule: 'INTERNAL', code: 1, message: 'internal error: cannot read the checkpoint' });
    const l = await rawRequest(nc, QUERY_SUBJECTS.domains, {}, 3_000);
    expect(l.reply).toMatchObject({ ok: false, rule: 'INTERNAL', message: 'internal error: not even an Error' });

    // The service keeps serving after a failure.
    const fine = await rawRequest(nc, commandSubject('define'), { config: domainConfig('after-boom') }, 3_000);
    expect(fine.reply).toMatchObject({ ok: true });
  });
});

describe('stop()', () => {
  it('drains: requests already received are finished and answered; then there are no responders', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let arrived = 0;
    const slow = hooked(db.ledger, async (what) => {
      if (what !== 'execute') return;
      arrived++;
      await gate;
    });
    const running = await startCommandService({ ledger: slow, nc: serviceNc, log: captureLog().log });
    service = running;

    const pending = Array.from({ length: 10 }, (_, i) =>
      rawRequest(nc, commandSubject('define'), { config: domainConfig(`drain-${i}`) }, 15_000),
    );
    await waitFor(() => arrived === 10, 5_000, 'ten requests in the handler');
    expect(running.inFlight()).toBe(10);

    let stopped = false;
    const stopping = running.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(stopped).toBe(false); // waiting for the requests in flight
    release();
    await stopping;
    expect(running.inFlight()).toBe(0);

    const replies = await Promise.all(pending);
    expect(replies.map((r) => r.reply.ok)).toEqual(new Array(10).fill(true));
    for (let i = 0; i < 10; i++) expect((await db.ledger.loadDomain('local', `drain-${i}`)).state.life).toBe('exists');

    const after = await nc.request(commandSubject('define'), new TextEncoder().encode('{}'), { timeout: 3_000 }).catch((e: unknown) => e);
    expect(after).toBeInstanceOf(RequestError);
    expect((after as RequestError).cause).toBeInstanceOf(NoRespondersError);
    // The caller's connection stays open: the service does not own it.
    expect(serviceNc.isClosed()).toBe(false);
  });

  it('closes the connection it opened itself (natsUrl)', async () => {
    const own = await startCommandService({ ledger: db.ledger, natsUrl: server.url, log: captureLog().log });
    const r = await rawRequest(nc, commandSubject('start'), { domain: 'nobody' }, 3_000);
    expect(r.reply).toMatchObject({ ok: false, rule: 'DOM-NOTFOUND' });
    await own.stop();
    expect(own.nc.isClosed()).toBe(true);
    await own.stopped;
  });
});
