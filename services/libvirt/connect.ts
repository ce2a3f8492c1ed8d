// `--connect URI` / `-c URI` (virsh's flag): the ledger performs every accepted command on that libvirt
// connection through the libvirt driver. Shared by the one-shot CLI, `shell` and `serve`.
//
// Several hosts: `--connect HOST=URI`, repeated, gives each ledger host (`--host`, and the host a `migrate`
// destination URI names) its own libvirt connection; a plain `--connect URI` stays the connection of every host
// without one of its own. A migration runs from the source host's connection to the destination host's
// (services/drivers/libvirtMigration.ts):
//
//   vmledger -c a=qemu+ssh://a/system -c b=qemu+ssh://b/system --host a migrate --live web1 qemu+ssh://b/system
//
// The default host (DEFAULT_HOST) is one of the hosts a plain `--connect URI` serves: given beside
// `--connect local=URI2` it would have two connections, and is refused; the same URI both ways is one connection.
import { Option } from 'commander';

import { DEFAULT_HOST } from '../../machines/model';
import type { LibvirtDriver } from '../drivers/libvirt';

/** What `--connect` was given: one value, or each value of a repeated option. */
export type ConnectSpec = string | readonly string[];

/** The parsed `--connect` values: the connection of every host without its own, and each host's own. */
export interface ConnectTargets {
  default?: string;
  hosts: ReadonlyMap<string, string>;
}

/** Repeated `--connect`: one value stays a string (as before), more become the list of them. */
function collect(value: string, previous: ConnectSpec | undefined): ConnectSpec {
  if (previous === undefined) return value;
  return [...(typeof previous === 'string' ? [previous] : previous), value];
}

export function connectOption(): Option {
  return new Option(
    '-c, --connect <uri>',
    'perform every accepted command on this libvirt connection (e.g. qemu:///system), as virsh -c; HOST=URI (repeatable): ' +
      "the connection of ledger host HOST (--host, and a migration's destination); without it the ledger is bookkeeping only",
  ).argParser(collect);
}

/** `--connect` values as one line (for logs). */
export function describeConnect(spec: ConnectSpec): string {
  return typeof spec === 'string' ? spec : spec.join(' ');
}

// A host name before `=`: no ':' or '/', so it can never be the scheme of a URI (`qemu+unix:///s?socket=…`).
const HOST_ENTRY = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(.*)$/s;

function checkUri(uri: string, given: string): string {
  const trimmed = uri.trim();
  if (trimmed === '' || /[\n\r]/.test(trimmed) || !/^[a-z][a-z0-9+.-]*:/i.test(trimmed)) {
    throw new Error(`invalid libvirt URI '${given}': expected DRIVER[+TRANSPORT]://[HOST]/PATH, e.g. qemu:///system`);
  }
  return trimmed;
}

/**
 * Reads `--connect` values; a value that is no URI, a host given twice, two default URIs, or a default URI beside
 * another for the default host are refused by name. `local=URI` beside the same plain URI is that one connection.
 */
export function parseConnectSpec(spec: ConnectSpec): ConnectTargets {
  const hosts = new Map<string, string>();
  let fallback: string | undefined;
  for (const value of typeof spec === 'string' ? [spec] : spec) {
    const entry = HOST_ENTRY.exec(value.trim());
    if (entry) {
      const [, host, uri] = entry as unknown as [string, string, string];
      if (hosts.has(host)) throw new Error(`--connect: host '${host}' is given two libvirt connections ('${hosts.get(host)}' and '${uri}')`);
      hosts.set(host, checkUri(uri, value));
      continue;
    }
    const uri = checkUri(value, value);
    if (fallback !== undefined) {
      throw new Error(`--connect: two connections without a host ('${fallback}' and '${uri}'): give the others as HOST=URI`);
    }
    fallback = uri;
  }
  const own = hosts.get(DEFAULT_HOST);
  if (fallback !== undefined && own !== undefined) {
    if (own !== fallback) {
      throw new Error(
        `--connect: the default host '${DEFAULT_HOST}' is given two libvirt connections ('${fallback}', without a host, and '${DEFAULT_HOST}=${own}'): ` +
          'give one of them, and the other hosts theirs as HOST=URI',
      );
    }
    // One connection: the default one, whose watch then covers every host without its own (LibvirtDriver.watchedHosts).
    hosts.delete(DEFAULT_HOST);
  }
  return { ...(fallback !== undefined ? { default: fallback } : {}), hosts };
}

/**
 * The driver for `--connect`; a value that cannot be one libvirt URI is refused with a message naming it.
 * Loaded only here, so a CLI without --connect never pays for the driver (lazy start-up).
 */
export async function connectDriver(spec: ConnectSpec): Promise<LibvirtDriver> {
  const targets = parseConnectSpec(spec);
  const [{ createLibvirtDriver }, { openLibvirtConnection }] = await Promise.all([import('../drivers/libvirt'), import('./connection')]);
  if (targets.hosts.size === 0) return createLibvirtDriver(openLibvirtConnection(targets.default!));
  // One connection per URI, however many hosts name it.
  const byUri = new Map<string, ReturnType<typeof openLibvirtConnection>>();
  const open = (uri: string) => byUri.get(uri) ?? byUri.set(uri, openLibvirtConnection(uri)).get(uri)!;
  return createLibvirtDriver({
    ...(targets.default !== undefined ? { default: open(targets.default) } : {}),
    hosts: new Map([...targets.hosts].map(([host, uri]) => [host, open(uri)])),
  });
}
