// A typed TypeScript client for the vmledger command service on NATS (services/nats/service.ts).
//
//   const client = createVmledgerClient(nc, { timeoutMs: 5000 });
//   await client.command('undefine', { domain: 'test', snapshotsMetadata: true });
//   await client.commands['snapshot-create']({ domain: 'test', snapshot: { name: 's1' } });
//   const { state, revision } = await client.loadDomain('local', 'test');
//   for await (const fact of client.subscribe('local', 'test')) ...
//
// Every command gets its commandId here, before the first send, so a retry after a timeout (or after "no
// responders" while the service restarts) resends the same id: the service returns the first outcome and
// appends nothing twice. Refusals are outcomes (`ok: false`), not exceptions; transport failures and
// non-command errors of queries throw VmledgerRequestError / the NATS error.
import { randomUUID } from 'node:crypto';

import type { KeyPair } from '@nats-io/nkeys';
import { RequestError, TimeoutError, type NatsConnection, type Subscription } from '@nats-io/nats-core';

import { VERBS, type CommandInput, type Verb } from '../machines/commands';
import type { AuditEntry } from '../projections/auditLog';
import type { AuditRequest } from './auditQuery';
import { allDomains, type DomainPage, type DomainQuery, type DomainSummary } from './domainQuery';
import { pageThrough } from './nats/paging';
import { treeOfRows, type SnapshotRow } from './snapshotQuery';
import type { RecordedEvent } from './eventstore/types';
import { signCommand } from './identity/signature';
import type { CommandOutcome } from './ledger-types';
import {
  commandSubject,
  eventSubjectFilter,
  HEADER_MSG_ID,
  parseEventSubject,
  QUERY_SUBJECTS,
  SCHEMA_SUBJECT,
  type DomainResult,
  type ErrorReply,
  type PublishedFact,
  type QueryReply,
  type RecallResult,
  type SnapshotTreeResult,
} from './nats/protocol';

/** Command metadata as a client gives it: all optional (the client fills commandId and time). */
export type CommandMetaInput = Partial<Extract<CommandInput, { verb: 'start' }>['meta']>;

/** A command as a client writes it: the verb's fields with defaults optional, and `meta` optional. */
export type CommandRequest<V extends Verb = Verb> = V extends Verb
  ? Omit<Extract<CommandInput, { verb: V }>, 'meta'> & { meta?: CommandMetaInput }
  : never;

/** The fields of a verb's command, without the verb itself. */
export type CommandArgs<V extends Verb> = Omit<CommandRequest<V>, 'verb'>;

/** One method per verb: `client.commands.undefine({ domain: 'test' })`. */
export type VerbMethods = { [V in Verb]: (args: CommandArgs<V>) => Promise<CommandOutcome> };

export interface VmledgerClientOptions {
  /** Per-attempt request timeout. Default 5000 ms. */
  timeoutMs?: number;
  /** Extra attempts after a timeout or "no responders". Default 2. */
  retries?: number;
  /** Pause before a retry after "no responders" (the service may be restarting). Default 250 ms. */
  retryDelayMs?: number;
  /** Actor recorded for commands that name none. Default: let the service decide (`nats`). */
  actor?: string;
  /** Sign every command with this user nkey (services/identity/signature.ts; readSigningKey reads one from a file). */
  signWith?: KeyPair;
}

/** A query that the service answered with an error (validation, DOM-NOTFOUND, internal). */
export type { PublishedFact, SnapshotTreeResult, DomainResult };

export class VmledgerRequestError extends Error {
  readonly rule: string;
  readonly code: number;
  readonly codeName: string;
  constructor(reply: ErrorReply) {
    super(reply.message);
    this.name = 'VmledgerRequestError';
    this.rule = reply.rule;
    this.code = reply.code;
    this.codeName = reply.codeName;
  }
}

export interface FactSubscription extends AsyncIterable<PublishedFact> {
  /** The NATS subject subscribed to (with wildcards). */
  readonly subject: string;
  unsubscribe(): void;
  /** Resolves once the server has registered the interest (facts published after this are seen). */
  ready(): Promise<void>;
}

