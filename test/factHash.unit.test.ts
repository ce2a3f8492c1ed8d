// The hash chain's bytes are a stored format: every log written before must keep verifying. These hashes were
// computed by the ledger as it first hashed facts (a Hash object fed the parts one by one, and a sorted copy of
// every object), so a faster way of computing them must give exactly these.
import { describe, expect, it } from 'vitest';

import { canonicalJson, factHash, verifyChain } from '../services/factHash';

const command = {
  verb: 'define',
  meta: { commandId: 'c-1', actor: 'alice', time: '2026-01-01T00:00:00.000Z' },
  config: { name: 'web1' },
};
const defined = {
  name: 'web1',
  uuid: '00000000-0000-4000-8000-000000000001',
  config: { vcpus: 2, name: 'web1', disks: [{ target: 'vda', source: '/var/lib/x.qcow2' }] },
};

describe('factHash: the hashes logs already carry', () => {
  it('a decision carrying its command, keys out of order at every depth', () => {
    expect(factHash(undefined, 'DomainDefined', defined, command)).toBe('c6d43908b9dd95b1e19125cb75bd57d81448e941615cac61b76ce296b6978f56');
  });

  it('a later fact of a decision, without its command', () => {
    expect(factHash('9f'.repeat(32), 'DomainStarted', { paused: false })).toBe('dd523025de4994c6987dbb9aeb5c5758cfa07e1a60b9fd48b77fd1b83fd1ce73');
  });

  it('data as read back: index-like keys, a __proto__ key, unicode, -0, undefined members', () => {
    const data = JSON.parse('{"z":1,"10":"ten","9":"nine","__proto__":{"x":1},"a":[1,null,"é☃\\ud83d\\ude00"],"m":{"b":true,"a":-0}}');
    const carried = { skip: undefined, list: [undefined, 2.5e-7, 1e21], nested: { y: [], x: {} } };
    expect(factHash('ab'.repeat(32), 'SnapshotCreated', data, carried)).toBe('320c74d0db5a62c5590cd9dab3dc57f003142f6f165e4f527a9e10b937edea97');
    expect(canonicalJson(data)).toBe('{"9":"nine","10":"ten","a":[1,null,"é☃😀"],"m":{"a":0,"b":true},"z":1}');
  });

  it('objects whose keys are already in order, one with a __proto__ key first', () => {
    const data = JSON.parse('{"__proto__":{"x":1},"a":1,"b":{"__proto__":2}}');
    const carried = JSON.parse('{"1":"one","2":"two","a":"x"}');
    expect(factHash('cd'.repeat(32), 'DomainUndefined', data, carried)).toBe('5608958b96f8a27ff581a62dd6f7dce7d6e16c73a8d9ae429bbac022dea89ce0');
  });

  it('a chain of them verifies, and a changed field breaks it at that fact', () => {
    const first = { stream: 's', revision: 0, type: 'DomainDefined', data: defined, metadata: { command } as Record<string, unknown> };
    first.metadata.hash = factHash(undefined, first.type, first.data, command);
    const second = { stream: 's', revision: 1, type: 'DomainStarted', data: { paused: false }, metadata: {} as Record<string, unknown> };
    second.metadata.hash = factHash(first.metadata.hash as string, second.type, second.data);
    expect(verifyChain([first, second])).toBeUndefined();
    expect(verifyChain([first, { ...second, data: { paused: true } }])).toMatchObject({ revision: 1 });
  });
});
