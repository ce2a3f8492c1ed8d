// How a decision's facts become store events: the metadata every record of a command carries, the whole command
// on the first fact, and the hash chain (which covers that command); and the recorded events an append made.
import { commandDomainName, type Command } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import type { AppendResult, NewEvent, RecordedEvent } from '../eventstore/types';
import { factHash, factToEventData } from '../factHash';

export function jsonClone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** The metadata of every record a command writes (facts, audit records, intents). */
export function baseMeta(c: Command) {
  return {
    commandId: c.meta.commandId,
    actor: c.meta.actor,
    time: c.meta.time,
    ...(c.meta.correlationId !== undefined ? { correlationId: c.meta.correlationId } : {}),
    host: c.host,
    domain: commandDomainName(c),
  };
}

/** Store events for a decision's facts: metadata, the whole command on the first, and the hash chain (which covers that command). */
export function encode(c: Command, facts: readonly Fact[], previousHash: string | undefined): NewEvent[] {
  const base = baseMeta(c);
  // The parsed command itself, not a copy: nothing changes a command once parsed, and JSON (the store, the hash's
  // canonical form) drops what a copy would have dropped.
  const command = c;
  let hash = previousHash;
  return facts.map((fact, i) => {
    const data = factToEventData(fact);
    hash = factHash(hash, fact.type, data, i === 0 ? command : undefined);
    return { type: fact.type, data, metadata: { ...base, ...(i === 0 ? { command } : {}), hash } };
  });
}

/** The events of one append as the store recorded them (revisions and positions from its result). */
export function recorded(stream: string, events: NewEvent[], result: AppendResult): RecordedEvent[] {
  const n = events.length;
  return events.map((e, i) => ({
    ...e,
    stream,
    revision: result.revision - n + 1 + i,
    position: result.position - n + 1 + i,
  }));
}
