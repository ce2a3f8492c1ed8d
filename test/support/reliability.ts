// Shared machinery of the reliability tests (test/reliability/): `vmledger serve` as a real child process, a
// sustained mixed write load from many NATS clients that resend with the same command id until they get a reply,
// and a check of the log afterwards that ties every reply to what the store holds and re-runs every decision.
//
//   const serve = await spawnServe(nats.url, file);          // node bin/vmledger.mjs serve --store sqlite:FILE
//   const load = startLoad({ url: nats.url, clients: 16, next: (rand) => mixedCommand(rand, { domains }) });
//   await waitFor(() => load.stats.okWithFacts >= 100);
//   await serve.kill9();
//   ...
//   await load.stop();
//   const check = await checkLog(store, load.outcomes.values());
//   expect(check.problems).toEqual([]);
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import type { NatsConnection } from '@nats-io/nats-core';

import { evolve } from '../../machines/evolve';
import { initialDomainState, type DomainState } from '../../machines/model';
import { createVmledgerClient, type CommandRequest } from '../../services/client';
import type { EventStore, RecordedEvent } from '../../services/eventstore/types';
import { factFromEvent } from '../../services/factHash';
import { prng } from './prng';
import type { CommandOutcome } from '../../services/ledger-types';
import { replayCheck, type ReplayOptions, type ReplaySummary } from '../../services/replay';
import { connectLikeProduction, domainConfig } from '../nats/fixtures';

export const ROOT = resolve(import.meta.dirname, '../..');
export const VMLEDGER_BIN = join(ROOT, 'bin/vmledger.mjs');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The seed of a test run: $VMLEDGER_SEED, or one derived from the clock (printed in failure messages). */
export function runSeed(): number {
  return Number(process.env.VMLEDGER_SEED ?? Date.now() % 1_000_000);
}

// ---------------------------------------------------------------------------------------------------
// `vmledger serve` in a child process

export interface ServeProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** stderr and stdout so far. */
  output(): string;
  alive(): boolean;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** kill -9: no drain, no close; resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (drain and close the store); SIGKILL after `graceMs`. Resolves with how it exited. */
  terminate(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();
let exitHook = false;

/** SIGKILLs every serve child this module started that is still running (for afterAll). */
export async function killServeChildren(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      waits.push(new Promise((r) => child.once('exit', r)));
      child.kill('SIGKILL');
    }
  }
  await Promise.all(waits);
}

/**
 * Starts `node bin/vmledger.mjs serve --store sqlite:FILE --nats URL` (the real CLI, through tsx) and resolves
 * once it says it is serving. Fails, with what it printed, if it exits first or takes longer than `startTimeoutMs`.
 */
