// The command handler's public shape, shared by the CLI, the NATS service and the projections.
import type { Command } from '../machines/commands';
import type { Refusal } from '../machines/errors';
import type { DomainState } from '../machines/model';
import type { EventStore, RecordedEvent } from './eventstore/types';
import type { DomainPage, DomainQuery } from './domainQuery';

/** What one command came to: accepted with the facts it appended, or refused with libvirt's error. */
export interface CommandOutcome {
  ok: boolean;
  /** The verb, e.g. `undefine`. */
  command: string;
  host: string;
  domain: string;
  commandId: string;
  /** Facts appended by this command (empty when refused or when accepted as a no-op). */
  events: RecordedEvent[];
  /** The domain stream's revision after the command (-1: no stream yet). */
  revision: number;
  /** Set when refused: the rule id, libvirt's numeric code, its symbolic name and its rendered message. */
  rule?: string;
  code?: number;
  codeName?: string;
  message?: string;
  /** True when the command id was seen before and this is the first outcome returned again. */
  duplicate?: boolean;
  /**
   * Where the command's audit record went: set when refused (`CommandRefused` in `refusals-<host>`) and when
   * accepted as a no-op (`CommandAccepted` in `noops-<host>`; `events` is then empty and `revision` unchanged).
   */
  audit?: { stream: string; revision: number; position: number };
  /** migrate: the destination domain stream's host and revision after the saga (its facts are in `events` too). */
  destination?: { host: string; revision: number };
}

export interface LoadedDomain {
  state: DomainState;
  /** Stream revision the state reflects (-1 when the stream does not exist). */
  revision: number;
}

/** How a caller (the NATS service) takes part in executing one command. */
export interface ExecuteOptions {
  /**
   * Checked on the validated command before it is decided (a retry of a known command id gets its first outcome
   * without it): a refusal is recorded in `refusals-<host>` like any other and changes nothing else. The NATS
   * service's access control (services/identity/access.ts) comes in here.
   */
  admit?: (command: Command) => Refusal | undefined;
}

export interface Ledger {
  readonly store: EventStore;
  /** Validate (zod), decide, perform effects, append with optimistic concurrency; never throws for a refusal. */
  execute(input: unknown, options?: ExecuteOptions): Promise<CommandOutcome>;
  loadDomain(host: string, name: string): Promise<LoadedDomain>;
  /** Existing domains (life = exists) on a host, or on every host. */
  listDomains(host?: string): Promise<DomainState[]>;
  /** Domains by virsh's list filters, one page at a time, from the host index (no domain is loaded). */
  queryDomains(query?: DomainQuery): Promise<DomainPage>;
  /** The first outcome recorded for a command id, if the command was executed before (duplicate: true). */
  recall(commandId: string): Promise<CommandOutcome | undefined>;
  /** Releases the ledger's own resources (saves the host index). Does not close the store it was given. */
  close(): Promise<void>;
}

/** A ledger on its own store (createLedger), with what only its own log can tell: for the libvirt watch. */
export interface LocalLedger extends Ledger {
  /**
   * The hosts holding an existing domain of this name (the host index), those with a command on one in flight
   * (an open intent: a define is in the index only once libvirt has done it), and the destination of a migration
   * of one in flight (libvirt shows the guest there before the saga records its arrival). Sorted; each holder's
   * domain is read for its migration job, without waiting for a command in flight on it.
   */
  domainHosts(name: string): Promise<string[]>;
  /**
   * Whether a domain of this name on another host is migrating to `host` (its migration job names it), read as
   * domainHosts reads it: without waiting for a command in flight (the saga's Perform holds the source's lock).
   */
  migratingTo(name: string, host: string): Promise<boolean>;
}

/** Thrown (or returned as an outcome with codeName VALIDATION) when input does not parse as a command. */
export type ParsedCommand = Command;
