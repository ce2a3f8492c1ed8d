// virsh itself (`help virsh`): echo, help, quit and exit. They touch no domain.
import { commandHelp, findCommand, groupHelp, type CmdGroup } from '../definitions';
import type { VerbEntry, VerbTable } from '../call';
import { list, optionError, str } from '../result';

const quit: VerbEntry = { run: () => ({ ok: true, out: '', quit: true, message: null }) };

export const VIRSH_VERBS: VerbTable = {
  echo: { run: ({ o }) => ({ ok: true, out: `${list(o, 'string').join(' ')}\n`, message: null }) },
  quit,
  exit: quit,
  help: {
    run: ({ o }) => {
      const topic = str(o, 'command');
      if (topic === undefined) return { ok: true, out: groupHelp(), message: null };
      const cmd = findCommand(topic);
      if (cmd) return { ok: true, out: commandHelp(cmd), message: null };
      const groups: CmdGroup[] = ['domain', 'snapshot', 'vmledger', 'virsh'];
      if ((groups as string[]).includes(topic)) return { ok: true, out: groupHelp([topic as CmdGroup]), message: null };
      return optionError(`command or command group '${topic}' doesn't exist`);
    },
  },
};
