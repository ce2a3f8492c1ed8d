// One private libvirtd per test file (test/support/libvirtd.ts), sharing the run's qemu capabilities cache.
// Without the binaries the file's tests skip, loudly: the test command installs them, so in CI they run.
import { afterAll, beforeAll, describe, inject } from 'vitest';

import { libvirtBinaries, libvirtMissingMessage, startLibvirtd, type LibvirtdHandle } from '../support/libvirtd';

const binaries = libvirtBinaries();
export const libvirtMissing = 'missing' in binaries ? binaries.missing : undefined;
if (libvirtMissing) console.warn(libvirtMissingMessage(libvirtMissing));

/** `describe` that skips (with the warning above) when libvirt is not installed. */
export const describeLibvirt = libvirtMissing ? describe.skip : describe;

/** Starts the file's daemon in beforeAll and stops it in afterAll; read `.current` inside tests. */
export function useLibvirtd(): { current: LibvirtdHandle } {
  const ref = {} as { current: LibvirtdHandle };
  beforeAll(async () => {
    ref.current = await startLibvirtd({ cacheDir: inject('libvirtCacheDir') });
  }, 180_000);
  afterAll(async () => {
    await ref.current?.stop();
  }, 180_000);
  return ref;
}
