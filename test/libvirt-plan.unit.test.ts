// The pure parts of hearing libvirt: an event line parsed, the stop reason it gives, and the plan that turns a
// reading of libvirt into the next command (services/libvirt/plan.ts), run through the real decide/evolve until
// the ledger's state agrees with the reading, as services/reconcile.ts runs it against a ledger.
import { describe, expect, it } from 'vitest';

import { CommandSchema } from '../machines/commands';
import { decide } from '../machines/decide';
import { evolveAll } from '../machines/evolve';
import { initialDomainState, type DomainState } from '../machines/model';
import { parseEventLine } from '../services/libvirt/events';
import { goneDomain, type LibvirtDomain } from '../services/libvirt/observe';
import { nextDifference, type StopHint } from '../services/libvirt/plan';
import { stopHintOf } from '../services/libvirt/watch';

const UUID = '0b7d4c8e-6b0e-4c6f-9a43-3f1f0c1e2a11';
const XML = `<domain type='qemu'><name>d</name><uuid>${UUID}</uuid><devices><disk type='file' device='disk'><source file='/img/d.qcow2'/><target dev='vda'/></disk></devices></domain>`;
const snapXml = (name: string, parent?: string) =>
  `<domainsnapshot><name>${name}</name>${parent ? `<parent><name>${parent}</name></parent>` : ''}<state>shutoff</state><creationTime>1764600000</creationTime></domainsnapshot>`;

function libvirt(over: Partial<LibvirtDomain>): LibvirtDomain {
  return {
    ...goneDomain('d'),
    exists: true,
    uuid: UUID,
    state: 'shut off',
    reason: 'unknown',
    persistent: true,
    xml: XML,
    disks: [{ target: 'vda', source: '/img/d.qcow2' }],
    ...over,
  };
}

/** Runs the plan through decide/evolve until nothing differs; returns the verbs it took and the final state. */
function converge(start: DomainState, d: LibvirtDomain, hint?: StopHint) {
  let s = start;
  const verbs: string[] = [];
  for (let i = 0; i < 50; i++) {
    const diff = nextDifference(s, d, hint);
    if (!diff) return { verbs, state: s };
    expect(diff.command, `${diff.what}: only reported`).toBeDefined();
    const command = CommandSchema.parse({ ...diff.command, meta: { commandId: `libvirt/${i}`, actor: 'libvirt', time: '2026-12-01T19:00:00Z', observed: { source: 'reconcile' } } });
    const decision = decide(s, command);
    expect(decision.ok, `${command.verb}: ${decision.ok ? '' : decision.refusal.message}`).toBe(true);
    if (!decision.ok) break;
    verbs.push(command.verb === 'guest-event' ? `guest-event ${command.event}` : command.verb);
    s = evolveAll(s, decision.facts);
  }
  throw new Error(`no convergence: ${verbs.join(', ')}`);
}

describe('libvirt event lines', () => {
  it('are parsed with the issue regex; anything else is not an event', () => {
    expect(parseEventLine("2026-12-01 19:23:26.813+0000: event 'lifecycle' for domain 'web 1': Stopped Shutdown")).toEqual({
      time: '2026-12-01 19:23:26.813+0000',
      kind: 'lifecycle',
      domain: 'web 1',
      detail: 'Stopped Shutdown',
      line: "2026-12-01 19:23:26.813+0000: event 'lifecycle' for domain 'web 1': Stopped Shutdown",
    });
    expect(parseEventLine("2026-12-01 19:23:27.001+0000: event 'block-job' for domain 'd': Block Copy for vda ready")?.kind).toBe('block-job');
    expect(parseEventLine('error: Disconnected from qemu:///system due to end of file')).toBeUndefined();
  });

  it('give the stop reason when the domain is gone before it is read', () => {
    const hint = (detail: string) => stopHintOf(parseEventLine(`2026-12-01 19:23:26.813+0000: event 'lifecycle' for domain 'd': ${detail}`)!);
    expect(hint('Stopped Shutdown')).toBe('shutdown');
    expect(hint('Shutdown Finished after guest request')).toBe('shutdown');
    expect(hint('Shutdown Finished after host request')).toBe('destroyed');
    expect(hint('Stopped Destroyed')).toBe('destroyed');
    expect(hint('Stopped Crashed')).toBe('crashed');
    expect(hint('Crashed Panicked')).toBe('crashed');
    expect(hint('Started Booted')).toBeUndefined();
  });
});

