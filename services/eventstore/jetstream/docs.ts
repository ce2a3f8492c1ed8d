// getDoc/putDoc: one KV entry per doc in the docs bucket, key `<collection token>.<key token>`.

import { toJson } from '../common';
import type { JetStreamLog } from './log';
import { encodeToken } from './messages';

export function docKey(collection: string, key: string): string {
  return `${encodeToken(collection)}.${encodeToken(key)}`;
}

export async function getDoc(log: JetStreamLog, collection: string, key: string): Promise<unknown | undefined> {
  log.assertOpen();
  const entry = await log.retry('read a doc', () => log.docs.get(docKey(collection, key)));
  if (!entry || entry.operation !== 'PUT') return undefined;
  return JSON.parse(entry.string()) as unknown;
}

export async function putDoc(log: JetStreamLog, collection: string, key: string, value: unknown): Promise<void> {
  log.assertOpen();
  const text = toJson(value, `doc '${collection}/${key}'`);
  await log.retry('write a doc', () => log.docs.put(docKey(collection, key), text));
}
