// Snapshots (virsh `help snapshot`): create from XML or from arguments (the argument language is in
// ../snapshotArgs.ts), delete, revert, and the queries current, parent, info, dumpxml, list.
import type { CommandOf, SnapshotDefinition } from '../../../machines/commands';
import { ERROR_CODES } from '../../../machines/errors';
import { snapshotName } from '../../../machines/guards';
import { snapshotNamed, type Snapshot, type SnapshotDisk } from '../../../machines/model';
import { formatSnapshotXml, parseSnapshotXml } from '../../xml';
import { exec, loadDomain, meta, onDomain, pickSnapshot, readArg, refused, xmlFailure, type VerbCall, type VerbEntry, type VerbTable } from '../call';
import { selectSnapshots, snapshotInfo, snapshotTable, snapshotTree } from '../print';
import { fail, flag, list, noSnapshot, notFound, optionError, str, type Opts, type Result } from '../result';
import { parseDiskspec, parseMemspec, snapshotArgsXml } from '../snapshotArgs';

/** snapshot-create (from --xmlfile) and snapshot-create-as (from --name, --diskspec, … ). */
async function create(call: VerbCall): Promise<Result> {
  const { verb, dom, o, env } = call;
  let snapshot: SnapshotDefinition = { disks: [] };
  let xml: string | undefined;
  const file = verb === 'snapshot-create' ? str(o, 'xmlfile') : undefined;
  if (file !== undefined) {
    const read = readArg(call, file);
    if ('error' in read) return read.error;
    try {
      snapshot = parseSnapshotXml(read.text);
      xml = read.text;
    } catch (error) {
      return xmlFailure(error);
    }
  }
  const memspec = str(o, 'memspec');
  if (verb === 'snapshot-create-as') {
    const disks: SnapshotDisk[] = [];
    for (const spec of list(o, 'diskspec')) {
      const disk = parseDiskspec(spec);
      if (!disk) return optionError(`unable to parse diskspec: ${spec}`);
      disks.push(disk);
    }
    let memory: SnapshotDefinition['memory'];
    if (memspec !== undefined) {
      const m = parseMemspec(memspec);
      if (m === 'error') return optionError(`unable to parse memspec: ${memspec}`);
      memory = m;
    }
    const name = str(o, 'name');
    const description = str(o, 'description');
    snapshot = {
      ...(name !== undefined ? { name } : {}),
      ...(description !== undefined ? { description } : {}),
      ...(memory !== undefined ? { memory } : {}),
      disks,
    };
    if (flag(o, 'print-xml')) return { ok: true, out: snapshotArgsXml(snapshot, memspec), message: null };
  }
  const time = env.now();
  const input = {
    verb: 'snapshot-create',
    domain: dom,
    snapshot,
    ...(xml !== undefined ? { xml } : {}),
    redefine: flag(o, 'redefine'),
    current: flag(o, 'current'),
    noMetadata: flag(o, 'no-metadata'),
    halt: flag(o, 'halt'),
    diskOnly: flag(o, 'disk-only'),
    reuseExternal: flag(o, 'reuse-external'),
    quiesce: flag(o, 'quiesce'),
    atomic: flag(o, 'atomic'),
    live: flag(o, 'live'),
  };
  // The time is read first because a snapshot without --name is named after it.
  const outcome = await env.ledger.execute({ ...input, host: env.host, meta: { ...meta(env), time } });
  if (!outcome.ok) return refused(call, outcome);
  const created = outcome.events.find((e) => e.type === 'SnapshotCreated')?.data as { snapshot: Snapshot } | undefined;
  const name = created?.snapshot.name ?? snapshotName({ snapshot, meta: { time } } as CommandOf<'snapshot-create'>);
  return { ok: true, outcome, out: file !== undefined ? `Domain snapshot ${name} created from '${file}'` : `Domain snapshot ${name} created` };
}

/**
 * snapshot-delete and snapshot-revert: virsh looks the snapshot up first (--current resolved into
 * --snapshotname, which the refusal's header names), then asks libvirt with the verb's own flags.
 */
function onExistingSnapshot(what: string, flags: (o: Opts) => Record<string, unknown>, done: (name: string, o: Opts) => string): VerbEntry {
  return {
    header: (_d, o) => `Failed to ${what} snapshot ${str(o, 'snapshotname')}`,
    run: async (call) => {
      const { verb, dom, o } = call;
      const picked = await pickSnapshot(call);
      if ('error' in picked) return picked.error;
      const name = picked.name;
      if (!snapshotNamed(picked.state, name)) return noSnapshot(name);
      o.set('snapshotname', name);
      return exec(call, { verb, domain: dom, snapshotname: name, ...flags(o) }, () => done(name, o));
    },
  };
}

/** The snapshot snapshot-parent/info describe. */
async function describedSnapshot(call: VerbCall) {
  const picked = await pickSnapshot(call);
  if ('error' in picked) return picked;
  const snap = snapshotNamed(picked.state, picked.name);
  if (!snap) return { error: noSnapshot(picked.name) };
  return { state: picked.state, snap };
}

function noCurrent(dom: string): Result {
  const line = `domain '${dom}' has no current snapshot`;
  return fail([line], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, null, line, 'VIR_ERR_NO_DOMAIN_SNAPSHOT');
}

