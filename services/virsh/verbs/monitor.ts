// Domain monitoring (virsh `help monitor`): list, domstate, dominfo, domblklist. Queries: they read the ledger
// and record nothing; each answers with virsh's text and, for --json, the same answer as data.
import { allDomains, queryOfFlags } from '../../domainQuery';
import { onDomain, type VerbTable } from '../call';
import { dominfo, domblklist, listOutput, stateWithReason } from '../print';
import { flag, optionError } from '../result';

export const MONITOR_VERBS: VerbTable = {
  list: {
    run: async ({ o, env }) => {
      if (flag(o, 'table') && (flag(o, 'name') || flag(o, 'uuid') || flag(o, 'id'))) {
        const other = flag(o, 'name') ? 'name' : flag(o, 'uuid') ? 'uuid' : 'id';
        return optionError(`Options --table and --${other} are mutually exclusive`);
      }
      const shown = await allDomains(
        env.ledger,
        queryOfFlags(env.host, {
          all: flag(o, 'all'),
          inactive: flag(o, 'inactive'),
          transient: flag(o, 'transient'),
          persistent: flag(o, 'persistent'),
          withSnapshot: flag(o, 'with-snapshot'),
          withoutSnapshot: flag(o, 'without-snapshot'),
          stateRunning: flag(o, 'state-running'),
          statePaused: flag(o, 'state-paused'),
          stateShutoff: flag(o, 'state-shutoff'),
          stateOther: flag(o, 'state-other'),
          withManagedSave: flag(o, 'with-managed-save'),
          withoutManagedSave: flag(o, 'without-managed-save'),
        }),
      );
      const result = shown.map(({ host: _host, ...row }) => row);
      return { ok: true, out: listOutput(shown, { name: flag(o, 'name'), uuid: flag(o, 'uuid'), id: flag(o, 'id') }), result, message: null };
    },
  },
  domstate: {
    run: onDomain((state, { o }) => {
      const text = flag(o, 'reason') ? stateWithReason(state) : stateWithReason(state).replace(/ \(.*\)$/, '');
      return {
        ok: true,
        out: `${text}\n`,
        result: { state: text.replace(/ \(.*\)$/, ''), reason: /\((.*)\)$/.exec(stateWithReason(state))?.[1] },
        message: null,
      };
    }),
  },
  dominfo: {
    run: onDomain(async (state, { dom, env }) => {
      const id = (await env.ledger.queryDomains({ host: env.host, all: true, uuid: state.uuid ?? '' })).domains.find((d) => d.name === dom)?.id ?? undefined;
      return {
        ok: true,
        out: dominfo(state, id),
        result: {
          id: id ?? null,
          name: state.name,
          uuid: state.uuid,
          state: !state.active ? 'shut off' : state.paused ? 'paused' : 'running',
          persistent: state.persistent,
          managedSave: state.hasManagedSave,
          snapshots: Object.keys(state.snapshots).length,
          current: state.current,
          blockJobs: state.blockJobs,
          migration: state.migration,
        },
        message: null,
      };
    }),
  },
  domblklist: {
    run: onDomain((state, { o }) => ({ ok: true, out: domblklist(state, flag(o, 'details')), result: state.config?.disks ?? [], message: null })),
  },
};
