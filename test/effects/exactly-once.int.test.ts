// Exactly-once effects (services/intents.ts) on a real SQLite file, with a hypervisor whose effects outlive the
// ledger (services/drivers/journal.ts: one fsync'd line per effect, counted on the hypervisor's side): a lost race
// between two ledgers, retries with the same command id, a process killed with SIGKILL between the intent and
// the result, then settled on restart; and the busy domain's JOB-BUSY refusal.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { CommandInput } from '../../machines/commands';
import { domainStream } from '../../machines/model';
import { createJournalDriver, readJournal } from '../../services/drivers/journal';
import type { EffectResult, HypervisorDriver } from '../../services/drivers/types';
import { openSqliteEventStore } from '../../services/eventstore/sqlite';
import type { EventStore, RecordedEvent } from '../../services/eventstore/types';
import { verifyChain } from '../../services/factHash';
import { FAULT_ENV } from '../../services/intents';
import { createLedger, type LedgerOptions } from '../../services/ledger';
import type { Ledger } from '../../services/ledger-types';
import { replayCheck, stateAt, whatIf } from '../../services/replay';
import { parseDomainXml } from '../../services/xml';
import { auditEntries } from '../../projections/queries';
import { EFFECT_INTENDED, EFFECT_SETTLED } from '../../projections/log';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIG = parseDomainXml(readFileSync(join(ROOT, 'examples/web1.xml'), 'utf8'));
const NAME = CONFIG.name;
const STREAM = domainStream('local', NAME);
const TIME = '2026-12-01T00:00:00.000Z';

let dir: string;
let file: string;
let journal: string;
const opened: { store: EventStore; ledger: Ledger }[] = [];
let ids = 0;

function open(options: LedgerOptions = {}, driver: HypervisorDriver = createJournalDriver(journal)) {
  const store = openSqliteEventStore(file);
  const ledger = createLedger(store, { driver, ...options });
  opened.push({ store, ledger });
  return { store, ledger };
}

function cmd(spec: Record<string, unknown>, commandId = `cmd-${++ids}`): CommandInput {
  return { ...spec, meta: { commandId, actor: 'test', time: TIME } } as CommandInput;
}

/** Effects the hypervisor performed for a command id (its own record, not the ledger's). */
const performed = (commandId: string) => readJournal(journal).filter((l) => l.commandId === commandId).length;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A journal driver whose perform takes a while: both racers decide before either records anything. */
function slowJournal(ms: number): HypervisorDriver {
  const inner = createJournalDriver(journal);
  return {
    ...inner,
    async perform(s, c, d): Promise<EffectResult> {
      await new Promise((r) => setTimeout(r, ms));
      return inner.perform(s, c, d);
    },
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmledger-once-'));
  file = join(dir, 'ledger.sqlite');
  journal = join(dir, 'hypervisor.journal');
});

