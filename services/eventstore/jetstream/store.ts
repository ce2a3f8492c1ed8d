// The EventStore on JetStream: the functions of each job on the store's state (log.ts), assembled by
// networked.ts with what JetStream and EventStoreDB share.

import { networkedEventStore } from '../networked';
import type { EventStore } from '../types';
import { appendWithoutDocs } from './append';
import { commandResult } from './commands';
import { getDoc, putDoc } from './docs';
import type { JetStreamLog } from './log';
import { headPosition, readAll, readStream, streamRevision } from './read';
import { liveFacts } from './subscribe';

export function jetStreamEventStore(log: JetStreamLog): EventStore {
  return networkedEventStore(log, {
    appendWithoutDocs,
    readStream,
    streamRevision,
    readAll,
    headPosition,
    liveFacts,
    commandResult,
    getDoc,
    putDoc,
  });
}
