// The EventStore on EventStoreDB: each method checks the store is open and hands over to the module of its job.

import { appendWithoutDocs } from './append';
import { commandResult } from './commands';
import { getDoc, putDoc } from './docs';
import { EsdbLog } from './log';
import type { EsdbClient, EsdbEventStoreOptions } from './options';
import { loadCheckpoints } from './ordinals';
import { headPosition, readAll, readStream, streamRevision } from './read';
import { liveFacts } from './subscribe';
import { followLog } from '../follow';
import { appendThenWriteDocs } from '../shared';
import type { AppendOptions, AppendResult, EventStore, NewEvent, RecordedEvent, Subscription } from '../types';

export class EsdbEventStore implements EventStore {
  private readonly log: EsdbLog;

  constructor(client: EsdbClient, ownClient: boolean, label: string, options: EsdbEventStoreOptions) {
    this.log = new EsdbLog(client, ownClient, label, options);
  }

  async ping(): Promise<void> {
    await loadCheckpoints(this.log);
  }

  async append(stream: string, events: NewEvent[], options: AppendOptions): Promise<AppendResult> {
    this.log.assertOpen();
    // No transaction spans facts and docs here: the docs follow a stored (not refused, not duplicate) append.
    return appendThenWriteDocs(this, stream, events, options, (s, e, o) => appendWithoutDocs(this.log, s, e, o));
  }

  readStream(stream: string, fromRevision = 0): AsyncIterable<RecordedEvent> {
    return readStream(this.log, stream, fromRevision);
  }

  streamRevision(stream: string): Promise<number | 'no-stream'> {
    return streamRevision(this.log, stream);
  }

  readAll(after = 0, limit = Number.POSITIVE_INFINITY): AsyncIterable<RecordedEvent> {
    return readAll(this.log, after, limit);
  }

  headPosition(): Promise<number> {
    return headPosition(this.log);
  }

  subscribe(after: number, onEvent: (event: RecordedEvent) => void | Promise<void>): Subscription {
    this.log.assertOpen();
    return followLog(this.log.followers, after, (from, signal) => liveFacts(this.log, from, signal), onEvent, this.log.label);
  }

  commandResult(commandId: string): Promise<AppendResult | undefined> {
    return commandResult(this.log, commandId);
  }

  getDoc(collection: string, key: string): Promise<unknown | undefined> {
    return getDoc(this.log, collection, key);
  }

  putDoc(collection: string, key: string, value: unknown): Promise<void> {
    return putDoc(this.log, collection, key, value);
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
