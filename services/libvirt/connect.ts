// `--connect URI` / `-c URI` (virsh's flag): the ledger performs every accepted command on that libvirt
// connection through the libvirt driver. Shared by the one-shot CLI, `shell` and `serve`.
import { Option } from 'commander';

import type { LibvirtDriver } from '../drivers/libvirt';

export function connectOption(): Option {
  return new Option(
    '-c, --connect <uri>',
    'perform every accepted command on this libvirt connection (e.g. qemu:///system), as virsh -c; without it the ledger is bookkeeping only',
  );
}

/**
 * The driver for `--connect URI`; a URI that cannot be one libvirt URI is refused with a message naming it.
 * Loaded only here, so a CLI without --connect never pays for the driver (lazy start-up).
 */
export async function connectDriver(uri: string): Promise<LibvirtDriver> {
  const trimmed = uri.trim();
  if (trimmed === '' || /[\n\r]/.test(trimmed) || !/^[a-z][a-z0-9+.-]*:/i.test(trimmed)) {
    throw new Error(`invalid libvirt URI '${uri}': expected DRIVER[+TRANSPORT]://[HOST]/PATH, e.g. qemu:///system`);
  }
  const [{ createLibvirtDriver }, { openLibvirtConnection }] = await Promise.all([import('../drivers/libvirt'), import('./connection')]);
  return createLibvirtDriver(openLibvirtConnection(trimmed));
}
