// The JSON Schemas generated from the zod command schemas: one per verb, validated with ajv (draft 2020-12, as the
// schemas declare): a sample of commands validates against them, what zod refuses is refused, and on thousands of
// mutated commands ajv and zod agree (but for the one check JSON Schema cannot express: control characters in names).

import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import { Command } from 'commander';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';

import { CLIENT_VERBS, COORDINATOR_VERBS, CommandSchema, VERBS, isCoordinatorVerb } from '../../machines/commands';
import { commandJsonSchemas, formatCommandJsonSchemas, registerSchemaCommand, type JsonSchema } from '../../services/nats/jsonSchema';
import { commandRequestSchema } from '../../services/nats/requests';
import { sampleCommand } from '../support/commandSamples';
import { mutatedCommandArb } from '../support/mutate';

/**
 * ajv's draft 2020-12 validator (the `$schema` z.toJSONSchema writes), in strict mode: a keyword or format it does
 * not know fails the compile, so a schema feature nobody checks cannot make this test pass by accident.
 * `date-time` is the one format the schemas use (meta.time); ajv ships no formats, so it is defined here as RFC 3339
 * (the schema's own `pattern` says the same, in more detail).
 */
const ajv = new Ajv2020({ strict: true, allErrors: true });
ajv.addFormat('date-time', {
  type: 'string',
  validate: (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(s) && !Number.isNaN(Date.parse(s)),
});
const compiled = new Map<JsonSchema, ValidateFunction>();

/** ajv's errors for `value` against `schema`, as `path: message` lines ([] when valid). */
function validate(schema: JsonSchema, value: unknown): string[] {
  let check = compiled.get(schema);
  if (!check) {
    check = ajv.compile(schema);
    compiled.set(schema, check);
  }
  return check(value) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}`);
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
  // And the samples the fuzz tests start from (test/support/commandSamples.ts), one per verb.
  ...VERBS.map((verb) => sampleCommand(verb)),
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
  it('has one schema per verb a client may send, in both forms; none of the coordinator verbs (no subject takes them)', () => {
    expect(COORDINATOR_VERBS.length).toBeGreaterThan(0);
    for (const form of ['request', 'command'] as const) {
      const schemas = commandJsonSchemas(form);
      expect(Object.keys(schemas).sort()).toEqual([...CLIENT_VERBS].sort());
      for (const verb of COORDINATOR_VERBS) expect(schemas[verb], `${form}/${verb}`).toBeUndefined();
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
      if (isCoordinatorVerb(verb)) continue;
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
      if (isCoordinatorVerb(verb)) continue;
      expect(validate(commandJsonSchemas('request')[verb]!, bad).length, `schema accepts ${JSON.stringify(bad)}`).toBeGreaterThan(0);
    }
  });

  it('compiles in ajv strict mode (draft 2020-12): no keyword or format ajv does not know', () => {
    for (const form of ['request', 'command'] as const) {
      for (const [verb, schema] of Object.entries(commandJsonSchemas(form))) {
        expect(() => validate(schema, {}), `${form}/${verb}`).not.toThrow();
      }
    }
  });

  it('agrees with zod on mutated commands of every verb (fast-check), but for control characters in names', () => {
    const CONTROL = /[\u0000-\u001f\u007f-\u009f\ud800-\udfff]/;
    let refused = 0;
    fc.assert(
      fc.property(mutatedCommandArb({ nextId: () => 'c-1' }), ({ verb, input }) => {
        const zod = CommandSchema.safeParse(input);
        // The command form, against the schema of the input's verb (of the verb it started as, when that is no verb:
        // then `const` fails).
        const named = (VERBS as unknown[]).includes(input.verb) ? (input.verb as typeof verb) : verb;
        // The coordinator's own verbs have no schema: no client sends them.
        if (isCoordinatorVerb(named)) return;
        const errors = validate(commandJsonSchemas('command')[named]!, input);
        if (!zod.success) refused++;
        if (zod.success) {
          expect(errors, JSON.stringify(input)).toEqual([]);
        } else if (errors.length === 0) {
          // Only zod's refinement on names (no control characters) may be what refused it.
          const issues = zod.error.issues.map((i) => i.message);
          expect(issues.every((m) => m.startsWith('invalid char in ') || m.includes('NFC')), `${JSON.stringify(input)}: ${issues.join('; ')}`).toBe(true);
          const strings = (v: unknown): string[] =>
            typeof v === 'string' ? [v] : v && typeof v === 'object' ? Object.values(v).flatMap(strings) : [];
          expect(strings(input).some((s) => CONTROL.test(s) || s.normalize('NFC') !== s)).toBe(true);
        }
      }),
      { numRuns: 3_000 },
    );
    expect(refused).toBeGreaterThan(1_000);
  });

  it('prints one verb or all, and names the verbs on a typo', () => {
    expect(JSON.parse(formatCommandJsonSchemas('undefine'))).toEqual(commandJsonSchemas().undefine);
    expect(Object.keys(JSON.parse(formatCommandJsonSchemas()) as object).sort()).toEqual([...CLIENT_VERBS].sort());
    expect(() => formatCommandJsonSchemas('undefin')).toThrow(/unknown verb 'undefin'; verbs: define, create/);
    expect(() => formatCommandJsonSchemas('migrate-phase')).toThrow(
      /no schema of 'migrate-phase': only the ledger's migration coordinator issues it \(no client sends it\); verbs: define, /,
    );
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
