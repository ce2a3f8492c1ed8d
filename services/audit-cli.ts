// `vmledger audit` and `vmledger replay`: the audit log, the replay check, time travel and what-if, on the
// command line. registerAuditCommands(program) adds both subcommands to a commander program (services/cli/main.ts).
//
//   vmledger audit [DOM] [--host HOST] [--since TIME|POSITION] [--limit N] [--json] [--store SPEC]
//   vmledger --nats URL audit …      the same, asked of a running `vmledger serve` (vmledger.query.audit, paged)
//   vmledger replay [--json] [--at POSITION|TIME] [--without RULE]... [--store SPEC]
//
// Exit codes of `replay` (the check): 0 every recorded decision passes today's rules and every hash chain holds;
// 1 some recorded decision would be refused now; 2 the log was tampered with (whatever else). `--at` and
// `--without` report and exit 0. An error (no store, bad argument) prints `error: …` and exits 3 (`audit`: 1, as
// the rest of the CLI), so a script can tell "the ledger is bad" from "the check could not run".
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

import type { Command } from 'commander';

import type { AuditEntry } from '../projections/auditLog';
import type { AuditRequest } from './auditQuery';
import { auditEntries } from '../projections/queries';
import { parseLogPoint, type LogPoint } from '../projections/log';
import { renderSnapshotTree } from '../projections/snapshotTree';
import { DEFAULT_STORE_FILE, openEventStore } from './eventstore/index';
import type { EventStore } from './eventstore/types';
import { LIBVIRT_RULE } from './libvirt/errors';
import { terminalField, terminalText } from './terminalText';
import {
  assertSwitchableRules,
  replayCheck,
  stateAt,
  whatIf,
  type Outcome,
  type ReplayProgress,
  type ReplaySummary,
  type StateAt,
  type WhatIfReport,
} from './replay';

export const DEFAULT_STORE_SPEC = `sqlite:${DEFAULT_STORE_FILE}`;

export const EXIT_OK = 0;
export const EXIT_VIOLATIONS = 1;
export const EXIT_TAMPERED = 2;
export const EXIT_ERROR = 3;

interface Out {
  write(text: string): unknown;
}
interface ErrOut extends Out {
  isTTY?: boolean;
  columns?: number;
}

export interface AuditCliDeps {
  /** Opens a store spec; default openEventStore, refusing a SQLite file that does not exist (nothing to read). */
  openStore?: (spec: string) => Promise<EventStore>;
  stdout?: Out;
  /** Progress bars go here when it is a TTY. */
  stderr?: ErrOut;
  env?: NodeJS.ProcessEnv;
  /** Default: sets process.exitCode. */
  exit?: (code: number) => void;
}

/** Opens a store for reading: a `sqlite:` path that does not exist is an error, not a new empty ledger. */
export async function openStoreForReading(spec: string): Promise<EventStore> {
  if (spec.startsWith('sqlite:')) {
    const path = resolve(spec.slice('sqlite:'.length));
    if (!existsSync(path)) throw new Error(`no ledger at '${path}' (give --store sqlite:PATH, or set $VMLEDGER_STORE)`);
  }
  return openEventStore(spec, { purpose: 'read' });
}

// ---------------------------------------------------------------------------------------------------
// Text rendering

/** Columns padded to their widest cell; the last column is not padded. Every cell is escaped for the terminal. */
export function table(header: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map(terminalField));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

const num = (n: number) => n.toLocaleString('en-US');

export function formatAuditTable(entries: readonly AuditEntry[]): string {
  if (entries.length === 0) return 'no audit entries\n';
  return table(
    ['POSITION', 'TIME', 'ACTOR', 'VERB', 'DOMAIN', 'OUTCOME', 'RULE', 'MESSAGE'],
    entries.map((e) => [
      String(e.position),
      e.time,
      actorText(e),
      e.verb,
      `${e.host}/${e.domain}`,
      e.intent ? (e.outcome === 'refused' ? 'intended, refused' : 'intended') : e.outcome,
      e.rule ?? '',
      e.message ?? '',
    ]),
  );
}

/**
 * The actor and how it was authenticated: `alice (nats OPS/alice)`, `root (signed UABC…)`, or
 * `nats (unauthenticated)`; a claim that was not believed follows as `claimed 'x'`.
 */
