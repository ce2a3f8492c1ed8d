// `vmledger keygen --out FILE`: a new user nkey (Ed25519) for signing commands. The seed goes to FILE (mode 0600,
// never overwritten), the public key to stdout: put it in the policy's identity.keys under the actor's name.
import { writeFileSync } from 'node:fs';

import { createUser } from '@nats-io/nkeys';
import type { Command } from 'commander';

export function registerKeygenCommand(program: Command): Command {
  return program
    .command('keygen')
    .description('make a signing key: the seed goes to --out FILE, the public key (for the policy\'s identity.keys) to stdout')
    .requiredOption('--out <file>', 'where to write the seed (refused if the file exists)')
    .action((opts: { out: string }) => {
      const kp = createUser();
      try {
        writeFileSync(opts.out, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        process.stderr.write(`error: cannot write ${opts.out}: ${(error as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`${kp.getPublicKey()}\n`);
    });
}
