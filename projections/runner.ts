// The projection runner: folds the global log into a set of projections from their saved checkpoints,
// resumable (a checkpoint is {position, version, state} in docs `projections/<name>`), rebuildable from 0,
// and able to follow the log live through store.subscribe.
import { z } from 'zod';

import type { EventStore, RecordedEvent, Subscription } from '../services/eventstore/types';
import { CHECKPOINT_COLLECTION, type FoldMemo, type Projection } from './projection';

export interface RunnerOptions {
  /** Write checkpoints to the store (default true). Off for throw-away folds such as time travel. */
  persist?: boolean;
  /** While catching up: checkpoint after this many events (default 50 000), so a crash loses little work. */
  checkpointEvery?: number;
  /** While following: checkpoint at most this long (ms) after a change (default 1000). */
  checkpointIntervalMs?: number;
  /** Why a checkpoint was not used (then the projection is rebuilt from 0). Default: stderr. */
  onWarning?: (message: string) => void;
}

/** Where a checkpoint's position was in the log, so a checkpoint of another (replaced, truncated) log is noticed. */
const AnchorSchema = z.object({ stream: z.string(), revision: z.number().int(), hash: z.string().optional() });
type Anchor = z.infer<typeof AnchorSchema>;

const CheckpointSchema = z.object({
  position: z.number().int().min(0),
  version: z.number().int(),
  anchor: AnchorSchema.optional(),
  state: z.unknown(),
});

interface Slot {
  projection: Projection<unknown>;
  state: unknown;
  position: number;
  anchor: Anchor | undefined;
  memo: FoldMemo;
  /** Position last written to the store. */
  saved: number;
}

function anchorOf(event: RecordedEvent): Anchor {
  const hash = event.metadata.hash;
  return { stream: event.stream, revision: event.revision, ...(typeof hash === 'string' ? { hash } : {}) };
}

export class ProjectionRunner {
  private readonly slots: Slot[];
  private readonly persist: boolean;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  private readonly warn: (message: string) => void;
  /** Serialises folding and checkpointing, so a checkpoint never sees half an event. */
  private queue: Promise<unknown> = Promise.resolve();
  private subscription: Subscription | undefined;
  private saveTimer: NodeJS.Timeout | undefined;
  private waiters: { position: number; resolve: () => void }[] = [];
  private listeners = new Set<(event: RecordedEvent) => void>();

  private constructor(
    readonly store: EventStore,
    projections: readonly Projection<unknown>[],
    options: RunnerOptions,
  ) {
    const names = new Set<string>();
    for (const p of projections) {
      if (names.has(p.name)) throw new Error(`two projections are named '${p.name}'`);
      names.add(p.name);
    }
    this.slots = projections.map((projection) => ({
      projection,
      state: projection.initial(),
      position: 0,
      anchor: undefined,
      memo: {},
      saved: 0,
    }));
    this.persist = options.persist ?? true;
    this.checkpointEvery = options.checkpointEvery ?? 50_000;
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? 1000;
    this.warn = options.onWarning ?? ((message) => console.error(`vmledger: ${message}`));
  }

  /** A runner with each projection at its checkpoint (or at 0 when it has none or it cannot be trusted). */
  static async open(
    store: EventStore,
    projections: readonly Projection<any>[],
    options: RunnerOptions = {},
  ): Promise<ProjectionRunner> {
    const runner = new ProjectionRunner(store, projections as Projection<unknown>[], options);
    if (runner.persist) for (const slot of runner.slots) await runner.loadCheckpoint(slot);
    return runner;
  }

  /** The lowest position every projection has folded up to. */
  get position(): number {
    return Math.min(...this.slots.map((s) => s.position));
  }

  positionOf(projection: Projection<any>): number {
    return this.slot(projection).position;
  }

  stateOf<S>(projection: Projection<S>): S {
    return this.slot(projection).state as S;
  }

  /** Folds the log up to its head (or up to `until`), then checkpoints. Returns the position reached. */
  catchUp(until?: number): Promise<number> {
    return this.exclusive(async () => {
      const from = this.position;
      const limit = until === undefined ? Number.POSITIVE_INFINITY : Math.max(0, until - from);
      let sinceSave = 0;
      for await (const event of this.store.readAll(from, limit)) {
        this.applyEvent(event);
        if (this.persist && ++sinceSave >= this.checkpointEvery) {
          await this.saveAll();
          sinceSave = 0;
        }
      }
      if (this.persist) await this.saveAll();
      return this.position;
    });
  }

  /** Forgets every state and folds the log again from position 0. */
  async rebuild(until?: number): Promise<number> {
    await this.exclusive(async () => {
      for (const slot of this.slots) this.reset(slot);
    });
    return this.catchUp(until);
  }

