// The virsh commands vmledger understands: names, options and one-line help, as virsh 9.0 spells them
// (`virsh help CMD`). Option kinds follow virsh's:
//   data   a required argument that may be given by position or as --name (shown `[--domain] <string>`)
//   string an optional argument; unless `named`, a spare positional argument fills it (virsh does the same:
//          `undefine test vda` sets --storage)
//   argv   repeatable (`[[--diskspec] <string>]...`)
//   bool   a flag
// Options marked `noop` are accepted for compatibility and have no effect, because vmledger does not model what
// they control (NVRAM, TPM, checkpoints, caches, consoles, progress output). `help CMD` says so.

export type OptKind = 'bool' | 'string' | 'data' | 'argv';

export interface OptDef {
  name: string;
  kind: OptKind;
  help: string;
  /** A required string option that must be given by name (virsh VSH_OFLAG_REQ_OPT). */
  required?: boolean;
  /** Never filled from a positional argument. */
  named?: boolean;
  /** `<number>` instead of `<string>` in help. */
  number?: boolean;
  /** Accepted for compatibility; vmledger does not model what it controls. */
  noop?: boolean;
}

export type CmdGroup = 'domain' | 'snapshot' | 'vmledger' | 'virsh';

export interface CmdDef {
  name: string;
  group: CmdGroup;
  /** One line, as `virsh help` lists it. */
  summary: string;
  description: string;
  opts: OptDef[];
}

const domain: OptDef = { name: 'domain', kind: 'data', help: 'domain name, id or uuid' };
const flag = (name: string, help: string, noop = false): OptDef => ({ name, kind: 'bool', help, ...(noop ? { noop } : {}) });
const str = (name: string, help: string, extra: Partial<OptDef> = {}): OptDef => ({ name, kind: 'string', help, ...extra });
const data = (name: string, help: string): OptDef => ({ name, kind: 'data', help });

