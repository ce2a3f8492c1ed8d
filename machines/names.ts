// What a name or an id may be, as pure rules (the zod schemas in commands.ts call them), and the one place that
// turns names into stream names. Every rule here closes a way a hostile client bent the ledger (issue 14):
//
// - Names (domains, hosts, snapshots) are well-formed Unicode (no lone UTF-16 surrogate: it cannot be stored as
//   UTF-8 and came back as U+FFFD, a different name), have no control character (libvirt refuses '\n' in a
//   domain name: `invalid char in name: 0x0a`; we refuse every C0/C1 control and DEL, which also keeps them out of
//   terminal output and NATS headers), and are in Unicode NFC: a decomposed `café` is refused, not silently
//   normalised, so one name is never two domains and what is stored is exactly what the client sent.
// - Ids (command id, actor, correlation id) have the same rules and go into NATS headers, which end at CR/LF.
//   Command ids from clients cannot contain '/': ids with '/' are the ledger's own (a migration's steps are
//   `<id>/prepare` … `<id>/confirm`, the hypervisor's reports `hv/…`), so no client can take their outcome first.
// - Stream names: `domain-<host>-<name>` with '%' and '-' in the host written %25 and %2D. The host then has no
//   '-', so the first '-' after `domain-` ends it and no two (host, name) pairs share a stream. Hosts without
//   '%' or '-' (the default `local`) keep the stream names they always had, so existing stores stay readable.

export const NAME_MAX = 255;
export const ID_MAX = 200;

/** C0 controls, DEL and C1 controls. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function hex(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return cp <= 0xff ? `0x${cp.toString(16).padStart(2, '0')}` : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The first lone surrogate of a string, if any. */
function loneSurrogate(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return s[i];
    }
    if (c >= 0xdc00 && c <= 0xdfff) return s[i];
  }
  return undefined;
}

/** What is wrong with a string as Unicode text without control characters (libvirt's wording), or undefined. */
export function textProblem(s: string, what = 'name'): string | undefined {
  const lone = loneSurrogate(s);
  if (lone !== undefined) return `invalid char in ${what}: ${hex(lone)} (a lone UTF-16 surrogate is not Unicode text)`;
  const control = CONTROL.exec(s);
  if (control) return `invalid char in ${what}: ${hex(control[0])}`;
  return undefined;
}

/** What is wrong with a domain, host or snapshot name, or undefined. */
export function nameProblem(s: string): string | undefined {
  if (s.length === 0) return 'must not be empty';
  if (s.length > NAME_MAX) return `must be at most ${NAME_MAX} characters`;
  const text = textProblem(s, 'name');
  if (text) return text;
  if (s.normalize('NFC') !== s) return `name '${s}' is not in Unicode NFC (composed) form: send '${s.normalize('NFC')}'`;
  return undefined;
}

/** What is wrong with an id carried in metadata and NATS headers (actor, correlation id), or undefined. */
export function idProblem(s: string, what = 'id'): string | undefined {
  if (s.length > ID_MAX) return `must be at most ${ID_MAX} characters`;
  return textProblem(s, what);
}

/** The character that marks the ledger's own command ids (a saga's steps, the hypervisor's reports). */
export const INTERNAL_ID_SEPARATOR = '/';

/** What is wrong with a command id a client sent, or undefined. */
export function clientCommandIdProblem(s: string): string | undefined {
  if (s.length === 0) return 'must not be empty';
  const problem = idProblem(s, 'command id');
  if (problem) return problem;
  if (s.includes(INTERNAL_ID_SEPARATOR)) {
    return `command id '${s}' contains '${INTERNAL_ID_SEPARATOR}', which marks the ids of the steps the ledger issues itself`;
  }
  return undefined;
}

/** The id of one step the ledger issues itself on behalf of command `id`: a client can never send it. */
export function internalCommandId(id: string, step: string): string {
  return `${id}${INTERNAL_ID_SEPARATOR}${step}`;
}

// ---------------------------------------------------------------------------------------------------
// Stream names

export const DOMAIN_STREAM_PREFIX = 'domain-';

/** A host as one stream-name part: '%' and '-' percent-encoded, everything else as it is. */
export function encodeHostPart(host: string): string {
  return host.replace(/%/g, '%25').replace(/-/g, '%2D');
}

export function decodeHostPart(part: string): string {
  return part.replace(/%2D/g, '-').replace(/%25/g, '%');
}

/** The stream a domain's facts live in: one per name on a host (the name is unique among existing domains). */
export function domainStream(host: string, name: string): string {
  return `${DOMAIN_STREAM_PREFIX}${encodeHostPart(host)}-${name}`;
}

/** Host and name of a domain stream written by domainStream, or undefined when it is not one. */
export function parseDomainStream(stream: string): { host: string; name: string } | undefined {
  if (!stream.startsWith(DOMAIN_STREAM_PREFIX)) return undefined;
  const rest = stream.slice(DOMAIN_STREAM_PREFIX.length);
  const dash = rest.indexOf('-');
  if (dash <= 0) return undefined;
  return { host: decodeHostPart(rest.slice(0, dash)), name: rest.slice(dash + 1) };
}

/** A host name whose streams were named differently before the encoding (`domain-<host>-<name>`, raw). */
export function hostNeedsEncoding(host: string): boolean {
  return host.includes('-') || host.includes('%');
}

// ---------------------------------------------------------------------------------------------------
// Lookups by a user-given name: own properties only, never the prototype's (`constructor`, `valueOf`, …).

/** `record[key]` if the record has it as its own property. */
export function ownEntry<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** A copy of `record` with `key` set (as an own property, even for `__proto__`). */
export function withEntry<T>(record: Readonly<Record<string, T>>, key: string, value: T): Record<string, T> {
  const out = { ...record };
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

/** A copy of `record` without the keys given. */
export function withoutEntries<T>(record: Readonly<Record<string, T>>, keys: Iterable<string>): Record<string, T> {
  const out = { ...record };
  for (const key of keys) if (Object.hasOwn(out, key)) delete out[key];
  return out;
}
