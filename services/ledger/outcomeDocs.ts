// Idempotency: the first outcome of every command id, kept as a doc in 'outcomes' (written with the command's
// facts by the command handler and the audit records) and recalled for a retry; an outcome whose doc is missing
// (a backend without transactions that crashed in between, or outcomeDocs 'unrecorded') is rebuilt from the
// records that carry its command id.
import { z } from 'zod';

import type { ErrorCodeName } from '../../machines/errors';
import { domainStream } from '../../machines/model';
import { EFFECT_INTENDED } from '../../projections/log';
import type { AppendResult, DocWrite, EventStore, RecordedEvent } from '../eventstore/types';
import type { CommandOutcome } from '../ledger-types';
import { COMMAND_ACCEPTED, COMMAND_REFUSED, OUTCOMES_COLLECTION } from './layout';
import type { Discard } from './options';

/** Marks an outcome doc whose `events` are references (stream, revision, position, type) to facts in the log. */
const FACTS_BY_REFERENCE = 'factsByReference';

const OutcomeDocSchema = z.looseObject({
  ok: z.boolean(),
  command: z.string(),
  host: z.string(),
  domain: z.string(),
  commandId: z.string(),
  events: z.array(z.looseObject({ stream: z.string(), revision: z.number(), position: z.number(), type: z.string() })),
  revision: z.number(),
});

export interface OutcomeDocsOptions {
  store: EventStore;
  /** LedgerOptions.outcomeDocs (default 'unrecorded'). */
  mode: 'all' | 'unrecorded' | undefined;
  discard: Discard;
  /** The outcome of a command whose last record is its intent (services/intents.ts IntentProtocol.outcomeAfter). */
  outcomeAfterIntent: (intent: RecordedEvent) => Promise<CommandOutcome | undefined>;
}

export class OutcomeDocs {
  private readonly store: EventStore;

  constructor(private readonly options: OutcomeDocsOptions) {
    this.store = options.store;
  }

  /** The outcome doc of a first outcome, or undefined when `outcomeDocs: 'unrecorded'` leaves it to its facts. */
  outcomeDoc(outcome: CommandOutcome, recordedByFacts = outcome.events.length > 0 || outcome.audit !== undefined): DocWrite | undefined {
    if (this.options.mode !== 'all' && recordedByFacts) return undefined;
    const { duplicate: _duplicate, ...first } = outcome;
    // The facts by reference: they are in the log already, and copying them (each carries its whole command)
    // doubled what every command writes (about a fifth of the NATS command rate, bench/run.ts section c).
    // recallDoc reads them back.
    const events = first.events.map(({ stream, revision, position, type }) => ({ stream, revision, position, type }));
    return { collection: OUTCOMES_COLLECTION, key: outcome.commandId, value: { ...first, events, [FACTS_BY_REFERENCE]: true } };
  }

  /** Writes an outcome doc on its own: for outcomes no append carried (a saga's, a rebuilt one). */
  async saveOutcome(outcome: CommandOutcome, recordedByFacts = outcome.events.length > 0 || outcome.audit !== undefined): Promise<void> {
    const doc = this.outcomeDoc(outcome, recordedByFacts);
    if (doc) await this.store.putDoc(doc.collection, doc.key, doc.value);
  }

  /** The outcome doc of a command id, if there is a valid one. */
  async recallDoc(commandId: string): Promise<CommandOutcome | undefined> {
    if (!commandId) return undefined;
    const doc = await this.store.getDoc(OUTCOMES_COLLECTION, commandId);
    if (doc === undefined) return undefined;
    const parsed = OutcomeDocSchema.safeParse(doc);
    if (!parsed.success) {
      this.options.discard('outcome', commandId, parsed.error.message);
      return undefined;
    }
    const { [FACTS_BY_REFERENCE]: byReference, ...first } = parsed.data;
    if (byReference !== true) return { ...(first as unknown as CommandOutcome), duplicate: true };
    const events = await this.factsByReference(first.events);
    if (!events) {
      this.options.discard('outcome', commandId, 'a fact it names is not in the log');
      return undefined;
    }
    return { ...(first as unknown as CommandOutcome), events, duplicate: true };
  }