export const COMMANDS: readonly CmdDef[] = [
  // ---------------------------------------------------------------------------------------------- domain
  {
    name: 'define',
    group: 'domain',
    summary: "define (but don't start) a domain from an XML file",
    description: 'Define a domain.',
    opts: [data('file', 'file containing an XML domain description'), flag('validate', 'validate the XML against the schema', true)],
  },
  {
    name: 'create',
    group: 'domain',
    summary: 'create a domain from an XML file',
    description: 'Create a domain.',
    opts: [
      data('file', 'file containing an XML domain description'),
      flag('paused', 'leave the guest paused after creation'),
      flag('autodestroy', 'automatically destroy the guest when virsh disconnects'),
      flag('validate', 'validate the XML against the schema', true),
    ],
  },
  {
    name: 'start',
    group: 'domain',
    summary: 'start a (previously defined) inactive domain',
    description: 'Start a domain, either from the last managedsave\n    state, or via a fresh boot if no managedsave state\n    is present.',
    opts: [
      { ...domain, help: 'name of the inactive domain' },
      flag('paused', 'leave the guest paused after creation'),
      flag('autodestroy', 'automatically destroy the guest when virsh disconnects'),
      flag('bypass-cache', 'avoid file system cache when loading', true),
      flag('force-boot', 'force fresh boot by discarding any managed save'),
    ],
  },
  {
    name: 'shutdown',
    group: 'domain',
    summary: 'gracefully shutdown a domain',
    description: 'Run shutdown in the target domain.',
    opts: [domain],
  },
  {
    name: 'destroy',
    group: 'domain',
    summary: 'destroy (stop) a domain',
    description: 'Forcefully stop a given domain, but leave its resources intact.',
    opts: [domain, flag('graceful', 'terminate gracefully'), flag('remove-logs', 'remove domain logs', true)],
  },
  { name: 'suspend', group: 'domain', summary: 'suspend a domain', description: 'Suspend a running domain.', opts: [domain] },
  { name: 'resume', group: 'domain', summary: 'resume a domain', description: 'Resume a previously suspended domain.', opts: [domain] },
  { name: 'reboot', group: 'domain', summary: 'reboot a domain', description: 'Run a reboot command in the target domain.', opts: [domain] },
  {
    name: 'managedsave',
    group: 'domain',
    summary: 'managed save of a domain state',
    description:
      "Save and destroy a running domain, so it can be restarted from\n    the same state at a later time.  When the virsh 'start'\n    command is next run for the domain, it will automatically\n    be started from this saved state.",
    opts: [
      domain,
      flag('bypass-cache', 'avoid file system cache when saving', true),
      flag('running', 'set domain to be running on next start'),
      flag('paused', 'set domain to be paused on next start'),
      flag('verbose', 'display the progress of save', true),
    ],
  },
  {
    name: 'managedsave-remove',
    group: 'domain',
    summary: 'Remove managed save of a domain',
    description: 'Remove an existing managed save state file from a domain',
    opts: [domain],
  },
  {
    name: 'save',
    group: 'domain',
    summary: 'save a domain state to a file',
    description: 'Save the RAM state of a running domain.',
    opts: [
      domain,
      data('file', 'where to save the data'),
      flag('bypass-cache', 'avoid file system cache when saving', true),
      flag('running', 'set domain to be running on restore'),
      flag('paused', 'set domain to be paused on restore'),
      flag('verbose', 'display the progress of save', true),
    ],
  },
  {
    name: 'undefine',
    group: 'domain',
    summary: 'undefine a domain',
    description: 'Undefine an inactive domain, or convert persistent to transient.',
    opts: [
      domain,
      flag('managed-save', 'remove domain managed state file'),
      str('storage', 'remove associated storage volumes (comma separated list of targets or source paths) (see domblklist)'),
      flag('remove-all-storage', 'remove all associated storage volumes (use with caution)'),
      flag(
        'delete-storage-volume-snapshots',
        'delete snapshots associated with volume(s), requires --remove-all-storage (must be supported by storage driver)',
        true,
      ),
      flag('wipe-storage', 'wipe data on the removed volumes'),
      flag('snapshots-metadata', 'remove all domain snapshot metadata (vm must be inactive)'),
      flag('checkpoints-metadata', 'remove all domain checkpoint metadata (vm must be inactive)', true),
      flag('nvram', 'remove nvram file', true),
      flag('keep-nvram', 'keep nvram file', true),
      flag('tpm', 'remove TPM state', true),
      flag('keep-tpm', 'keep TPM state', true),
    ],
  },
  {
    name: 'blockcopy',
    group: 'domain',
    summary: 'Start a block copy operation.',
    description: 'Copy a disk backing image chain to dest.',
    opts: [
      domain,
      data('path', 'fully-qualified path of source disk'),
      str('dest', 'path of the copy to create'),
      flag('shallow', 'make the copy share a backing chain'),
      flag('reuse-external', 'reuse existing destination'),
      flag('blockdev', 'copy destination is block device instead of regular file', true),
      flag('wait', 'wait for job to reach mirroring phase'),
      flag('verbose', 'with --wait, display the progress', true),
      flag('pivot', 'implies --wait, pivot when mirroring starts'),
      flag('finish', 'implies --wait, quit when mirroring starts'),
      flag('async', "with --wait, don't wait for cancel to finish", true),
      flag('transient-job', 'the copy job is not persisted if VM is turned off'),
    ],
  },
  {
    name: 'blockjob',
    group: 'domain',
    summary: 'Manage active block operations',
    description: 'Query, adjust speed, or cancel active block operations.',
    opts: [
      domain,
      data('path', 'fully-qualified path of disk'),
      flag('abort', 'abort the active job on the specified disk'),
      flag('async', "implies --abort; request but don't wait for job end"),
      flag('pivot', 'implies --abort; conclude and pivot a copy or commit job'),
      flag('info', 'get active job information for the specified disk'),
    ],
  },
  {
    name: 'blockpull',
    group: 'domain',
    summary: 'Populate a disk from its backing image.',
    description: 'Populate a disk from its backing image.',
    opts: [
      domain,
      data('path', 'fully-qualified path of disk'),
      str('bandwidth', 'bandwidth limit in MiB/s', { number: true, noop: true }),
      str('base', 'path of backing file in chain for a partial pull'),
      flag('wait', 'wait for job to finish'),
      flag('verbose', 'with --wait, display the progress', true),
      flag('async', "with --wait, don't wait for cancel to finish", true),
      flag('keep-relative', 'keep the backing chain relatively referenced', true),
    ],
  },
  {
    name: 'migrate',
    group: 'domain',
    summary: 'migrate domain to another host',
    description: 'Migrate domain to another host.  Add --live for live migration.',
    opts: [
      domain,
      data('desturi', 'connection URI of the destination host as seen from the client(normal migration) or source(p2p migration)'),
      flag('live', 'live migration'),
      flag('offline', 'offline migration'),
      flag('p2p', 'peer-2-peer migration', true),
      flag('direct', 'direct migration', true),
      flag('tunnelled', 'tunnelled migration', true),
      flag('persistent', 'persist VM on destination'),
      flag('undefinesource', 'undefine VM on source'),
      flag('verbose', 'display the progress of migration', true),
    ],
  },
  {
    name: 'list',
    group: 'domain',
    summary: 'list domains',
    description: 'Returns list of domains.',
    opts: [
      flag('inactive', 'list inactive domains'),
      flag('all', 'list inactive & active domains'),
      flag('transient', 'list transient domains'),
      flag('persistent', 'list persistent domains'),
      flag('with-snapshot', 'list domains with existing snapshot'),
      flag('without-snapshot', 'list domains without a snapshot'),
      flag('state-running', 'list domains in running state'),
      flag('state-paused', 'list domains in paused state'),
      flag('state-shutoff', 'list domains in shutoff state'),
      flag('state-other', 'list domains in other states'),
      flag('with-managed-save', 'list domains with managed save state'),
      flag('without-managed-save', 'list domains without managed save'),
      flag('uuid', "list uuid's only"),
      flag('name', 'list domain names only'),
      flag('id', 'list domain IDs only'),
      flag('table', 'list table (default)'),
    ],
  },
  {
    name: 'domstate',
    group: 'domain',
    summary: 'domain state',
    description: 'Returns state about a domain.',
    opts: [domain, flag('reason', 'also print reason for the state')],
  },
  {
    name: 'dominfo',
    group: 'domain',
    summary: 'domain information',
    description: 'Returns basic information about the domain.',
    opts: [domain],
  },
  {
    name: 'domblklist',
    group: 'domain',
    summary: 'list all domain blocks',
    description: 'Get the summary of block devices for a domain.',
    opts: [
      domain,
      flag('inactive', 'get inactive rather than running configuration', true),
      flag('details', 'additionally display the type and device value'),
    ],
  },
  {
    name: 'dumpxml',
    group: 'domain',
    summary: 'domain information in XML',
    description: 'Output the domain information as an XML dump to stdout.',
    opts: [
      domain,
      flag('inactive', 'show inactive defined XML', true),
      flag('security-info', 'include security sensitive information in XML dump', true),
    ],
  },
  // ---------------------------------------------------------------------------------------------- snapshot
  {
    name: 'snapshot-create',
    group: 'snapshot',
    summary: 'Create a snapshot from XML',
    description: 'Create a snapshot (disk and RAM) from XML',
    opts: [
      domain,
      str('xmlfile', 'domain snapshot XML'),
      flag('redefine', 'redefine metadata for existing snapshot'),
      flag('current', 'with redefine, set current snapshot'),
      flag('no-metadata', 'take snapshot but create no metadata'),
      flag('halt', 'halt domain after snapshot is created'),
      flag('disk-only', 'capture disk state but not vm state'),
      flag('reuse-external', 'reuse any existing external files'),
      flag('quiesce', "quiesce guest's file systems"),
      flag('atomic', 'require atomic operation'),
      flag('live', 'take a live snapshot'),
      flag('validate', 'validate the XML against the schema', true),
    ],
  },
  {
    name: 'snapshot-create-as',
    group: 'snapshot',
    summary: 'Create a snapshot from a set of args',
    description: 'Create a snapshot (disk and RAM) from arguments',
    opts: [
      domain,
      str('name', 'name of snapshot'),
      str('description', 'description of snapshot'),
      flag('print-xml', 'print XML document rather than create'),
      flag('no-metadata', 'take snapshot but create no metadata'),
      flag('halt', 'halt domain after snapshot is created'),
      flag('disk-only', 'capture disk state but not vm state'),
      flag('reuse-external', 'reuse any existing external files'),
      flag('quiesce', "quiesce guest's file systems"),
      flag('atomic', 'require atomic operation'),
      flag('live', 'take a live snapshot'),
      flag('validate', 'validate the XML against the schema', true),
      str('memspec', 'memory attributes: [file=]name[,snapshot=type]', { named: true }),
      {
        name: 'diskspec',
        kind: 'argv',
        help: 'disk attributes: disk[,snapshot=type][,driver=type][,stype=type][,file=name][,mirror=name]',
      },
    ],
  },
  {
    name: 'snapshot-current',
    group: 'snapshot',
    summary: 'Get or set the current snapshot',
    description: 'Get or set the current snapshot',
    opts: [
      domain,
      flag('name', 'list the name, rather than the full xml'),
      flag('security-info', 'include security sensitive information in XML dump', true),
      str('snapshotname', 'name of existing snapshot to make current'),
    ],
  },
  {
    name: 'snapshot-delete',
    group: 'snapshot',
    summary: 'Delete a domain snapshot',
    description: 'Snapshot Delete',
    opts: [
      domain,
      str('snapshotname', 'snapshot name'),
      flag('current', 'delete current snapshot'),
      flag('children', 'delete snapshot and all children'),
      flag('children-only', 'delete children but not snapshot'),
      flag('metadata', 'delete only libvirt metadata, leaving snapshot contents behind'),
      flag('mirror-pivot', 'end a mirrored snapshot, reopening the disks on the mirror (seed 002; vmledger)'),
      flag('mirror-abort', 'end a mirrored snapshot, reopening the disks on the source (seed 002; vmledger)'),
    ],
  },
  {
    name: 'snapshot-dumpxml',
    group: 'snapshot',
    summary: 'Dump XML for a domain snapshot',
    description: 'Snapshot Dump XML',
    opts: [
      domain,
      data('snapshotname', 'snapshot name'),
      flag('security-info', 'include security sensitive information in XML dump', true),
    ],
  },
  {
    name: 'snapshot-info',
    group: 'snapshot',
    summary: 'snapshot information',
    description: 'Returns basic information about a snapshot.',
    opts: [domain, str('snapshotname', 'snapshot name'), flag('current', 'info on current snapshot')],
  },
  {
    name: 'snapshot-list',
    group: 'snapshot',
    summary: 'List snapshots for a domain',
    description: 'Snapshot List',
    opts: [
      domain,
      flag('parent', 'add a column showing parent snapshot'),
      flag('roots', 'list only snapshots without parents'),
      flag('leaves', 'list only snapshots without children'),
      flag('no-leaves', 'list only snapshots that are not leaves (with children)'),
      flag('metadata', 'list only snapshots that have metadata that would prevent undefine'),
      flag('no-metadata', 'list only snapshots that have no metadata managed by libvirt'),
      flag('inactive', 'filter by snapshots taken while inactive'),
      flag('active', 'filter by snapshots taken while active (full system snapshots)'),
      flag('disk-only', 'filter by disk-only snapshots'),
      flag('internal', 'filter by internal snapshots'),
      flag('external', 'filter by external snapshots'),
      flag('tree', 'list snapshots in a tree'),
      str('from', 'limit list to children of given snapshot'),
      flag('current', 'limit list to children of current snapshot'),
      flag('descendants', 'with --from, list all descendants'),
      flag('name', 'list snapshot names only'),
      flag('topological', 'sort list topologically rather than by name'),
    ],
  },
  {
    name: 'snapshot-parent',
    group: 'snapshot',
    summary: 'Get the name of the parent of a snapshot',
    description: "Extract the snapshot's parent, if any",
    opts: [domain, str('snapshotname', 'find parent of snapshot name'), flag('current', 'find parent of current snapshot')],
  },
  {
    name: 'snapshot-revert',
    group: 'snapshot',
    summary: 'Revert a domain to a snapshot',
    description: 'Revert domain to snapshot',
    opts: [
      domain,
      str('snapshotname', 'snapshot name'),
      flag('current', 'revert to current snapshot'),
      flag('running', 'after reverting, change state to running'),
      flag('paused', 'after reverting, change state to paused'),
      flag('force', 'try harder on risky reverts'),
      flag('reset-nvram', 're-initialize NVRAM from its pristine template', true),
    ],
  },
  // ---------------------------------------------------------------------------------------------- vmledger
  {
    name: 'guest-event',
    group: 'vmledger',
    summary: 'record what the guest or hypervisor did on its own',
    description:
      'Record a guest-initiated change (docs/rules.md §1): the guest powered off, rebooted or crashed, or a block\n    job reached its ready phase (--disk).',
    opts: [domain, data('event', 'poweroff|reboot|crash|blockjob-ready'), str('disk', 'for blockjob-ready: the disk target')],
  },
  {
    name: 'migrate-phase',
    group: 'vmledger',
    summary: 'record a phase of an outgoing migration (coordinator use)',
    description: 'Record Prepare/Perform/Finish/Confirm on the source, or the failure of a phase (--failed).',
    opts: [domain, data('phase', 'prepare|perform|finish|confirm'), str('failed', 'the phase failed with this message', { named: true })],
  },
  {
    name: 'migrate-incoming',
    group: 'vmledger',
    summary: 'record an incoming migration on this host (coordinator use)',
    description: 'Record the arrival of a migrated domain, described by an XML file, on this host.',
    opts: [
      data('file', 'file containing the XML domain description'),
      { name: 'source', kind: 'string', help: 'the host the domain comes from', required: true, named: true },
      flag('persistent', 'the domain is persistent on this host'),
      flag('active', 'the domain arrives running'),
      flag('paused', 'the domain arrives paused'),
    ],
  },
  // ---------------------------------------------------------------------------------------------- virsh
  { name: 'echo', group: 'virsh', summary: 'echo arguments. Used for internal testing.', description: 'Echo back arguments, separated by space.', opts: [{ name: 'string', kind: 'argv', help: 'arguments to echo' }] },
  { name: 'exit', group: 'virsh', summary: 'quit this interactive terminal', description: '', opts: [] },
  {
    name: 'help',
    group: 'virsh',
    summary: 'print help',
    description: 'Prints global help, command specific help, or help for a\n    group of related commands',
    opts: [str('command', 'Prints global help, command specific help, or help for a group of related commands')],
  },
  { name: 'quit', group: 'virsh', summary: 'quit this interactive terminal', description: '', opts: [] },
];

