// snapshotTree: each domain's snapshots as a tree (SC-TREE, SD-TREE, SR-TREE), for `snapshot-list --tree`.
//
// It keeps only what the tree depends on: the snapshots, the current one, and the three fields evolve
// consults when deciding whether snapshot metadata survives a fact (life, active, persistent: UND-ACTIVE,
// TRANSIENT-QUIT, MIG-PERSIST). That slice is closed under machines/evolve, so the reducer reuses evolve on a
// partial state instead of restating the tree rules; test/projections.test.ts checks it against the full fold.
import { z } from 'zod';

import { initialDomainState, ownRecord, SnapshotSchema, type DomainState, type Snapshot } from '../machines/model';
import { ownEntry } from '../machines/names';
import type { RecordedEvent } from '../services/eventstore/types';
import { evolveKnown } from './domainList';
import { factOf, isDomainStream, streamIdentityFrom, streamIdentityGuess } from './log';
import type { Projection } from './projection';

export const SnapshotSliceSchema = z.object({
  host: z.string(),
  name: z.string(),
  life: z.enum(['none', 'exists', 'gone']),
  active: z.boolean(),
  persistent: z.boolean(),
  snapshots: ownRecord(SnapshotSchema),
  current: z.string().nullable(),
  position: z.number().int(),
});
export type SnapshotSlice = z.infer<typeof SnapshotSliceSchema>;

export interface SnapshotTreeState {
  streams: Record<string, SnapshotSlice>;
}

export function sliceOf(s: DomainState, position: number): SnapshotSlice {
  return {
    host: s.host,
    name: s.name,
    life: s.life,
    active: s.active,
    persistent: s.persistent,
    snapshots: s.snapshots,
    current: s.current,
    position,
  };
}

function asDomainState(slice: SnapshotSlice): DomainState {
  return {
    ...initialDomainState(slice.host, slice.name),
    life: slice.life,
    active: slice.active,
    persistent: slice.persistent,
    snapshots: slice.snapshots,
    current: slice.current,
  };
}

export function foldSnapshotEvent(streams: Record<string, SnapshotSlice>, event: RecordedEvent): void {
  if (!isDomainStream(event.stream)) return;
  let slice = streams[event.stream];
  if (!slice) {
    const id = streamIdentityFrom(event) ?? streamIdentityGuess(event.stream);
    slice = sliceOf(initialDomainState(id.host, id.name), 0);
  }
  streams[event.stream] = sliceOf(evolveKnown(asDomainState(slice), factOf(event)), event.position);
}

export const snapshotTree: Projection<SnapshotTreeState> = {
  name: 'snapshotTree',
  version: 1,
  initial: () => ({ streams: {} }),
  apply(state, event) {
    foldSnapshotEvent(state.streams, event);
    return state;
  },
  revive: (saved) => z.object({ streams: z.record(z.string(), SnapshotSliceSchema) }).parse(saved),
};

export interface SnapshotNode {
  name: string;
  parent: string | null;
  /** Domain state the snapshot captured (`disk-snapshot` for disk-only). */
  state: Snapshot['state'];
  creationTime: string;
  description?: string;
  diskOnly: boolean;
  external: boolean;
  mirrored: boolean;
  current: boolean;
  children: SnapshotNode[];
}

export interface SnapshotTreeView {
  host: string;
  name: string;
  current: string | null;
  count: number;
  /** Snapshots without a parent (or whose parent is not known), oldest first; children likewise. */
  roots: SnapshotNode[];
}

/**
 * The tree of one domain's snapshots; siblings by creation time, then name. Shared by the read model and the NATS
 * query (services/nats/protocol.ts). A `--redefine`d snapshot may name any parent, even one that makes a loop;
 * each snapshot appears once, and a loop is cut where it closes.
 */
export function buildSnapshotTree(slice: Pick<SnapshotSlice, 'host' | 'name' | 'snapshots' | 'current'>): SnapshotTreeView {
  const snaps = Object.values(slice.snapshots).sort(
    (a, b) => Date.parse(a.creationTime) - Date.parse(b.creationTime) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const childrenOf = new Map<string, Snapshot[]>();
  for (const snap of snaps) {
    if (snap.parent === null) continue;
    const siblings = childrenOf.get(snap.parent);
    if (siblings) siblings.push(snap);
    else childrenOf.set(snap.parent, [snap]);
  }
  const placed = new Set<string>();
  const node = (snap: Snapshot): SnapshotNode => {
    placed.add(snap.name);
    return {
      name: snap.name,
      parent: snap.parent,
      state: snap.state,
      creationTime: snap.creationTime,
      ...(snap.description !== undefined ? { description: snap.description } : {}),
      diskOnly: snap.diskOnly,
      external: snap.external,
      mirrored: snap.mirrored,
      current: snap.name === slice.current,
      children: (childrenOf.get(snap.name) ?? []).filter((c) => !placed.has(c.name)).map(node),
    };
  };
  // A parent that is not (or no longer) known makes a root, as `snapshot-list --tree` shows it.
  const roots = snaps.filter((s) => s.parent === null || ownEntry(slice.snapshots, s.parent) === undefined).map(node);
  // Whatever is left sits on a parent loop: start a root at the first of each loop.
  for (const snap of snaps) if (!placed.has(snap.name)) roots.push(node(snap));
  return { host: slice.host, name: slice.name, current: slice.current, count: snaps.length, roots };
}

/** `snapshot-list --tree` text: one snapshot per line, children indented under their parent, `*` marks current. */
export function renderSnapshotTree(tree: SnapshotTreeView): string[] {
  const lines: string[] = [];
  const walk = (node: SnapshotNode, prefix: string, last: boolean, root: boolean) => {
    const mark = node.current ? ' *' : '';
    lines.push(root ? `${node.name}${mark}` : `${prefix}${last ? '└─ ' : '├─ '}${node.name}${mark}`);
    const childPrefix = root ? '' : prefix + (last ? '   ' : '│  ');
    node.children.forEach((child, i) => walk(child, root ? '' : childPrefix, i === node.children.length - 1, false));
  };
  for (const root of tree.roots) walk(root, '', true, true);
  return lines;
}
