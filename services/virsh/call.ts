// What a verb's handler is given (a VerbCall: its parsed options, the domain they name, the session) and the
// functions it reaches the ledger and the files named on the command line with, each answering in virsh's words
// when it fails. A verb's entry in the table (VerbEntry) is its handler plus how virsh prints a refusal of it.
// A VerbCall is plain data and these are plain functions: nothing is built per command but the call itself.
import type { CommandInput } from '../../machines/commands';
import { ERROR_CODES } from '../../machines/errors';
import type { DomainState } from '../../machines/model';
import type { CommandOutcome, Ledger } from '../ledger-types';
import { XmlError, parseDomainXml } from '../xml';
import { fail, flag, notFound, optionError, str, type Opts, type Result } from './result';

/** What a session needs of a ledger: a local one, or a remote one over NATS (which has no store). */
export type SessionLedger = Pick<Ledger, 'execute' | 'loadDomain' | 'queryDomains' | 'close'> & {
  /** A remote ledger: the domain with its snapshots paged through (a whole state may not fit one NATS reply). */
  domainSnapshots?(host: string, domain: string): Promise<DomainState | undefined>;
};

/** The session's options, defaults filled in (see SessionOptions in session.ts). */
export interface SessionEnv {
  ledger: SessionLedger;
  host: string;
  actor: string;
  readFile: (path: string) => string;
  newCommandId: () => string;
  now: () => string;
  newUuid: () => string;
  connected: boolean;
}

export interface VerbEntry {
  run: (call: VerbCall) => Promise<Result> | Result;
  /** The `error: Failed to …` line virsh prints before libvirt's refusal; absent: virsh prints libvirt's error alone. */
  header?: (domain: string, o: Opts) => string;
  /**
   * A refusal virsh detects itself before calling libvirt, printed in its own words without the header (the
   * lines); undefined: the refusal is printed as libvirt words it.
   */
  ownRefusal?: (outcome: CommandOutcome, o: Opts) => string[] | undefined;
}

/** Verbs by name; each group module (verbs/*.ts) exports one. */
export type VerbTable = Readonly<Record<string, VerbEntry>>;

export type Meta = { commandId: string; actor: string; time: string };

export interface VerbCall {
  readonly verb: string;
  /** --domain as given ('' for a verb without one). */
  readonly dom: string;
  readonly o: Opts;
  readonly env: SessionEnv;
  readonly entry: VerbEntry;
}

/** Refusals virsh reports before calling libvirt (a lookup or its own check): printed without the header. */
const NO_HEADER_RULES = new Set(['VALIDATION', 'UND-STORAGE-RUNNING', 'UND-STORAGE-FLAGS', 'SD-NOTFOUND']);

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
};

export function verbCall(env: SessionEnv, verb: string, entry: VerbEntry, o: Opts): VerbCall {
  return { verb, dom: str(o, 'domain') ?? '', o, env, entry };
}

/** The header virsh prints before a refusal of this verb on `domain`, if any. */
export function header(call: VerbCall, domain: string): string | undefined {
  return call.entry.header?.(domain, call.o);
}

/** A fresh command id, the actor and the time, for one command. */
export function meta(env: SessionEnv): Meta {
  return { commandId: env.newCommandId(), actor: env.actor, time: env.now() };
}

/** A refusal of this verb on `domain` (default --domain) as virsh prints it. */
export function refused(call: VerbCall, outcome: CommandOutcome, domain = call.dom): Result {
  const message = outcome.message ?? 'unknown error';
  const base = { code: outcome.code ?? 1, codeName: outcome.codeName, rule: outcome.rule ?? null, message };
  if (outcome.rule === 'DOM-NOTFOUND') return { ...notFound(domain), outcome };
  const own = call.entry.ownRefusal?.(outcome, call.o);
  if (own) return { ok: false, out: '', outcome, failure: { ...base, lines: own } };
  const printedHeader = NO_HEADER_RULES.has(outcome.rule ?? '') ? undefined : header(call, domain);
  // virsh makes this check itself and prints it without libvirt's prefix (T05).
  const printed = outcome.rule === 'UND-STORAGE-RUNNING' ? message.replace(/^Requested operation is not valid: /, '') : message;
  return { ok: false, out: '', outcome, failure: { ...base, lines: printedHeader ? [printedHeader, printed] : [printed] } };
}

/** Runs a command on the ledger; on success prints `success(outcome)`, else the refusal as virsh prints it. */
export async function exec(
  call: VerbCall,
  input: Record<string, unknown>,
  success: (outcome: CommandOutcome) => string,
  domain = call.dom,
): Promise<Result> {
  const { env } = call;
  const outcome = await env.ledger.execute({ ...input, host: env.host, meta: meta(env) } as CommandInput);
  if (outcome.ok) return { ok: true, out: success(outcome), outcome };
  return refused(call, outcome, domain);
}

/** The domain as the ledger has it now; undefined when it does not exist. */
export async function loadDomain(call: VerbCall, name: string): Promise<DomainState | undefined> {
  const { state } = await call.env.ledger.loadDomain(call.env.host, name);
  return state.life === 'exists' ? state : undefined;
}

/** The handler of a verb that reads one existing domain: virsh looks it up first (`failed to get domain` if absent). */
export function onDomain(answer: (state: DomainState, call: VerbCall) => Result | Promise<Result>): VerbEntry['run'] {
  return async (call) => {
    const state = await loadDomain(call, call.dom);
    return state ? answer(state, call) : notFound(call.dom);
  };
}

/** --snapshotname or --current, as snapshot-delete/revert/parent/info resolve them. */
export async function pickSnapshot(call: VerbCall): Promise<{ state: DomainState; name: string } | { error: Result }> {
  const { dom, o } = call;
  const state = await loadDomain(call, dom);
  if (!state) return { error: notFound(dom) };
  const name = str(o, 'snapshotname');
  if (name !== undefined) return { state, name };
  if (!flag(o, 'current')) return { error: optionError('--snapshotname or --current is required') };
  if (state.current === null) {
    const message = 'Domain snapshot not found: the domain does not have a current snapshot';
    return { error: fail([message], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, 'SD-NOTFOUND', message, 'VIR_ERR_NO_DOMAIN_SNAPSHOT') };
  }
  return { state, name: state.current };
}

/** Reads a file named on the command line; virsh's wording when it cannot. */
export function readArg(call: VerbCall, path: string): { text: string } | { error: Result } {
  try {
    return { text: call.env.readFile(path) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const reason = ERRNO_TEXT[code] ?? (error as Error).message;
    const verb = code === 'EISDIR' ? 'read' : 'open';
    const line = `Failed to ${verb} file '${path}': ${reason}`;
    return { error: fail([line], 38, 'VIRSH-FILE', line, 'VIR_ERR_SYSTEM_ERROR') };
  }
}

/** An XML file that does not parse, as virsh prints it (any other error is rethrown). */
export function xmlFailure(error: unknown, header?: string): Result {
  if (error instanceof XmlError) {
    return fail(header ? [header, error.message] : [error.message], error.code, 'XML', error.message, error.codeName);
  }
  throw error;
}

/** Reads and parses the domain XML in a file named on the command line; the failure to report when it cannot. */
export function readDomainXml(
  call: VerbCall,
  path: string,
  header?: string,
): { config: ReturnType<typeof parseDomainXml>; xml: string } | { error: Result } {
  const file = readArg(call, path);
  if ('error' in file) return file;
  try {
    return { config: parseDomainXml(file.text, call.env.newUuid), xml: file.text };
  } catch (error) {
    return { error: xmlFailure(error, header) };
  }
}