describe('the plan from the ledger to what libvirt shows', () => {
  const none = initialDomainState('local', 'd');

  it('adopts a running persistent domain with a snapshot tree and its current snapshot, parents first', () => {
    const d = libvirt({
      state: 'running',
      reason: 'booted',
      active: true,
      snapshotNames: ['a', 'b', 'c'],
      snapshots: [
        { name: 'c', xml: snapXml('c', 'b') },
        { name: 'b', xml: snapXml('b', 'a') },
        { name: 'a', xml: snapXml('a') },
      ],
      current: 'b',
    });
    const { verbs, state } = converge(none, d);
    expect(verbs).toEqual(['define', 'start', 'snapshot-create', 'snapshot-create', 'snapshot-create']);
    expect(state).toMatchObject({ life: 'exists', active: true, persistent: true, current: 'b', uuid: UUID });
    expect(state.snapshots.c?.parent).toBe('b');
    expect(nextDifference(state, d)).toBeUndefined();
  });

  it('a transient guest that powered itself off: poweroff, and TRANSIENT-QUIT takes its snapshot metadata', () => {
    const running = converge(none, libvirt({ state: 'running', reason: 'booted', active: true, persistent: false, snapshotNames: ['s1'], snapshots: [{ name: 's1', xml: snapXml('s1') }] })).state;
    expect(running.persistent).toBe(false);
    const step = nextDifference(running, goneDomain('d'), 'shutdown');
    expect(step?.command).toMatchObject({ verb: 'guest-event', event: 'poweroff' });
    const command = CommandSchema.parse({ ...step!.command, meta: { commandId: 'libvirt/x', time: '2026-12-01T19:00:00Z', observed: { source: 'event' } } });
    const decision = decide(running, command);
    expect(decision.ok && decision.facts.map((f) => f.type)).toEqual(['DomainStopped', 'TransientDomainRemoved']);
  });

  it('out-of-band destroy, start, a pause for a snapshot, undefine', () => {
    const off = converge(none, libvirt({})).state;
    const on = converge(off, libvirt({ state: 'running', reason: 'booted', active: true }));
    expect(on.verbs).toEqual(['start']);
    // libvirt pauses the guest for an internal snapshot: not the guest's pause.
    expect(nextDifference(on.state, libvirt({ state: 'paused', reason: 'snapshot', active: true, paused: true }))).toBeUndefined();
    expect(nextDifference(on.state, libvirt({ state: 'paused', reason: 'user', active: true, paused: true }))?.command).toMatchObject({ verb: 'suspend' });
    const destroyed = converge(on.state, libvirt({ state: 'shut off', reason: 'destroyed' }));
    expect(destroyed.verbs).toEqual(['destroy']);
    expect(destroyed.state.reason).toBe('destroyed');
    const withSnap = converge(destroyed.state, libvirt({ snapshotNames: ['x'], snapshots: [{ name: 'x', xml: snapXml('x') }], current: 'x' })).state;
    const gone = converge(withSnap, goneDomain('d'));
    expect(gone.verbs).toEqual(['undefine']);
    expect(gone.state.life).toBe('gone');
  });

  it('block copies: started behind its back, ready, then pivoted', () => {
    const on = converge(none, libvirt({ state: 'running', reason: 'booted', active: true })).state;
    const copying = converge(on, libvirt({ state: 'running', active: true, disks: [{ target: 'vda', source: '/img/d.qcow2', mirror: { file: '/img/copy.qcow2', ready: true } }] }));
    expect(copying.verbs).toEqual(['blockcopy', 'guest-event blockjob-ready']);
    const pivoted = converge(copying.state, libvirt({ state: 'running', active: true, disks: [{ target: 'vda', source: '/img/copy.qcow2' }] }));
    expect(pivoted.verbs).toEqual(['blockjob']);
    expect(pivoted.state.config?.disks[0]?.source).toBe('/img/copy.qcow2');
    expect(pivoted.state.blockJobs).toEqual({});
  });
});