afterEach(async () => {
  for (const { ledger, store } of opened.splice(0)) {
    await ledger.close();
    await store.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('intent → perform → result', () => {
  it('records the intent before the effect and the result after it; replay and audit show both', async () => {
    const { store, ledger } = open();
    const define = await ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    const start = await ledger.execute(cmd({ verb: 'start', domain: NAME }));
    expect(define.ok && start.ok).toBe(true);
    const events = await collect(store.readStream(STREAM));
    expect(events.map((e) => e.type)).toEqual([EFFECT_INTENDED, 'DomainDefined', EFFECT_INTENDED, 'DomainStarted']);
    expect(verifyChain(events)).toBeUndefined();
    expect(start.events.map((e) => e.type)).toEqual(['DomainStarted']);
    expect(performed(start.commandId)).toBe(1);
    expect((await ledger.loadDomain('local', NAME)).state).toMatchObject({ active: true });

    const replay = await replayCheck(store);
    expect(replay).toMatchObject({ ok: true, decisions: 2, intents: 2, openIntents: 0 });
    const audit = await auditEntries(store, { domain: NAME });
    expect(audit.map((e) => [e.verb, e.intent ?? false, e.facts.map((f) => f.type)])).toEqual([
      ['define', true, [EFFECT_INTENDED]],
      ['define', false, ['DomainDefined']],
      ['start', true, [EFFECT_INTENDED]],
      ['start', false, ['DomainStarted']],
    ]);

    // Time travel: at the intent the domain is as it was; at the result, as the hypervisor left it.
    const [, , intent, result] = events;
    const at = async (position: number) => (await stateAt(store, { position })).domains.find((d) => d.name === NAME)?.detail.active;
    expect(await at(intent!.position)).toBe(false);
    expect(await at(result!.position)).toBe(true);
    // What-if: the intents add no decisions of their own; only the refused second start changes without its rule.
    const again = await ledger.execute(cmd({ verb: 'start', domain: NAME }));
    expect(again).toMatchObject({ ok: false, rule: 'STA-ACTIVE' });
    const report = await whatIf(store, { without: ['STA-ACTIVE'] });
    expect(report.commands).toBe(3);
    expect(report.changes.map((c) => [c.verb, c.commandId])).toEqual([['start', again.commandId]]);
  });

  it('a command the rules refuse records no intent and never reaches the hypervisor', async () => {
    const { store, ledger } = open();
    await ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    const refused = await ledger.execute(cmd({ verb: 'destroy', domain: NAME }));
    expect(refused).toMatchObject({ ok: false, rule: 'ACT-REQ' });
    expect(performed(refused.commandId)).toBe(0);
    expect((await collect(store.readStream(STREAM))).filter((e) => e.type === EFFECT_INTENDED)).toHaveLength(1);
  });

  it('a hypervisor refusal closes the intent with EffectSettled and leaves the state as it was', async () => {
    const inner = createJournalDriver(journal);
    const refusing: HypervisorDriver = {
      ...inner,
      perform: async (s, c, d) =>
        c.verb === 'suspend' ? { facts: [], refusal: { rule: 'LIBVIRT', code: 1, codeName: 'VIR_ERR_INTERNAL_ERROR', message: 'internal error: qemu said no' } } : inner.perform(s, c, d),
    };
    const { store, ledger } = open({}, refusing);
    await ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    await ledger.execute(cmd({ verb: 'start', domain: NAME }));
    const suspend = await ledger.execute(cmd({ verb: 'suspend', domain: NAME }));
    expect(suspend).toMatchObject({ ok: false, rule: 'LIBVIRT', message: 'internal error: qemu said no' });
    expect((await ledger.loadDomain('local', NAME)).state).toMatchObject({ active: true, paused: false });
    const last = (await collect(store.readStream(STREAM))).slice(-2);
    expect(last.map((e) => e.type)).toEqual([EFFECT_INTENDED, EFFECT_SETTLED]);
    expect(await ledger.execute(cmd({ verb: 'suspend', domain: NAME }, suspend.commandId))).toMatchObject({ ok: false, rule: 'LIBVIRT', duplicate: true });
    expect((await replayCheck(store)).ok).toBe(true);
    const audit = await auditEntries(store, { domain: NAME });
    expect(audit.at(-1)).toMatchObject({ verb: 'suspend', intent: true, outcome: 'refused', rule: 'LIBVIRT' });
  });
});

describe('at most once per command id', () => {
  it('two ledgers on one file racing for the same domain: the loser never performs, and is decided again after', async () => {
    const a = open({}, slowJournal(40));
    await a.ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    const b = open({}, slowJournal(40));
    const [ra, rb] = await Promise.all([a.ledger.execute(cmd({ verb: 'start', domain: NAME })), b.ledger.execute(cmd({ verb: 'start', domain: NAME }))]);
    const [won, lost] = ra.ok ? [ra, rb] : [rb, ra];
    expect(won.ok).toBe(true);
    expect(lost).toMatchObject({ ok: false, rule: 'STA-ACTIVE' });
    expect(performed(won.commandId)).toBe(1);
    expect(performed(lost.commandId)).toBe(0);
    expect(readJournal(journal).filter((l) => l.verb === 'start')).toHaveLength(1);
    expect((await replayCheck(a.store)).ok).toBe(true);
  });

  it('many interleaved commands from two ledgers: each accepted one performed exactly once, the refused never', async () => {
    const a = open({}, slowJournal(2));
    await a.ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    await a.ledger.execute(cmd({ verb: 'start', domain: NAME }));
    const b = open({}, slowJournal(2));
    const verbs = ['suspend', 'resume'];
    const outcomes = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 ? b : a).ledger.execute(cmd({ verb: verbs[Math.floor(i / 2) % 2]!, domain: NAME }))),
    );
    expect(outcomes.filter((o) => o.ok).length).toBeGreaterThan(0);
    for (const o of outcomes) expect(performed(o.commandId), `${o.command} ${o.commandId} ${o.rule ?? ''}`).toBe(o.ok ? 1 : 0);
    // Every line in the journal belongs to exactly one command id, and every performed command is recorded.
    const lines = readJournal(journal);
    expect(new Set(lines.map((l) => l.commandId)).size).toBe(lines.length);
    const recorded = await collect(a.store.readStream(STREAM));
    for (const l of lines) expect(recorded.some((e) => e.metadata.commandId === l.commandId && e.type !== EFFECT_INTENDED)).toBe(true);
    expect((await replayCheck(a.store)).ok).toBe(true);
  });

  it('a retry with the same command id, here and from another ledger, performs nothing again', async () => {
    const a = open();
    await a.ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    const start = cmd({ verb: 'start', domain: NAME });
    const first = await a.ledger.execute(start);
    const b = open();
    const again = await Promise.all([a.ledger.execute(start), b.ledger.execute(start), b.ledger.execute(start)]);
    for (const o of again) expect(o).toMatchObject({ ok: true, duplicate: true, revision: first.revision });
    expect(performed(first.commandId)).toBe(1);
  });

  it('a retry while the first attempt is still performing (another ledger) waits for it instead of performing', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = open({ intents: { onPoint: (point, c) => (point === 'after-intent' && c.verb === 'start' ? gate : undefined) } });
    await a.ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    const start = cmd({ verb: 'start', domain: NAME });
    const first = a.ledger.execute(start);
    const b = open();
    await waitFor(async () => (await collect(b.store.readStream(STREAM))).at(-1)?.type === EFFECT_INTENDED);
    const retry = b.ledger.execute(start);
    const other = await open({ intents: { jobWaitMs: 50 } }).ledger.execute(cmd({ verb: 'destroy', domain: NAME }));
    // The domain is busy with a job: libvirt's job-lock wording, not recorded (a retry later may pass).
    expect(other).toMatchObject({
      ok: false,
      rule: 'JOB-BUSY',
      code: 68,
      message: `Timed out during operation: cannot acquire state change lock (held by monitor=start ${start.meta.commandId})`,
    });
    release();
    const [r1, r2] = await Promise.all([first, retry]);
    expect(r1).toMatchObject({ ok: true });
    expect(r2).toMatchObject({ ok: true, duplicate: true, revision: r1.revision });
    expect(performed(start.meta.commandId)).toBe(1);
    expect(performed(other.commandId)).toBe(0);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs test/support/intentChild.ts with the fault hook set; resolves once it pauses there, with its pid. */
function childPausedAt(point: string, commands: CommandInput[]): Promise<{ kill: () => Promise<void> }> {
  // `node --import tsx`, not the tsx CLI: that runs the script in a grandchild, which SIGKILL would not reach.
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/support/intentChild.ts'), file, journal, JSON.stringify(commands)], {
    cwd: ROOT,
    env: { ...process.env, [FAULT_ENV]: point },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolvePaused, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child never paused at ${point}: ${stderr}`));
    }, 40_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes(`paused at ${point}`)) {
        clearTimeout(timer);
        resolvePaused({
          kill: () =>
            new Promise<void>((done) => {
              child.on('exit', () => done());
              child.kill('SIGKILL');
            }),
        });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${String(code)}) before pausing at ${point}: ${stderr}`));
    });
  });
}

