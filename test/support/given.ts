// Emmett-style given/when/then for the domain machine, plus `run`, which folds a command sequence through
// decide/evolve. Commands are written as clients write them (CommandInput, defaults not applied) without
// `meta`: a counter command id, actor `test` and a fixed time are filled in (time can be overridden).
//
//   given(testDomain()).when({ verb: 'undefine', domain: 'test' }).then({ rule: 'UND-SNAPSHOTS', code: 55, message })
//   given([{ verb: 'define', config }]).when(cmd).then((facts, state) => …)
//
// Several domains (and hosts) can live side by side: every command goes to the state of the domain it names,
// and decide sees the others through a HostView (DEF-NAME's UUID clash).
import { expect } from 'vitest';
import { CommandSchema, commandDomainName, type Command, type CommandInput } from '../../machines/commands';
import { decide, type Decision, type DecideOptions } from '../../machines/decide';
import type { Refusal } from '../../machines/errors';
import type { Fact } from '../../machines/events';
import { evolve, evolveAll } from '../../machines/evolve';
import type { HostView } from '../../machines/guards';
import { DEFAULT_HOST, domstateText, initialDomainState, type DomainConfig, type DomainState } from '../../machines/model';

export const TEST_TIME = '2026-11-22T00:00:00Z';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type MetaInput = CommandInput['meta'];
/** A command as a test writes it: CommandInput whose `meta` is optional and may be partial. */
export type CommandSpec = DistributiveOmit<CommandInput, 'meta'> & { meta?: Partial<MetaInput> };

let commandCounter = 0;

/** Parses a command, filling in `meta` (counter id, actor `test`, TEST_TIME unless `time` or meta.time say otherwise). */
export function command(spec: CommandSpec, time?: string): Command {
  const meta: MetaInput = {
    commandId: `test-cmd-${++commandCounter}`,
    actor: 'test',
    time: time ?? TEST_TIME,
    ...spec.meta,
  };
  return CommandSchema.parse({ ...spec, meta });
}

// ---------------------------------------------------------------------------------------------------
// Appendix A's domain: `virsh -c test:///default` starts with one running persistent domain `test`.

export const TEST_UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';

/** `dumpxml --inactive test` (libvirt-examples/test.xml) as the model reads it. */
export const TEST_CONFIG: DomainConfig = {
  name: 'test',
  uuid: TEST_UUID,
  disks: [{ target: 'vda', source: '/guest/diskimage1', device: 'disk', readonly: false, shareable: false, storage: 'managed' }],
  hostdevs: [],
  onPoweroff: 'destroy',
  onReboot: 'restart',
  onCrash: 'destroy',
};

/** The commands that make Appendix A's `test`: define it from its config, then start it. */
export function testDomainSetup(config: DomainConfig = TEST_CONFIG): CommandSpec[] {
  return [
    { verb: 'define', config },
    { verb: 'start', domain: config.name },
  ];
}

/** Appendix A's running persistent domain `test` (or another config, defined then started the same way). */
export function testDomain(config: DomainConfig = TEST_CONFIG): DomainState {
  return run(testDomainSetup(config)).state;
}

// ---------------------------------------------------------------------------------------------------
// A world of domains: states keyed by host and name.

export type World = Map<string, DomainState>;

/** The key of a domain in a World. */
export const worldKey = (host: string, name: string) => `${host}\u0000${name}`;

export function stateIn(world: World, name: string, host = DEFAULT_HOST): DomainState {
  return world.get(worldKey(host, name)) ?? initialDomainState(host, name);
}

/** What decide may know about the other domains: the existing domain holding a UUID on a host. */
export function hostViewOf(world: World): HostView {
  return {
    domainNameByUuid(host, uuid) {
      for (const s of world.values()) if (s.host === host && s.life === 'exists' && s.uuid === uuid) return s.name;
      return undefined;
    },
  };
}

function worldOf(states: Iterable<DomainState>): World {
  const world: World = new Map();
  for (const s of states) world.set(worldKey(s.host, s.name), s);
  return world;
}

// ---------------------------------------------------------------------------------------------------
// run

export interface Outcome {
  command: Command;
  decision: Decision;
  /** The facts recorded (none when refused). */
  facts: Fact[];
  refusal?: Refusal;
  before: DomainState;
  after: DomainState;
}

export interface RunResult {
  /** The state of the domain the last command named (or of the only seeded domain when there were no commands). */
  state: DomainState;
  outcomes: Outcome[];
  world: World;
  /** The state of any domain of the run. */
  domain(name: string, host?: string): DomainState;
}

export interface RunOptions {
  /** States to start from (other domains start from initialDomainState). */
  from?: DomainState | DomainState[];
  /** Time for every command that does not set meta.time itself. */
  time?: string;
  /** Passed to decide (the host view is always the run's own). */
  decide?: Omit<DecideOptions, 'host'>;
}

export type Step = CommandSpec | Command;

function asCommand(step: Step, time?: string): Command {
  return 'meta' in step && step.meta && typeof step.meta.commandId === 'string' && typeof step.meta.time === 'string'
    ? CommandSchema.parse(step)
    : command(step as CommandSpec, time);
}

