// vitest globalSetup: one qemu capabilities cache for every private libvirtd of this run (test/support/libvirtd.ts).
// The first daemon probes qemu (seconds); the others find the probe's result here. Removed when the run ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    libvirtCacheDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'vmledger-libvirt-cache-'));
  project.provide('libvirtCacheDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