async function current(call: VerbCall): Promise<Result> {
  const { dom, o } = call;
  const state = await loadDomain(call, dom);
  if (!state) return notFound(dom);
  const target = str(o, 'snapshotname');
  if (target !== undefined) {
    // virsh sets the current snapshot by redefining it with --current (T70); the domain itself is untouched.
    const snap = snapshotNamed(state, target);
    if (!snap) return noSnapshot(target);
    const snapshot: SnapshotDefinition = {
      name: snap.name,
      ...(snap.description !== undefined ? { description: snap.description } : {}),
      ...(snap.parent !== null ? { parent: snap.parent } : {}),
      state: snap.state,
      creationTime: snap.creationTime,
      disks: snap.disks,
    };
    return exec(
      call,
      { verb: 'snapshot-create', domain: dom, snapshot, redefine: true, current: true, diskOnly: snap.state === 'disk-snapshot' },
      () => `Snapshot ${target} set as current`,
    );
  }
  if (state.current === null) return noCurrent(dom);
  const snap = snapshotNamed(state, state.current)!;
  const result = { name: snap.name };
  if (flag(o, 'name')) return { ok: true, out: snap.name, result, message: null };
  return { ok: true, out: formatSnapshotXml(snap, state.config), result: snap, message: null };
}

async function listSnapshots(call: VerbCall): Promise<Result> {
  const { dom, o } = call;
  const { ledger, host } = call.env;
  const state = ledger.domainSnapshots ? await ledger.domainSnapshots(host, dom) : await loadDomain(call, dom);
  if (!state) return notFound(dom);
  let from = str(o, 'from');
  if (flag(o, 'current')) {
    if (state.current === null) return noCurrent(dom);
    from = state.current;
  }
  if (from !== undefined && !snapshotNamed(state, from)) return noSnapshot(from);
  const snaps = selectSnapshots(state, {
    roots: flag(o, 'roots'),
    leaves: flag(o, 'leaves'),
    noLeaves: flag(o, 'no-leaves'),
    metadata: flag(o, 'metadata'),
    noMetadata: flag(o, 'no-metadata'),
    inactive: flag(o, 'inactive'),
    active: flag(o, 'active'),
    diskOnly: flag(o, 'disk-only'),
    internal: flag(o, 'internal'),
    external: flag(o, 'external'),
    ...(from !== undefined ? { from } : {}),
    descendants: flag(o, 'descendants') || (from !== undefined && flag(o, 'tree')),
    topological: flag(o, 'topological'),
  });
  const result = snaps.map((s) => ({ ...s, current: state.current === s.name }));
  if (flag(o, 'tree')) return { ok: true, out: snapshotTree(snaps), result, message: null };
  if (flag(o, 'name')) return { ok: true, out: snaps.map((s) => `${s.name}\n`).join(''), result, message: null };
  return { ok: true, out: snapshotTable(snaps, flag(o, 'parent')), result, message: null };
}

export const SNAPSHOT_VERBS: VerbTable = {
  'snapshot-create': { run: create },
  'snapshot-create-as': { run: create },
  'snapshot-delete': onExistingSnapshot(
    'delete',
    (o) => ({
      children: flag(o, 'children'),
      childrenOnly: flag(o, 'children-only'),
      metadata: flag(o, 'metadata'),
      mirrorPivot: flag(o, 'mirror-pivot'),
      mirrorAbort: flag(o, 'mirror-abort'),
    }),
    (name, o) => (flag(o, 'children-only') ? `Domain snapshot ${name} children deleted\n` : `Domain snapshot ${name} deleted\n`),
  ),
  'snapshot-revert': onExistingSnapshot(
    'revert',
    (o) => ({ running: flag(o, 'running'), paused: flag(o, 'paused'), force: flag(o, 'force') }),
    (name) => `Domain snapshot ${name} reverted\n`,
  ),
  'snapshot-current': { run: current },
  'snapshot-parent': {
    run: async (call) => {
      const found = await describedSnapshot(call);
      if ('error' in found) return found.error;
      const { snap } = found;
      if (snap.parent === null) {
        const line = `snapshot '${snap.name}' has no parent`;
        return fail([line], ERROR_CODES.VIR_ERR_NO_DOMAIN_SNAPSHOT, null, `Domain snapshot not found: snapshot '${snap.name}' does not have a parent`, 'VIR_ERR_NO_DOMAIN_SNAPSHOT');
      }
      return { ok: true, out: snap.parent, result: { parent: snap.parent }, message: null };
    },
  },
  'snapshot-info': {
    run: async (call) => {
      const found = await describedSnapshot(call);
      if ('error' in found) return found.error;
      const { state, snap } = found;
      return { ok: true, out: snapshotInfo(state, snap), result: { ...snap, current: state.current === snap.name }, message: null };
    },
  },
  'snapshot-dumpxml': {
    run: onDomain((state, { o }) => {
      const name = str(o, 'snapshotname')!;
      const snap = snapshotNamed(state, name);
      if (!snap) return noSnapshot(name);
      return { ok: true, out: formatSnapshotXml(snap, state.config), result: snap, message: null };
    }),
  },
  'snapshot-list': { run: listSnapshots },
};
