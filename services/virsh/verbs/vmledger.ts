// vmledger's own verbs (`help vmledger`): what the guest or the hypervisor did on its own (guest-event), and
// the migration coordinator's records of a phase on the source and of the arrival on the destination.
import { exec, readDomainXml, type VerbTable } from '../call';
import { flag, str } from '../result';

export const VMLEDGER_VERBS: VerbTable = {
  'guest-event': {
    run: (call) => {
      const { verb, dom, o } = call;
      const event = str(o, 'event')!;
      const disk = str(o, 'disk');
      return exec(call, { verb, domain: dom, event, ...(disk !== undefined ? { disk } : {}) }, () => `Domain '${dom}' guest event ${event} recorded\n`);
    },
  },
  'migrate-phase': {
    run: (call) => {
      const { verb, dom, o } = call;
      const phase = str(o, 'phase')!;
      const failed = str(o, 'failed');
      return exec(
        call,
        { verb, domain: dom, phase, ...(failed !== undefined ? { failed } : {}) },
        () => `Domain '${dom}' migration phase ${phase} ${failed !== undefined ? 'failed' : 'recorded'}\n`,
      );
    },
  },
  'migrate-incoming': {
    run: (call) => {
      const { verb, o } = call;
      const parsed = readDomainXml(call, str(o, 'file')!);
      if ('error' in parsed) return parsed.error;
      const { config } = parsed;
      return exec(
        call,
        {
          verb,
          config,
          source: str(o, 'source'),
          persistent: flag(o, 'persistent'),
          active: flag(o, 'active') || flag(o, 'paused'),
          paused: flag(o, 'paused'),
        },
        () => `Domain '${config.name}' arrived from ${str(o, 'source')}\n`,
        config.name,
      );
    },
  },
};
