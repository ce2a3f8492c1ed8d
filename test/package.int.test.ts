// The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), then `npm install` of the
// tarball into an empty folder, where the bin runs virsh commands on its default SQLite store, the library
// entry points import without starting anything, and a TypeScript file using them type-checks against the
// shipped .d.mts. Slow (a build, an install that compiles better-sqlite3, a tsc run): one test for all of it.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'vmledger-package-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const npm = (args: string[], cwd: string) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function run(command: string, args: string[], cwd: string) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const USE_TS = `import { connect } from '@nats-io/transport-node';
import { createVmledgerClient, type VmledgerClient } from 'vmledger/client';
import { decide, initialDomainState, RULES, type DomainState } from 'vmledger/machine';
import { createLedger, type CommandOutcome } from 'vmledger/ledger';
import { createMemoryEventStore, openEventStore } from 'vmledger/stores';

export async function demo(): Promise<CommandOutcome> {
  const client: VmledgerClient = createVmledgerClient(await connect({ servers: '127.0.0.1:4222' }));
  const started: CommandOutcome = await client.commands.start({ domain: 'web1' }); // as in the README
  void started.rule;
  const s: DomainState = initialDomainState('local', 'web1');
  void decide;
  void RULES.length;
  void s;
  await (await openEventStore('memory')).close();
  return createLedger(createMemoryEventStore()).execute({ verb: 'start', domain: 'web1' });
}
`;

const BAD_TS = `import { createLedger } from 'vmledger';
createLedger(42);
`;

describe('the npm package', () => {
  it('packs only what runs, installs into an empty folder, and works there: bin, imports, types', () => {
    npm(['pack', '--pack-destination', work], ROOT);
    const tarball = readdirSync(work).find((f) => /^vmledger-.*\.tgz$/.test(f));
    expect(tarball, 'npm pack made no tarball').toBeDefined();
    const files = execFileSync('tar', ['tzf', join(work, tarball!)], { encoding: 'utf8' }).trim().split('\n');
    expect(files).toContain('package/dist/cli/cli.mjs');
    expect(files).toContain('package/dist/lib/client.d.mts');
    expect(files).toContain('package/docs/rules.md');
    const outside = files.filter((f) => !/^package\/(dist\/|docs\/rules\.md$|package\.json$|README\.md$|LICENSE)/.test(f));
    expect(outside, 'files in the tarball that do not run').toEqual([]);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    npm(['install', '--prefer-offline', join(work, tarball!)], app);

    // The bin, as `npx vmledger …`: the default store is ./vmledger.sqlite, kept between invocations.
    copyFileSync(join(ROOT, 'examples/web1.xml'), join(app, 'x.xml'));
    const define = run('npx', ['vmledger', 'define', 'x.xml'], app);
    expect([define.status, define.stdout, define.stderr]).toEqual([0, "Domain 'web1' defined from x.xml\n\n", '']);
    const list = run('npx', ['vmledger', 'list', '--all'], app);
    expect(list.stderr).toBe('');
    expect(list.stdout).toMatch(/^ -\s+web1\s+shut off$/m);
    // The version the build wrote in: package.json's, though no package.json is read at run time.
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(run('npx', ['vmledger', '--version'], app).stdout).toBe(`${version}\n`);

    // Importing an entry point starts nothing (no CLI output, no store file) and gives the API.
    const imported = run(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('vmledger/machine'); const c = await import('vmledger/client'); const l = await import('vmledger'); console.log(typeof m.decide, typeof c.createVmledgerClient, typeof l.createLedger, m.RULES.length > 40)"],
      app,
    );
    expect([imported.status, imported.stdout, imported.stderr]).toEqual([0, 'function function function true\n', '']);

    // Types: a file using the entry points type-checks with the shipped declarations; a wrong call does not.
    const tsc = join(ROOT, 'node_modules/.bin/tsc');
    const tsconfig = (file: string) =>
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: [] }, files: [file] });
    writeFileSync(join(app, 'use.ts'), USE_TS);
    writeFileSync(join(app, 'tsconfig.json'), tsconfig('use.ts'));
    const good = run(tsc, ['-p', app], app);
    expect(good.stdout + good.stderr, 'tsc on use.ts').toBe('');
    expect(good.status).toBe(0);
    writeFileSync(join(app, 'bad.ts'), BAD_TS);
    writeFileSync(join(app, 'tsconfig.json'), tsconfig('bad.ts'));
    const bad = run(tsc, ['-p', app], app);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toContain("Argument of type 'number' is not assignable to parameter of type 'EventStore'");
  }, 1_200_000);
});
