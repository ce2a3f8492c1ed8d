// Many writers, one store: 3 service instances (each with its own connection, ledger and store handle on the same
// SQLite file) share the queue group; 20 clients send random commands on 3 domains at once. Afterwards the store
// is replayed with the pure decide/evolve: every accepted command, re-run in log order against the state its
// predecessors left, must be accepted again and produce exactly the recorded facts. A race that let a command
// through on a stale state would show up here (docs/rules.md §8: no rule may be bypassed by a race).
import { join } from 'node:path';

import { Svcm } from '@nats-io/services';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CommandSchema, type Command, type CommandInput } from '../../machines/commands';
import { decide } from '../../machines/decide';
import type { Fact } from '../../machines/events';
import { evolveAll } from '../../machines/evolve';
import type { HostView } from '../../machines/guards';
import { initialDomainState, type DomainState } from '../../machines/model';
import { createVmledgerClient, type CommandRequest } from '../../services/client';
import type { RecordedEvent } from '../../services/eventstore/types';
import type { CommandOutcome } from '../../services/ledger-types';
import { startCommandService, type CommandService } from '../../services/nats/service';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer';
import { captureLog, connectLikeProduction, domainConfig, ledgerOnFile, tempDir, type LedgerOnFile } from './fixtures';
import { prng } from '../support/prng';

const DOMAINS = ['race-a', 'race-b', 'race-c'];
const SNAPSHOTS = ['s1', 's2', 's3'];
const CLIENTS = 20;
const COMMANDS_PER_CLIENT = 25;

function randomCommand(rand: () => number, id: string, time: string): CommandRequest {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const domain = pick(DOMAINS);
  const meta = { commandId: id, time, actor: 'race' };
  const kinds = [
    () => ({ verb: 'define', config: domainConfig(domain), meta }),
    () => ({ verb: 'create', config: domainConfig(domain), paused: rand() < 0.3, meta }),
    () => ({ verb: 'start', domain, meta }),
    () => ({ verb: 'start', domain, meta }),
    () => ({ verb: 'destroy', domain, meta }),
    () => ({ verb: 'shutdown', domain, meta }),
    () => ({ verb: 'suspend', domain, meta }),
    () => ({ verb: 'resume', domain, meta }),
    () => ({ verb: 'reboot', domain, meta }),
    () => ({ verb: 'managedsave', domain, meta }),
    () => ({ verb: 'managedsave-remove', domain, meta }),
    () => ({ verb: 'undefine', domain, snapshotsMetadata: rand() < 0.5, managedSave: rand() < 0.5, meta }),
    () => ({ verb: 'snapshot-create', domain, snapshot: { name: pick(SNAPSHOTS) }, meta }),
    () => ({ verb: 'snapshot-create', domain, snapshot: { name: pick(SNAPSHOTS) }, meta }),
    () => ({ verb: 'snapshot-delete', domain, snapshotname: pick(SNAPSHOTS), children: rand() < 0.3, meta }),
    () => ({ verb: 'snapshot-revert', domain, snapshotname: pick(SNAPSHOTS), force: rand() < 0.5, meta }),
  ];
  return pick(kinds)() as CommandRequest;
}

let server: NatsServerHandle;
let tmp: ReturnType<typeof tempDir>;
const ledgers: LedgerOnFile[] = [];
const services: CommandService[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  tmp = tempDir();
  const file = join(tmp.dir, 'shared.sqlite');
  for (let i = 0; i < 3; i++) {
    const db = await ledgerOnFile(file);
    ledgers.push(db);
    const nc = await connectLikeProduction(server.url, `service-${i}`);
    services.push(await startCommandService({ ledger: db.ledger, nc, log: captureLog().log }));
  }
});

afterAll(async () => {
  for (const s of services) {
    await s.stop();
    await s.nc.close();
  }
  for (const db of ledgers) await db.close();
  tmp?.remove();
  await server?.stop();
});

