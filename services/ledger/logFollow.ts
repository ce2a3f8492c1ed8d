// Keeping the host index (which UUIDs exist on a host, for DEF-NAME, and the `list` pages) and the open intents
// current with the global log: loaded from their disposable 'indexes' doc at start, then read from where they last
// read before any decision that claims a UUID (so other processes' appends are seen), or followed by a store
// subscription (LedgerOptions.follow); the doc is saved again every 1,000 records a catch-up read, every
// SAVE_EVERY_FOLLOWED records the subscription followed, and at close.
import { z } from 'zod';

import type { EventStore, Subscription } from '../eventstore/types';
import { HostIndex } from '../hostIndex';
import { readIndexDoc } from '../hostIndexDoc';
import { OpenIntentSchema, type OpenIntents } from '../intents';
import { HOST_INDEX_KEY, INDEX_COLLECTION } from './layout';
import type { Discard } from './options';

/** Domain streams whose last record was an open intent when the index doc was saved (services/intents.ts). */
const OpenIntentsDocSchema = z.array(OpenIntentSchema).optional();

/**
 * How many records a subscription follows between saves of the doc: a service killed after a long run folds at
 * most about this many records at its next start (about a second), instead of everything since it started;
 * one save of a 100,000-domain index is a few MB, so not much more often than this.
 */
export const SAVE_EVERY_FOLLOWED = 100_000;

export class LogFollower {
  readonly index = new HostIndex();
  private catchingUp: Promise<void> | undefined;
  private subscription: Subscription | undefined;
  private savedAt = -1;
  private saving: Promise<void> | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly openIntents: OpenIntents,
    private readonly discard: Discard,
  ) {}

  /** The saved index doc, when it is valid and not ahead of the log. */
  async loadDoc(): Promise<void> {
    const doc = await this.store.getDoc(INDEX_COLLECTION, HOST_INDEX_KEY);
    if (doc === undefined) return;
    const parsed = readIndexDoc(doc);
    const intents = OpenIntentsDocSchema.safeParse((doc as { openIntents?: unknown } | null)?.openIntents);
    if (typeof parsed !== 'string' && intents.success && parsed.position <= (await this.store.headPosition())) {
      this.index.load(parsed);
      this.openIntents.load(intents.data ?? []);
      this.savedAt = parsed.position;
    } else {
      const reason = typeof parsed === 'string' ? parsed : !intents.success ? `openIntents: ${intents.error.message}` : 'position beyond the log head';
      this.discard('index', HOST_INDEX_KEY, reason);
    }
  }

  /** Reads the global log from where the index last read (other processes' appends, and ours). */
  follow(): Promise<void> {
    this.catchingUp ??= (async () => {
      try {
        const from = this.index.position;
        for await (const e of this.store.readAll(this.index.position)) {
          this.index.applyRecorded(e);
          this.openIntents.observe(e);
        }
        if (this.index.position - from >= 1000) await this.save();
      } finally {
        this.catchingUp = undefined;
      }
    })();
    return this.catchingUp;
  }

  /** Keeps following between commands (a long-running service). */
  subscribe(): void {
    this.subscription = this.store.subscribe(this.index.position, (e) => {
      this.index.applyRecorded(e);
      this.openIntents.observe(e);
      if (!this.saving && this.index.position - this.savedAt >= SAVE_EVERY_FOLLOWED) {
        this.saving = this.save()
          .catch(() => undefined) // disposable: tried again after the next records
          .finally(() => (this.saving = undefined));
      }
    });
  }

  /** Stops following; saves the doc if the index moved since it was saved. */
  async close(): Promise<void> {
    await this.subscription?.close();
    await this.saving;
    if (this.index.position !== this.savedAt) {
      try {
        await this.save();
      } catch {
        // disposable; rebuilt from the log next time
      }
    }
  }

  private async save(): Promise<void> {
    const doc = { ...this.index.toDoc(), openIntents: this.openIntents.list() };
    await this.store.putDoc(INDEX_COLLECTION, HOST_INDEX_KEY, doc);
    this.savedAt = doc.position;
  }
}
