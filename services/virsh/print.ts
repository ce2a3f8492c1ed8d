// virsh's output formats for the queries vmledger answers, byte for byte where vmledger knows the data:
// vshTable (list, snapshot-list, domblklist), vshTreePrint (snapshot-list --tree), dominfo, snapshot-info,
// domstate --reason. Each function returns the command's own output; the session adds virsh's newline after
// every command.
import { childrenOf, descendantsOf, domstateText, type DomainState, type Snapshot } from '../../machines/model';
import { terminalField } from '../terminalText';
import { cmp, type DomainSummary } from '../domainQuery';

/** vshTable: a leading space, columns padded to their widest cell and separated by three spaces, dashes under the header. */
export function table(header: readonly string[], cells: readonly (readonly string[])[]): string {
  const rows = cells.map((r) => r.map(terminalField));
  // A loop, not Math.max(...rows): a list of 100,000 domains is more arguments than a call may take.
  const widths = header.map((h) => h.length);
  for (const r of rows) for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i]!, (r[i] ?? '').length);
  const line = (cells: readonly string[]) =>
    ' ' + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ');
  const dashes = '-'.repeat(widths.reduce((a, b) => a + b, 0) + 3 * (widths.length - 1) + 3);
  return [line(header), dashes, ...rows.map(line)].map((l) => l + '\n').join('');
}