export function actorText(e: Pick<AuditEntry, 'actor' | 'auth' | 'observed'>): string {
  // What libvirt did on its own, out of band: how vmledger heard it.
  if (e.observed) return `${e.actor} (${e.observed.source}, out-of-band)`;
  const a = e.auth;
  if (!a) return e.actor;
  const how: string[] = [];
  if (a.signer) how.push(`signed ${a.signer.slice(0, 8)}…`);
  if (a.natsUser) how.push(`nats ${a.natsAccount ?? '?'}/${a.natsUser}`);
  if (a.unauthenticated) how.push('unauthenticated');
  if (a.claimedActor !== undefined) how.push(`claimed '${a.claimedActor}'`);
  return how.length > 0 ? `${e.actor} (${how.join(', ')})` : e.actor;
}

/**
 * Commands the rules accepted and libvirt refused (rule LIBVIRT, services/drivers/libvirt.ts): each one means
 * the model is wrong somewhere, so the audit counts them under its table.
 */
export function disagreementNote(entries: readonly AuditEntry[]): string {
  const n = entries.filter((e) => e.rule === LIBVIRT_RULE).length;
  if (n === 0) return '';
  return `\nnote: ${num(n)} command(s) the rules accepted were refused by libvirt (rule ${LIBVIRT_RULE}, libvirt's message): the model and libvirt disagree there\n`;
}

function outcomeText(o: Outcome): string {
  return o.outcome === 'accepted' ? 'accepted' : `refused ${o.rule}`;
}

export function formatReplaySummary(s: ReplaySummary): string {
  const lines: string[] = [];
  lines.push(
    `replayed ${num(s.facts)} facts (${num(s.decisions)} decisions, ${num(s.refusals)} refusals, ` +
      `${num(s.hypervisorReports)} hypervisor reports, ${num(s.domains)} domain streams) in ${(s.elapsedMs / 1000).toFixed(2)} s: ` +
      `${num(s.rate)} facts/s`,
  );
  if (s.intents > 0) lines.push(`effects: ${num(s.intents)} recorded as intended before they were performed, ${num(s.openIntents)} not yet settled`);
  lines.push(
    s.tampered.length === 0 ? 'hash chains: intact' : `hash chains: ${s.tampered.length} problem(s): the log was changed`,
  );
  lines.push(
    s.violations.length === 0
      ? "rules: every recorded decision passes today's rules"
      : `rules: ${s.violations.length} recorded decision(s) would be refused by today's rules`,
  );
  let text = lines.join('\n') + '\n';
  if (s.tampered.length > 0) {
    text +=
      '\nTAMPERED\n' +
      table(
        ['POSITION', 'STREAM', 'REVISION', 'PROBLEM', 'DETAIL'],
        s.tampered.map((t) => [t.position === null ? '?' : String(t.position), t.stream || '?', t.revision < 0 ? '?' : String(t.revision), t.problem, t.detail]),
      );
  }
  if (s.violations.length > 0) {
    text +=
      '\nVIOLATIONS\n' +
      table(
        ['POSITION', 'STREAM', 'REVISION', 'COMMAND', 'VERB', 'RULE', 'MESSAGE'],
        s.violations.map((v) => [String(v.position), v.stream, String(v.revision), v.commandId, v.verb, v.rule, v.message]),
      );
  }
  if (s.refusalDrift.length > 0) {
    text +=
      `\nnote: ${s.refusalDrift.length} recorded refusal(s) would be decided differently today (nothing was applied for them)\n` +
      table(
        ['POSITION', 'COMMAND', 'VERB', 'DOMAIN', 'RECORDED', 'NOW'],
        s.refusalDrift.map((d) => [String(d.position), d.commandId, d.verb, `${d.host}/${d.domain}`, `refused ${d.recorded.rule}`, outcomeText(d.now)]),
      );
  }
  return text;
}