/** Folds commands with decide/evolve, each against the state of the domain it names. Refusals change nothing. */
export function run(steps: readonly Step[], options: RunOptions = {}): RunResult {
  const seeds = options.from === undefined ? [] : Array.isArray(options.from) ? options.from : [options.from];
  const world = worldOf(seeds);
  const outcomes: Outcome[] = [];
  let subject: DomainState | undefined = seeds.length === 1 ? seeds[0] : undefined;
  for (const step of steps) {
    const c = asCommand(step, options.time);
    const before = stateIn(world, commandDomainName(c), c.host);
    const decision = decide(before, c, { ...options.decide, host: hostViewOf(world) });
    const after = decision.ok ? evolveAll(before, decision.facts) : before;
    world.set(worldKey(c.host, commandDomainName(c)), after);
    outcomes.push({
      command: c,
      decision,
      facts: decision.ok ? decision.facts : [],
      refusal: decision.ok ? undefined : decision.refusal,
      before,
      after,
    });
    subject = after;
  }
  return {
    state: subject ?? initialDomainState(DEFAULT_HOST, 'test'),
    outcomes,
    world,
    domain: (name, host = DEFAULT_HOST) => stateIn(world, name, host),
  };
}

/** Like `run`, but every command must be accepted (a setup step that is refused is a broken test). */
export function runAccepted(steps: readonly Step[], options: RunOptions = {}): RunResult {
  const result = run(steps, options);
  result.outcomes.forEach((o, i) => {
    if (o.refusal) {
      throw new Error(`setup step ${i + 1} (${o.command.verb} ${commandDomainName(o.command)}) was refused: ${o.refusal.rule} ${o.refusal.message}`);
    }
  });
  return result;
}

// ---------------------------------------------------------------------------------------------------
// given / when / then

export interface ExpectedRefusal {
  rule: string;
  code?: number;
  message?: string;
}

export type FactsMatcher = (facts: Fact[], state: DomainState, before: DomainState) => void;

export type Given = DomainState | DomainState[] | readonly (Step | Fact)[];

function isFact(x: Step | Fact): x is Fact {
  return 'type' in x && !('verb' in x);
}

function isState(x: unknown): x is DomainState {
  return typeof x === 'object' && x !== null && 'life' in x && 'snapshots' in x;
}

/**
 * The starting point: a state (or several), or a history. A history is commands (which must all be accepted)
 * and facts (applied with evolve to the domain of the command before them, or to `test` when first).
 */
export function given(history: Given, options: RunOptions = {}) {
  let world: World;
  let subject: DomainState | undefined;
  if (isState(history) || (Array.isArray(history) && history.length > 0 && history.every(isState))) {
    const states = isState(history) ? [history] : (history as DomainState[]);
    world = worldOf(states);
    subject = states[states.length - 1];
  } else {
    const seeds = options.from === undefined ? [] : Array.isArray(options.from) ? options.from : [options.from];
    world = worldOf(seeds);
    subject = seeds.length === 1 ? seeds[0] : undefined;
    let target = subject?.name ?? 'test';
    let targetHost = subject?.host ?? DEFAULT_HOST;
    for (const item of history as readonly (Step | Fact)[]) {
      if (isFact(item)) {
        const s = evolve(stateIn(world, target, targetHost), item);
        world.set(worldKey(targetHost, target), s);
        subject = s;
      } else {
        const r = runAccepted([item], { ...options, from: [...world.values()] });
        world = r.world;
        subject = r.state;
        target = subject.name;
        targetHost = subject.host;
      }
    }
  }
  const startWorld = world;
  return {
    /** The state the history leads to. */
    state: subject,
    when(step: Step) {
      const result = run([step], { ...options, from: [...startWorld.values()] });
      const outcome = result.outcomes[0]!;
      const then = {
        result,
        outcome,
        state: outcome.after,
        /**
         * Facts (exact list), a matcher over (facts, state after, state before), or a refusal. A refusal also
         * checks that nothing changed.
         */
        then(expected: Fact[] | FactsMatcher | ExpectedRefusal) {
          if (typeof expected === 'function') {
            expect(outcome.refusal, 'command was refused').toBeUndefined();
            expected(outcome.facts, outcome.after, outcome.before);
          } else if (Array.isArray(expected)) {
            expect(outcome.refusal, 'command was refused').toBeUndefined();
            expect(outcome.facts).toEqual(expected);
          } else {
            expectRefused(outcome, expected);
          }
          return then;
        },
      };
      return then;
    },
  };
}

/** The outcome is a refusal with this rule (and code and message when given), and it changed nothing. */
export function expectRefused(outcome: Outcome, expected: ExpectedRefusal): void {
  expect(outcome.refusal, `expected ${expected.rule}, but the command was accepted with ${JSON.stringify(outcome.facts)}`).toBeDefined();
  const got = outcome.refusal!;
  expect({ rule: got.rule, code: got.code, message: got.message }).toEqual({
    rule: expected.rule,
    code: expected.code ?? got.code,
    message: expected.message ?? got.message,
  });
  expect(outcome.facts).toEqual([]);
  expect(outcome.after).toEqual(outcome.before);
}

/** The outcome was accepted. */
export function expectAccepted(outcome: Outcome): void {
  expect(outcome.refusal, `refused: ${outcome.refusal?.rule} ${outcome.refusal?.message}`).toBeUndefined();
}

// ---------------------------------------------------------------------------------------------------
// virsh's queries, as assertions read them

/** `domstate --reason`, e.g. `shut off (from snapshot)`. */
export const domstate = (s: DomainState) => `${domstateText(s)} (${s.reason})`;

/** `snapshot-list --tree` as a map from each snapshot to its parent (null for a root). */
export const snapshotParents = (s: DomainState) => Object.fromEntries(Object.values(s.snapshots).map((x) => [x.name, x.parent]));

/** The spec of one verb, e.g. `SpecOf<'snapshot-create'>`. */
export type SpecOf<V extends CommandSpec['verb']> = Extract<CommandSpec, { verb: V }>;
