// The audit records of commands that leave a domain's stream as it is, one per command, hash-chained per host:
//   refusals-<host>  CommandRefused: the command, the rule, libvirt's code and message, the revision refused at
//   noops-<host>     CommandAccepted: an accepted command that changed nothing, with the revision (and hash) it was
//                    decided on, so the replay re-checks it on exactly that state
// Each is appended with its outcome doc (one durable write), at the exact revision its hash chains to.
import type { Command } from '../../machines/commands';
import type { Refusal } from '../../machines/errors';
import { WrongExpectedRevisionError, type AppendResult, type DocWrite, type EventStore, type NewEvent } from '../eventstore/types';
import { factHash } from '../factHash';
import type { IntentAttempt, IntentHead } from '../intents';
import type { CommandOutcome } from '../ledger-types';
import { baseMeta, jsonClone } from './encoding';
import { KeyedMutex } from './keyedMutex';
import { COMMAND_ACCEPTED, COMMAND_REFUSED, noopStream, refusalStream } from './layout';
import type { OutcomeDocs } from './outcomeDocs';
import { accepted, refusedOutcome } from './outcomes';

/** One record to append: its stream and type, the command, the hashed data, the outcome it answers, the domain revision. */
interface AuditRecord {
  stream: string;
  type: string;
  command: Command;
  data: Record<string, unknown>;
  outcome: CommandOutcome;
  revision: number;
  saveDoc: boolean;
}

export class AuditRecords {
  /** One append at a time per audit stream (refusals, no-ops) in this process, so each chains to the hash before it. */
  private readonly locks = new KeyedMutex();
  private readonly heads = new Map<string, { revision: number; hash: string | undefined }>();

  constructor(
    private readonly store: EventStore,
    private readonly docs: OutcomeDocs,
  ) {}

  /** A refusal appends nothing to the domain stream; one `CommandRefused` fact goes to `refusals-<host>`. */
  refuse(c: Command, r: Refusal, revision: number, saveDoc = true): Promise<IntentAttempt> {
    // The domain's revision it was refused at goes into the hashed data: the replay re-decides it on that state.
    const data = jsonClone({ command: c, rule: r.rule, code: r.code, codeName: r.codeName, message: r.message, domainRevision: revision });
    return this.append({ stream: refusalStream(c.host), type: COMMAND_REFUSED, command: c, data, outcome: refusedOutcome(c, r, revision), revision, saveDoc });
  }

  /**
   * An accepted command that changed nothing appends nothing to the domain stream (its revision stays: nobody's
   * expected revision is spoilt, no writer contends for the domain); one `CommandAccepted` goes to `noops-<host>`,
   * naming the domain revision it was decided on and that fact's hash (covered by the record's own hash), so the
   * replay re-checks it on exactly that state and notices a domain stream rewritten under it.
   */
  async recordNoop(c: Command, head: IntentHead, saveDoc: boolean): Promise<IntentAttempt> {
    const data = jsonClone({ command: c, domainRevision: head.revision, ...(head.hash !== undefined ? { domainHash: head.hash } : {}) });
    const attempt = await this.append({ stream: noopStream(c.host), type: COMMAND_ACCEPTED, command: c, data, outcome: accepted(c, [], head.revision), revision: head.revision, saveDoc });
    return { ...attempt, state: head.state };
  }

  /**
   * Appends one audit record (CommandRefused, CommandAccepted) to a host's audit stream, hash-chained, the hash
   * covering the command in its metadata too. Appended at the exact revision its hash chains to (never 'any', which
   * could put it after a record it does not chain to: a break the replay would report as tampering); serialised
   * per audit stream in this process, and retried on a fresh head when another process got in first.
   */
  private append(record: AuditRecord): Promise<IntentAttempt> {
    return this.locks.run(record.stream, () => this.appendLocked(record));
  }

  private async appendLocked({ stream, type, command: c, data, outcome, revision, saveDoc }: AuditRecord): Promise<IntentAttempt> {
    // The domain stream's revision when decided: what the first outcome said (and what an audit wants to know).
    const base = { ...baseMeta(c), command: jsonClone(c), domainRevision: revision };
    let docWritten = false;
    for (;;) {
      const head = this.heads.get(stream) ?? (await this.lastOf(stream));
      const hash = factHash(head.hash, type, data, base.command);
      const event: NewEvent = { type, data, metadata: { ...base, hash } };
      const expectedRevision = head.revision < 0 ? 'no-stream' : head.revision;
      let result: AppendResult;
      try {
        // The outcome doc goes with the record (one durable write), quoting where the store put it.
        const docs = saveDoc
          ? (at: AppendResult): DocWrite[] => {
              docWritten = true;
              const doc = this.docs.outcomeDoc({ ...outcome, audit: { stream, revision: at.revision, position: at.position } });
              return doc ? [doc] : [];
            }
          : undefined;
        result = await this.store.append(stream, [event], { expectedRevision, commandId: c.meta.commandId, docs });
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError) {
          this.heads.delete(stream);
          continue;
        }
        throw error;
      }
      if (result.duplicate) {
        const prior = await this.docs.recallOutcome(c.meta.commandId, false);
        if (prior) return { outcome: prior, save: false };
      }
      this.heads.set(stream, { revision: result.revision, hash });
      outcome.audit = { stream, revision: result.revision, position: result.position };
      return { outcome, save: !docWritten };
    }
  }

  private async lastOf(stream: string): Promise<{ revision: number; hash: string | undefined }> {
    const revision = await this.store.streamRevision(stream);
    if (revision === 'no-stream') return { revision: -1, hash: undefined };
    for await (const e of this.store.readStream(stream, revision)) {
      return { revision, hash: typeof e.metadata.hash === 'string' ? e.metadata.hash : undefined };
    }
    return { revision: -1, hash: undefined };
  }
}
