// The JSON Schemas generated from the zod command schemas: one per verb, a sample of commands validates against
// them (and what zod refuses is refused).

import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';

import { CommandSchema, VERBS } from '../../machines/commands';
import { commandJsonSchemas, formatCommandJsonSchemas, registerSchemaCommand, type JsonSchema } from '../../services/nats/jsonSchema';
import { commandRequestSchema } from '../../services/nats/requests';

/**
 * A validator for the JSON Schema subset z.toJSONSchema emits for our commands. It throws on any keyword it does
 * not know, so a schema feature it would silently skip cannot make this test pass by accident.
 * (With `ajv` as a dev dependency this would be ajv's draft 2020-12 validator.)
 */
function validate(schema: JsonSchema, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'default', 'format']);
  for (const key of Object.keys(schema)) {
    if (ANNOTATIONS.has(key)) continue;
    const s = schema as Record<string, unknown>;
    switch (key) {
      case 'type': {
        const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
        const actual =
          value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value === 'number' && Number.isInteger(value) ? 'integer' : typeof value;
        const ok = types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
        if (!ok) errors.push(`${path}: expected ${types.join('|')}, got ${actual}`);
        break;
      }
      case 'const':
        if (JSON.stringify(value) !== JSON.stringify(s.const)) errors.push(`${path}: expected ${JSON.stringify(s.const)}`);
        break;
      case 'enum':
        if (!(s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: not in enum`);
        break;
      case 'properties':
        if (value && typeof value === 'object' && !Array.isArray(value)) {
          for (const [k, sub] of Object.entries(s.properties as Record<string, JsonSchema>)) {
            const v = (value as Record<string, unknown>)[k];
            if (v !== undefined) errors.push(...validate(sub, v, `${path}.${k}`));
          }
        }
        break;
      case 'required':
        if (value && typeof value === 'object' && !Array.isArray(value)) {
          for (const k of s.required as string[]) if ((value as Record<string, unknown>)[k] === undefined) errors.push(`${path}.${k}: required`);
        }
        break;
      case 'additionalProperties':
        if (s.additionalProperties === false && value && typeof value === 'object') {
          const known = Object.keys((s.properties as object) ?? {});
          for (const k of Object.keys(value)) if (!known.includes(k)) errors.push(`${path}.${k}: not allowed`);
        }
        break;
      case 'items':
        if (Array.isArray(value)) value.forEach((v, i) => errors.push(...validate(s.items as JsonSchema, v, `${path}[${i}]`)));
        break;
      case 'minLength':
        if (typeof value === 'string' && [...value].length < (s.minLength as number)) errors.push(`${path}: shorter than ${s.minLength}`);
        break;
      case 'maxLength':
        if (typeof value === 'string' && [...value].length > (s.maxLength as number)) errors.push(`${path}: longer than ${s.maxLength}`);
        break;
      case 'minimum':
        if (typeof value === 'number' && value < (s.minimum as number)) errors.push(`${path}: below ${s.minimum}`);
        break;
      case 'maximum':
        if (typeof value === 'number' && value > (s.maximum as number)) errors.push(`${path}: above ${s.maximum}`);
        break;
      case 'pattern':
        if (typeof value === 'string' && !new RegExp(s.pattern as string, 'u').test(value)) errors.push(`${path}: does not match the pattern`);
        break;
      case 'anyOf':
      case 'oneOf': {
        const matches = (s[key] as JsonSchema[]).filter((sub) => validate(sub, value, path).length === 0).length;
        if (key === 'anyOf' ? matches === 0 : matches !== 1) errors.push(`${path}: ${key} matched ${matches}`);
        break;
      }
      case 'allOf':
        for (const sub of s.allOf as JsonSchema[]) errors.push(...validate(sub, value, path));
        break;
      default:
        throw new Error(`the test validator does not know the keyword '${key}' (at ${path}); teach it, or use ajv`);
    }
  }
  return errors;
}

const meta = { commandId: 'c-1', time: '2024-05-01T10:00:00Z', actor: 'alice' };
const config = { name: 'vm1', uuid: '6b0f8a5e-1d1c-4b8e-9d55-0c2f4d0e7a11', disks: [{ target: 'vda', source: '/img/vm1.qcow2' }] };

/** Sample commands, with `verb` and `meta` (the command form); the request form also takes them without. */
const SAMPLES: Record<string, unknown>[] = [
  { verb: 'define', config, meta },
  { verb: 'create', host: 'h2', config, paused: true, autodestroy: true, meta },
  { verb: 'start', domain: 'vm1', forceBoot: true, meta },
  { verb: 'shutdown', domain: 'vm1', meta },
  { verb: 'suspend', domain: 'vm1', meta },
  { verb: 'resume', domain: 'vm1', meta },
  { verb: 'reboot', domain: 'vm1', meta },
  { verb: 'managedsave-remove', domain: 'vm1', meta },
  { verb: 'destroy', domain: 'vm1', graceful: true, meta: { ...meta, expectedRevision: 3 } },
  { verb: 'managedsave', domain: 'vm1', paused: true, meta },
  { verb: 'save', domain: 'vm1', file: '/save/vm1', meta },
  { verb: 'undefine', domain: 'test', snapshotsMetadata: true, managedSave: true, storage: ['vda'], meta },
  { verb: 'snapshot-create', domain: 'vm1', snapshot: { name: 's1', disks: [{ target: 'vda', snapshot: 'external', file: '/s1' }] }, diskOnly: true, meta },
  { verb: 'snapshot-delete', domain: 'vm1', snapshotname: 's1', children: true, meta },
  { verb: 'snapshot-revert', domain: 'vm1', snapshotname: 's1', running: true, force: true, meta },
  { verb: 'blockcopy', domain: 'vm1', path: 'vda', dest: '/copy', transientJob: true, meta },
  { verb: 'blockjob', domain: 'vm1', path: 'vda', pivot: true, meta },
  { verb: 'blockpull', domain: 'vm1', path: 'vda', base: '/img/base.qcow2', meta },
  { verb: 'migrate', domain: 'vm1', desthost: 'dst', persistent: true, undefinesource: true, meta },
  { verb: 'migrate-phase', domain: 'vm1', phase: 'perform', meta },
  { verb: 'migrate-incoming', source: 'src', config, persistent: true, active: true, paused: false, meta },
  { verb: 'guest-event', domain: 'vm1', event: 'crash', meta },
];

/** What zod refuses must be refused by the JSON Schema too (the request form). */
const INVALID: Record<string, unknown>[] = [
  { verb: 'start', meta },
  { verb: 'start', domain: '', meta },
  { verb: 'start', domain: 'x'.repeat(256), meta },
  { verb: 'undefine', domain: 'vm1', snapshotsMetadata: 'yes', meta },
  { verb: 'destroy', domain: 'vm1', meta: { ...meta, time: 'yesterday' } },
  { verb: 'destroy', domain: 'vm1', meta: { ...meta, expectedRevision: 1.5 } },
  { verb: 'destroy', domain: 'vm1', meta: { ...meta, expectedRevision: -2 } },
  { verb: 'snapshot-delete', domain: 'vm1', meta },
  { verb: 'migrate-phase', domain: 'vm1', phase: 'teleport', meta },
  { verb: 'define', config: { name: 'vm1' }, meta },
  { verb: 'define', config: { ...config, disks: [{ target: 'vda', device: 'floppy' }] }, meta },
  { verb: 'guest-event', domain: 'vm1', event: 'crash', meta: { ...meta, commandId: '' } },
];

describe('commandJsonSchemas', () => {
  it('has one schema per verb, in both forms', () => {
    for (const form of ['request', 'command'] as const) {
      const schemas = commandJsonSchemas(form);
      expect(Object.keys(schemas).sort()).toEqual([...VERBS].sort());
      for (const [verb, schema] of Object.entries(schemas)) {
        expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object' });
        expect(schema.$id).toMatch(new RegExp(`/${form}/${verb}\\.json$`));
      }
    }
    // The command form requires verb and meta; the request form requires neither.
    expect(commandJsonSchemas('command').start!.required).toEqual(expect.arrayContaining(['verb', 'meta', 'domain']));
    expect(commandJsonSchemas('request').start!.required).toEqual(['domain']);
  });

  it('has a sample command for every verb (add one here for a new verb)', () => {
    expect([...new Set(SAMPLES.map((s) => s.verb as string))].sort()).toEqual([...VERBS].sort());
  });

  it('accepts the sample commands, as zod does, in both forms; the request form also without verb and meta', () => {
    for (const sample of SAMPLES) {
      const verb = sample.verb as (typeof VERBS)[number];
      expect(CommandSchema.safeParse(sample).success, `zod: ${verb}`).toBe(true);
      expect(validate(commandJsonSchemas('command')[verb]!, sample), `command form: ${verb}`).toEqual([]);
      expect(validate(commandJsonSchemas('request')[verb]!, sample), `request form: ${verb}`).toEqual([]);
      const { verb: _v, meta: _m, ...bare } = sample;
      expect(validate(commandJsonSchemas('request')[verb]!, bare), `request form without verb/meta: ${verb}`).toEqual([]);
      expect(commandRequestSchema(verb).safeParse(bare).success, `zod request form: ${verb}`).toBe(true);
      // The command form insists on meta.
      expect(validate(commandJsonSchemas('command')[verb]!, bare).length, `command form needs verb/meta: ${verb}`).toBeGreaterThan(0);
    }
  });

  it('refuses what zod refuses', () => {
    for (const bad of INVALID) {
      const verb = bad.verb as (typeof VERBS)[number];
      expect(CommandSchema.safeParse(bad).success, `zod accepts ${JSON.stringify(bad)}`).toBe(false);
      expect(validate(commandJsonSchemas('request')[verb]!, bad).length, `schema accepts ${JSON.stringify(bad)}`).toBeGreaterThan(0);
    }
  });

  it('prints one verb or all, and names the verbs on a typo', () => {
    expect(JSON.parse(formatCommandJsonSchemas('undefine'))).toEqual(commandJsonSchemas().undefine);
    expect(Object.keys(JSON.parse(formatCommandJsonSchemas()) as object).sort()).toEqual([...VERBS].sort());
    expect(() => formatCommandJsonSchemas('undefin')).toThrow(/unknown verb 'undefin'; verbs: define, create/);
  });

  it('`vmledger schema [VERB] [--form]` prints through commander', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
    try {
      const program = new Command('vmledger');
      registerSchemaCommand(program);
      await program.parseAsync(['schema', 'start', '--form', 'command'], { from: 'user' });
    } finally {
      spy.mockRestore();
    }
    expect(JSON.parse(out.join(''))).toEqual(commandJsonSchemas('command').start);
  });
});
