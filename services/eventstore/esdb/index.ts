// The event store on EventStoreDB (the design card's store), for teams that outgrow one machine:
// `esdb://HOST:PORT?tls=false` or `esdb+discover://HOST:PORT` (any @eventstore/db-client connection string).
//
// Layout
//   vmledger-<stream>                  the facts of one domain stream, one ESDB event per fact (type, JSON data,
//                                      JSON metadata exactly as given). Revisions are ESDB's stream revisions.
//   vmledger.positions-<stream>        sidecar: which global positions the stream's appends got (see below).
//   vmledger.checkpoints               sparse index: {ordinal, commit, prepare} every 1000 facts.
//   vmledger.commands-<command id>     idempotency record: Reserved → Completed (or Released).
//   vmledger.docs-<collection>/<key>   getDoc/putDoc, last event wins (stream $maxCount 1), parts URI-encoded.
// Only fact streams start with `vmledger-`; the bookkeeping streams start with `vmledger.` so that the global
// log ($all filtered by the prefix `vmledger-`) holds facts and nothing else.
//
// Global positions. ESDB's commit positions are not gap-free (they are byte offsets in the transaction log), and
// ESDB cannot append to two streams atomically, so a per-store counter stream cannot be kept in step with the
// facts without a window where a crash leaves a gap. We define the position of a fact as its ordinal among the
// fact events of $all, in $all order: gap-free, strictly increasing, and fixed once written (nothing is ever
// inserted before a committed event, and we never delete fact streams: do not delete or truncate `vmledger-`
// streams, or scavenge after doing so, or positions shift).
//   - Counting: an in-process cursor reads $all forward (client-side filter on the prefix: readAll of client 6.2
//     has no server-side filter) from the last checkpoint and counts facts. After an append, the appender
//     advances the cursor until it sees its own last event id: in steady state a read of the few events written
//     since its previous append.
//   - Seeking: `vmledger.checkpoints` maps every 1000th ordinal to its $all position, so readAll(after) starts at
//     most 1000 facts before `after`; subscribe uses a server-filtered catch-up subscription from there.
//   - Stream reads: each append records {revision, position, count} in the stream's sidecar, so readStream
//     knows its facts' positions without touching $all. A sidecar entry missing after a crash is recomputed
//     from the fact's $all position (a scan from the nearest checkpoint) and written then.
//   Cost per append: the append, one short $all read, one sidecar append (plus the command record, below).
//   A process starting cold reads $all from the last checkpoint (< 1000 facts plus other events).
//
// Idempotency: `vmledger.commands-<id>` holds Reserved {stream, afterRevision, count} (appended with NO_STREAM,
// or the stream's last revision when re-reserving a released or abandoned id), then Completed {revision,
// position}, or Released after a refused append (the id is free again). Fact event ids of a command are derived
// from the command id, so a Reserved record whose appender crashed is resolved by looking for its first event id
// after `afterRevision`: found → completed from it; not found → taken over once the reservation is older than the
// lease (30 s; a live appender gives up publishing when its lease has run out).
//
// What lives where (this folder)
//   index.ts      this description; the public names
//   options.ts    options, the part of the client used, the stream names of one ledger (Names)
//   open.ts       opening on a connection string or a client; `esdb://…` store specs (registry.ts)
//   store.ts      the EventStore: each job's functions, assembled by ../networked.ts
//   log.ts        the per-store state (client, $all cursor, known points, caches) and stream reads
//   convert.ts    bigint revisions, expected revisions, $all positions and event ids to and from the client's
//   append.ts     append: facts with derived event ids under a command reservation
//   commands.ts   the command records: reserve, complete, release, resolve an abandoned reservation
//   read.ts       readStream, streamRevision, readAll, headPosition
//   subscribe.ts  the live source of subscribe() (a catch-up subscription to $all)
//   sidecar.ts    the positions sidecar of each fact stream
//   ordinals.ts   counting facts in $all (the cursor) and the checkpoints that seek it
//   docs.ts       getDoc/putDoc

export { DEFAULT_NAMESPACE, type EsdbClient, type EsdbEventStoreOptions } from './options';
export { commandEventId, fromEsdbCurrentRevision, toEsdbExpectedRevision, toSafeNumber } from './convert';
export { openEsdbEventStore, openEsdbSpec } from './open';
