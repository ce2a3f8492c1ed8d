// migrate (virsh `help domain`): the saga's first step, addressed by the destination's connection URI. The
// coordinator's own verbs (migrate-phase, migrate-incoming) are vmledger extensions (vmledger.ts).
import { exec, type VerbTable } from '../call';
import { flag, optionError, str } from '../result';

/** Where a migrate DESTURI points: `qemu+ssh://user@dst:22/system` → `dst`; a bare `dst` → `dst`. */
export function destinationHost(uri: string): string | undefined {
  if (!uri.includes('://')) return /^[^/\s]+$/.test(uri) ? uri : undefined;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri);
  if (!m) return undefined;
  let authority = m[1]!;
  authority = authority.slice(authority.lastIndexOf('@') + 1);
  const host = authority.startsWith('[') ? authority.slice(1, authority.indexOf(']')) : authority.replace(/:\d*$/, '');
  return host === '' ? undefined : host;
}

export const MIGRATION_VERBS: VerbTable = {
  migrate: {
    run: (call) => {
      const { verb, dom, o } = call;
      const uri = str(o, 'desturi')!;
      const desthost = destinationHost(uri);
      if (desthost === undefined) return optionError(`migration destination URI '${uri}' names no host`);
      return exec(
        call,
        {
          verb,
          domain: dom,
          desthost,
          offline: flag(o, 'offline'),
          persistent: flag(o, 'persistent'),
          undefinesource: flag(o, 'undefinesource'),
          live: flag(o, 'live'),
        },
        () => '',
      );
    },
  },
};