export async function spawnServe(natsUrl: string, storeFile: string, options: { startTimeoutMs?: number } = {}): Promise<ServeProcess> {
  // A path means the SQLite file; a spec with a scheme (jetstream://…) is passed as it is.
  const storeSpec = /^[a-z]+:/.test(storeFile) ? storeFile : `sqlite:${storeFile}`;
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    });
  }
  const proc = spawn(process.execPath, [VMLEDGER_BIN, 'serve', '--store', storeSpec, '--nats', natsUrl], {
    cwd: ROOT,
    env: { ...process.env, NATS_URL: '', VMLEDGER_STORE: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      r({ code, signal });
    }),
  );
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  while (!/serving 'vmledger'/.test(out)) {
    if (!alive()) throw new Error(`vmledger serve exited before serving:\n${out}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`vmledger serve did not start within ${options.startTimeoutMs ?? 30_000} ms:\n${out}`);
    }
    await sleep(20);
  }
  return {
    proc,
    pid: proc.pid!,
    output: () => out,
    alive,
    exited,
    async kill9() {
      if (alive()) proc.kill('SIGKILL');
      await exited;
    },
    async terminate(graceMs = 15_000) {
      if (alive()) proc.kill('SIGTERM');
      const force = setTimeout(() => alive() && proc.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(force);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The workload: mixed commands on a set of domains, from clients that know nothing of the domains' states.

export interface MixOptions {
  domains: readonly string[];
  /** Hosts the commands go to (the first is the usual one). Default ['local']. */
  hosts?: readonly string[];
  /** Snapshot names (few, so creates collide). Default s1..s3. */
  snapshots?: readonly string[];
  /** Include `migrate` between the hosts (needs two hosts). */
  migrate?: boolean;
}

type Weighted = [number, () => Record<string, unknown>];

/** One random command (without meta) of the usual lifecycle, snapshot and (optionally) migration verbs. */
export function mixedCommand(rand: () => number, options: MixOptions): CommandRequest {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const hosts = options.hosts ?? ['local'];
  const snapshots = options.snapshots ?? ['s1', 's2', 's3'];
  const domain = pick(options.domains);
  const host = hosts.length === 1 || rand() < 0.7 ? hosts[0]! : pick(hosts);
  const on = { host, domain };
  const kinds: Weighted[] = [
    [10, () => ({ verb: 'define', host, config: domainConfig(domain) })],
    [2, () => ({ verb: 'create', host, config: domainConfig(domain), paused: rand() < 0.2 })],
    [12, () => ({ verb: 'start', ...on, paused: rand() < 0.1 })],
    [7, () => ({ verb: 'destroy', ...on })],
    [3, () => ({ verb: 'shutdown', ...on })],
    [4, () => ({ verb: 'suspend', ...on })],
    [4, () => ({ verb: 'resume', ...on })],
    [2, () => ({ verb: 'reboot', ...on })],
    [3, () => ({ verb: 'managedsave', ...on })],
    [2, () => ({ verb: 'managedsave-remove', ...on })],
    [5, () => ({ verb: 'undefine', ...on, snapshotsMetadata: rand() < 0.4, managedSave: rand() < 0.5 })],
    [10, () => ({ verb: 'snapshot-create', ...on, snapshot: { name: pick(snapshots) } })],
    [5, () => ({ verb: 'snapshot-delete', ...on, snapshotname: pick(snapshots), children: rand() < 0.3 })],
    [4, () => ({ verb: 'snapshot-revert', ...on, snapshotname: pick(snapshots), force: rand() < 0.5 })],
    [3, () => ({ verb: 'guest-event', ...on, event: pick(['poweroff', 'reboot', 'crash'] as const) })],
  ];
  if (options.migrate && hosts.length > 1) {
    kinds.push([
      5,
      () => {
        const offline = rand() < 0.3;
        return {
          verb: 'migrate',
          ...on,
          desthost: pick(hosts.filter((h) => h !== host)),
          offline,
          persistent: offline || rand() < 0.6,
          undefinesource: rand() < 0.5,
          live: !offline && rand() < 0.5,
        };
      },
    ]);
  }
  const total = kinds.reduce((sum, [w]) => sum + w, 0);
  let r = rand() * total;
  for (const [w, make] of kinds) {
    if ((r -= w) < 0) return make() as CommandRequest;
  }
  return kinds[0]![1]() as CommandRequest;
}

// ---------------------------------------------------------------------------------------------------
// The load: clients that resend the same command (same command id) until they get a reply.

export interface LoadOptions {
  url: string;
  clients: number;
  /** Command ids are `<idPrefix>-<client>-<n>`. */
  idPrefix: string;
  seed: number;
  next: (rand: () => number, client: number, n: number) => CommandRequest;
  /** Commands per client at most (the load also ends at stop()). Default unbounded. */
  maxPerClient?: number;
  /** Timeout of one request. Default 2 s. */
  requestTimeoutMs?: number;
  /** How long one command is resent before the client gives up on it (its fate then unknown). Default 45 s. */
  commandDeadlineMs?: number;
  /** Pause between resends. Default 150 ms. */
  retryPauseMs?: number;
  /**
   * Rules of replies that say "not now, retry" (e.g. STORE-UNAVAILABLE): such a reply is counted, with its time,
   * and the command is resent (same id) like after a timeout, instead of being its final outcome.
   */
  retryRules?: readonly string[];
  /** Which NATS server client `c` connects to. Default: options.url. */
  urlFor?: (client: number) => string;
}

export interface LoadStats {
  sent: number;
  /** Replies: accepted with facts, accepted as no-ops, refused by a rule (by rule id). */
  okWithFacts: number;
  okNoop: number;
  refused: number;
  byRule: Record<string, number>;
  /** Replies that were the first outcome of an earlier delivery of the same command id (`duplicate: true`). */
  duplicates: number;
  /** Requests sent in all (first sends and resends), and commands that needed more than one send. */
  requests: number;
  resentCommands: number;
  /** Transport failures (timeouts, no responders, disconnects) seen by the clients. */
  transportErrors: number;
  gaveUp: number;
  /** Replies with one of LoadOptions.retryRules (resent), by rule. */
  retryReplies: Record<string, number>;
}

export interface RunningLoad {
  /** Every command sent, by id. */
  readonly sent: Map<string, CommandRequest>;
  /** The reply each command finally got, by id. */
  readonly outcomes: Map<string, CommandOutcome>;
  /** Commands whose fate is unknown (no reply before their deadline). */
  readonly gaveUp: string[];
  /** When each final reply arrived (ms since epoch), by command id. */
  readonly repliedAt: Map<string, number>;
  /** Every retry-rule reply: when, which rule, and its message. */
  readonly retryReplies: { at: number; id: string; rule: string; code: number | undefined; message: string }[];
  readonly stats: LoadStats;
  /** Stop sending new commands; resolves when every client has its last reply (or gave up on it). */
  stop(): Promise<void>;
  /** Resolves when every client has finished (maxPerClient reached, or stopped). */
  readonly done: Promise<void>;
}

export function startLoad(options: LoadOptions): RunningLoad {
  const sent = new Map<string, CommandRequest>();
  const outcomes = new Map<string, CommandOutcome>();
  const gaveUp: string[] = [];
  const stats: LoadStats = {
    sent: 0,
    okWithFacts: 0,
    okNoop: 0,
    refused: 0,
    byRule: {},
    duplicates: 0,
    requests: 0,
    resentCommands: 0,
    transportErrors: 0,
    gaveUp: 0,
    retryReplies: {},
  };
  const repliedAt = new Map<string, number>();
  const retryReplies: RunningLoad['retryReplies'] = [];
  const retryRules = new Set(options.retryRules ?? []);
  let stopped = false;
  const connections: NatsConnection[] = [];
  const max = options.maxPerClient ?? Number.POSITIVE_INFINITY;
  const deadlineMs = options.commandDeadlineMs ?? 45_000;
  const pause = options.retryPauseMs ?? 150;

  const done = Promise.all(
    Array.from({ length: options.clients }, async (_, c) => {
      const rand = prng(options.seed * 1000 + c);
      const nc = await connectLikeProduction(options.urlFor?.(c) ?? options.url, `${options.idPrefix}-client-${c}`);
      connections.push(nc);
      // retries: 0 here; the loop below resends, with the same body (so the same command id), until a reply.
      const client = createVmledgerClient(nc, { timeoutMs: options.requestTimeoutMs ?? 2_000, retries: 0 });
      try {
        for (let n = 0; !stopped && n < max; n++) {
          const id = `${options.idPrefix}-${c}-${n}`;
          const command = {
            ...options.next(rand, c, n),
            meta: { commandId: id, time: new Date().toISOString(), actor: `client-${c}` },
          } as CommandRequest;
          sent.set(id, command);
          stats.sent++;
          const giveUpAt = Date.now() + deadlineMs;
          for (let attempt = 0; ; attempt++) {
            stats.requests++;
            if (attempt === 1) stats.resentCommands++;
            try {
              const out = await client.execute(command);
              if (!out.ok && out.rule !== undefined && retryRules.has(out.rule)) {
                retryReplies.push({ at: Date.now(), id, rule: out.rule, code: out.code, message: out.message ?? '' });
                stats.retryReplies[out.rule] = (stats.retryReplies[out.rule] ?? 0) + 1;
                if (Date.now() > giveUpAt) {
                  gaveUp.push(id);
                  stats.gaveUp++;
                  break;
                }
                await sleep(pause);
                continue;
              }
              outcomes.set(id, out);
              repliedAt.set(id, Date.now());
              if (out.duplicate) stats.duplicates++;
              if (out.ok && out.events.length > 0) stats.okWithFacts++;
              else if (out.ok) stats.okNoop++;
              else {
                stats.refused++;
                const rule = out.rule ?? '?';
                stats.byRule[rule] = (stats.byRule[rule] ?? 0) + 1;
              }
              break;
            } catch {
              stats.transportErrors++;
              if (Date.now() > giveUpAt) {
                gaveUp.push(id);
                stats.gaveUp++;
                break;
              }
              await sleep(pause);
            }
          }
        }
      } finally {
        await nc.close().catch(() => {});
      }
    }),
  ).then(() => undefined);

  return {
    sent,
    outcomes,
    gaveUp,
    repliedAt,
    retryReplies,
    stats,
    done,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The check afterwards

export interface LogCheckOptions {
  replay?: ReplayOptions;
  /** Rules a reply may carry besides the machine's (default: none; INTERNAL and VALIDATION are problems). */
  allowRules?: readonly string[];
  /**
   * Every command id in the log must belong to one of the replies given (or be a step `<id>/<step>` of one):
   * nothing was applied that no reply accounts for. Only when every command sent got its reply.
   */
  complete?: boolean;
}

export interface LogCheck {
  /** Everything found wrong, one line each; [] when the log and the replies agree and every rule held. */
  problems: string[];
  facts: number;
  domainFacts: number;
  refusalFacts: number;
  /** Other records (e.g. accepted no-ops in noops-<host>). */
  auditFacts: number;
  /** Distinct command ids that appended something. */
  commandIds: number;
  /** Domain streams, and the invariant checks run on the fold. */
  streams: number;
  snapshotsCreated: number;
  undefines: number;
  migrationsStarted: number;
  replay: ReplaySummary;
}

const stepOf = (id: string, commandId: unknown) => commandId === id || (typeof commandId === 'string' && commandId.startsWith(`${id}/`));

/**
 * Ties the replies to the log and checks the log on its own:
 *  - every command id appended at most once (all its facts in one stream, at consecutive positions);
 *  - every accepted reply's facts are in the store at the positions it named, with the same stream, revision,
 *    type and data; an accepted no-op left no fact; a refusal left its CommandRefused where its `audit` said and
 *    no domain fact;
 *  - no reply is an INTERNAL or VALIDATION error (unless allowed);
 *  - per domain stream, revisions are gap-free and three rules hold on the fold (never two snapshots with one name,
 *    never an undefine of an inactive domain that keeps snapshot metadata, never a migration with snapshots);
 *  - replayCheck: no violation, no tampering.
 */
export async function checkLog(store: EventStore, outcomes: Iterable<CommandOutcome>, options: LogCheckOptions = {}): Promise<LogCheck> {
  const problems: string[] = [];
  const byPosition = new Map<number, RecordedEvent>();
  const byCommand = new Map<string, RecordedEvent[]>();
  let domainFacts = 0;
  let refusalFacts = 0;
  let auditFacts = 0;
  for await (const e of store.readAll(0)) {
    byPosition.set(e.position, e);
    const id = String(e.metadata.commandId ?? '');
    let list = byCommand.get(id);
    if (!list) byCommand.set(id, (list = []));
    list.push(e);
    if (e.stream.startsWith('domain-')) domainFacts++;
    else if (e.stream.startsWith('refusals-')) refusalFacts++;
    else auditFacts++;
  }

  // Exactly once: one append per command id.
  for (const [id, events] of byCommand) {
    const streams = new Set(events.map((e) => e.stream));
    const consecutive = events.every((e, i) => i === 0 || (e.position === events[i - 1]!.position + 1 && e.revision === events[i - 1]!.revision + 1));
    if (streams.size !== 1 || !consecutive) {
      problems.push(`command ${id} appended more than once: ${events.map((e) => `${e.stream}@${e.revision}(pos ${e.position} ${e.type})`).join(', ')}`);
    }
  }

  const allowed = new Set(options.allowRules ?? []);
  const replied = new Set<string>();
  for (const out of outcomes) {
    replied.add(out.commandId);
    const id = out.commandId;
    if (!out.ok && (out.rule === 'INTERNAL' || out.rule === 'VALIDATION' || out.rule === 'PAYLOAD-SIZE') && !allowed.has(out.rule)) {
      problems.push(`command ${id} (${out.command}) got ${out.rule}: ${out.message}`);
    }
    for (const e of out.events) {
      const stored = byPosition.get(e.position);
      if (!stored) {
        problems.push(`acknowledged fact missing: ${id} (${out.command}) ${e.type} at position ${e.position}`);
        continue;
      }
      if (
        stored.stream !== e.stream ||
        stored.revision !== e.revision ||
        stored.type !== e.type ||
        !stepOf(id, stored.metadata.commandId) ||
        !isDeepStrictEqual(stored.data, e.data)
      ) {
        problems.push(
          `acknowledged fact differs: ${id} (${out.command}) replied ${e.stream}@${e.revision} ${e.type} at ${e.position}, ` +
            `store has ${stored.stream}@${stored.revision} ${stored.type} of ${String(stored.metadata.commandId)}`,
        );
      }
    }
    const own = byCommand.get(id) ?? [];
    if (out.command !== 'migrate') {
      const ownDomain = own.filter((e) => e.stream.startsWith('domain-'));
      if (out.ok) {
        const replied = out.events.map((e) => e.position).join(',');
        const stored = ownDomain.map((e) => e.position).join(',');
        if (replied !== stored) problems.push(`command ${id} (${out.command}) replied facts at [${replied}], the store has [${stored}]`);
      } else if (ownDomain.length > 0) {
        problems.push(`refused command ${id} (${out.command}, ${out.rule}) has facts in the store: ${ownDomain.map((e) => e.position).join(',')}`);
      }
    }
    if (out.audit) {
      // A refusal's CommandRefused (refusals-<host>), or an accepted no-op's CommandAccepted (noops-<host>).
      const type = out.ok ? 'CommandAccepted' : 'CommandRefused';
      const stored = byPosition.get(out.audit.position);
      if (!stored || stored.type !== type || stored.stream !== out.audit.stream || stored.metadata.commandId !== id) {
        problems.push(`${type} of ${id} (${out.command}${out.ok ? '' : `, ${out.rule}`}) not recorded at position ${out.audit.position} of ${out.audit.stream}`);
      }
    }
  }

  if (options.complete) {
    for (const id of byCommand.keys()) {
      const slash = id.indexOf('/');
      if (!replied.has(id) && !(slash > 0 && replied.has(id.slice(0, slash)))) problems.push(`command ${id} is in the log but no reply accounts for it`);
    }
  }

  // The fold: gap-free revisions and three rules that a race must never bypass.
  const states = new Map<string, { state: DomainState; revision: number }>();
  let snapshotsCreated = 0;
  let undefines = 0;
  let migrationsStarted = 0;
  for (const e of [...byPosition.values()].sort((a, b) => a.position - b.position)) {
    if (!e.stream.startsWith('domain-')) continue;
    const host = String(e.metadata.host ?? '');
    const name = String(e.metadata.domain ?? '');
    const current = states.get(e.stream) ?? { state: initialDomainState(host, name), revision: -1 };
    const where = `${e.stream}@${e.revision} (position ${e.position}, command ${String(e.metadata.commandId)})`;
    if (e.revision !== current.revision + 1) problems.push(`${where}: revision gap after ${current.revision}`);
    let fact;
    try {
      fact = factFromEvent(e);
    } catch (error) {
      problems.push(`${where}: not a valid fact: ${(error as Error).message.split('\n')[0]}`);
      continue;
    }
    const s = current.state;
    const snapshotNames = Object.keys(s.snapshots);
    if (fact.type === 'SnapshotCreated') {
      snapshotsCreated++;
      if (!fact.redefined && s.snapshots[fact.snapshot.name]) problems.push(`${where}: a second snapshot named '${fact.snapshot.name}'`);
    }
    if (fact.type === 'DomainUndefined') {
      undefines++;
      const kept = snapshotNames.filter((n) => !fact.snapshotMetadataRemoved.includes(n));
      if (!s.active && kept.length > 0) problems.push(`${where}: undefine of an inactive domain that keeps snapshots ${kept.join(', ')}`);
    }
    if (fact.type === 'MigrationStarted') {
      migrationsStarted++;
      if (snapshotNames.length > 0) problems.push(`${where}: migration started with snapshots ${snapshotNames.join(', ')}`);
    }
    states.set(e.stream, { state: evolve(s, fact), revision: e.revision });
  }

  const replay = await replayCheck(store, options.replay);
  for (const v of replay.violations) problems.push(`replay violation at ${v.position}: ${v.verb} ${v.host}/${v.domain} (${v.commandId}) refused by ${v.rule}: ${v.message}`);
  for (const t of replay.tampered) problems.push(`replay tamper finding ${t.problem} at ${t.stream}@${t.revision}: ${t.detail}`);
  if (!replay.ok && replay.violations.length === 0 && replay.tampered.length === 0) problems.push('replayCheck says not ok');

  return {
    problems,
    facts: byPosition.size,
    domainFacts,
    refusalFacts,
    auditFacts,
    commandIds: [...byCommand.keys()].filter((id) => id !== '').length,
    streams: states.size,
    snapshotsCreated,
    undefines,
    migrationsStarted,
    replay,
  };
}

/** One line for the test log: what a run did. */
export function describeRun(label: string, stats: LoadStats, check: LogCheck, elapsedMs: number): string {
  const rate = (stats.sent / (elapsedMs / 1000)).toFixed(0);
  return (
    `${label}: ${stats.sent} commands in ${(elapsedMs / 1000).toFixed(1)} s (${rate}/s), ${stats.okWithFacts} accepted with facts, ` +
    `${stats.okNoop} no-ops, ${stats.refused} refused ${JSON.stringify(stats.byRule)}, ${stats.duplicates} duplicate replies, ` +
    `${stats.resentCommands} resent (${stats.transportErrors} transport errors), ${stats.gaveUp} gave up; ` +
    `log: ${check.facts} facts (${check.domainFacts} domain, ${check.refusalFacts} refusals, ${check.auditFacts} other records), ${check.streams} streams; ` +
    `replay ${check.replay.ok ? 'clean' : 'NOT clean'} (${check.replay.decisions} decisions, ${check.replay.violations.length} violations, ` +
    `${check.replay.tampered.length} tampered)`
  );
}
