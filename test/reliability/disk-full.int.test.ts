// The disk fills up during appends through the ledger: the SQLite store is opened with a small `maxPageCount`
// (PRAGMA max_page_count, the store's own knob for this path) and commands are driven until it is full, one by one
// and then many at once (one group-commit batch). Each command that cannot be stored gets a clear error, promptly
// (no crash, no hang), and stores nothing when the error says so; everything acknowledged before stays readable and
// replays clean; the NATS service answers such a command with an error reply instead of timing out. Reopened
// without the cap, the ledger continues: the failed commands, retried with their ids, are applied exactly once.
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CommandInput } from '../../machines/commands';
import { createVmledgerClient } from '../../services/client';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import type { EventStore } from '../../services/eventstore/types';
import { createLedger } from '../../services/ledger';
import type { CommandOutcome, Ledger } from '../../services/ledger-types';
import { startCommandService } from '../../services/nats/service';
import { replayCheck } from '../../services/replay';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { checkLog } from '../support/reliability';
import { captureLog, connectLikeProduction, domainConfig, tempDir } from '../nats/fixtures';

const MAX_PAGES = 60;
const DOMAINS = ['df-0', 'df-1', 'df-2', 'df-3'];
/** A command that neither resolves nor rejects within this long counts as a hang. */
const HANG_MS = 10_000;

let tmp: ReturnType<typeof tempDir>;
let server: NatsServerHandle;

beforeAll(async () => {
  tmp = tempDir('vmledger-disk-full-');
  server = await startNatsServer();
});

afterAll(async () => {
  await server?.stop();
  tmp?.remove();
});

const meta = (id: string) => ({ commandId: id, time: '2024-06-01T12:00:00Z', actor: 'disk-full' });

/** The n-th command of a script that keeps the domains busy: mostly accepted, with a refusal now and then. */
function scripted(n: number): CommandInput {
  const domain = DOMAINS[n % DOMAINS.length]!;
  const round = Math.floor(n / DOMAINS.length);
  const id = `df-${n}`;
  if (round === 0) return { verb: 'define', config: domainConfig(domain), meta: meta(id) };
  switch (round % 5) {
    case 1:
      return { verb: 'snapshot-create', domain, snapshot: { name: `s-${round}`, description: 'x'.repeat(200) }, meta: meta(id) };
    case 2:
      return { verb: 'start', domain, meta: meta(id) };
    case 3:
      return { verb: 'start', domain, meta: meta(id) }; // refused: STA-ACTIVE (a CommandRefused to append)
    case 4:
      return { verb: 'destroy', domain, meta: meta(id) };
    default:
      return { verb: 'snapshot-delete', domain, snapshotname: `s-${round - 4}`, meta: meta(id) };
  }
}

type Result = { outcome: CommandOutcome } | { error: Error } | { hang: true };

