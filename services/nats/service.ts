// The command service on NATS: a NATS micro-service (`$SRV.PING|INFO|STATS.vmledger` discover it) whose endpoints
// take commands and queries by request/reply, and which publishes every fact on `vmledger.evt.<host>.<domain>`
// once it is durable. See protocol.ts for the subjects and reply shapes.
//
// Guarantees:
// - Every request gets exactly one reply, even when the ledger throws (nats.js services turn a rejected async handler
//   into an unhandled rejection and the caller times out; so every handler here is wrapped, and a failure is
//   logged and answered as `{ok:false, rule:'INTERNAL', code:1}` with the micro-service error headers).
// - A full store (disk full) is answered `{ok:false, rule:'STORE-FULL', code:38}` with the store's message and
//   service error code 507: nothing half-done, retry with the same command id once there is room.
// - An unavailable store (a JetStream cluster without leader or quorum) is answered `{ok:false,
//   rule:'STORE-UNAVAILABLE', code:68}` ("Timed out during operation: event store unavailable: ...") and service
//   error code 503 once the store's retry budget is spent: retry with the same command id.
// - A rule refusal is a normal reply (`ok:false` with rule, code, codeName, message), without error headers.
//   Requests that are not commands at all (bad JSON, schema errors, too large) and internal failures also carry
//   the `Nats-Service-Error`/`Nats-Service-Error-Code` headers (400, 413, 500), for generic NATS tooling.
// - Instances share the load through the queue group (default `vmledger`); any number may run against one store,
//   whose optimistic concurrency keeps rules from being bypassed by races.
// - stop() drains: no new requests are taken, and every request already received is finished and answered.
//
// Metadata: `meta` (and each of its fields) may be omitted. The service fills commandId (a random UUID) and time
// (now, on the service's clock). The actor is never taken from the body: it is who a verified signature or NATS
// (an import from a trusted account) authenticates, else the default actor marked unauthenticated; a body naming
// another actor is refused (services/identity/: actor.ts, and policy.ts for who may do what).
//
// Idempotency: a request without `meta.commandId` gets a random one, so resending it applies the command again.
// A client that wants safe retries must send its own commandId (services/client.ts does); a retry with a known
// commandId gets the first outcome back (`duplicate: true`) and appends nothing.
//
// Facts are published after the ledger has made them durable, with `Nats-Msg-Id: <commandId>:<index>`. A
// retried command's facts are published again (at-least-once: a publish lost to a crash is repaired by the
// retry); subscribers that care drop repeats by that id or by the fact's global position. Core NATS keeps no
// order across service instances: order a domain's facts by their `revision`.
import { randomUUID } from 'node:crypto';

import { jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import type { z } from 'zod';

import { CLIENT_VERBS, type Verb } from '../../machines/commands';
import { createLogger, type Logger } from '../log';
import { ERROR_CODES, refusal, renderMessage } from '../../machines/errors';
import { withConfigFromXml } from './domainXml';
import { domainStream } from '../../machines/model';
import { auditPage, AuditQuerySchema } from '../auditQuery';
import { cursorAfter, MAX_PAGE_LIMIT } from '../domainQuery';
import { openViews, type LedgerViews } from '../../projections/queries';
import { snapshotCursor, snapshotPage, SnapshotsQuerySchema } from '../snapshotQuery';
import { StoreFullError, StoreUnavailableError } from '../eventstore/types';
import { defaultAccess, queryAccess, type AccessControl } from '../identity/access';
import type { CommandOutcome, Ledger } from '../ledger-types';
import { outcomeShell } from '../ledger/outcomes';
import { VMLEDGER_VERSION } from '../version';
import { connectNats, natsConfigFromEnv, natsConnectionOptions } from './config';
import { commandJsonSchemas } from './jsonSchema';
import {
  commandSubject,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_QUEUE,
  eventSubject,
  factMessageId,
  HEADER_COMMAND_ID,
  HEADER_EVENT_TYPE,
  HEADER_MSG_ID,
  HEADER_POSITION,
  HEADER_REVISION,
  HEADER_STREAM,
  QUERY_SUBJECTS,
  SCHEMA_SUBJECT,
  SERVICE_NAME,
  SERVICE_RULES,
  snapshotTree,
  subjectsCollide,
  type ErrorReply,
} from './protocol';
import { DEFAULT_SERVER_MAX_PAYLOAD, pagedJson, QueryValueError, rowsPerReply } from './paging';
import {
  DomainQuerySchema,
  DomainsQuerySchema,
  describeIssues,
  RecallQuerySchema,
  SchemaQuerySchema,
} from './requests';

/**
 * What a request is about, for its log lines: a command's id, host and domain once its body was read (the
 * child logger is made only when there is something to log, so the usual request costs nothing).
 */
interface RequestContext {
  command?: { cmd: string; host: string; domain: string };
}

export interface CommandServiceOptions {
  ledger: Ledger;
  /** A connection to use; the caller keeps owning it (stop() does not close it). */
  nc?: NatsConnection;
  /** Or: connect to this URL (NATS_* environment for credentials); stop() drains and closes that connection. */
  natsUrl?: string;
  /** Or: connect with these options (overrides natsUrl and the environment). */
  natsOptions?: NodeConnectionOptions;
  /** Service name for `$SRV` discovery. Default `vmledger`. */
  name?: string;
  /** Queue group shared by the instances. Default `vmledger`. */
  queue?: string;
  /** Largest request body accepted. Default 256 KiB (the server's own max_payload, 1 MiB by default, is checked by the sending client). */
  maxPayloadBytes?: number;
  /** Actor recorded when nobody vouches for the requester (without `access`). Default `nats`. */
  defaultActor?: string;
  /** Who is believed and who may do what (a policy file: services/identity/policy.ts). Default: nobody vouched, all allowed. */
  access?: AccessControl;
  /** Extra service metadata shown by `$SRV.INFO` (e.g. the store spec). */
  metadata?: Record<string, string>;
  /** Refuse to start when a JetStream stream captures a request subject (it would swallow requests). Default true. */
  checkStreams?: boolean;
  /** Where the service logs (services/log.ts). Default: createLogger() (stderr; JSON unless on a terminal). */
  log?: Logger;
}

export interface CommandService {
  readonly nc: NatsConnection;
  /** This instance's id (as `$SRV.PING` reports it). */
  readonly id: string;
  readonly name: string;
  readonly version: string;
  /** Request subjects served (commands, queries, schema). */
  readonly subjects: readonly string[];
  /** Requests being handled right now. */
  inFlight(): number;
  /** Drain: stop taking requests, finish and answer those received, flush; close the connection if we opened it. */
  stop(): Promise<void>;
  /** Resolves when the service has stopped (stop() finished, or the connection closed). */
  readonly stopped: Promise<void>;
  /** Publishes the facts of an outcome recorded outside a request (what libvirt did on its own), as a command's. */
  publish(outcome: CommandOutcome): void;
}

/** The package version, reported as the service version (must be semver for NATS micro). */
export const SERVICE_VERSION: string = VMLEDGER_VERSION;

/** What a handler answers: a JSON body, and for non-rule failures the micro-service error code/description. */
interface Reply {
  body: unknown;
  /** The body already serialized (a page measured against max_payload). */
  json?: string;
  serviceError?: { code: number; description: string };
}

class RequestError extends Error {
  constructor(
    readonly rule: string,
    readonly serviceCode: number,
    message: string,
    readonly codeName: keyof typeof ERROR_CODES = 'VIR_ERR_INVALID_ARG',
  ) {
    super(message);
  }
}

function errorReply(rule: string, codeName: keyof typeof ERROR_CODES, message: string): ErrorReply {
  return { ok: false, rule, code: ERROR_CODES[codeName], codeName, message };
}

/** One decoder for every request body (making one costs more than decoding a small body). */
const utf8 = new TextDecoder('utf-8', { fatal: true });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function startCommandService(options: CommandServiceOptions): Promise<CommandService> {
  const { ledger } = options;
  const log = (options.log ?? createLogger()).child({ component: 'service' });
  /** A request's logger: with the command's id, host and domain on every line when it is a command. */
  const logOf = (request: RequestContext): Logger => (request.command ? log.child(request.command) : log);
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!(maxPayloadBytes > 0)) throw new TypeError(`maxPayloadBytes must be > 0, got ${maxPayloadBytes}`);
  const access = options.access ?? defaultAccess(options.defaultActor ?? 'nats');
  const name = options.name ?? SERVICE_NAME;
  const queue = options.queue ?? DEFAULT_QUEUE;

  const ownsConnection = options.nc === undefined;
  const nc =
    options.nc ??
    (await connectNats(
      options.natsOptions ?? natsConnectionOptions(natsConfigFromEnv(process.env, options.natsUrl ? { url: options.natsUrl } : {})),
    ));

  const serverMax = nc.info?.max_payload;
  if (serverMax !== undefined && serverMax < maxPayloadBytes) {
    log.warn(`maxPayloadBytes is ${maxPayloadBytes}, but the server accepts at most ${serverMax} bytes per message: larger requests never reach the service`);
  }

  const requestSubjects = [
    ...CLIENT_VERBS.map(commandSubject),
    QUERY_SUBJECTS.domains,
    QUERY_SUBJECTS.domain,
    QUERY_SUBJECTS.snapshots,
    QUERY_SUBJECTS.command,
    QUERY_SUBJECTS.audit,
    SCHEMA_SUBJECT,
  ];

  let service: Service;
  try {
    if (options.checkStreams ?? true) await refuseCapturingStreams(nc, requestSubjects, log);
    service = await new Svcm(nc).add({
      name,
      version: SERVICE_VERSION,
      description: 'vmledger: libvirt domain lifecycle commands, checked against the rules of docs/rules.md and recorded as facts',
      queue,
      metadata: { ...(options.metadata ?? {}), maxPayloadBytes: String(maxPayloadBytes) },
    });
  } catch (error) {
    if (ownsConnection) await nc.close().catch(() => {});
    throw error;
  }

  const inflight = new Set<Promise<void>>();
  let stopping: Promise<void> | undefined;

  // ---- replying ------------------------------------------------------------------------------------

  const send = (msg: ServiceMsg, reply: Reply, request: RequestContext): void => {
    if (!msg.reply) return; // a plain publish: nobody to answer
    const data = reply.json ?? JSON.stringify(reply.body);
    try {
      if (reply.serviceError) msg.respondError(reply.serviceError.code, headerValue(reply.serviceError.description), new TextEncoder().encode(data));
      else msg.respond(data);
    } catch (error) {
      // e.g. the reply is larger than the server's max_payload: say so rather than leave the caller waiting.
      logOf(request).error(`cannot send the reply on ${msg.subject}: ${(error as Error).message}`);
      const fallback = errorReply(SERVICE_RULES.internal, 'VIR_ERR_INTERNAL_ERROR', `internal error: cannot send the reply: ${(error as Error).message}`);
      try {
        msg.respondError(500, headerValue(fallback.message), new TextEncoder().encode(JSON.stringify(fallback)));
      } catch (again) {
        logOf(request).error(`cannot send the error reply on ${msg.subject}: ${(again as Error).message}`);
      }
    }
  };

  /** Registers an endpoint whose handler always replies once: with its result, or with an internal error. */
  const endpoint = (
    endpointName: string,
    subject: string,
    metadata: Record<string, string>,
    handle: (msg: ServiceMsg, request: RequestContext) => Promise<Reply>,
    /** The body an error reply starts from (for commands: the CommandOutcome fields that could be read). */
    errorShell: (msg: ServiceMsg) => unknown,
  ) => {
    service.addEndpoint(endpointName, {
      subject,
      metadata,
      handler: (err, msg) => {
        if (err) {
          log.error(`endpoint ${subject} failed: ${err.message}`);
          return;
        }
        const request: RequestContext = {};
        const work = (async () => {
          let reply: Reply;
          try {
            if (msg.data.length > maxPayloadBytes) {
              throw new RequestError(
                SERVICE_RULES.payloadSize,
                413,
                `request body is ${msg.data.length} bytes; ${subject} accepts at most ${maxPayloadBytes} bytes (${formatBytes(maxPayloadBytes)})`,
              );
            }
            if (metadata.kind === 'query') {
              const denied = queryAccess(access, subject, msg.data, msg.headers);
              if (denied) throw new RequestError(denied.rule, 403, denied.message, 'VIR_ERR_ACCESS_DENIED');
            }
            reply = await handle(msg, request);
          } catch (error) {
            if (error instanceof RequestError) {
              reply = {
                body: withError(errorShell(msg), error.rule, error.codeName, error.message),
                serviceError: { code: error.serviceCode, description: error.message },
              };
            } else if (error instanceof StoreFullError) {
              // Not a bug but an operator's problem, and a retry with the same command id is safe: say so plainly.
              logOf(request).error({ subject: msg.subject }, `store full: ${error.message}`);
              reply = {
                body: withError(errorShell(msg), SERVICE_RULES.storeFull, 'VIR_ERR_SYSTEM_ERROR', error.message),
                serviceError: { code: 507, description: error.message },
              };
            } else if (error instanceof StoreUnavailableError) {
              // A cluster without quorum or leader: refused in so many words, never left to the caller's timeout.
              const message = renderMessage('VIR_ERR_OPERATION_TIMEOUT', error.message);
              logOf(request).warn({ subject: msg.subject }, message);
              reply = {
                body: withError(errorShell(msg), SERVICE_RULES.storeUnavailable, 'VIR_ERR_OPERATION_TIMEOUT', message),
                serviceError: { code: 503, description: message },
              };
            } else {
              const message = `internal error: ${(error as Error)?.message ?? String(error)}`;
              logOf(request).error({ err: error }, `handler for ${msg.subject} threw`);
              reply = {
                body: withError(errorShell(msg), SERVICE_RULES.internal, 'VIR_ERR_INTERNAL_ERROR', message),
                serviceError: { code: 500, description: message },
              };
            }
          }
          send(msg, reply, request);
        })()
          .catch((error: unknown) => logOf(request).error({ err: error }, `reply on ${msg.subject} failed`))
          .finally(() => inflight.delete(work));
        inflight.add(work);
      },
    });
  };

  /** Merges the endpoint-specific error body (e.g. a CommandOutcome shell) with rule/code/message. */
  function withError(base: unknown, rule: string, codeName: keyof typeof ERROR_CODES, message: string): unknown {
    return { ...(isPlainObject(base) ? base : {}), ...errorReply(rule, codeName, message) };
  }

  const parseBody = (msg: ServiceMsg, emptyAs?: Record<string, unknown>): Record<string, unknown> => {
    if (msg.data.length === 0 && emptyAs) return emptyAs;
    let body: unknown;
    try {
      body = JSON.parse(utf8.decode(msg.data));
    } catch (error) {
      throw new RequestError(SERVICE_RULES.validation, 400, `request body is not valid JSON: ${(error as Error).message}`);
    }
    if (!isPlainObject(body)) {
      throw new RequestError(SERVICE_RULES.validation, 400, `request body must be a JSON object, got ${Array.isArray(body) ? 'an array' : typeof body === 'object' ? 'null' : typeof body}`);
    }
    return body;
  };

  // ---- commands ------------------------------------------------------------------------------------

  /**
   * The subject of a fact: its domain's host and name. A migrate outcome carries facts of two streams (source
   * and destination host, same domain name), told apart by the stream name.
   */
  const factSubject = (outcome: CommandOutcome, stream: string): string => {
    const dest = outcome.destination;
    if (dest && stream === domainStream(dest.host, outcome.domain) && stream !== domainStream(outcome.host, outcome.domain)) {
      return eventSubject(dest.host, outcome.domain);
    }
    return eventSubject(outcome.host, outcome.domain);
  };

  /** Publishes an accepted outcome's facts; returns each fact's JSON, which the reply reuses. */
  const publishFacts = (outcome: CommandOutcome, request: RequestContext): string[] =>
    outcome.events.map((event, index) => {
      const json = JSON.stringify(event);
      let subject = '(none)';
      try {
        subject = factSubject(outcome, event.stream);
        const h = natsHeaders();
        h.set(HEADER_MSG_ID, factMessageId(outcome.commandId, index));
        h.set(HEADER_COMMAND_ID, outcome.commandId);
        h.set(HEADER_EVENT_TYPE, event.type);
        h.set(HEADER_STREAM, event.stream);
        h.set(HEADER_REVISION, String(event.revision));
        h.set(HEADER_POSITION, String(event.position));
        nc.publish(subject, json, { headers: h });
      } catch (error) {
        // The fact is durable and the command accepted: a lost notification must not turn into an error reply.
        logOf(request).error(`cannot publish fact ${event.position} on ${subject}: ${(error as Error).message}`);
      }
      return json;
    });

  /** The CommandOutcome shell of a request that never reached the ledger (names what could be read). */
  const requestShell = (verb: Verb, msg: ServiceMsg): Omit<CommandOutcome, 'ok'> => {
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(msg.data.subarray(0, Math.min(msg.data.length, maxPayloadBytes))));
    } catch {
      // unreadable: leave the fields empty
    }
    return outcomeShell(body, verb);
  };

  const handleCommand = async (verb: Verb, msg: ServiceMsg, request: RequestContext): Promise<Reply> => {
    const body = parseBody(msg);
    if (body.verb !== undefined && body.verb !== verb) {
      throw new RequestError(
        SERVICE_RULES.validation,
        400,
        `invalid command: verb: ${JSON.stringify(body.verb)} in the body does not match the subject ${commandSubject(verb)}`,
      );
    }
    if (body.meta !== undefined && !isPlainObject(body.meta)) {
      throw new RequestError(SERVICE_RULES.validation, 400, 'invalid command: meta: must be an object');
    }
    // Who sent it, from the body as signed (before commandId and time are filled in).
    const { meta, admit } = access.command({ ...body, verb }, msg.headers);
    meta.commandId ??= randomUUID();
    meta.time ??= new Date().toISOString();
    let command = body;
    if (verb === 'define' || verb === 'create') {
      try {
        command = withConfigFromXml(body);
      } catch (error) {
        throw new RequestError(SERVICE_RULES.validation, 400, `invalid command: ${(error as Error).message}`);
      }
    }
    const config = isPlainObject(command.config) ? command.config : {};
    request.command = {
      cmd: String(meta.commandId),
      host: typeof command.host === 'string' ? command.host : 'local',
      domain: typeof command.domain === 'string' ? command.domain : typeof config.name === 'string' ? config.name : '',
    };
    // The ledger validates (zod) and names every bad field; the same message as the CLI gets.
    const outcome = await ledger.execute({ ...command, verb, meta }, { admit });
    if (outcome.ok) return { body: outcome, json: outcomeJson(outcome, publishFacts(outcome, request)) };
    if (outcome.rule === SERVICE_RULES.validation) {
      return { body: outcome, serviceError: { code: 400, description: outcome.message ?? 'invalid command' } };
    }
    return { body: outcome };
  };

  // Coordinator verbs (a migration's steps) have no public subject: only the in-process coordinator issues them.
  for (const verb of CLIENT_VERBS) {
    endpoint(
      verb,
      commandSubject(verb),
      { kind: 'command', verb },
      (msg, request) => handleCommand(verb, msg, request),
      (msg) => requestShell(verb, msg),
    );
  }

  // ---- queries -------------------------------------------------------------------------------------

  const validQuery = <S extends z.ZodType>(schema: S, body: Record<string, unknown>, what: string): z.output<S> => {
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new RequestError(SERVICE_RULES.validation, 400, `invalid ${what} query: ${describeIssues(parsed.error.issues, body)}`);
    }
    return parsed.data;
  };
  const noShell = () => ({});
  /** The largest reply the server carries (its max_payload, from the connection's server info). */
  const replyLimit = () => nc.info?.max_payload ?? DEFAULT_SERVER_MAX_PAYLOAD;
  /** A bad cursor or a filter value that does not exist is the caller's mistake: a validation error naming it. */
  const queryPage = async <T>(read: () => Promise<T>, what = ''): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      if (error instanceof QueryValueError) throw new RequestError(SERVICE_RULES.validation, 400, `invalid ${what}${what ? ' ' : ''}query: ${error.message}`);
      throw error;
    }
  };
  /** The projections the audit query reads: opened on first use, caught up with the log before each answer. */
  let views: Promise<LedgerViews> | undefined;
  const currentViews = async (): Promise<LedgerViews> => {
    views ??= openViews(ledger.store, { catchUp: false });
    const v = await views;
    await v.refresh();
    return v;
  };

  endpoint('query-domains', QUERY_SUBJECTS.domains, { kind: 'query' }, async (msg) => {
    const q = validQuery(DomainsQuerySchema, parseBody(msg, {}), 'domains');
    const max = replyLimit();
    const page = await queryPage(() => ledger.queryDomains({ ...q, limit: Math.min(q.limit ?? MAX_PAGE_LIMIT, rowsPerReply(max)) }));
    return { body: undefined, json: pagedJson('domains', { rows: page.domains, next: page.next }, cursorAfter, max) };
  }, noShell);

  endpoint('query-domain', QUERY_SUBJECTS.domain, { kind: 'query' }, async (msg) => {
    const q = validQuery(DomainQuerySchema, parseBody(msg), 'domain');
    const loaded = await ledger.loadDomain(q.host, q.domain);
    return { body: { ok: true, state: loaded.state, revision: loaded.revision } };
  }, noShell);

  endpoint('query-snapshots', QUERY_SUBJECTS.snapshots, { kind: 'query' }, async (msg) => {
    const q = validQuery(SnapshotsQuerySchema, parseBody(msg), 'snapshots');
    const loaded = await ledger.loadDomain(q.host, q.domain);
    if (loaded.state.life !== 'exists') {
      return { body: { ok: false, ...refusal('DOM-NOTFOUND', 'VIR_ERR_NO_DOMAIN', `no domain with matching name '${q.domain}'`) } };
    }
    const max = replyLimit();
    const page = await queryPage(() => Promise.resolve(snapshotPage(loaded.state, q, rowsPerReply(max))), 'snapshots');
    const { roots, ...head } = snapshotTree(loaded.state, loaded.revision);
    if (q.cursor === undefined && page.next === null) {
      // Every snapshot in one reply: the tree too, as this query always gave it, when that still fits.
      const whole = JSON.stringify({ ok: true, snapshots: page.rows, next: null, ...head, roots });
      if (Buffer.byteLength(whole) <= max) return { body: undefined, json: whole };
    }
    return { body: undefined, json: pagedJson('snapshots', page, snapshotCursor, max, head) };
  }, noShell);

  endpoint('query-audit', QUERY_SUBJECTS.audit, { kind: 'query' }, async (msg) => {
    const q = validQuery(AuditQuerySchema, parseBody(msg, {}), 'audit');
    const max = replyLimit();
    const v = await currentViews();
    const page = await queryPage(() => auditPage((query) => v.auditEntries(query), q, rowsPerReply(max)), 'audit');
    return { body: undefined, json: pagedJson('entries', page, page.cursorOf, max) };
  }, noShell);

  endpoint('query-command', QUERY_SUBJECTS.command, { kind: 'query' }, async (msg) => {
    const q = validQuery(RecallQuerySchema, parseBody(msg), 'command');
    return { body: { ok: true, outcome: (await ledger.recall(q.commandId)) ?? null } };
  }, noShell);

  endpoint('schema', SCHEMA_SUBJECT, { kind: 'schema' }, async (msg) => {
    const q = validQuery(SchemaQuerySchema, parseBody(msg, {}), 'schema');
    const all = commandJsonSchemas(q.form);
    return { body: { ok: true, schemas: q.verb ? { [q.verb]: all[q.verb] } : all } };
  }, noShell);

  // ---- lifecycle -----------------------------------------------------------------------------------

  // Once this resolves, the server knows the subscriptions: a request sent now reaches this instance.
  await nc.flush();

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Drains the endpoint subscriptions: no new requests, but those already delivered reach the handler.
      await service.stop().catch((error: unknown) => log.warn(`stopping the service: ${String(error)}`));
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
      if (views) await views.then((v) => v.close()).catch((error: unknown) => log.warn(`closing the audit views: ${String(error)}`));
      if (!nc.isClosed()) await nc.flush().catch(() => {}); // the replies leave before we return
      if (ownsConnection && !nc.isClosed()) await nc.drain().catch((error: unknown) => log.warn(`draining the NATS connection: ${String(error)}`));
    })();
    return stopping;
  };

  const stopped = service.stopped.then(async (error) => {
    if (error && !stopping) log.error(`service stopped: ${error.message}`);
    while (inflight.size > 0) await Promise.allSettled([...inflight]);
    if (stopping) await stopping;
  });

  return {
    nc,
    id: service.info().id,
    name,
    version: SERVICE_VERSION,
    subjects: requestSubjects,
    inFlight: () => inflight.size,
    stop,
    stopped,
    publish: (outcome) => {
      if (outcome.ok) publishFacts(outcome, {});
    },
  };
}