  /**
   * The first outcome of a command id: its doc, or else rebuilt from the facts it appended (a crash between the
   * append and the doc). `saveRebuilt` keeps a rebuilt outcome as the doc (not for a saga's Begin step, whose
   * command id is the whole saga's).
   */
  async recallOutcome(commandId: string, saveRebuilt: boolean): Promise<CommandOutcome | undefined> {
    if (!commandId) return undefined;
    // Every first outcome with a doc was recorded with a record carrying its command id (an append, or a
    // saga's Begin step): a command id the store has never seen (nearly every new command) costs one read.
    const result = await this.store.commandResult(commandId);
    if (!result) return undefined;
    const doc = await this.recallDoc(commandId);
    if (doc) return doc;
    const outcome = await this.rebuildOutcome(commandId, result);
    if (!outcome) return undefined;
    if (saveRebuilt) {
      try {
        await this.saveOutcome(outcome);
      } catch {
        // rebuilt again next time
      }
    }
    return { ...outcome, duplicate: true };
  }

  /** The facts an outcome doc names by reference, read back from the log; undefined if one is not (or no longer) there. */
  private async factsByReference(refs: readonly { stream: string; revision: number; position: number; type: string }[]): Promise<RecordedEvent[] | undefined> {
    const facts: RecordedEvent[] = [];
    let i = 0;
    while (i < refs.length) {
      // A run of consecutive revisions of one stream (a command's facts): one read.
      let end = i + 1;
      while (end < refs.length && refs[end]!.stream === refs[i]!.stream && refs[end]!.revision === refs[end - 1]!.revision + 1) end++;
      for await (const e of this.store.readStream(refs[i]!.stream, refs[i]!.revision)) {
        const ref = refs[i]!;
        if (e.revision !== ref.revision || e.position !== ref.position || e.type !== ref.type) return undefined;
        facts.push(e);
        if (++i === end) break;
      }
      if (i !== end) return undefined;
    }
    return facts;
  }

  private async rebuildOutcome(commandId: string, result: AppendResult): Promise<CommandOutcome | undefined> {
    let last: RecordedEvent | undefined;
    for await (const e of this.store.readAll(result.position - 1, 1)) last = e;
    if (!last) return undefined;
    if (last.type === EFFECT_INTENDED) return this.options.outcomeAfterIntent(last);
    const facts: RecordedEvent[] = [last];
    let upTo = last.revision - 1;
    while (upTo >= 0) {
      const from = Math.max(0, upTo - 63);
      const window: RecordedEvent[] = [];
      for await (const e of this.store.readStream(last.stream, from)) {
        if (e.revision > upTo) break;
        window.push(e);
      }
      let stopped = false;
      for (let i = window.length - 1; i >= 0; i--) {
        if (window[i]!.metadata.commandId !== commandId) {
          stopped = true;
          break;
        }
        facts.unshift(window[i]!);
      }
      if (stopped) break;
      upTo = from - 1;
    }
    const meta = facts[0]!.metadata;
    const command = (meta.command ?? {}) as { verb?: string };
    const base = {
      command: typeof command.verb === 'string' ? command.verb : '',
      host: typeof meta.host === 'string' ? meta.host : '',
      domain: typeof meta.domain === 'string' ? meta.domain : '',
      commandId,
    };
    if (last.type === COMMAND_REFUSED) {
      const d = last.data as { rule?: string; code?: number; codeName?: string; message?: string };
      let domainRevision = last.metadata.domainRevision;
      if (typeof domainRevision !== 'number') {
        const now = await this.store.streamRevision(domainStream(base.host, base.domain));
        domainRevision = now === 'no-stream' ? -1 : now;
      }
      return {
        ok: false,
        ...base,
        events: [],
        revision: domainRevision as number,
        rule: d.rule,
        code: d.code,
        codeName: d.codeName as ErrorCodeName | undefined,
        message: d.message,
        audit: { stream: last.stream, revision: last.revision, position: last.position },
      };
    }
    if (last.type === COMMAND_ACCEPTED) {
      // An accepted no-op: as first answered, no facts, the domain's revision then, and the record's place.
      const d = last.data as { domainRevision?: unknown };
      const domainRevision = typeof d.domainRevision === 'number' ? d.domainRevision : last.metadata.domainRevision;
      return {
        ok: true,
        ...base,
        events: [],
        revision: typeof domainRevision === 'number' ? domainRevision : -1,
        audit: { stream: last.stream, revision: last.revision, position: last.position },
      };
    }
    return { ok: true, ...base, events: facts, revision: last.revision };
  }
}