export function formatStateAt(at: StateAt): string {
  let text = `as of position ${at.position}${at.time ? ` (${at.time})` : ''}: ${at.domains.length} domain(s)\n`;
  if (at.domains.length === 0) return text;
  text += table(
    ['HOST', 'NAME', 'STATE', 'RUN', 'PERSISTENT', 'MANAGED-SAVE', 'SNAPSHOTS', 'CURRENT', 'JOBS'],
    at.domains.map((d) => [
      d.host,
      d.name,
      d.state,
      d.runState ?? '-',
      d.persistent ? 'yes' : 'no',
      d.managedSave ? 'yes' : 'no',
      String(d.snapshots),
      d.currentSnapshot ?? '-',
      d.jobs.map((j) => `${j.kind}${j.disk ? ` ${j.disk}` : ''}${j.destination ? ` → ${j.destination}` : ''} (${j.phase})`).join(', ') || '-',
    ]),
  );
  for (const d of at.domains) {
    if (d.tree.count === 0) continue;
    text += `\nsnapshots of ${terminalField(`${d.host}/${d.name}`)}:\n` + renderSnapshotTree(d.tree).map((l) => `  ${terminalField(l)}\n`).join('');
  }
  return text;
}

export function formatWhatIf(report: WhatIfReport): string {
  const head =
    `what if ${report.without.join(', ')} did not exist: ${report.changes.length} of ${num(report.commands)} decisions change ` +
    `(${report.direct} decided by the rule itself, ${report.consequences} as consequences)\n`;
  if (report.changes.length === 0) return head;
  return (
    head +
    table(
      ['POSITION', 'COMMAND', 'VERB', 'DOMAIN', 'CAUSE', 'WAS', 'WOULD BE'],
      report.changes.map((c) => [
        String(c.position),
        c.commandId,
        c.verb,
        `${c.host}/${c.domain}`,
        c.cause,
        outcomeText(c.was),
        c.wouldBe.outcome === 'accepted' ? 'accepted' : `refused ${c.wouldBe.rule}: ${c.wouldBe.message}`,
      ]),
    )
  );
}