export const GROUP_TITLES: Record<CmdGroup, string> = {
  domain: "Domain Management (help keyword 'domain')",
  snapshot: "Snapshot (help keyword 'snapshot')",
  vmledger: "vmledger extensions (help keyword 'vmledger')",
  virsh: "Virsh itself (help keyword 'virsh')",
};

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

export function findCommand(name: string): CmdDef | undefined {
  return byName.get(name);
}

function label(o: OptDef): string {
  const type = o.number ? '<number>' : '<string>';
  if (o.kind === 'bool') return `--${o.name}`;
  if (o.kind === 'data' || o.kind === 'argv') return `[--${o.name}] ${type}`;
  return `--${o.name} ${type}`;
}

function synopsisPart(o: OptDef): string {
  const type = o.number ? '<number>' : '<string>';
  switch (o.kind) {
    case 'bool':
      return `[--${o.name}]`;
    case 'data':
      return `<${o.name}>`;
    case 'argv':
      return `[[--${o.name}] ${type}]...`;
    case 'string':
      return o.required ? `--${o.name} ${type}` : `[--${o.name} ${type}]`;
  }
}

/** `help CMD`, laid out as virsh lays it out. */
export function commandHelp(def: CmdDef): string {
  const lines = ['  NAME', `    ${def.name} - ${def.summary}`, '', '  SYNOPSIS', `    ${[def.name, ...def.opts.map(synopsisPart)].join(' ')}`, ''];
  if (def.description) lines.push('  DESCRIPTION', `    ${def.description}`, '');
  if (def.opts.length > 0) {
    lines.push('  OPTIONS');
    for (const o of def.opts) {
      const note = o.noop ? ' (accepted; vmledger does not model it)' : '';
      lines.push(`    ${label(o).padEnd(15)}  ${o.help}${note}`);
    }
    lines.push('');
  }
  return lines.join('\n') + '\n';
}

