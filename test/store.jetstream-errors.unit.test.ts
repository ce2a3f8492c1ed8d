// How the JetStream store sorts nats.js v3's errors (services/eventstore/jetstream/errors.ts): built here as
// nats.js builds them, so a change of their shapes in a nats.js update shows up without a server.
import { JetStreamApiError } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import { ConnectionError, NoRespondersError, PermissionViolationError, RequestError, TimeoutError } from '@nats-io/nats-core';
import { describe, expect, it } from 'vitest';

import { describeTransient, isJetStreamNoResponders, isTransient, isWrongLastSequence, jsErrorCode } from '../services/eventstore/jetstream/errors';

const api = (code: number, err_code: number, description: string) => new JetStreamApiError({ code, err_code, description });
/** What a JetStream request meets when nobody answers on its subject. */
const noResponders = (subject: string) => {
  const request = new RequestError(`no responders: '${subject}'`, { cause: new NoRespondersError(subject) });
  return new jserrors.JetStreamNotEnabled('jetstream is not enabled', { cause: request });
};

describe('JetStream errors of nats.js v3', () => {
  it('a failed expected-last-sequence check is a conflict (10071, or 10164 on newer servers), not transient', () => {
    for (const code of [10071, 10164]) {
      const error = api(400, code, 'wrong last sequence: 41');
      expect(jsErrorCode(error)).toBe(code);
      expect(isWrongLastSequence(error)).toBe(true);
      expect(isTransient(error)).toBe(false);
    }
    expect(isWrongLastSequence(api(404, 10059, 'stream not found'))).toBe(false);
  });

  it('transient: 503 and 408 from JetStream, timeouts, connection failures, no responders, a request cut by the connection', () => {
    expect(isTransient(api(503, 10008, 'JetStream system temporarily unavailable'))).toBe(true);
    expect(isTransient(api(408, 10999, 'request timed out'))).toBe(true);
    expect(isTransient(new TimeoutError())).toBe(true);
    expect(isTransient(new ConnectionError('connection refused', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }))).toBe(true);
    expect(isTransient(noResponders('vmledger.log.s.vm-a'))).toBe(true);
    expect(isTransient(new RequestError('connection disconnected'))).toBe(true);
    expect(isTransient(new RequestError('connection closed', { cause: new RequestError('connection closed') }))).toBe(true);
  });

  it('not transient: other API errors, a permissions violation, an account without JetStream', () => {
    expect(isTransient(api(400, 10058, 'stream name already in use'))).toBe(false);
    expect(isTransient(new RequestError('Permissions Violation', { cause: new PermissionViolationError('Permissions Violation', 'publish', 'x') }))).toBe(false);
    const account = new jserrors.JetStreamNotEnabled('jetstream not enabled for account', { cause: api(503, 10039, 'jetstream not enabled for account') });
    expect(isJetStreamNoResponders(account)).toBe(false);
    expect(isTransient(account)).toBe(false);
    expect(isTransient(new Error('something else'))).toBe(false);
    expect(isTransient(undefined)).toBe(false);
  });

  it('describes a transient failure by what went wrong', () => {
    expect(describeTransient(noResponders('vmledger.log.s.vm-a'))).toBe("no JetStream leader or quorum answered: no responders: 'vmledger.log.s.vm-a'");
    expect(describeTransient(api(503, 10008, 'JetStream system temporarily unavailable'))).toBe(
      'no JetStream leader or quorum answered: JetStream system temporarily unavailable',
    );
    expect(describeTransient(new TimeoutError())).toBe('request timed out: timeout');
    expect(describeTransient(new RequestError('connection disconnected'))).toBe('connection disconnected');
  });
});
