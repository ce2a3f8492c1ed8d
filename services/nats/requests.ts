// Request bodies of the NATS service, as zod schemas derived from machines/commands.ts (the one source of truth):
// a command request is the command without `verb` (the subject carries it; repeating it is allowed) and with
// `meta` optional (the service fills commandId, time and actor). Also the query bodies, and turning zod issues
// into a message that names the field.
import { z } from 'zod';

import { CLIENT_VERBS, CommandMetaSchema, CommandSchema, VERBS, type Verb } from '../../machines/commands';
import { DEFAULT_HOST } from '../../machines/model';
import { describeIssue } from '../ledger/outcomes';

type CommandObjectSchema = (typeof CommandSchema.options)[number];

/** The zod schema of each verb's command (verb and meta required, as the ledger takes it). */
export const COMMAND_SCHEMAS = Object.fromEntries(CommandSchema.options.map((o) => [o.shape.verb.value, o])) as Record<
  Verb,
  CommandObjectSchema
>;

/** Metadata as a NATS client may send it: every field optional. */
export const RequestMetaSchema = CommandMetaSchema.partial();

const requestSchemas = new Map<Verb, z.ZodType>();

/** What `vmledger.cmd.<verb>` accepts: the command with `verb` and `meta` optional. */
export function commandRequestSchema(verb: Verb): z.ZodType {
  let schema = requestSchemas.get(verb);
  if (!schema) {
    const base = COMMAND_SCHEMAS[verb] as unknown as z.ZodObject<z.ZodRawShape>;
    schema = base.extend({ verb: z.literal(verb).optional(), meta: RequestMetaSchema.optional() });
    // define/create: the domain XML (`xml`) may stand in for `config` (services/nats/domainXml.ts).
    if (verb === 'define' || verb === 'create') schema = (schema as z.ZodObject<z.ZodRawShape>).extend({ config: (base.shape.config as z.ZodType).optional() });
    requestSchemas.set(verb, schema);
  }
  return schema;
}

export function isVerb(v: unknown): v is Verb {
  return typeof v === 'string' && (VERBS as string[]).includes(v);
}

export { DomainQuerySchema as DomainsQuerySchema } from '../domainQuery';
export const DomainQuerySchema = z.object({
  host: z.string().min(1).default(DEFAULT_HOST),
  domain: z.string().min(1),
});
export const RecallQuerySchema = z.object({ commandId: z.string().min(1).max(200) });
export const SchemaQuerySchema = z.object({
  verb: z.enum(CLIENT_VERBS as [Verb, ...Verb[]]).optional(),
  /** `request` (default): what vmledger.cmd.<verb> accepts; `command`: the full command with verb and meta. */
  form: z.enum(['request', 'command']).default('request'),
});

/**
 * One line naming every invalid field: `domain: Required; meta.time: Invalid ISO datetime`, worded as the ledger's
 * own command validation words each field (services/ledger/outcomes.ts), so queries and commands read alike.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string {
  return issues.map((issue) => describeIssue(issue, input)).join('; ');
}
