// snapshot-create-as's argument language: `--diskspec` and `--memspec` as virsh parses them, and the
// `<domainsnapshot>` document `--print-xml` shows.
import type { SnapshotDefinition } from '../../machines/commands';
import type { SnapshotDisk } from '../../machines/model';
import { splitCommaList } from './tokenize';

/** virsh `--diskspec disk[,snapshot=type][,driver=type][,stype=type][,file=name]`, plus `mirror=name` (seed 002). */
export function parseDiskspec(spec: string): SnapshotDisk | undefined {
  const [target, ...fields] = splitCommaList(spec);
  if (!target) return undefined;
  const disk: SnapshotDisk = { target, snapshot: 'internal' };
  let snapshotGiven = false;
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq === -1) return undefined;
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (key === 'snapshot') {
      if (value !== 'internal' && value !== 'external' && value !== 'no') return undefined;
      disk.snapshot = value;
      snapshotGiven = true;
    } else if (key === 'file') disk.file = value;
    else if (key === 'mirror') disk.mirror = value;
    else if (key === 'driver' || key === 'stype') continue; // not modelled
    else return undefined;
  }
  if (!snapshotGiven && (disk.file !== undefined || disk.mirror !== undefined)) disk.snapshot = 'external';
  return disk;
}

/** virsh `--memspec [file=]name[,snapshot=type]`. */
export function parseMemspec(spec: string): SnapshotDefinition['memory'] | 'error' {
  let memory: SnapshotDefinition['memory'];
  for (const [i, field] of splitCommaList(spec).entries()) {
    const eq = field.indexOf('=');
    const key = eq === -1 ? (i === 0 ? 'file' : '') : field.slice(0, eq);
    const value = eq === -1 ? field : field.slice(eq + 1);
    if (key === 'file') memory ??= value ? 'external' : undefined;
    else if (key === 'snapshot' && (value === 'no' || value === 'internal' || value === 'external')) memory = value;
    else return 'error';
  }
  return memory;
}

/** `snapshot-create-as --print-xml`: the `<domainsnapshot>` virsh would send. */
export function snapshotArgsXml(def: SnapshotDefinition, memspec: string | undefined): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
  const lines = ['<domainsnapshot>'];
  if (def.name !== undefined) lines.push(`  <name>${esc(def.name)}</name>`);
  if (def.description !== undefined) lines.push(`  <description>${esc(def.description)}</description>`);
  if (memspec !== undefined) {
    const fields = splitCommaList(memspec);
    const attrs: string[] = [];
    let file: string | undefined;
    for (const [i, f] of fields.entries()) {
      const eq = f.indexOf('=');
      if (eq === -1 && i === 0) file = f;
      else if (f.startsWith('file=')) file = f.slice(5);
      else if (f.startsWith('snapshot=')) attrs.push(`snapshot='${esc(f.slice(9))}'`);
    }
    if (file) attrs.push(`file='${esc(file)}'`);
    lines.push(`  <memory ${attrs.join(' ')}/>`);
  }
  if (def.disks.length > 0) {
    lines.push('  <disks>');
    for (const d of def.disks) {
      const snap = d.snapshot !== 'internal' || d.file !== undefined ? ` snapshot='${d.snapshot}'` : '';
      if (d.file === undefined && d.mirror === undefined) {
        lines.push(`    <disk name='${esc(d.target)}'${snap}/>`);
        continue;
      }
      lines.push(`    <disk name='${esc(d.target)}'${snap}>`);
      if (d.file !== undefined) lines.push(`      <source file='${esc(d.file)}'/>`);
      if (d.mirror !== undefined) lines.push(`      <mirror file='${esc(d.mirror)}'/>`);
      lines.push('    </disk>');
    }
    lines.push('  </disks>');
  }
  lines.push('</domainsnapshot>');
  return lines.join('\n') + '\n\n';
}