/** `%Y-%m-%d %H:%M:%S %z` in UTC (virsh uses the local zone; vmledger prints UTC so outputs do not depend on TZ). */
export function creationTime(time: string): string {
  const ms = /^\d+$/.test(time) ? Number(time) * 1000 : Date.parse(time);
  if (Number.isNaN(ms)) return time;
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

const RUNNING_REASONS = new Set(['booted', 'migrated', 'restored', 'from snapshot', 'unpaused']);
const PAUSED_REASONS = new Set(['user', 'from snapshot', 'migration', 'save', 'snapshot']);
const SHUTOFF_REASONS = new Set(['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from snapshot']);

/** `domstate --reason`: e.g. `running (booted)`, `shut off (from snapshot)`, `paused (user)`. */
export function stateWithReason(s: DomainState): string {
  const r = s.reason;
  if (!s.active) return `shut off (${SHUTOFF_REASONS.has(r) ? r : 'unknown'})`;
  // A domain started or restored paused reads `paused (user)` in libvirt.
  if (s.paused) return `paused (${PAUSED_REASONS.has(r) ? r : 'user'})`;
  return `running (${RUNNING_REASONS.has(r) ? r : 'unknown'})`;
}

/**
 * `dominfo`. Printed: Id, Name, UUID, OS Type, State, Persistent, Autostart, Managed save. Fixed values: OS Type
 * `hvm` (what qemu reports) and Autostart `disable` (vmledger does not model autostart). Omitted, because the ledger
 * does not model them: CPU(s), CPU time, Max memory, Used memory and the Security lines.
 */
export function dominfo(s: DomainState, id: number | undefined): string {
  const rows: [string, string][] = [
    ['Id:', s.active && id !== undefined ? String(id) : '-'],
    ['Name:', s.name],
    ['UUID:', s.uuid ?? ''],
    ['OS Type:', 'hvm'],
    ['State:', domstateText(s)],
    ['Persistent:', s.persistent ? 'yes' : 'no'],
    ['Autostart:', 'disable'],
    ['Managed save:', s.hasManagedSave ? 'yes' : 'no'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(15)} ${v}\n`).join('');
}

/**
 * `list`: a table of active domains by id, then inactive ones by name; `--name`, `--uuid` (both: `UUID NAME`) or
 * `--id` one per line. libvirt numbers running domains as it starts them; the ledger does not model ids, so the
 * rows carry the host's active domains numbered 1, 2, … in name order (stable while that set does not change).
 */
export function listOutput(rows: readonly DomainSummary[], only: { name?: boolean; uuid?: boolean; id?: boolean } = {}): string {
  const active = rows.filter((d) => d.id !== null).sort((a, b) => a.id! - b.id!);
  const inactive = rows.filter((d) => d.id === null).sort((a, b) => cmp(a.name, b.name));
  const ordered = [...active, ...inactive];
  if (only.name && only.uuid) return ordered.map((d) => `${d.uuid ?? ''} ${d.name}\n`).join('');
  if (only.name) return ordered.map((d) => `${d.name}\n`).join('');
  if (only.uuid) return ordered.map((d) => `${d.uuid ?? ''}\n`).join('');
  if (only.id) return active.map((d) => `${d.id}\n`).join('');
  return table(['Id', 'Name', 'State'], ordered.map((d) => [d.id === null ? '-' : String(d.id), d.name, d.state]));
}

// ---------------------------------------------------------------------------------------------------
// Snapshots

export interface SnapshotFilter {
  roots?: boolean;
  leaves?: boolean;
  noLeaves?: boolean;
  metadata?: boolean;
  noMetadata?: boolean;
  inactive?: boolean;
  active?: boolean;
  diskOnly?: boolean;
  internal?: boolean;
  external?: boolean;
  from?: string;
  descendants?: boolean;
  topological?: boolean;
}

/** The snapshots `snapshot-list` shows, in its order (by name; --topological: parents before children). */
export function selectSnapshots(s: DomainState, f: SnapshotFilter): Snapshot[] {
  let list = Object.values(s.snapshots);
  if (f.from !== undefined) {
    const names = new Set(f.descendants ? descendantsOf(s, f.from) : childrenOf(s, f.from));
    list = list.filter((snap) => names.has(snap.name));
  }
  const hasChildren = (name: string) => childrenOf(s, name).length > 0;
  list = list.filter((snap) => {
    if (f.roots && snap.parent !== null) return false;
    if (f.leaves && !f.noLeaves && hasChildren(snap.name)) return false;
    if (f.noLeaves && !f.leaves && !hasChildren(snap.name)) return false;
    if (f.noMetadata && !f.metadata) return false; // every snapshot the ledger knows has metadata
    const isInactive = snap.state === 'shutoff';
    const isDisk = snap.state === 'disk-snapshot' || snap.diskOnly;
    if (f.inactive || f.active || f.diskOnly) {
      const ok = (f.inactive && isInactive && !isDisk) || (f.active && !isInactive && !isDisk) || (f.diskOnly && isDisk);
      if (!ok) return false;
    }
    if (f.internal && !f.external && snap.external) return false;
    if (f.external && !f.internal && !snap.external) return false;
    return true;
  });
  list.sort((a, b) => cmp(a.name, b.name));
  if (f.topological) {
    const out: Snapshot[] = [];
    const chosen = new Set(list.map((x) => x.name));
    const visit = (parent: string | null) => {
      for (const snap of list.filter((x) => (x.parent !== null && chosen.has(x.parent) ? x.parent : null) === parent)) {
        out.push(snap);
        visit(snap.name);
      }
    };
    visit(null);
    return out;
  }
  return list;
}

export function snapshotTable(list: readonly Snapshot[], withParent: boolean): string {
  const header = withParent ? ['Name', 'Creation Time', 'State', 'Parent'] : ['Name', 'Creation Time', 'State'];
  const rows = list.map((snap) => {
    const row = [snap.name, creationTime(snap.creationTime), snap.state];
    if (withParent) row.push(snap.parent ?? '');
    return row;
  });
  return table(header, rows);
}

/**
 * `snapshot-list --tree`: virsh's vshTreePrint, one tree per root, children in name order. The last child of a
 * branch is followed by a line holding only its indent, as virsh prints it.
 */
export function snapshotTree(list: readonly Snapshot[]): string {
  const names = new Set(list.map((x) => x.name));
  const parentOf = (snap: Snapshot) => (snap.parent !== null && names.has(snap.parent) ? snap.parent : null);
  const sorted = [...list].sort((a, b) => cmp(a.name, b.name));
  let out = '';
  const walk = (index: number, lastIndex: number, root: boolean, indent: string): string => {
    const snap = sorted[index]!;
    out += `${indent}${root ? '' : '+- '}${snap.name}\n`;
    if (!root) indent += (index === lastIndex ? ' ' : '|') + ' ';
    let nextLast = -1;
    sorted.forEach((child, i) => {
      if (parentOf(child) === snap.name) nextLast = i;
    });
    if (nextLast !== -1) out += `${indent}  |\n`;
    const childIndent = indent + '  ';
    sorted.forEach((child, i) => {
      if (parentOf(child) === snap.name) walk(i, nextLast, false, childIndent);
    });
    if (nextLast === -1 && index === lastIndex) out += `${indent}\n`;
    return indent;
  };
  sorted.forEach((snap, i) => {
    if (parentOf(snap) === null) walk(i, i, true, '');
  });
  return out;
}

/** `snapshot-info`. */
export function snapshotInfo(s: DomainState, snap: Snapshot): string {
  const children = childrenOf(s, snap.name).length;
  const rows: [string, string][] = [
    ['Name:', snap.name],
    ['Domain:', s.name],
    ['Current:', s.current === snap.name ? 'yes' : 'no'],
    ['State:', snap.state],
    ['Location:', snap.external ? 'external' : 'internal'],
    ['Parent:', snap.parent ?? '-'],
    ['Children:', String(children)],
    ['Descendants:', String(descendantsOf(s, snap.name).length)],
    ['Metadata:', 'yes'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(15)} ${v}\n`).join('');
}

/** `domblklist [--details]`. */
export function domblklist(s: DomainState, details: boolean): string {
  const disks = s.config?.disks ?? [];
  if (details) {
    return table(
      ['Type', 'Device', 'Target', 'Source'],
      disks.map((d) => [d.storage === 'managed' ? 'file' : 'block', d.device, d.target, d.source ?? '-']),
    );
  }
  return table(['Target', 'Source'], disks.map((d) => [d.target, d.source ?? '-']));
}
