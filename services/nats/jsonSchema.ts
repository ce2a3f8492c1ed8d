// JSON Schema (draft 2020-12) of every command, generated from the zod schemas with zod 4's z.toJSONSchema, so
// clients in other languages can validate before they send. Served on `vmledger.schema`, printed by
// printCommandJsonSchemas() (for a CLI `vmledger schema [VERB]`), and written to schemas/ by schemas/generate.ts.
//
// Two forms:
//   request  (default) the body of a request on vmledger.cmd.<verb>: `verb` optional, `meta` and its fields optional
//   command  the command as the ledger takes it: `verb` and `meta` (commandId, time) required
// Both describe the *input* (fields with defaults are optional). Unknown fields are ignored by the service, so the
// schemas do not forbid them. Not expressible in JSON Schema, and checked only by the service: names must not
// contain control characters.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';

import { CLIENT_VERBS, isCoordinatorVerb, type Verb } from '../../machines/commands';
import { commandSubject, SUBJECT_ROOT } from './protocol';
import { COMMAND_SCHEMAS, commandRequestSchema } from './requests';

export type CommandSchemaForm = 'request' | 'command';
export type JsonSchema = Record<string, unknown>;

export const SCHEMA_ID_BASE = `https://${SUBJECT_ROOT}.invalid/schemas`;

const cache = new Map<CommandSchemaForm, Partial<Record<Verb, JsonSchema>>>();

/**
 * JSON Schema of each verb a client may send, by verb. Not the migration coordinator's own verbs: they have no
 * subject, and the ledger refuses them from anyone else (machines/commands.ts COORDINATOR_VERBS).
 */
export function commandJsonSchemas(form: CommandSchemaForm = 'request'): Partial<Record<Verb, JsonSchema>> {
  let out = cache.get(form);
  if (!out) {
    out = {};
    for (const verb of CLIENT_VERBS) {
      const zodSchema = form === 'request' ? commandRequestSchema(verb) : COMMAND_SCHEMAS[verb];
      const json = z.toJSONSchema(zodSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
      out[verb] = {
        $schema: json.$schema,
        $id: `${SCHEMA_ID_BASE}/${form}/${verb}.json`,
        title: form === 'request' ? `${commandSubject(verb)} request` : `vmledger ${verb} command`,
        description:
          form === 'request'
            ? `Body of a NATS request on ${commandSubject(verb)}. 'verb' may be omitted (the subject names it); ` +
              `'meta' may be omitted: the service fills commandId (random: send your own to retry idempotently), ` +
              `time (now) and actor.`
            : `The '${verb}' command as the ledger takes it.`,
        ...withoutKeys(json, ['$schema']),
      };
    }
    cache.set(form, out);
  }
  return out;
}

function withoutKeys(o: JsonSchema, keys: string[]): JsonSchema {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

/** Text for `vmledger schema [VERB]`: one verb's schema, or all of them keyed by verb, as pretty JSON. */
export function formatCommandJsonSchemas(verb?: string, form: CommandSchemaForm = 'request'): string {
  const all = commandJsonSchemas(form);
  if (verb === undefined) return JSON.stringify(all, null, 2) + '\n';
  const schema = all[verb as Verb];
  if (schema === undefined) throw new Error(unknownVerb(verb));
  return JSON.stringify(schema, null, 2) + '\n';
}

/** Why there is no schema of `verb`, naming the verbs there are. */
function unknownVerb(verb: string): string {
  const known = `verbs: ${CLIENT_VERBS.join(', ')}`;
  return isCoordinatorVerb(verb)
    ? `no schema of '${verb}': only the ledger's migration coordinator issues it (no client sends it); ${known}`
    : `unknown verb '${verb}'; ${known}`;
}

/** Prints formatCommandJsonSchemas to stdout (or another writer). */
export function printCommandJsonSchemas(
  verb?: string,
  form: CommandSchemaForm = 'request',
  write: (text: string) => void = (t) => process.stdout.write(t),
): void {
  write(formatCommandJsonSchemas(verb, form));
}

/** Writes `<dir>/<form>/<verb>.json` for both forms; returns the files written. */
export function writeCommandJsonSchemas(dir: string): string[] {
  const files: string[] = [];
  for (const form of ['request', 'command'] as const) {
    mkdirSync(join(dir, form), { recursive: true });
    for (const [verb, schema] of Object.entries(commandJsonSchemas(form))) {
      const file = join(dir, form, `${verb}.json`);
      writeFileSync(file, JSON.stringify(schema, null, 2) + '\n');
      files.push(file);
    }
  }
  return files;
}

/** Adds `schema [VERB] [--form request|command] [--out DIR]` to a commander program: prints the JSON Schema(s). */
export function registerSchemaCommand(program: Command): Command {
  return program
    .command('schema')
    .description('print the JSON Schema of a command (all commands without VERB), as sent on vmledger.cmd.<verb>')
    .argument('[verb]', 'one verb, e.g. undefine')
    .option('--form <form>', "'request' (NATS body: verb and meta optional) or 'command' (as the ledger takes it)", 'request')
    .option('--out <dir>', 'write DIR/request/<verb>.json and DIR/command/<verb>.json for every verb instead of printing')
    .action((verb: string | undefined, opts: { form: string; out?: string }) => {
      if (opts.out !== undefined) {
        const files = writeCommandJsonSchemas(opts.out);
        process.stdout.write(`wrote ${files.length} schemas under ${opts.out}\n`);
        return;
      }
      if (opts.form !== 'request' && opts.form !== 'command') {
        process.stderr.write(`vmledger schema: --form must be 'request' or 'command', got '${opts.form}'\n`);
        process.exitCode = 1;
        return;
      }
      try {
        printCommandJsonSchemas(verb, opts.form);
      } catch (error) {
        process.stderr.write(`vmledger schema: ${(error as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
