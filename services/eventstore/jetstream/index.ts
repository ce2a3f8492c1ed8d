// The event store on NATS JetStream, for teams that outgrow one machine: `jetstream://HOST:PORT`.
//
// Layout on the server
//   stream VMLEDGER            subjects `vmledger.log.>` only. Never `vmledger.cmd.>`, `vmledger.query.>`,
//                              `vmledger.schema` or `vmledger.evt.>`: a stream capturing a request subject answers
//                              requests with a PubAck, not a reply; open refuses a prefix that would overlap.
//     vmledger.log.meta        seq 1: the format marker (`vmledger-jetstream/1`), written once on an empty stream.
//     vmledger.log.s.<token>   one subject per domain stream; <token> is the stream name with every byte outside
//                              [A-Za-z0-9-] written `_XX` (so it is one subject token and reversible), or `=<sha256>`
//                              for names whose token would exceed 200 bytes.
//   KV vmledger-commands       idempotency records, one per command id, kept forever (see below).
//   KV vmledger-docs           getDoc/putDoc, key `<collection token>.<key token>`.
//
// One message per append. Its payload carries the stream name, the append's id, the command id and every fact
// (type, data, metadata); its headers carry where the facts sit:
//   Vmledger-Position  global position of the first fact        Vmledger-Count     number of facts (>= 1)
//   Vmledger-Revision  stream revision of the first fact        Vmledger-Previous  sequence of the stream's
//                                                                                  previous message (0: none)
// So an append is atomic (one message is stored or not), a stream's revision is read from its last message
// (never counted), and readStream walks back along Vmledger-Previous instead of scanning the subject.
//
// Global positions (gap-free, one per fact) and the cost of that choice
//   A message's first position is the previous message's first position + count. That is only right if no other
//   message slipped in between, so every append is published with TWO expectations, checked by the server
//   atomically: `Nats-Expected-Last-Sequence` = the stream's last sequence (the global head) and
//   `Nats-Expected-Last-Subject-Sequence` = the domain stream's last message (0 when it has none). A
//   `wrong last sequence` answer means someone appended somewhere: we re-read both heads, re-check the caller's
//   expected revision (a move of *this* stream surfaces as WrongExpectedRevisionError, a move of another stream
//   is retried internally) and publish again. The cost: appends are serialised store-wide, like SQLite's write
//   lock, but optimistically. One writer pays one round trip per append on a stream it wrote last (both heads
//   are cached from its own acks; the server re-checks them, and a conflict seen on cached data is confirmed by
//   a fresh read before it is reported), two otherwise. Writers in several processes retry each other's
//   conflicts: each costs a head read and a second publish. Appends made through one store object are queued
//   in-process so they never conflict with each other. Measured on loopback (nats-server 2.9, 1-fact appends):
//   see the report in the issue; a single writer is well above the embedded SQLite store, N competing processes
//   share roughly one writer's throughput. Gap-free positions across concurrent writers are not achievable on
//   JetStream without such a global check (no multi-subject atomic publish before 2.12), hence this choice.
//
// Idempotency that outlives the 120 s dedup window
//   Before publishing, an append with a command id *reserves* it: `create` of a KV record {pending, subject,
//   afterSeq} (create fails if the key exists, so one appender wins). After the PubAck the record becomes
//   {done, revision, position}; a refused append deletes its reservation, leaving the id free. The message
//   also carries the command id (payload) and `Nats-Msg-Id` = `c-<sha256(command id)>`.
//   The crash window (facts stored, record still pending: the process died, or the KV update failed) is closed
//   on the next look-up of that id: a pending record is resolved by scanning the recorded subject after
//   `afterSeq` for a message carrying the command id; found → the record is completed and the retry gets the
//   first result; not found → the facts were never stored and the retry takes the reservation over. Two
//   live appenders of one id cannot both store it: the server drops the second message as a duplicate of the
//   Nats-Msg-Id within the window, and a message arriving later than that carries a stale expected last sequence
//   and is refused.
//   Transport failures (timeout, server restart) are retried inside append, re-publishing the same message
//   with the same Nats-Msg-Id for at most half the duplicate window; before re-checking revisions it looks for
//   its own append id on the subject, so a write whose ack was lost is never reported as a conflict.
//
// Durability: the stream is file-backed; nats-server 2.9 fsyncs its store every 2 minutes by default (a process
// crash loses nothing, a power cut can lose the last seconds: set `sync_interval: always` on 2.10+ for SQLite's
// guarantee).
//
// On a cluster: `replicas` (1 by default; 3 on three nodes) applies to the stream and both buckets when created;
// an existing log opened with another count is refused. The buckets are then read from their leader (a follower
// may lag). A write is acknowledged only once a majority of replicas holds it; without a leader or quorum each
// operation retries for `retryBudgetMs`, then fails with StoreUnavailableError (the service answers
// STORE-UNAVAILABLE), so a caller gets an answer before its own timeout when the budget is set below it.
//
// What lives where (this folder)
//   index.ts      this description; the public names (openJetStreamEventStore, parseJetStreamSpec, the defaults)
//   options.ts    options, defaults and their checks (subject prefix, replicas)
//   spec.ts       `jetstream://…` store specs → options (registry.ts opens them through openJetStreamSpec)
//   open.ts       connecting, creating or checking the stream, its format marker and the two KV buckets
//   store.ts      the EventStore: each job's functions, assembled by ../networked.ts
//   log.ts        the per-store state (connection, cached heads) and single-message reads of the log stream
//   messages.ts   one append message: subject tokens, headers, payload, the facts it holds
//   append.ts     append: the payload, the two expectations, conflicts and lost acks
//   commands.ts   idempotency records in the commands bucket: reserve, complete, resolve a pending one
//   read.ts       readStream, readAll, heads and seeking a global position
//   subscribe.ts  the live source of subscribe() (read from the leader when an append is heard, or every second)
//   docs.ts       getDoc/putDoc in the docs bucket
//   errors.ts     JetStream error codes, transient failures and the retry budget

export {
  COMMAND_SERVICE_SUBJECTS,
  DEFAULT_COMMANDS_BUCKET,
  DEFAULT_DOCS_BUCKET,
  DEFAULT_STREAM_NAME,
  DEFAULT_SUBJECT_PREFIX,
  JETSTREAM_STORE_FORMAT,
  type JetStreamEventStoreOptions,
  type JetStreamTestHooks,
} from './options';
export { encodeToken } from './messages';
export { openJetStreamEventStore } from './open';
export { openJetStreamSpec, parseJetStreamSpec } from './spec';
