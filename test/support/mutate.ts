// fast-check arbitraries for bad input: valid commands of every verb (test/support/commandSamples.ts) with a few
// mutations applied (a field deleted, replaced by arbitrary JSON, a name made too long or given control characters,
// an unknown field added, the verb changed), and names that libvirt would refuse.
import fc from 'fast-check';

import { NAME_MAX, VERBS, type Verb } from '../../machines/commands';
import { sampleCommand } from './commandSamples';

export type Mutation =
  | { kind: 'delete'; at: number }
  | { kind: 'set'; at: number; value: unknown }
  | { kind: 'name'; at: number; value: string }
  | { kind: 'extra'; key: string; value: unknown }
  | { kind: 'verb'; value: unknown };

export interface MutatedCommand {
  verb: Verb;
  input: Record<string, unknown>;
  /** What was done, with the dotted path each mutation touched ('verb' for a verb change). */
  applied: { kind: Mutation['kind']; path: string }[];
}

/** A name libvirt refuses: too long, with a control character, or empty. */
export const badNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ minLength: NAME_MAX + 1, maxLength: NAME_MAX + 400, unit: fc.constantFrom('a', 'é', '-', '.', ' ', '😀') }).filter((s) => s.length > NAME_MAX),
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)), fc.string({ maxLength: 20 }))
    .map(([a, c, b]) => a + c + b),
  fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([a, b]) => `${a}\u007f${b}`),
  fc.constant(''),
);

const jsonish: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, false, 0, -1, 1.5, '', 'x', [], {}, '2024-13-45T99:99:99Z', -2, 2 ** 53),
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: jsonish }),
  fc.record({ kind: fc.constant('name' as const), at: fc.nat(), value: badNameArb }),
  fc.record({ kind: fc.constant('extra' as const), key: fc.string({ maxLength: 12 }), value: jsonish }),
  fc.record({ kind: fc.constant('verb' as const), value: fc.oneof(fc.constantFrom<unknown>(...VERBS), jsonish) }),
);

/** Every path (objects and arrays, all depths) of a JSON value, except the root. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [];
  const out: (string | number)[][] = [];
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [k, v] of entries) {
    out.push([...prefix, k]);
    out.push(...pathsOf(v, [...prefix, k]));
  }
  return out;
}

function parentOf(root: Record<string, unknown>, path: (string | number)[]): Record<string | number, unknown> {
  let node: unknown = root;
  for (const k of path.slice(0, -1)) node = (node as Record<string | number, unknown>)[k];
  return node as Record<string | number, unknown>;
}

/** Sets an own property, even `__proto__` (a plain assignment would change the prototype instead). */
function setOwn(target: Record<string | number, unknown>, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Applies mutations to a copy of `command`; each records the path it touched. */
export function applyMutations(command: Record<string, unknown>, mutations: readonly Mutation[]): Pick<MutatedCommand, 'input' | 'applied'> {
  const input = structuredClone(command);
  const applied: MutatedCommand['applied'] = [];
  for (const m of mutations) {
    if (m.kind === 'verb') {
      setOwn(input, 'verb', m.value);
      applied.push({ kind: 'verb', path: 'verb' });
      continue;
    }
    if (m.kind === 'extra') {
      setOwn(input, m.key, m.value);
      applied.push({ kind: 'extra', path: m.key });
      continue;
    }
    const paths = pathsOf(input).filter((p) => {
      if (m.kind !== 'name') return true;
      const parent = parentOf(input, p);
      return typeof parent[p.at(-1)!] === 'string';
    });
    if (paths.length === 0) continue;
    const path = paths[m.at % paths.length]!;
    const parent = parentOf(input, path);
    const key = path.at(-1)!;
    if (m.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
    } else {
      setOwn(parent, key, m.value);
    }
    applied.push({ kind: m.kind, path: path.join('.') });
  }
  return { input, applied };
}

export interface MutatedOptions {
  domains?: readonly string[];
  hosts?: readonly string[];
  snapshots?: readonly string[];
  /** Command ids; default a counter (`fz-<n>`), so that a valid command is never taken for a retry. */
  nextId?: () => string;
  maxMutations?: number;
  /** Verbs to start from (default every verb, the coordinator's too). */
  verbs?: readonly Verb[];
}

/** A valid command of a random verb (on a few domains, so states build up) with 0..maxMutations mutations. */
export function mutatedCommandArb(options: MutatedOptions = {}): fc.Arbitrary<MutatedCommand> {
  let counter = 0;
  const nextId = options.nextId ?? (() => `fz-${counter++}`);
  return fc
    .record({
      verb: fc.constantFrom(...(options.verbs ?? VERBS)),
      domain: fc.constantFrom(...(options.domains ?? ['vm1', 'vm2', 'vm3'])),
      host: fc.constantFrom(...(options.hosts ?? ['local', 'dst'])),
      snapshot: fc.constantFrom(...(options.snapshots ?? ['s1', 's2'])),
      // Two in five unmutated, so that states build up and the rules (not just the schema) get their say.
      mutations: fc.oneof(
        { weight: 2, arbitrary: fc.constant([] as Mutation[]) },
        { weight: 3, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: options.maxMutations ?? 3 }) },
      ),
    })
    .map(({ verb, domain, host, snapshot, mutations }) => {
      // The uuid follows the name, so redefining a name is an update, not a DEF-NAME clash.
      const uuid = `00000000-0000-4000-8000-${Buffer.from(domain).toString('hex').padStart(12, '0').slice(-12)}`;
      const command = sampleCommand(verb, { domain, host, snapshot, uuid, commandId: nextId() });
      return { verb, ...applyMutations(command, mutations) };
    });
}
