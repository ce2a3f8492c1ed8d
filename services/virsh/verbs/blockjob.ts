// Block jobs (virsh `help domain`, its blockcopy/blockjob/blockpull verbs): start a copy or a pull, ask about a
// job, pivot or abort it. virsh prints libvirt's refusal of these alone, without a `Failed to …` header.
import { ERROR_CODES } from '../../../machines/errors';
import { blockJobOn } from '../../../machines/model';
import { exec, loadDomain, type VerbCall, type VerbTable } from '../call';
import { fail, flag, notFound, optionError, str, type Result } from '../result';

async function blockcopy(call: VerbCall): Promise<Result> {
  const { verb, dom, o, env } = call;
  if (flag(o, 'pivot') && flag(o, 'finish')) return optionError('Options --pivot and --finish are mutually exclusive');
  const dest = str(o, 'dest');
  if (dest === undefined) return optionError('need either --dest or --xml');
  const wait = flag(o, 'wait') || flag(o, 'pivot') || flag(o, 'finish');
  if (wait && !env.connected) {
    return optionError(
      'blockcopy --wait needs a libvirt connection (vmledger --connect URI): without one nothing copies, and a copy ' +
        'becomes ready only through `guest-event DOM blockjob-ready --disk DISK`; end it with `blockjob DOM DISK --pivot` or `--abort`',
    );
  }
  const path = str(o, 'path')!;
  const started = await exec(
    call,
    { verb, domain: dom, path, dest, transientJob: flag(o, 'transient-job'), shallow: flag(o, 'shallow'), reuseExternal: flag(o, 'reuse-external') },
    () => (wait ? '' : 'Block Copy started'),
  );
  if (!wait || !started.ok) return started;
  return finishBlockCopy(call, path, flag(o, 'pivot') ? 'pivot' : flag(o, 'finish') ? 'finish' : 'wait', started);
}

/**
 * blockcopy --wait/--pivot/--finish over a libvirt connection: the driver reported the copy ready before the
 * blockcopy was answered; then pivot (blockjob --pivot) or finish (blockjob --abort), as virsh does.
 */
async function finishBlockCopy(call: VerbCall, path: string, then: 'wait' | 'pivot' | 'finish', started: Result): Promise<Result> {
  const { dom } = call;
  const state = await loadDomain(call, dom);
  const disk = state?.config?.disks.find((d) => d.target === path || d.source === path);
  const job = disk ? state?.blockJobs[disk.target] : undefined;
  if (job?.phase !== 'ready') {
    const message = `block copy of '${path}' did not reach the mirroring phase in time; it goes on: end it with blockjob --pivot or --abort`;
    return fail([message], ERROR_CODES.VIR_ERR_OPERATION_TIMEOUT, 'LIBVIRT', `Timed out during operation: ${message}`, 'VIR_ERR_OPERATION_TIMEOUT');
  }
  if (then === 'wait') return { ...started, out: '\nNow in mirroring phase' };
  const pivot = then === 'pivot';
  return exec(call, { verb: 'blockjob', domain: dom, path, pivot, abort: !pivot }, () => (pivot ? '\nSuccessfully pivoted' : '\nSuccessfully copied'));
}

async function blockjob(call: VerbCall): Promise<Result> {
  const { verb, dom, o } = call;
  const abort = flag(o, 'abort') || flag(o, 'async') || flag(o, 'pivot');
  if (flag(o, 'info') && flag(o, 'abort')) return optionError('Options --info and --abort are mutually exclusive');
  if (flag(o, 'info') && (flag(o, 'pivot') || flag(o, 'async'))) {
    return optionError(`Options --info and --${flag(o, 'pivot') ? 'pivot' : 'async'} are mutually exclusive`);
  }
  if (!abort) {
    const state = await loadDomain(call, dom);
    if (!state) return notFound(dom);
    const path = str(o, 'path')!;
    const disk = state.config?.disks.find((d) => d.target === path || d.source === path);
    const job = disk ? blockJobOn(state, disk.target) : undefined;
    if (!job) return { ok: true, out: `No current block job for ${path}\n`, result: null, message: null };
    const kind = job.kind === 'pull' ? 'Block Pull' : job.kind === 'commit' ? 'Block Commit' : 'Block Copy';
    return { ok: true, out: `${kind}: [${job.phase === 'ready' ? '100' : '  0'} %]\n`, result: job, message: null };
  }
  return exec(call, { verb, domain: dom, path: str(o, 'path'), pivot: flag(o, 'pivot'), abort: !flag(o, 'pivot') }, () => '');
}

export const BLOCKJOB_VERBS: VerbTable = {
  blockcopy: { run: blockcopy },
  blockjob: { run: blockjob },
  blockpull: {
    run: (call) => {
      const { verb, dom, o } = call;
      const base = str(o, 'base');
      return exec(call, { verb, domain: dom, path: str(o, 'path'), ...(base !== undefined ? { base } : {}) }, () =>
        flag(o, 'wait') ? '\nPull complete\n' : 'Block Pull started',
      );
    },
  },
};
