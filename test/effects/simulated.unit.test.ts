// The simulated hypervisor without a store: decide + driver.perform + observe, as a unit test drives it, and
// how image headers resolve (qemu: a relative backing name is relative to the folder of the image naming it).
import { expect, test } from 'vitest';

import { CommandSchema, type CommandInput } from '../../machines/commands';
import { decide } from '../../machines/decide';
import { evolveAll } from '../../machines/evolve';
import { initialDomainState, type DomainState } from '../../machines/model';
import { createSimulatedDriver } from '../../services/drivers/simulated';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Input = DistributiveOmit<CommandInput, 'meta'>;

let n = 0;
const parse = (c: Input) =>
  CommandSchema.parse({ ...c, meta: { commandId: `u${++n}`, time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString() } });

test('no store: perform decides against what observe() folded; relative names resolve against the image folder', async () => {
  const driver = createSimulatedDriver({
    world: {
      images: [
        { path: '/a/base.raw', format: 'raw', size: 10 },
        { path: '/a/b/mid.qcow2', backing: '../base.raw', size: 20 },
        { path: '/a/b/top.qcow2', backing: 'mid.qcow2', size: 30 },
      ],
    },
  });
  expect(await driver.chainOf('/a/b/top.qcow2')).toEqual({ chain: ['/a/b/top.qcow2', '/a/b/mid.qcow2', '/a/base.raw'] });
  expect(await driver.chainOf('/a/nowhere.qcow2')).toEqual({ chain: [], missing: '/a/nowhere.qcow2' });

  let s: DomainState = initialDomainState('local', 'vm');
  const step = async (input: Input) => {
    const c = parse(input);
    const d = decide(s, c);
    if (!d.ok) throw new Error(d.refusal.message);
    const effect = await driver.perform(s, c, d.facts);
    if (effect.refusal) return effect;
    driver.observe(s.host, s.name, effect.facts, c);
    s = evolveAll(s, effect.facts);
    return effect;
  };
  await step({ verb: 'create', config: { name: 'vm', uuid: 'u', disks: [{ target: 'vda', source: '/a/b/top.qcow2' }] } });
  await step({ verb: 'blockpull', domain: 'vm', path: 'vda', base: '../base.raw' });
  expect(await driver.diskChain('local', 'vm', 'vda')).toEqual(['/a/b/top.qcow2', '/a/base.raw']);
  expect(await driver.image('/a/b/top.qcow2')).toEqual({ path: '/a/b/top.qcow2', format: 'qcow2', size: 50, backing: '/a/base.raw' });
  const full = await step({ verb: 'blockpull', domain: 'vm', path: 'vda' });
  expect(full.facts.find((f) => f.type === 'BackingChainChanged')).toEqual({ type: 'BackingChainChanged', disk: 'vda', chain: ['/a/b/top.qcow2'] });
  expect(await driver.image('/a/b/top.qcow2')).toMatchObject({ size: 60, backing: undefined });

  // A second domain may not open the running guest's image.
  const other = parse({ verb: 'create', config: { name: 'other', uuid: 'o', disks: [{ target: 'vda', source: '/a/b/top.qcow2' }] } });
  const o = decide(initialDomainState('local', 'other'), other);
  expect(o.ok).toBe(true);
  const refused = await driver.perform(initialDomainState('local', 'other'), other, o.ok ? o.facts : []);
  expect(refused).toMatchObject({ facts: [], refusal: { rule: 'DRV-LOCK', code: 1 } });
});
