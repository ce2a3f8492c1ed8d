import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

export default defineConfig({
  // As the build does (tsdown.config.ts): services/version.ts reads it.
  define: { __VMLEDGER_VERSION__: JSON.stringify(version) },
  test: {
    include: ['test/**/*.test.ts', 'machines/**/*.test.ts', 'services/**/*.test.ts', 'projections/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start their own nats-server processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // One qemu capabilities cache for the private libvirtd of each libvirt test file (test/support/libvirtd.ts).
    globalSetup: ['./test/support/libvirtCache.globalSetup.ts'],
    reporters: ['default', './test/support/summaryReporter.ts'],
  },
});