/** `help` (all groups) or `help GROUP`. */
export function groupHelp(groups: readonly CmdGroup[] = ['domain', 'snapshot', 'vmledger', 'virsh']): string {
  const out: string[] = groups.length > 1 ? ['Grouped commands:', ''] : [];
  for (const g of groups) {
    out.push(` ${GROUP_TITLES[g]}:`);
    for (const c of COMMANDS.filter((c) => c.group === g)) out.push(`    ${c.name.padEnd(30)} ${c.summary}`);
    out.push('');
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------
// Parsing one command's argv (vshCommandParse / vshCommandCheckOpts)

export type OptValue = string | true | string[];

export type ParsedCommand =
  | { ok: true; def: CmdDef; opts: Map<string, OptValue>; help: boolean }
  | { ok: false; error: string };

export function parseArgv(argv: readonly string[]): ParsedCommand {
  const [name, ...rest] = argv;
  if (name === undefined) return { ok: false, error: 'missing command' };
  const def = findCommand(name);
  if (!def) return { ok: false, error: `unknown command: '${name}'` };
  const opts = new Map<string, OptValue>();
  let optionsEnded = false;
  for (let i = 0; i < rest.length; i++) {
    const tok = rest[i]!;
    if (!optionsEnded && tok.startsWith('--')) {
      if (tok === '--') {
        optionsEnded = true;
        continue;
      }
      const eq = tok.indexOf('=');
      const optName = eq === -1 ? tok.slice(2) : tok.slice(2, eq);
      if (optName === 'help' && eq === -1) return { ok: true, def, opts, help: true };
      const o = def.opts.find((x) => x.name === optName);
      if (!o) return { ok: false, error: `command '${def.name}' doesn't support option --${optName}` };
      if (opts.has(o.name) && o.kind !== 'argv') return { ok: false, error: `option --${o.name} already seen` };
      if (o.kind === 'bool') {
        if (eq !== -1) return { ok: false, error: `invalid '=' after option --${o.name}` };
        opts.set(o.name, true);
        continue;
      }
      let value: string;
      if (eq !== -1) value = tok.slice(eq + 1);
      else {
        if (i + 1 >= rest.length) return { ok: false, error: `expected syntax: --${o.name} <${o.number ? 'number' : 'string'}>` };
        value = rest[++i]!;
      }
      if (o.kind === 'argv') opts.set(o.name, [...((opts.get(o.name) as string[] | undefined) ?? []), value]);
      else opts.set(o.name, value);
      continue;
    }
    // A positional argument fills the first argument-taking option not given yet, in declaration order.
    const o = def.opts.find((x) => x.kind !== 'bool' && !x.named && (x.kind === 'argv' || !opts.has(x.name)));
    if (!o) return { ok: false, error: `unexpected data '${tok}'` };
    if (o.kind === 'argv') opts.set(o.name, [...((opts.get(o.name) as string[] | undefined) ?? []), tok]);
    else opts.set(o.name, tok);
  }
  for (const o of def.opts) {
    if (opts.has(o.name)) continue;
    if (o.kind === 'data') return { ok: false, error: `command '${def.name}' requires <${o.name}> option` };
    if (o.required) return { ok: false, error: `command '${def.name}' requires --${o.name} option` };
  }
  return { ok: true, def, opts, help: false };
}
