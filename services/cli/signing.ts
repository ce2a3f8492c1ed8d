// `--sign-with KEYFILE`, and who names the actor of a CLI session's commands.
//
// Over NATS (`--nats URL`) the session sends no actor of its own: the service records the one it authenticates
// (a signature, or the NATS user of a trusted import), and refuses a command naming another (services/identity/
// actor.ts). With a key file every command is signed (services/identity/signature.ts); on a local store the
// signature is recorded with the command, and `vmledger replay` verifies it.
import type { SessionLedger } from '../virsh/session';

export async function prepareSessionLedger(ledger: SessionLedger, options: { signWith?: string; remote: boolean }): Promise<SessionLedger> {
  if (!options.remote && options.signWith === undefined) return ledger;
  // Loaded only when needed: a plain local session never pays for the signing code.
  const signer = options.signWith === undefined ? undefined : (await import('../identity/signature')).readSigningKey(options.signWith);
  const sign = signer ? (await import('../identity/signature')).signCommand : undefined;
  const execute = ledger.execute.bind(ledger);
  ledger.execute = async (input, executeOptions) => {
    let command = input as { meta?: Record<string, unknown> };
    if (options.remote && command?.meta?.actor !== undefined) {
      const { actor: _actor, ...meta } = command.meta;
      command = { ...command, meta };
    }
    if (sign && signer) {
      try {
        command = sign(command, signer);
      } catch {
        // not a valid command: the ledger names what is wrong with it
      }
    }
    return execute(command, executeOptions);
  };
  return ledger;
}
