// CLI start-up: wall time of `vmledger --store memory list --all` (the built bin, dist/cli/cli.mjs) beside bare
// `node -e 0`, interleaved in the same run so both see the same machine load. Target: at most 3× bare node, so
// vmledger can be called from shell loops the way virsh is.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUILT_BIN = fileURLToPath(new URL('../dist/cli/cli.mjs', import.meta.url));
const SOURCE_BIN = fileURLToPath(new URL('../bin/vmledger.mjs', import.meta.url));

export interface StartupBenchResult {
  runs: number;
  /** Median wall time, ms. */
  cliMs: number;
  nodeMs: number;
  /** The same command from source through tsx (bin/vmledger.mjs), fewer runs: what the build saves. */
  sourceMs: number;
  ratio: number;
  samples: { cli: number[]; node: number[]; source: number[] };
}

function wallMs(args: string[], cwd: string): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8' });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function startupBench(dir: string, runs: number): StartupBenchResult {
  if (!existsSync(BUILT_BIN)) throw new Error(`${BUILT_BIN} is missing: run \`npm run build\` first`);
  // An empty working folder: `list` must not find (or create) a store file anyway with --store memory.
  const cwd = mkdtempSync(join(dir, 'startup-'));
  try {
    const cli = [BUILT_BIN, '--store', 'memory', 'list', '--all'];
    const samples = { cli: [] as number[], node: [] as number[], source: [] as number[] };
    // One unmeasured run of each warms the file cache.
    wallMs(cli, cwd);
    wallMs(['-e', '0'], cwd);
    for (let i = 0; i < runs; i++) {
      // Alternate the order so a change of load hits both alike.
      const pair = [() => samples.cli.push(wallMs(cli, cwd)), () => samples.node.push(wallMs(['-e', '0'], cwd))];
      if (i % 2) pair.reverse();
      for (const step of pair) step();
      if (i % 3 === 0) samples.source.push(wallMs([SOURCE_BIN, '--store', 'memory', 'list', '--all'], cwd));
    }
    const cliMs = median(samples.cli);
    const nodeMs = median(samples.node);
    const round = (n: number) => Math.round(n * 10) / 10;
    return { runs, cliMs: round(cliMs), nodeMs: round(nodeMs), sourceMs: round(median(samples.source)), ratio: Math.round((cliMs / nodeMs) * 100) / 100, samples };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}