/** A one-line progress bar for a TTY, redrawn at most every 100 ms; `done()` clears it. */
export function progressBar(out: ErrOut, label: string) {
  let last = 0;
  const width = 30;
  return {
    update(p: ReplayProgress) {
      const now = Date.now();
      if (now - last < 100 && p.done < p.total) return;
      last = now;
      const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
      const filled = Math.round(fraction * width);
      out.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` +
          `${num(p.done)}/${num(p.total)} facts ${num(p.rate)} facts/s\x1b[K`,
      );
    },
    done() {
      out.write('\r\x1b[K');
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Commands

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

/**
 * --store, --json and --host given on the subcommand or before it (`vmledger --store X audit`): the
 * subcommand's own value wins. The store falls back to $VMLEDGER_STORE, then `sqlite:vmledger.sqlite`.
 */
function optionsOf(cmd: Command, env: NodeJS.ProcessEnv) {
  const own = cmd.opts<{ store?: string; json?: boolean; host?: string }>();
  const all = cmd.optsWithGlobals<{ store?: string; json?: boolean; host?: string; nats?: string }>();
  return {
    store: own.store ?? all.store ?? (env.VMLEDGER_STORE?.trim() || DEFAULT_STORE_SPEC),
    json: own.json ?? all.json ?? false,
    host: own.host ?? all.host,
    nats: all.nats,
  };
}

/** `vmledger --nats URL audit`: the entries from a running service, every page of them (NATS client loaded only here). */
async function remoteAuditEntries(url: string, env: NodeJS.ProcessEnv, query: AuditRequest): Promise<AuditEntry[]> {
  const { connectNats, natsConfigFromEnv, natsConnectionOptions } = await import('./nats/config');
  const { createVmledgerClient } = await import('./client');
  const nc = await connectNats(natsConnectionOptions(natsConfigFromEnv(env, { url, name: 'vmledger audit' })));
  try {
    return await createVmledgerClient(nc).auditEntries(query);
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

export function registerAuditCommands(program: Command, deps: AuditCliDeps = {}): Command {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const env = deps.env ?? process.env;
  const exit = deps.exit ?? ((code: number) => void (process.exitCode = code));
  const open = deps.openStore ?? openStoreForReading;

  const withStore = async (spec: string, errorCode: number, work: (store: EventStore) => Promise<number>) => {
    let store: EventStore | undefined;
    try {
      store = await open(spec);
      exit(await work(store));
    } catch (error) {
      stderr.write(`error: ${terminalField(error instanceof Error ? error.message : String(error))}\n`);
      exit(errorCode);
    } finally {
      await store?.close().catch(() => undefined);
    }
  };

  program
    .command('audit')
    .description('every command the ledger decided: who, when, accepted or refused (and by which rule), and the facts it produced')
    .argument('[domain]', 'only this domain (by name; see --host)')
    .option('--host <host>', 'only domains on this host')
    .option('--since <time|position>', 'entries at or after this global position or ISO-8601 time')
    .option('--limit <n>', 'at most N entries (the earliest after --since, else the latest)')
    .option('--json', 'print the entries as JSON')
    .option('--store <spec>', `event store: sqlite:PATH or memory (default: $VMLEDGER_STORE or ${DEFAULT_STORE_SPEC})`)
    .action(async (domain: string | undefined, opts: { since?: string; limit?: string }, cmd: Command) => {
      const { store: spec, json, host, nats } = optionsOf(cmd, env);
      const read = async (store?: EventStore) => {
        const since: LogPoint | undefined = opts.since === undefined ? undefined : parseLogPoint(opts.since);
        let limit: number | undefined;
        if (opts.limit !== undefined) {
          limit = Number(opts.limit);
          if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`--limit must be a whole number, got '${opts.limit}'`);
        }
        const filters = { ...(domain !== undefined ? { domain } : {}), ...(host !== undefined ? { host } : {}) };
        const entries =
          store !== undefined
            ? await auditEntries(store, { ...filters, ...(since ? { since } : {}), ...(limit !== undefined ? { limit } : {}) })
            : limit === 0
              ? []
              : await remoteAuditEntries(nats!, env, { ...filters, ...(opts.since !== undefined ? { since: opts.since } : {}), ...(limit !== undefined ? { count: limit } : {}) });
        stdout.write(json ? JSON.stringify(entries, null, 2) + '\n' : terminalText(formatAuditTable(entries)) + disagreementNote(entries));
        return EXIT_OK;
      };
      if (nats === undefined) return withStore(spec, 1, read);
      try {
        exit(await read());
      } catch (error) {
        stderr.write(`error: ${terminalField(error instanceof Error ? error.message : String(error))}\n`);
        exit(1);
      }
    });

  program
    .command('replay')
    .description(
      "re-run every recorded decision through today's rules and verify the hash chains (exit 1: a decision today's rules " +
        'refuse, 2: the log was tampered with); --at: the ledger as of then; --without: what would change without a rule',
    )
    .option('--at <position|time>', 'print the domain list and snapshot trees as of this global position or ISO-8601 time')
    .option('--without <rule>', 'what-if: replay the recorded commands with this rule switched off (repeatable, or comma-separated)', collect)
    .option('--json', 'print the result as JSON')
    .option('--store <spec>', `event store: sqlite:PATH or memory (default: $VMLEDGER_STORE or ${DEFAULT_STORE_SPEC})`)
    .action(async (opts: { at?: string; without?: string[] }, cmd: Command) => {
      const { store: spec, json } = optionsOf(cmd, env);
      const without = opts.without ?? [];
      await withStore(spec, EXIT_ERROR, async (store) => {
        if (opts.at !== undefined && without.length > 0) throw new Error('--at and --without cannot be combined');
        const print = (value: unknown, text: string) => stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : terminalText(text));
        if (opts.at !== undefined) {
          const at = await stateAt(store, parseLogPoint(opts.at));
          print(at, formatStateAt(at));
          return EXIT_OK;
        }
        const bar = stderr.isTTY ? progressBar(stderr, without.length > 0 ? 'what-if' : 'replay') : undefined;
        const onProgress = bar ? (p: ReplayProgress) => bar.update(p) : undefined;
        try {
          if (without.length > 0) {
            assertSwitchableRules(without);
            const report = await whatIf(store, { without, ...(onProgress ? { onProgress } : {}) });
            bar?.done();
            print(report, formatWhatIf(report));
            return EXIT_OK;
          }
          const summary = await replayCheck(store, onProgress ? { onProgress } : {});
          bar?.done();
          print(summary, formatReplaySummary(summary));
          return summary.tampered.length > 0 ? EXIT_TAMPERED : summary.violations.length > 0 ? EXIT_VIOLATIONS : EXIT_OK;
        } catch (error) {
          bar?.done();
          throw error;
        }
      });
    });

  return program;
}
