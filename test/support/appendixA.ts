// The worked examples of `virsh -c test:///default` (test/fixtures/appendix-a.json), as data for the tests that
// translate them (test/machine/appendix-a.unit.test.ts) and run them against real virsh (virsh-conformance).
import { readFileSync } from 'node:fs';

export interface AppendixExample {
  /** `T01` … */
  id: string;
  /** What the example shows, e.g. `undefine-running-persistent`. */
  name: string;
  /** The `;`-separated virsh commands, as given to `virsh -c test:///default`. */
  script: string;
  /** stdout and stderr of the recorded run, in order. */
  output: string;
  /** virsh's exit status: that of the last command. */
  exitStatus: number;
}

/** The folder the scripts' `libvirt-examples/…` paths are relative to. */
export const FIXTURES_DIR = new URL('../fixtures/', import.meta.url);

export const APPENDIX_A: readonly AppendixExample[] = (
  JSON.parse(readFileSync(new URL('appendix-a.json', FIXTURES_DIR), 'utf8')) as { examples: AppendixExample[] }
).examples;

export function appendixExample(id: string): AppendixExample {
  const example = APPENDIX_A.find((e) => e.id === id);
  if (!example) throw new Error(`no example ${id} in test/fixtures/appendix-a.json`);
  return example;
}
