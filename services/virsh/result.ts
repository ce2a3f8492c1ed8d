// What a verb's handler gives back (a Result: virsh's output, or the failure to print), the option accessors every
// handler reads its parsed options with, and the failures that several verbs print alike (a domain or snapshot
// not found, a virsh-side option error).
import { ERROR_CODES } from '../../machines/errors';
import type { CommandOutcome } from '../ledger-types';
import type { OptValue } from './definitions';

export interface Failure {
  code: number;
  codeName?: string;
  rule: string | null;
  /** The libvirt-rendered message (for JSON). */
  message: string;
  /** The lines virsh prints (each becomes `error: <line>`). */
  lines: string[];
}

export interface Result {
  ok: boolean;
  out: string;
  /** Extra `error:` lines printed although the command succeeded (virsh warnings). */
  warnings?: string[];
  failure?: Failure;
  outcome?: CommandOutcome;
  result?: unknown;
  message?: string | null;
  quit?: boolean;
}

export type Opts = Map<string, OptValue>;

export const flag = (o: Opts, name: string) => o.get(name) === true;
export const str = (o: Opts, name: string) => {
  const v = o.get(name);
  return typeof v === 'string' ? v : undefined;
};
export const list = (o: Opts, name: string) => {
  const v = o.get(name);
  return Array.isArray(v) ? v : [];
};

export function fail(lines: string[], code: number, rule: string | null, message = lines.at(-1) ?? '', codeName?: string): Result {
  return { ok: false, out: '', failure: { code, codeName, rule, message, lines } };
}

/** A virsh-side option error: `error: <message>`, no libvirt call made. */
export function optionError(message: string): Result {
  return fail([message], ERROR_CODES.VIR_ERR_INVALID_ARG, 'VIRSH-ARGS', message, 'VIR_ERR_INVALID_ARG');
}

export function notFound(domain: string): Result {
  return fail(
    [`failed to get domain '${domain}'`],
    ERROR_CODES.VIR_ERR_NO_DOMAIN,
    'DOM-NOTFOUND',
    `Domain not found: no domain with matching name '${domain}'`,
    'VIR_ERR_NO_DOMAIN',
  );
}

export function noSnapshot(name: string): Result {
  const message = `Domain snapshot not found: no domain snapshot with matching name '${name}'`;
  return fail([message], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, 'SD-NOTFOUND', message, 'VIR_ERR_NO_DOMAIN_SNAPSHOT');
}