async function settle(ledger: Ledger, input: CommandInput): Promise<Result> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<Result>((r) => (timer = setTimeout(() => r({ hang: true }), HANG_MS)));
  try {
    return await Promise.race([
      ledger.execute(input).then(
        (outcome) => ({ outcome }),
        (error: unknown) => ({ error: error instanceof Error ? error : new Error(String(error)) }),
      ),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a disk-full error must say: that the disk is full, and what was not written. */
const DISK_FULL = /^disk is full: (nothing was appended to stream '[^']+'|doc '[^']+' was not written) \('.*' is unchanged and still readable\)$/;

describe('disk full during append, through the ledger', () => {
  it('refuses with a clear error, keeps what was acknowledged, and continues once there is room', async () => {
    const file = join(tmp.dir, 'full.sqlite');
    let store: EventStore = openSqliteEventStore(file, { maxPageCount: MAX_PAGES });
    let ledger = createLedger(store, { checkpointEvery: 10 });

    const acked: CommandOutcome[] = [];
    const failed = new Map<string, { input: CommandInput; error: Error }>();
    const record = (input: CommandInput, r: Result) => {
      expect('hang' in r, `${input.meta.commandId} neither resolved nor rejected within ${HANG_MS} ms`).toBe(false);
      if ('outcome' in r) acked.push(r.outcome);
      else if ('error' in r) failed.set(input.meta.commandId, { input, error: r.error });
    };

    // 1. One command at a time until the first one cannot be stored (bounded).
    let n = 0;
    for (; n < 5_000 && failed.size === 0; n++) {
      const input = scripted(n);
      record(input, await settle(ledger, input));
    }
    expect(failed.size, `the store never filled up in ${n} commands`).toBe(1);
    const firstFailure = n - 1;
    expect(acked.filter((o) => o.ok && o.events.length > 0).length).toBeGreaterThan(20);
    expect(acked.some((o) => !o.ok && o.audit)).toBe(true); // refusals were recorded before the disk filled

    // 2. A burst on a full disk: 24 commands at once, one group-commit batch; each resolves or fails, none hangs.
    const burst = Array.from({ length: 24 }, (_, i) => scripted(n + i));
    n += burst.length;
    const results = await Promise.all(burst.map((input) => settle(ledger, input)));
    burst.forEach((input, i) => record(input, results[i]!));
    // A refusal on a full disk cannot be recorded either: also a clear error.
    const refusedOnFull = { verb: 'start', domain: 'no-such-domain', meta: meta('df-refused-on-full') } as CommandInput;
    record(refusedOnFull, await settle(ledger, refusedOnFull));
    expect(failed.has('df-refused-on-full')).toBe(true);

    for (const [id, { error }] of failed) {
      expect(error.message, id).toMatch(DISK_FULL);
      // "nothing was appended" means nothing: no fact carries the command id.
      if (/nothing was appended/.test(error.message)) expect(await store.commandResult(id), id).toBeUndefined();
    }

    // 3. Still full: everything acknowledged is readable, the ledger's view equals the stored facts, replay clean.
    const onFull = await checkLog(store, acked, { replay: { anchor: false } });
    expect(onFull.problems).toEqual([]);
    for (const domain of DOMAINS) {
      const loaded = await ledger.loadDomain('local', domain);
      expect(loaded.revision, domain).toBe(await store.streamRevision(`domain-local-${domain}`));
    }
    expect((await replayCheck(store, { anchor: false })).ok).toBe(true);

    // 4. The NATS service on the full store: an error reply (STORE-FULL, code 38, the store's message), not a
    //    timeout and not an INTERNAL error; queries still work.
    const serviceNc = await connectLikeProduction(server.url, 'disk-full-service');
    const clientNc = await connectLikeProduction(server.url, 'disk-full-client');
    const { log, entries } = captureLog();
    const service = await startCommandService({ ledger, nc: serviceNc, log });
    try {
      const client = createVmledgerClient(clientNc, { timeoutMs: HANG_MS, retries: 0 });
      const viaNats = await client.command('snapshot-create', {
        domain: DOMAINS[0]!,
        snapshot: { name: 'over-nats', description: 'y'.repeat(4000) },
        meta: { commandId: 'df-nats' },
      });
      expect(viaNats).toMatchObject({ ok: false, rule: 'STORE-FULL', code: 38, codeName: 'VIR_ERR_SYSTEM_ERROR', commandId: 'df-nats' });
      expect(viaNats.message).toMatch(DISK_FULL);
      expect(viaNats.message).toMatch(/^disk is full: nothing was appended to stream 'domain-local-df-0'/);
      const full = entries.find((e) => e.level === 'error' && /^store full: disk is full/.test(e.message));
      expect(full?.details).toMatchObject({ cmd: 'df-nats', domain: DOMAINS[0]!, subject: 'vmledger.cmd.snapshot-create' });
      expect((await client.loadDomain('local', DOMAINS[0]!)).revision).toBe(await store.streamRevision(`domain-local-${DOMAINS[0]}`));
      failed.set('df-nats', {
        input: { verb: 'snapshot-create', domain: DOMAINS[0]!, snapshot: { name: 'over-nats' }, meta: meta('df-nats') } as CommandInput,
        error: new Error(viaNats.message),
      });
    } finally {
      await service.stop();
      await serviceNc.close();
      await clientNc.close();
    }

    await ledger.close();
    await store.close();

    // 5. Room again (reopened without the cap): the failed commands, retried with the same ids, each get an outcome
    //    and are applied once; new commands are accepted; the whole log replays clean.
    store = openSqliteEventStore(file);
    ledger = createLedger(store, { checkpointEvery: 10 });
    try {
      const retried: CommandOutcome[] = [];
      for (const { input } of failed.values()) {
        const r = await settle(ledger, input);
        expect('outcome' in r, `retry of ${input.meta.commandId}: ${JSON.stringify(r)}`).toBe(true);
        retried.push((r as { outcome: CommandOutcome }).outcome);
      }
      const after: CommandOutcome[] = [];
      for (let i = 0; i < 40; i++) {
        const r = await settle(ledger, scripted(n + i));
        expect('outcome' in r, JSON.stringify(r)).toBe(true);
        after.push((r as { outcome: CommandOutcome }).outcome);
      }
      expect(after.filter((o) => o.ok && o.events.length > 0).length).toBeGreaterThan(10);

      const check = await checkLog(store, [...acked, ...retried, ...after], { complete: true });
      expect(check.problems).toEqual([]);
      expect(check.replay.ok).toBe(true);
      console.log(
        `disk full: first failure at command ${firstFailure} of the script (maxPageCount ${MAX_PAGES}), ` +
          `${acked.length} acknowledged before and during, ${failed.size} failed with a disk-full error ` +
          `(${[...failed.values()].filter((f) => /doc '/.test(f.error.message)).length} of them after their facts were stored), ` +
          `all ${retried.length} retried after reopening (${retried.filter((o) => o.duplicate).length} were already applied), ` +
          `${after.length} more; replay of ${check.facts} facts clean`,
      );
    } finally {
      await ledger.close();
      await store.close();
    }
  });
});