  /**
   * Follows the log live: facts after the current position as they are appended. Checkpoints at most
   * `checkpointIntervalMs` after a change, and on stop()/close().
   */
  follow(): void {
    if (this.subscription) return;
    this.subscription = this.store.subscribe(this.position, (event) =>
      this.exclusive(async () => {
        this.applyEvent(event);
        if (this.persist && !this.saveTimer) {
          this.saveTimer = setTimeout(() => {
            this.saveTimer = undefined;
            void this.exclusive(() => this.saveAll()).catch((error) => this.warn(`checkpoint failed: ${String(error)}`));
          }, this.checkpointIntervalMs);
          this.saveTimer.unref();
        }
      }),
    );
  }

  /** Called after each event is folded (while catching up and while following). Returns an unsubscribe. */
  onApplied(listener: (event: RecordedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once every projection has folded up to `position` (read-your-writes after an append). */
  waitFor(position: number): Promise<void> {
    if (this.position >= position) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ position, resolve }));
  }

  /** Writes the checkpoints now (when persisting). */
  checkpoint(): Promise<void> {
    return this.exclusive(() => (this.persist ? this.saveAll() : Promise.resolve()));
  }

  /** Stops following and writes the last checkpoints. Does not close the store. */
  async close(): Promise<void> {
    const subscription = this.subscription;
    this.subscription = undefined;
    if (subscription) await subscription.close();
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.checkpoint();
  }

  // -------------------------------------------------------------------------------------------------

  private slot(projection: Projection<any>): Slot {
    const slot = this.slots.find((s) => s.projection === projection || s.projection.name === projection.name);
    if (!slot) throw new Error(`projection '${projection.name}' is not run by this runner`);
    return slot;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private reset(slot: Slot): void {
    slot.state = slot.projection.initial();
    slot.position = 0;
    slot.anchor = undefined;
    slot.memo = {};
  }

  private applyEvent(event: RecordedEvent): void {
    for (const slot of this.slots) {
      if (event.position <= slot.position) continue;
      slot.state = slot.projection.apply(slot.state, event);
      slot.position = event.position;
      slot.anchor = anchorOf(event);
    }
    for (const listener of this.listeners) listener(event);
    if (this.waiters.length > 0) {
      const reached = this.position;
      const ready = this.waiters.filter((w) => w.position <= reached);
      this.waiters = this.waiters.filter((w) => w.position > reached);
      for (const w of ready) w.resolve();
    }
  }

  private async saveAll(): Promise<void> {
    for (const slot of this.slots) {
      if (slot.position === slot.saved) continue;
      const { projection } = slot;
      const state = projection.save ? await projection.save(this.store, slot.state, slot.memo) : slot.state;
      await this.store.putDoc(CHECKPOINT_COLLECTION, projection.name, {
        position: slot.position,
        version: projection.version,
        ...(slot.anchor ? { anchor: slot.anchor } : {}),
        state,
      });
      slot.saved = slot.position;
    }
  }

  private async loadCheckpoint(slot: Slot): Promise<void> {
    const { projection } = slot;
    const doc = await this.store.getDoc(CHECKPOINT_COLLECTION, projection.name);
    if (doc === undefined) return;
    const why = await this.restore(slot, doc).catch((error: unknown) => `it does not load (${shortError(error)})`);
    if (why) {
      this.warn(`projection '${projection.name}': checkpoint not used, rebuilding from position 0: ${why}`);
      this.reset(slot);
    }
  }

  /** Restores a slot from its checkpoint doc; returns why the checkpoint cannot be trusted, or undefined. */
  private async restore(slot: Slot, doc: unknown): Promise<string | undefined> {
    const { projection } = slot;
    const parsed = CheckpointSchema.safeParse(doc);
    if (!parsed.success) return 'it is not a checkpoint';
    const checkpoint = parsed.data;
    if (checkpoint.version !== projection.version) {
      return `it was written by version ${checkpoint.version} of the projection, this is version ${projection.version}`;
    }
    if (checkpoint.position > 0) {
      const head = await this.store.headPosition();
      if (checkpoint.position > head) return `it is at position ${checkpoint.position} but the log ends at ${head}`;
      let atCheckpoint: RecordedEvent | undefined;
      for await (const event of this.store.readAll(checkpoint.position - 1, 1)) atCheckpoint = event;
      const anchor = checkpoint.anchor;
      if (
        anchor &&
        (!atCheckpoint ||
          atCheckpoint.stream !== anchor.stream ||
          atCheckpoint.revision !== anchor.revision ||
          (anchor.hash !== undefined && atCheckpoint.metadata.hash !== anchor.hash))
      ) {
        return `the fact at position ${checkpoint.position} is not the one it was folded from (another or a rewritten log)`;
      }
    }
    const memo: FoldMemo = {};
    const state = projection.load
      ? await projection.load(this.store, checkpoint.state, memo)
      : projection.revive(checkpoint.state);
    slot.state = state;
    slot.position = checkpoint.position;
    slot.saved = checkpoint.position;
    slot.anchor = checkpoint.anchor;
    slot.memo = memo;
    return undefined;
  }
}

function shortError(error: unknown): string {
  const text = error instanceof z.ZodError ? z.prettifyError(error) : error instanceof Error ? error.message : String(error);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
