// A hypervisor whose effects outlive the ledger: each effect it performs is one line, fsync'd, in a journal file
// of its own, as a real hypervisor keeps its own state apart from vmledger's store. That is what exactly-once is
// about: a process killed between the intent and the result leaves the effect done (or not) on the hypervisor's
// side, and `settle` reads the journal to find out which, the way a libvirt driver asks libvirt. The facts are
// the inner driver's (bookkeeping by default). For the exactly-once tests and the bench, and a model of what a
// driver's `settle` answers.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';

import { z } from 'zod';

import type { Command } from '../../machines/commands';
import type { Fact } from '../../machines/events';
import type { DomainState } from '../../machines/model';
import { bookkeepingDriver, type EffectResult, type HypervisorDriver, type Settlement } from './types';

const JournalLineSchema = z.object({
  commandId: z.string(),
  verb: z.string(),
  host: z.string(),
  facts: z.array(z.unknown()),
  refusal: z.unknown().optional(),
});
type JournalLine = z.infer<typeof JournalLineSchema>;

export interface JournalDriver extends HypervisorDriver {
  readonly path: string;
  /** Every effect performed so far, by any process, in order (read from the file). */
  performed(): JournalLine[];
}

/** The effects a journal file holds; a torn last line (a crash mid-write: that effect did not happen) is skipped. */
export function readJournal(path: string): JournalLine[] {
  if (!existsSync(path)) return [];
  const lines: JournalLine[] = [];
  for (const text of readFileSync(path, 'utf8').split('\n')) {
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      continue;
    }
    const parsed = JournalLineSchema.safeParse(value);
    if (parsed.success) lines.push(parsed.data);
  }
  return lines;
}

function appendDurably(path: string, line: JournalLine): void {
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, `${JSON.stringify(line)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function createJournalDriver(path: string, inner: HypervisorDriver = bookkeepingDriver): JournalDriver {
  return {
    // The name ties intents to this hypervisor: another journal is another hypervisor.
    name: `journal:${path}`,
    path,
    performed: () => readJournal(path),
    // Reports from the hypervisor change nothing on it; everything a client asks for does.
    hasEffect: (command: Command) => command.verb !== 'guest-event',
    async perform(state: DomainState, command: Command, decided: Fact[]): Promise<EffectResult> {
      const result = await inner.perform(state, command, decided);
      const { commandId } = command.meta;
      appendDurably(path, { commandId, verb: command.verb, host: command.host, facts: result.facts, ...(result.refusal ? { refusal: result.refusal } : {}) });
      return result;
    },
    async settle(intent): Promise<Settlement> {
      const done = readJournal(path).find((l) => l.commandId === intent.command.meta.commandId);
      if (!done) return { performed: false };
      return { performed: true, result: { facts: done.facts as Fact[], ...(done.refusal ? { refusal: done.refusal as EffectResult['refusal'] } : {}) } };
    },
  };
}