/** The JSON of an outcome whose facts are already JSON (as published): each fact serialised once, not twice. */
function outcomeJson(outcome: CommandOutcome, eventsJson: readonly string[]): string {
  const { events: _events, ...rest } = outcome;
  const others = JSON.stringify(rest);
  return `{"events":[${eventsJson.join(',')}]${others === '{}' ? '}' : `,${others.slice(1)}`}`;
}

/** A header value: one line (NATS headers end at CR/LF), not absurdly long. */
function headerValue(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  return line.length > 1024 ? `${line.slice(0, 1021)}...` : line;
}

function formatBytes(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/**
 * A JetStream stream whose subjects overlap a request subject swallows the request and answers with a PubAck
 * instead of the service's reply: refuse to start rather than answer nonsense. Without JetStream (or without
 * permission to list streams) there is nothing to check.
 */
async function refuseCapturingStreams(nc: NatsConnection, subjects: readonly string[], log: Logger): Promise<void> {
  if (!nc.info?.jetstream) return;
  const clashes: string[] = [];
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    for await (const stream of jsm.streams.list()) {
      for (const pattern of stream.config.subjects ?? []) {
        const hit = subjects.find((s) => subjectsCollide(pattern, s));
        if (hit) clashes.push(`stream '${stream.config.name}' captures '${pattern}', which includes ${hit}`);
      }
    }
  } catch (error) {
    log.warn(`could not list JetStream streams to check that none captures a request subject: ${(error as Error).message}`);
    return;
  }
  if (clashes.length > 0) {
    throw new Error(
      `cannot start the vmledger service: ${clashes.join('; ')}. A stream on a request subject answers requests ` +
        `with a PubAck instead of letting the service reply; remove those subjects from the stream ` +
        `(facts are published on vmledger.evt.>, which a stream may capture).`,
    );
  }
}
