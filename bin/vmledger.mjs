#!/usr/bin/env node
// The CLI from source, for working on vmledger (tests, `npm run vmledger`): TypeScript through tsx, a dev
// dependency. The package's own `vmledger` is the built dist/cli.mjs.
import { readFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

// The build writes the version in; from source it is package.json's (see services/version.ts).
globalThis.__VMLEDGER_VERSION__ = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
register();
await import('../entries/cli.ts');