export interface VmledgerClient {
  /** Sends a command (with `verb`); fills meta.commandId and meta.time when missing. */
  execute(command: CommandRequest): Promise<CommandOutcome>;
  /** `client.command('undefine', { domain: 'test', snapshotsMetadata: true })` */
  command<V extends Verb>(verb: V, args: CommandArgs<V>): Promise<CommandOutcome>;
  readonly commands: VerbMethods;
  /** Every domain the query selects (default: every domain of the host, or of all hosts), paging through. */
  listDomains(query?: string | DomainQuery): Promise<DomainSummary[]>;
  /** One page of domains by virsh's list filters; pass `next` back as `cursor` for the following page. */
  queryDomains(query?: DomainQuery): Promise<DomainPage>;
  loadDomain(host: string, domain: string): Promise<DomainResult>;
  /** The snapshot tree of a domain (paging through its snapshots when they do not fit one reply). */
  snapshotTree(host: string, domain: string): Promise<SnapshotTreeResult>;
  /** One page of a domain's snapshots in name order; pass `next` back as `cursor` for the following page. */
  querySnapshots(host: string, domain: string, page?: { cursor?: string; limit?: number }): Promise<SnapshotPage>;
  /** Every snapshot of a domain (and which is current), paging through. */
  listSnapshots(host: string, domain: string): Promise<SnapshotList>;
  /** One page of the audit log (vmledger.query.audit); pass `next` back as `cursor` for the following page. */
  queryAudit(query?: AuditRequest): Promise<AuditPage>;
  /** Every audit entry the query selects, paging through (`count`: at most that many in all, as `audit --limit`). */
  auditEntries(query?: AuditRequest): Promise<AuditEntry[]>;
  /** The first outcome of a command id (to learn what became of a command whose reply was lost), or undefined. */
  recall(commandId: string): Promise<CommandOutcome | undefined>;
  /** JSON Schema of the request bodies, by verb (or just one verb's). */
  schemas(verb?: Verb): Promise<Record<string, unknown>>;
  /** Facts as they are published: of one domain, one host, a domain name on any host, or all. */
  subscribe(host?: string, domain?: string): FactSubscription;
}

export interface SnapshotList {
  host: string;
  domain: string;
  current: string | null;
  revision: number;
  snapshots: SnapshotRow[];
}

export interface SnapshotPage extends SnapshotList {
  next: string | null;
  /** The tree, when every snapshot fitted this one reply. */
  roots?: SnapshotTreeResult['roots'];
}