describe('kill -9 between the intent and the result, then restart', () => {
  it.each([
    ['after-effect', true],
    ['after-intent', false],
  ] as const)('killed at %s: the intent is settled to what the hypervisor did (performed: %s), nothing twice', async (point, happened) => {
    const setup = open();
    await setup.ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    await setup.ledger.close();
    await setup.store.close();
    opened.splice(0);

    const start = cmd({ verb: 'start', domain: NAME });
    const child = await childPausedAt(point, [start]);
    await child.kill();
    expect(performed(start.meta.commandId)).toBe(happened ? 1 : 0);
    const before = await collect(openAndClose());
    expect(before.at(-1)?.type).toBe(EFFECT_INTENDED); // the child died with its intent open

    // Restart: opening the store settles the intent against the hypervisor before any command.
    const { store, ledger } = open();
    const state = (await ledger.loadDomain('local', NAME)).state;
    expect(state.active).toBe(happened);
    const events = await collect(store.readStream(STREAM));
    expect(events.at(-1)).toMatchObject({ type: EFFECT_SETTLED, data: { settledBy: 'recovery', performed: happened } });
    if (happened) expect(events.at(-2)?.type).toBe('DomainStarted');
    // The retry (the client never got an answer) gets the settled outcome; nothing is performed again.
    const retry = await ledger.execute(start);
    expect(retry).toMatchObject(happened ? { ok: true, duplicate: true } : { ok: false, rule: 'JOB-INTERRUPTED', duplicate: true });
    expect(performed(start.meta.commandId)).toBe(happened ? 1 : 0);
    // The domain is free again.
    const next = await ledger.execute(cmd({ verb: happened ? 'destroy' : 'start', domain: NAME }));
    expect(next.ok).toBe(true);
    const replay = await replayCheck(store);
    expect(replay).toMatchObject({ ok: true, openIntents: 0 });
    expect(verifyChain(await collect(store.readStream(STREAM)))).toBeUndefined();
  });

  it('a ledger with another hypervisor leaves the intent open (only its own driver can tell what happened)', async () => {
    const setup = open();
    await setup.ledger.execute(cmd({ verb: 'define', config: CONFIG }));
    const start = cmd({ verb: 'start', domain: NAME });
    const child = await childPausedAt('after-effect', [start]);
    await child.kill();
    // Its recorder is dead and it cannot settle it: refused at once, without waiting out libvirt's 30 s.
    const other = open({}, createJournalDriver(join(dir, 'another.journal')));
    const refused = await other.ledger.execute(cmd({ verb: 'destroy', domain: NAME }));
    expect(refused).toMatchObject({ ok: false, rule: 'JOB-BUSY' });
    expect((await collect(other.store.readStream(STREAM))).at(-1)?.type).toBe(EFFECT_INTENDED);
    // The right one settles it on the next command.
    const right = open();
    expect(await right.ledger.execute(cmd({ verb: 'destroy', domain: NAME }))).toMatchObject({ ok: true });
    expect(performed(start.meta.commandId)).toBe(1);
  });
});

function openAndClose(): AsyncIterable<RecordedEvent> {
  return (async function* () {
    const store = openSqliteEventStore(file);
    try {
      yield* store.readStream(STREAM);
    } finally {
      await store.close();
    }
  })();
}
