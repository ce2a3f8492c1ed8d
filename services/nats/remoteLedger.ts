// The Ledger interface over NATS, for `vmledger --nats URL shell …`: the shell talks to this exactly as it talks
// to a local ledger (execute, loadDomain, queryDomains, close), but every call is a request to the command service.
// There is no local store: `store` is absent, so code that reads the store directly (history, audit replay) must
// use the local ledger or a query subject.
import type { NatsConnection } from '@nats-io/nats-core';

import type { DomainState } from '../../machines/model';
import type { Ledger, LoadedDomain } from '../ledger-types';
import { createVmledgerClient, VmledgerRequestError, type VmledgerClient, type VmledgerClientOptions } from '../client';
import { snapshotState } from '../snapshotQuery';
import { SERVICE_RULES, type SnapshotTreeResult } from './protocol';

export interface RemoteLedger extends Omit<Ledger, 'store' | 'listDomains'> {
  readonly remote: true;
  /** The snapshot tree of a domain (vmledger.query.snapshots); throws VmledgerRequestError when it does not exist. */
  snapshotTree(host: string, domain: string): Promise<SnapshotTreeResult>;
  /** The domain with every snapshot, paged through vmledger.query.snapshots (`snapshot-list`); undefined when it does not exist. */
  domainSnapshots(host: string, domain: string): Promise<DomainState | undefined>;
  readonly client: VmledgerClient;
}

export interface RemoteLedgerOptions extends VmledgerClientOptions {
  /** Close (drain) the NATS connection on close(). Default false: the caller owns it. */
  closeConnection?: boolean;
}

export function createRemoteLedger(nc: NatsConnection, options: RemoteLedgerOptions = {}): RemoteLedger {
  const client = createVmledgerClient(nc, options);
  return {
    remote: true,
    client,
    async execute(input) {
      const verb = (input as { verb?: unknown } | null)?.verb;
      if (typeof verb !== 'string' || !(Object.keys(client.commands) as string[]).includes(verb)) {
        // Same shape as the service's validation refusal, without a round trip.
        return {
          ok: false,
          command: typeof verb === 'string' ? verb : '',
          host: '',
          domain: '',
          commandId: '',
          events: [],
          revision: -1,
          rule: SERVICE_RULES.validation,
          code: 8,
          codeName: 'VIR_ERR_INVALID_ARG',
          message: `invalid command: verb: ${typeof verb === 'string' ? `unknown verb '${verb}'` : 'is required'}`,
        };
      }
      return client.execute(input as Parameters<VmledgerClient['execute']>[0]);
    },
    async loadDomain(host, name): Promise<LoadedDomain> {
      return client.loadDomain(host, name);
    },
    queryDomains: (query) => client.queryDomains(query),
    recall: (commandId) => client.recall(commandId),
    snapshotTree: (host, domain) => client.snapshotTree(host, domain),
    async domainSnapshots(host, domain) {
      try {
        const list = await client.listSnapshots(host, domain);
        return snapshotState(list.host, list.domain, list.current, list.snapshots);
      } catch (error) {
        if (error instanceof VmledgerRequestError && error.rule === 'DOM-NOTFOUND') return undefined;
        throw error;
      }
    },
    async close() {
      if (options.closeConnection && !nc.isClosed()) await nc.drain();
    },
  };
}
