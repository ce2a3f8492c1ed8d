// A projection is a plain reducer over the global log: no XState actor per event (an actor per transition
// manages ~50–80k transitions/s on one core; a reducer folds millions). The runner (runner.ts) owns the state, feeds it
// every event in position order, and checkpoints {position, version, state} in the store's docs.
import type { EventStore, RecordedEvent } from '../services/eventstore/types';

export interface Projection<S> {
  /** Checkpoint key in the `projections` doc collection. */
  readonly name: string;
  /**
   * Bump when the state's shape or the reducer's meaning changes: a checkpoint of another version is not
   * trusted, and the projection is rebuilt from position 0.
   */
  readonly version: number;
  initial(): S;
  /**
   * Folds one event of the global log (every stream; ignore what is not yours). The runner owns `state`, so
   * the reducer may update it in place; it must return the state to keep.
   */
  apply(state: S, event: RecordedEvent): S;
  /** Validates (and revives) a checkpointed state with zod; throws when it does not fit. */
  revive(saved: unknown): S;
  /**
   * For states too big for one doc: save returns what goes into the checkpoint (writing the rest as other docs),
   * load turns it back into a state. Without these the state itself is the checkpoint. `memo` is scratch space
   * the runner keeps for one fold (fresh when the fold starts from 0, the same object while it continues).
   */
  save?(store: EventStore, state: S, memo: FoldMemo): Promise<unknown>;
  load?(store: EventStore, saved: unknown, memo: FoldMemo): Promise<S>;
}

export type FoldMemo = Record<string, unknown>;

/** Doc collection of projection checkpoints; the key is the projection's name. */
export const CHECKPOINT_COLLECTION = 'projections';

export interface Checkpoint {
  /** Global position of the last event folded into `state` (0: nothing yet). */
  position: number;
  version: number;
  state: unknown;
}
