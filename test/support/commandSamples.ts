// One valid command per verb, in the form the ledger takes (verb and meta included): for the JSON Schema test
// and as the seeds the fuzz tests mutate. A new verb needs a sample here (the tests say so).
import type { Verb } from '../../machines/commands';

export interface SampleOptions {
  domain?: string;
  host?: string;
  snapshot?: string;
  commandId?: string;
  time?: string;
  actor?: string;
  /** UUID of the domain's config (define, create, migrate-incoming). */
  uuid?: string;
}

/** A valid command of `verb`, as a plain JSON object. */
export function sampleCommand(verb: Verb, options: SampleOptions = {}): Record<string, unknown> {
  const domain = options.domain ?? 'vm1';
  const host = options.host ?? 'local';
  const snapshot = options.snapshot ?? 's1';
  const meta = { commandId: options.commandId ?? 'c-1', time: options.time ?? '2024-05-01T10:00:00Z', actor: options.actor ?? 'alice' };
  const config = {
    name: domain,
    uuid: options.uuid ?? '6b0f8a5e-1d1c-4b8e-9d55-0c2f4d0e7a11',
    disks: [{ target: 'vda', source: `/img/${domain}.qcow2` }],
  };
  const on = { verb, host, domain, meta };
  switch (verb) {
    case 'define':
      return { verb, host, config, meta };
    case 'create':
      return { verb, host, config, paused: true, autodestroy: false, meta };
    case 'start':
      return { ...on, forceBoot: true };
    case 'shutdown':
    case 'suspend':
    case 'resume':
    case 'reboot':
    case 'managedsave-remove':
      return on;
    case 'destroy':
      return { ...on, graceful: true };
    case 'managedsave':
      return { ...on, paused: true };
    case 'save':
      return { ...on, file: `/save/${domain}` };
    case 'undefine':
      return { ...on, snapshotsMetadata: true, managedSave: true, storage: ['vda'] };
    case 'snapshot-create':
      return { ...on, snapshot: { name: snapshot, disks: [{ target: 'vda', snapshot: 'internal' }] } };
    case 'snapshot-delete':
      return { ...on, snapshotname: snapshot, children: true };
    case 'snapshot-revert':
      return { ...on, snapshotname: snapshot, running: true, force: true };
    case 'blockcopy':
      return { ...on, path: 'vda', dest: `/copy/${domain}.qcow2`, transientJob: true };
    case 'blockjob':
      return { ...on, path: 'vda', pivot: true };
    case 'blockpull':
      return { ...on, path: 'vda', base: '/img/base.qcow2' };
    case 'migrate':
      return { ...on, desthost: host === 'dst' ? 'local' : 'dst', persistent: true, undefinesource: true };
    case 'migrate-phase':
      return { ...on, phase: 'perform' };
    case 'migrate-incoming':
      return { verb, host, source: host === 'dst' ? 'local' : 'dst', config, persistent: true, active: true, paused: false, meta };
    case 'guest-event':
      return { ...on, event: 'crash' };
  }
}

/** Fields of each verb that hold a name (domain, snapshot or host name), as dotted paths. */
export function nameFields(verb: Verb): string[] {
  const fields = ['host'];
  if (verb === 'define' || verb === 'create' || verb === 'migrate-incoming') fields.push('config.name');
  else fields.push('domain');
  if (verb === 'snapshot-create') fields.push('snapshot.name');
  if (verb === 'snapshot-delete' || verb === 'snapshot-revert') fields.push('snapshotname');
  if (verb === 'migrate') fields.push('desthost');
  if (verb === 'migrate-incoming') fields.push('source');
  return fields;
}
