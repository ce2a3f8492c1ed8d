// A ledger that opens its store on first use, so commands that need none (`help`, a syntax error, `echo`) never
// create a store file. Opening errors are CliErrors: the CLI prints them as one line and exits with status 1.
import type { EventStore } from '../eventstore/types';
import type { DomainPage, DomainQuery } from '../domainQuery';
import type { CommandOutcome, Ledger, LoadedDomain } from '../ledger-types';
import type { DomainState } from '../../machines/model';
import type { LedgerOptions } from '../ledger';
import { openCliLedger } from './program';

export class LazyLedger implements Ledger {
  private opening: Promise<Ledger> | undefined;
  private opened: Ledger | undefined;

  constructor(
    private readonly spec: string,
    private readonly options: LedgerOptions = {},
  ) {}

  private ledger(): Promise<Ledger> {
    this.opening ??= openCliLedger(this.spec, this.options).then((l) => (this.opened = l));
    return this.opening;
  }

  get store(): EventStore {
    if (!this.opened) throw new Error('the store is not open yet');
    return this.opened.store;
  }

  async execute(input: unknown): Promise<CommandOutcome> {
    return (await this.ledger()).execute(input);
  }

  async loadDomain(host: string, name: string): Promise<LoadedDomain> {
    return (await this.ledger()).loadDomain(host, name);
  }

  async listDomains(host?: string): Promise<DomainState[]> {
    return (await this.ledger()).listDomains(host);
  }

  async queryDomains(query?: DomainQuery): Promise<DomainPage> {
    return (await this.ledger()).queryDomains(query);
  }

  async recall(commandId: string): Promise<CommandOutcome | undefined> {
    return (await this.ledger()).recall(commandId);
  }

  async close(): Promise<void> {
    if (!this.opening) return;
    let ledger: Ledger;
    try {
      ledger = await this.opening;
    } catch {
      return; // never opened
    }
    await ledger.close();
  }
}