describe('3 service instances on one SQLite file, 20 concurrent clients', () => {
  it('never lets a race bypass a rule: every accepted command is accepted again on replay', async () => {
    const seed = Number(process.env.VMLEDGER_RACE_SEED ?? Date.now() % 1_000_000);
    const sent = new Map<string, CommandRequest>();
    const outcomes: CommandOutcome[] = [];
    const t0 = Date.parse('2024-06-01T00:00:00Z');

    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const rand = prng(seed * 100 + c);
        const nc = await connectLikeProduction(server.url, `client-${c}`);
        const client = createVmledgerClient(nc, { timeoutMs: 20_000 });
        try {
          for (let n = 0; n < COMMANDS_PER_CLIENT; n++) {
            const id = `race-${c}-${n}`;
            const command = randomCommand(rand, id, new Date(t0 + c * 1_000_000 + n * 1000).toISOString());
            sent.set(id, command);
            outcomes.push(await client.execute(command));
          }
        } finally {
          await nc.close();
        }
      }),
    );

    // Every reply is an outcome of the rules: accepted, or refused by a rule id (never an internal error).
    expect(outcomes).toHaveLength(CLIENTS * COMMANDS_PER_CLIENT);
    const internal = outcomes.filter((o) => !o.ok && (o.rule === 'INTERNAL' || o.rule === 'VALIDATION'));
    expect(internal, `seed ${seed}`).toEqual([]);
    const accepted = outcomes.filter((o) => o.ok && o.events.length > 0);
    expect(accepted.length, `seed ${seed}: some commands are accepted`).toBeGreaterThan(10);
    if (process.env.VMLEDGER_RACE_STATS) {
      const rules: Record<string, number> = {};
      for (const o of outcomes) if (!o.ok) rules[o.rule!] = (rules[o.rule!] ?? 0) + 1;
      console.log(JSON.stringify({ seed, accepted: accepted.length, noop: outcomes.filter((o) => o.ok && o.events.length === 0).length, rules }));
    }
    // All three instances took part.
    const served = await Promise.all(
      services.map(async (s) => {
        const stats = new Svcm(s.nc).client();
        const all = [];
        for await (const st of await stats.stats('vmledger', s.id)) all.push(st);
        return all[0]!.endpoints!.reduce((sum, e) => sum + e.num_requests, 0);
      }),
    );
    expect(served.every((n) => n > 0), `requests per instance: ${served.join(', ')}`).toBe(true);

    // Replay the global log with the pure functions.
    const store = ledgers[0]!.store;
    const groups: { commandId: string; stream: string; events: RecordedEvent[] }[] = [];
    for await (const e of store.readAll(0)) {
      if (!e.stream.startsWith('domain-')) continue; // refusal audit records are not domain facts
      const last = groups[groups.length - 1];
      if (last && last.commandId === e.metadata.commandId && last.stream === e.stream) last.events.push(e);
      else groups.push({ commandId: e.metadata.commandId, stream: e.stream, events: [e] });
    }
    const states = new Map<string, DomainState>();
    const revisions = new Map<string, number>();
    const hostView: HostView = {
      domainNameByUuid: (host, uuid) =>
        [...states.values()].find((s) => s.host === host && s.life === 'exists' && s.uuid === uuid)?.name,
    };
    const factOf = (e: RecordedEvent): Fact => ({ ...(e.data as object), type: e.type }) as Fact;

    const seenIds = new Set<string>();
    for (const group of groups) {
      expect(seenIds.has(group.commandId), `command ${group.commandId} appended twice`).toBe(false);
      seenIds.add(group.commandId);
      const input = sent.get(group.commandId) as CommandInput | undefined;
      expect(input, `fact ${group.events[0]!.position} from an unknown command ${group.commandId}`).toBeDefined();
      const command: Command = CommandSchema.parse(input);
      const name = command.verb === 'define' || command.verb === 'create' ? command.config.name : (command as { domain: string }).domain;
      const before = states.get(group.stream) ?? initialDomainState(command.host, name);
      const decision = decide(before, command, { host: hostView });
      const where = `seed ${seed}, position ${group.events[0]!.position}, ${command.verb} ${name} (${group.commandId})`;
      expect(decision.ok ? 'accepted' : `refused ${decision.refusal.rule}: ${decision.refusal.message}`, where).toBe('accepted');
      const recorded = group.events.map(factOf);
      if (decision.ok) expect(recorded, where).toEqual(decision.facts);
      // Revisions are gap-free per stream.
      expect(group.events[0]!.revision, where).toBe((revisions.get(group.stream) ?? -1) + 1);
      states.set(group.stream, evolveAll(before, recorded));
      revisions.set(group.stream, group.events[group.events.length - 1]!.revision);
    }

    // Every accepted outcome's facts are in the log, exactly once.
    for (const o of accepted) expect(seenIds.has(o.commandId), o.commandId).toBe(true);
    // And the ledger's view agrees with the replay.
    for (const name of DOMAINS) {
      const loaded = await ledgers[1]!.ledger.loadDomain('local', name);
      const replayed = states.get(`domain-local-${name}`);
      if (!replayed) continue;
      expect(loaded.state, name).toEqual(replayed);
      expect(loaded.revision, name).toBe(revisions.get(`domain-local-${name}`));
    }
  });
});