export interface AuditPage {
  entries: AuditEntry[];
  next: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** No service instance subscribed (yet): nats.js v3 rejects with a RequestError whose cause is a NoRespondersError. */
function isNoResponders(error: unknown): boolean {
  return error instanceof RequestError && error.isNoResponders();
}

function isRetryable(error: unknown): boolean {
  return error instanceof TimeoutError || isNoResponders(error);
}

/** The command signed; an invalid one as it is, so that the service names what is wrong with it. */
function signedOrAsIs(verb: Verb, body: Record<string, unknown>, signer: KeyPair): unknown {
  try {
    const { verb: _verb, ...signed } = signCommand({ ...body, verb }, signer);
    return signed;
  } catch {
    return body;
  }
}

export function createVmledgerClient(nc: NatsConnection, options: VmledgerClientOptions = {}): VmledgerClient {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 250;

  /** One request, retried with the same bytes (so the same commandId) on timeout / no responders. */
  const request = async <T>(subject: string, body: unknown): Promise<T> => {
    const payload = body === undefined ? new Uint8Array() : encoder.encode(JSON.stringify(body));
    for (let attempt = 0; ; attempt++) {
      try {
        const msg = await nc.request(subject, payload, { timeout: timeoutMs });
        return JSON.parse(decoder.decode(msg.data)) as T;
      } catch (error) {
        if (attempt >= retries || !isRetryable(error)) throw error;
        if (isNoResponders(error)) await new Promise((r) => setTimeout(r, retryDelayMs));
      }
    }
  };

  const query = async <T>(subject: string, body: unknown): Promise<T> => {
    const reply = await request<QueryReply<T>>(subject, body);
    if (!reply.ok) throw new VmledgerRequestError(reply);
    const { ok: _ok, ...rest } = reply;
    return rest as unknown as T;
  };

  const execute = async (command: CommandRequest): Promise<CommandOutcome> => {
    const { verb, ...fields } = command as CommandRequest & { verb: Verb };
    if (!(VERBS as string[]).includes(verb)) throw new TypeError(`unknown verb '${String(verb)}'; verbs: ${VERBS.join(', ')}`);
    const meta: CommandMetaInput = { ...(command.meta ?? {}) };
    meta.commandId ??= randomUUID(); // before the first send: every retry carries the same id
    meta.time ??= new Date().toISOString();
    if (options.actor !== undefined) meta.actor ??= options.actor;
    const body = { ...fields, meta };
    return request<CommandOutcome>(commandSubject(verb), options.signWith ? signedOrAsIs(verb, body, options.signWith) : body);
  };

  const queryDomains = (q: DomainQuery = {}): Promise<DomainPage> => query<DomainPage>(QUERY_SUBJECTS.domains, q);

  const querySnapshots = (host: string, domain: string, page: { cursor?: string; limit?: number } = {}) =>
    query<SnapshotPage>(QUERY_SUBJECTS.snapshots, { host, domain, ...page });

  /** Every snapshot, as of the first page (its current snapshot and revision). */
  const listSnapshots = async (host: string, domain: string): Promise<SnapshotList> => {
    let first: SnapshotPage | undefined;
    const snapshots = await pageThrough(async (cursor) => {
      const page = await querySnapshots(host, domain, cursor !== undefined ? { cursor } : {});
      first ??= page;
      return { rows: page.snapshots, next: page.next };
    });
    return { host: first!.host, domain: first!.domain, current: first!.current, revision: first!.revision, snapshots };
  };

  const snapshotTree = async (host: string, domain: string): Promise<SnapshotTreeResult> => {
    const page = await querySnapshots(host, domain);
    const head = { host: page.host, domain: page.domain, current: page.current, revision: page.revision };
    if (page.roots) return { ...head, roots: page.roots };
    const all = await listSnapshots(host, domain);
    return { ...head, roots: treeOfRows(all.host, all.domain, all.current, all.snapshots) };
  };

  const queryAudit = (q: AuditRequest = {}): Promise<AuditPage> => query<AuditPage>(QUERY_SUBJECTS.audit, q);

  const command = <V extends Verb>(verb: V, args: CommandArgs<V>): Promise<CommandOutcome> =>
    execute({ ...args, verb } as unknown as CommandRequest);

  const commands = Object.fromEntries(
    VERBS.map((verb) => [verb, (args: CommandArgs<typeof verb>) => command(verb, args)]),
  ) as VerbMethods;

  const subscribe = (host?: string, domain?: string): FactSubscription => {
    const subject = eventSubjectFilter(host, domain);
    const sub: Subscription = nc.subscribe(subject);
    return {
      subject,
      unsubscribe: () => sub.unsubscribe(),
      ready: () => nc.flush(),
      async *[Symbol.asyncIterator]() {
        for await (const msg of sub) {
          const where = parseEventSubject(msg.subject);
          if (!where) continue;
          yield {
            subject: msg.subject,
            host: where.host,
            domain: where.domain,
            msgId: msg.headers?.get(HEADER_MSG_ID) ?? '',
            event: JSON.parse(decoder.decode(msg.data)) as RecordedEvent,
          };
        }
      },
    };
  };

  return {
    execute,
    command,
    commands,
    listDomains: (q) => allDomains({ queryDomains }, typeof q === 'string' ? { host: q, all: true } : (q ?? { all: true })),
    queryDomains,
    loadDomain: (host, domain) => query<DomainResult>(QUERY_SUBJECTS.domain, { host, domain }),
    snapshotTree,
    querySnapshots,
    listSnapshots,
    queryAudit,
    auditEntries: (q = {}) =>
      pageThrough(async (cursor) => {
        const page = await queryAudit({ ...q, ...(cursor !== undefined ? { cursor } : {}) });
        return { rows: page.entries, next: page.next };
      }, q.cursor),
    recall: async (commandId) => (await query<RecallResult>(QUERY_SUBJECTS.command, { commandId })).outcome ?? undefined,
    schemas: async (verb) => (await query<{ schemas: Record<string, unknown> }>(SCHEMA_SUBJECT, verb === undefined ? {} : { verb })).schemas,
    subscribe,
  };
}
