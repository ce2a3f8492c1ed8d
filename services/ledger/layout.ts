// Where the ledger keeps what, all in one event store (the names below are the only place they are spelt):
//   domain-<host>-<name>   a domain's facts (machines/events.ts), data = the fact without `type`, hash-chained
//                          (the first fact of each decision carries the whole command, and the hash covers it);
//                          and the EffectIntended / EffectSettled records of exactly-once effects (no facts)
//   refusals-<host>        one `CommandRefused` fact per refused command: the audit trail of refusals
//   noops-<host>           one `CommandAccepted` per accepted command that changed nothing (suspend of a paused
//                          domain, managedsave-remove without an image, a guest event with nothing to report):
//                          the domain's stream and revision stay as they were; the record names the revision (and
//                          hash) it was decided on, so the audit sees it and the replay re-checks it there
//   docs 'outcomes'        key = command id: the first outcome of every command (idempotent retries, refusals too),
//                          written with the command's facts (AppendOptions.docs: one transaction on SQLite, so one
//                          durable write per command); an outcome without its doc (a backend without transactions
//                          that crashed in between, or outcomeDocs 'unrecorded') is rebuilt from the facts that carry
//                          the command id
//   docs 'checkpoints'     key = stream: a state checkpoint every `checkpointEvery` facts (disposable, verified),
//                          written with the fact that makes it due
//   docs 'indexes'         key 'host-view': the UUID → name index and the global position it reflects (disposable)
// The reading side of this layout (projections, replay, audit) is projections/log.ts.

export const OUTCOMES_COLLECTION = 'outcomes';
export const CHECKPOINTS_COLLECTION = 'checkpoints';
export const INDEX_COLLECTION = 'indexes';
export const HOST_INDEX_KEY = 'host-view';
export const COMMAND_REFUSED = 'CommandRefused';
/** The record of an accepted command that changed nothing, in `noops-<host>`. */
export const COMMAND_ACCEPTED = 'CommandAccepted';

export function refusalStream(host: string): string {
  return `refusals-${host}`;
}

export function noopStream(host: string): string {
  return `noops-${host}`;
}
