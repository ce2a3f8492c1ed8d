// The package build (`npm run build`, also run by `prepare`, so `npm install`/`npm ci` and `npm pack` build it),
// into dist/:
// - the library entries (entries/*.ts but cli.ts), ESM with .d.mts, dependencies external: they are installed
//   beside the package and shared with the user's own (one zod, one @nats-io/nats-core);
// - the CLI (dist/cli.mjs), with its pure-JS dependencies bundled in: a start loads a few files instead of a few
//   hundred, which is most of what `vmledger list` costs. NATS, the store clients and Graphviz stay external and
//   are loaded by dynamic import() only in the commands that use them (their chunks are dist/cli/*).
// The version is written into the code (services/version.ts): nothing reads package.json at run time.
import { readFileSync } from 'node:fs';
import { defineConfig, type UserConfig } from 'tsdown';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

const common: UserConfig = {
  format: 'esm',
  platform: 'node',
  target: 'node20',
  define: { __VMLEDGER_VERSION__: JSON.stringify(version) },
  // package.json's exports are written by hand (they name the types), so tsdown must not rewrite them.
  exports: false,
};

export default defineConfig([
  {
    ...common,
    entry: {
      index: 'entries/index.ts',
      client: 'entries/client.ts',
      machine: 'entries/machine.ts',
      ledger: 'entries/ledger.ts',
      stores: 'entries/stores.ts',
    },
    outDir: 'dist/lib',
    clean: true,
    dts: true,
  },
  {
    ...common,
    entry: { cli: 'entries/cli.ts' },
    outDir: 'dist/cli',
    clean: true,
    dts: false,
    deps: { alwaysBundle: ['zod', 'commander', 'fast-xml-parser', 'xstate'], onlyBundle: false },
    // The reviewer UI serves its page from `./assets/` beside its code (services/ui/server.ts).
    copy: [{ from: 'services/ui/assets', to: 'dist/cli' }],
  },
]);
