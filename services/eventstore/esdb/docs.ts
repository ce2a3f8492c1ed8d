// getDoc/putDoc: one stream per doc, `vmledger.docs-<collection>/<key>`, last event wins ($maxCount 1).

import { ANY, jsonEvent } from '@eventstore/db-client';

import { toJson } from '../common';
import type { EsdbLog } from './log';

export async function getDoc(log: EsdbLog, collection: string, key: string): Promise<unknown | undefined> {
  log.assertOpen();
  const last = await log.lastEvent(log.names.doc(collection, key));
  if (!last) return undefined;
  return JSON.parse(JSON.stringify((last.data as { value?: unknown }).value ?? null)) as unknown;
}

export async function putDoc(log: EsdbLog, collection: string, key: string, value: unknown): Promise<void> {
  log.assertOpen();
  const text = toJson(value, `doc '${collection}/${key}'`);
  const name = log.names.doc(collection, key);
  const result = await log.client.appendToStream(name, jsonEvent({ type: 'DocPut', data: { value: JSON.parse(text) as unknown } }), {
    expectedRevision: ANY,
  });
  // Only the last version matters: let ESDB drop the older ones.
  if (result.nextExpectedRevision === 0n) await log.client.setStreamMetadata(name, { maxCount: 1 }).catch(() => {});
}
