// libvirt XML <-> the domain model: `<domain>` (define/create/dumpxml) and `<domainsnapshot>`
// (snapshot-create/snapshot-dumpxml). Only what the model tracks is read; everything else is ignored,
// as libvirt ignores what a driver does not use. Every failure is an XmlError (VIR_ERR_XML_ERROR, 27).
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { z } from 'zod';
import { SnapshotDefinitionSchema, type SnapshotDefinition } from '../machines/commands';
import { nameProblem } from '../machines/names';
import { ERROR_CODES, renderMessage } from '../machines/errors';
import {
  DomainConfigSchema,
  SnapshotStateSchema,
  type Disk,
  type DomainConfig,
  type Hostdev,
  type Snapshot,
  type SnapshotDisk,
} from '../machines/model';

/** Inputs above this many UTF-8 bytes are refused before parsing (libvirt documents are a few KiB). */
export const XML_MAX_BYTES = 1024 * 1024;

export class XmlError extends Error {
  readonly code = ERROR_CODES.VIR_ERR_XML_ERROR;
  readonly codeName = 'VIR_ERR_XML_ERROR' as const;
  constructor(detail: string) {
    super(renderMessage('VIR_ERR_XML_ERROR', detail));
    this.name = 'XmlError';
  }
}

/** Reasons quote the input; a junk document must not become a megabyte-long message. */
const malformed = (reason: string) =>
  new XmlError(`failed to parse xml document: ${reason.length > 200 ? `${reason.slice(0, 200)}…` : reason}`);

// ---------------------------------------------------------------------------------------------------
// Reading: a tiny element tree built from fast-xml-parser's ordered output.

interface El {
  name: string;
  attrs: Map<string, string>;
  children: El[];
  /** The element's own character data (text and CDATA, entities decoded), children excluded. */
  text: string;
}

// Entity processing is off in the parser: we decode the five predefined entities and character
// references ourselves, in one pass, so nothing can expand (no XML bombs) and unknown entities fail
// instead of passing through as literal text. CDATA is kept apart so that it is never decoded.
const PARSER = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  cdataPropName: '#cdata',
  ignoreDeclaration: true,
  ignorePiTags: true,
});

/** Characters XML 1.0 forbids (libxml2 refuses them), including lone UTF-16 surrogates. */
const INVALID_CHAR =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const PREDEFINED = new Map([
  ['lt', '<'],
  ['gt', '>'],
  ['amp', '&'],
  ['quot', '"'],
  ['apos', "'"],
]);
const REFERENCE = /&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z_:][\w.:-]*)?(;?)/g;

function decode(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(REFERENCE, (match, ref: string | undefined, semi: string) => {
    if (!ref || !semi) throw malformed(`malformed entity or character reference '${match}'`);
    if (ref.startsWith('#')) {
      const cp = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      const ch = cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
      if (!ch || INVALID_CHAR.test(ch)) throw malformed(`invalid character reference '${match}'`);
      return ch;
    }
    const value = PREDEFINED.get(ref);
    if (value === undefined) throw malformed(`entity '${ref}' not defined`);
    return value;
  });
}

type OrderedEntry = Record<string, unknown>;

function buildTree(entries: unknown): { elements: El[]; text: string } {
  const elements: El[] = [];
  let text = '';
  for (const entry of (Array.isArray(entries) ? entries : []) as OrderedEntry[]) {
    for (const [key, value] of Object.entries(entry)) {
      if (key === ':@' || key.startsWith('?')) continue;
      if (key === '#text') text += decode(String(value));
      else if (key === '#cdata') text += (value as OrderedEntry[]).map((v) => String(v['#text'] ?? '')).join('');
      else {
        const inner = buildTree(value);
        elements.push({ name: key, attrs: buildAttrs(entry[':@']), children: inner.elements, text: inner.text });
      }
    }
  }
  return { elements, text };
}

function buildAttrs(raw: unknown): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const [name, rawValue] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    const value = String(rawValue);
    // The validator lets these through; libxml2 does not.
    if (value.includes('<')) throw malformed(`unescaped '<' not allowed in the value of attribute '${name}'`);
    // Attribute-value normalization (XML 1.0 §3.3.3): literal tabs and newlines become spaces.
    attrs.set(name, decode(value.replace(/[\t\n]/g, ' ')));
  }
  return attrs;
}

function position(doc: string, index: number): string {
  const before = doc.slice(0, index);
  const line = before.split('\n').length;
  return `line ${line}, column ${index - before.lastIndexOf('\n')}`;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The validator misses text after a self-closing root (`<domainsnapshot/>junk`), so check that the
 * document ends with the root's end (`</root>` or `<root …/>`), then only whitespace, comments and PIs.
 */
function checkTail(doc: string, root: string): void {
  let end = doc.length;
  for (;;) {
    while (end > 0 && /\s/.test(doc[end - 1]!)) end--;
    if (doc.endsWith('-->', end)) end = doc.lastIndexOf('<!--', end - 3);
    else if (doc.endsWith('?>', end)) end = doc.lastIndexOf('<?', end - 2);
    else break;
    if (end < 0) throw malformed('extra content at the end of the document'); // `-->` without `<!--`
  }
  const tail = doc.slice(doc.lastIndexOf('<', end - 1), end);
  const name = escapeRegExp(root);
  const closing = new RegExp(`^</${name}\\s*>$|^<${name}(?:\\s(?:[^<>"']|"[^"]*"|'[^']*')*)?/>$`);
  if (!closing.test(tail)) throw malformed('extra content at the end of the document');
}

function parseDocument(xml: string, root: string): El {
  if (typeof xml !== 'string') throw malformed('document is not a string');
  // A UTF-16 unit is at least one UTF-8 byte, so the cheap length test settles most large inputs.
  if (xml.length > XML_MAX_BYTES || Buffer.byteLength(xml, 'utf8') > XML_MAX_BYTES) {
    throw new XmlError(`document is larger than 1 MiB (${XML_MAX_BYTES} bytes)`);
  }
  const doc = xml.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n'); // end-of-line handling, XML 1.0 §2.11
  if (doc.trim() === '') throw malformed('document is empty');
  const bad = INVALID_CHAR.exec(doc);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw malformed(`invalid character U+${code} at ${position(doc, bad.index)}`);
  }
  // No DTDs: libvirt documents never carry one, and refusing it rules out entity definitions
  // (billion laughs, external entities) whatever the parser would do with them.
  if (doc.includes('<!DOCTYPE')) throw malformed('DOCTYPE declarations are not allowed');
  const valid = XMLValidator.validate(doc);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw malformed(col === undefined ? `line ${line}: ${msg}` : `line ${line}, column ${col}: ${msg}`);
  }
  let parsed: unknown;
  try {
    parsed = PARSER.parse(doc);
  } catch (e) {
    throw malformed(e instanceof Error ? e.message : String(e));
  }
  const top = buildTree(parsed).elements;
  const first = top[0];
  if (!first) throw new XmlError(`missing root element <${root}>`);
  if (top.length > 1) throw malformed(`extra content at the end of the document: <${top[1]!.name}>`);
  checkTail(doc, first.name);
  if (first.name !== root) throw new XmlError(`unexpected root element <${first.name}>, expecting <${root}>`);
  return first;
}

const child = (el: El | undefined, name: string) => el?.children.find((c) => c.name === name);
const childrenNamed = (el: El | undefined, name: string) => el?.children.filter((c) => c.name === name) ?? [];
const attr = (el: El | undefined, name: string) => el?.attrs.get(name);
/** Like libvirt's `virXPathString`: an empty element counts as absent. Text is not trimmed. */
const textOf = (el: El | undefined) => (el && el.text !== '' ? el.text : undefined);

function validate<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`);
  throw new XmlError(`invalid ${what}: ${issues.join('; ')}`);
}

/** Drops undefined fields so parsed objects compare equal to hand-written ones. */
function defined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------------------------------------------
// <domain>

const LIFECYCLE_ACTIONS = ['destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart'];
const DISK_TYPES = ['file', 'block', 'dir', 'network', 'volume', 'nvme', 'vhostuser', 'vhostvdpa'];

/**
 * Storage ownership. `undefine --remove-all-storage` only deletes volumes that a libvirt storage pool
 * manages. The ledger has no pools to ask, so the disk type decides: `volume` disks are pool volumes
 * by definition, and `file` disks are assumed to be image files inside a pool directory (the usual
 * layout; virsh would look the path up). Everything else (`block`, `network`, `dir`, …) is a device or
 * remote resource libvirt never deletes: unmanaged. formatDomainXml writes the reverse mapping
 * (managed → type='file', unmanaged → type='block'), so the choice survives dumpxml → define.
 */
function parseDisk(el: El): Disk {
  const type = attr(el, 'type') ?? 'file';
  if (!DISK_TYPES.includes(type)) throw new XmlError(`unknown disk type '${type}'`);
  const device = attr(el, 'device') ?? 'disk';
  if (!['disk', 'cdrom', 'floppy', 'lun'].includes(device)) throw new XmlError(`unknown disk device '${device}'`);
  const src = child(el, 'source');
  const pool = attr(src, 'pool');
  const volume = attr(src, 'volume');
  const source =
    attr(src, 'file') ?? attr(src, 'dev') ?? attr(src, 'dir') ?? attr(src, 'name') ?? (volume && (pool ? `${pool}/${volume}` : volume));
  const target = attr(child(el, 'target'), 'dev');
  if (!target) throw new XmlError(`missing target information for device ${source ?? device}`);
  return defined({
    target,
    source: source || undefined,
    // The model knows disks and cdroms only; floppies and SCSI LUNs behave as disks for every rule.
    device: device === 'cdrom' ? ('cdrom' as const) : ('disk' as const),
    // libvirt forces a cdrom read-only whether or not the XML says <readonly/>.
    readonly: device === 'cdrom' || child(el, 'readonly') !== undefined,
    shareable: child(el, 'shareable') !== undefined,
    storage: type === 'file' || type === 'volume' ? ('managed' as const) : ('unmanaged' as const),
  });
}

function parseHostdev(el: El): Hostdev {
  const mode = attr(el, 'mode') ?? 'subsystem';
  if (mode !== 'subsystem' && mode !== 'capabilities') throw new XmlError(`unknown hostdev mode '${mode}'`);
  const type = attr(el, 'type');
  if (!type) throw new XmlError('missing type in hostdev');
  return { mode, type };
}

function canonicalUuid(text: string): string {
  // virUUIDParse: surrounding spaces and dashes anywhere are allowed; dumpxml prints the canonical form.
  const hex = text.trim().replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new XmlError(`malformed uuid element '${text}'`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Parses a libvirt `<domain>`. libvirt gives a domain without `<uuid>` a random one; deciding must stay
 * pure, so the caller supplies the generator (e.g. `crypto.randomUUID`). Without one, a missing uuid is
 * an error.
 */
export function parseDomainXml(xml: string, uuidForMissing?: () => string): DomainConfig {
  const root = parseDocument(xml, 'domain');
  const name = textOf(child(root, 'name'));
  if (name === undefined) throw new XmlError('missing domain name');
  // The same rule as command names (machines/names.ts): a name virsh could not type is refused here.
  const problem = nameProblem(name);
  if (problem) throw new XmlError(`invalid domain name: ${problem}`);

  const uuidText = textOf(child(root, 'uuid'));
  let uuid: string;
  if (uuidText !== undefined) uuid = canonicalUuid(uuidText);
  else if (uuidForMissing) uuid = uuidForMissing();
  else throw new XmlError('missing domain uuid');

  const devices = child(root, 'devices');
  const disks = childrenNamed(devices, 'disk').map(parseDisk);
  const seen = new Map<string, Disk>();
  for (const disk of disks) {
    const other = seen.get(disk.target);
    if (other) {
      throw new XmlError(
        `target '${disk.target}' duplicated for disk sources '${other.source ?? '<null>'}' and '${disk.source ?? '<null>'}'`,
      );
    }
    seen.set(disk.target, disk);
  }
  const hostdevs = childrenNamed(devices, 'hostdev').map(parseHostdev);
  // libvirt files an <interface type='hostdev'> among the host devices too (migration refuses it alike).
  for (const iface of childrenNamed(devices, 'interface')) {
    if (attr(iface, 'type') === 'hostdev') {
      hostdevs.push({ mode: 'subsystem', type: attr(child(child(iface, 'source'), 'address'), 'type') ?? 'pci' });
    }
  }

  const lifecycle = (tag: string) => {
    const value = textOf(child(root, tag));
    if (value !== undefined && !LIFECYCLE_ACTIONS.includes(value)) throw new XmlError(`invalid ${tag} value: '${value}'`);
    return value;
  };
  return validate(
    DomainConfigSchema,
    defined({
      name,
      uuid,
      disks,
      hostdevs,
      onPoweroff: lifecycle('on_poweroff'),
      onReboot: lifecycle('on_reboot'),
      onCrash: lifecycle('on_crash'),
    }),
    'domain definition',
  );
}

// ---------------------------------------------------------------------------------------------------
// <domainsnapshot>

const LOCATIONS = ['no', 'internal', 'external'] as const;
type Location = (typeof LOCATIONS)[number];
const isLocation = (s: string): s is Location => (LOCATIONS as readonly string[]).includes(s);

function parseSnapshotDisk(el: El): SnapshotDisk {
  const target = attr(el, 'name');
  if (!target) throw new XmlError('missing name from disk snapshot element');
  const src = child(el, 'source');
  // <source file|dev|name>; the oldest snapshot XML put the file on the <disk> itself.
  const file = attr(src, 'file') ?? attr(src, 'dev') ?? attr(src, 'name') ?? attr(el, 'file');
  const mirrorEl = child(el, 'mirror');
  const mirror = attr(mirrorEl, 'file') ?? attr(child(mirrorEl, 'source'), 'file');
  // As in libvirt, a disk that names a new file without saying how is an external snapshot.
  const snapshot = attr(el, 'snapshot') ?? (file || mirror ? 'external' : undefined);
  if (snapshot !== undefined && !isLocation(snapshot)) throw new XmlError(`unknown disk snapshot setting '${snapshot}'`);
  return defined({ target, snapshot: snapshot ?? 'internal', file: file || undefined, mirror: mirror || undefined });
}

/**
 * Parses a `<domainsnapshot>`. Flag-dependent rules (a redefine needs a name and a creationTime,
 * memory vs offline state, name characters) are the decider's: they depend on the flags, not the XML.
 * The embedded `<domain>` is ignored: the ledger snapshots its own copy of the config.
 */
export function parseSnapshotXml(xml: string): SnapshotDefinition {
  const root = parseDocument(xml, 'domainsnapshot');
  const state = textOf(child(root, 'state'));
  if (state !== undefined && !SnapshotStateSchema.safeParse(state).success) {
    throw new XmlError(`Invalid state '${state}' in domain snapshot XML`);
  }

  const memoryEl = child(root, 'memory');
  const memorySetting = attr(memoryEl, 'snapshot');
  const memoryFile = attr(memoryEl, 'file');
  let memory: Location | undefined;
  if (memorySetting !== undefined) {
    if (!isLocation(memorySetting)) throw new XmlError(`unknown memory snapshot setting '${memorySetting}'`);
    if (memoryFile && memorySetting !== 'external') {
      throw new XmlError(`memory filename '${memoryFile}' requires external snapshot`);
    }
    memory = memorySetting;
  } else if (memoryFile) memory = 'external';
  // The memory file itself is not kept: SnapshotDefinition has no field for it.

  const disks = childrenNamed(child(root, 'disks'), 'disk').map(parseSnapshotDisk);
  const names = new Set<string>();
  for (const d of disks) {
    if (names.has(d.target)) throw new XmlError(`disk '${d.target}' specified twice`);
    names.add(d.target);
  }

  return validate(
    SnapshotDefinitionSchema,
    defined({
      name: textOf(child(root, 'name')),
      description: textOf(child(root, 'description')),
      parent: textOf(child(child(root, 'parent'), 'name')),
      state,
      creationTime: textOf(child(root, 'creationTime')),
      memory,
      disks,
    }),
    'snapshot definition',
  );
}

// ---------------------------------------------------------------------------------------------------
// Writing. libvirt style: two-space indent, single-quoted attributes.

const INVALID_CHARS = new RegExp(INVALID_CHAR.source, 'g');
const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

/**
 * Like libvirt's virBufferEscapeString, characters XML cannot carry at all are dropped. In attributes
 * whitespace is written as character references so that attribute normalization keeps it.
 */
const text = (s: string) => s.replace(INVALID_CHARS, '').replace(/[&<>\r]/g, (c) => ESCAPES[c]!);
const attrValue = (s: string) => s.replace(INVALID_CHARS, '').replace(/[&<>"'\t\n\r]/g, (c) => ESCAPES[c]!);

function domainLines(config: DomainConfig, hypervisor: string): string[] {
  const lines = [
    `<domain type='${attrValue(hypervisor)}'>`,
    `  <name>${text(config.name)}</name>`,
    `  <uuid>${text(config.uuid)}</uuid>`,
  ];
  const lifecycle: [string, string | undefined][] = [
    ['on_poweroff', config.onPoweroff],
    ['on_reboot', config.onReboot],
    ['on_crash', config.onCrash],
  ];
  for (const [tag, value] of lifecycle) if (value !== undefined) lines.push(`  <${tag}>${text(value)}</${tag}>`);
  lines.push('  <devices>');
  for (const disk of config.disks) {
    const [type, sourceAttr] = disk.storage === 'managed' ? ['file', 'file'] : ['block', 'dev'];
    lines.push(`    <disk type='${type}' device='${disk.device}'>`);
    if (disk.source !== undefined) lines.push(`      <source ${sourceAttr}='${attrValue(disk.source)}'/>`);
    lines.push(`      <target dev='${attrValue(disk.target)}'/>`);
    if (disk.readonly) lines.push('      <readonly/>');
    if (disk.shareable) lines.push('      <shareable/>');
    lines.push('    </disk>');
  }
  for (const h of config.hostdevs) lines.push(`    <hostdev mode='${attrValue(h.mode)}' type='${attrValue(h.type)}'/>`);
  lines.push('  </devices>', '</domain>');
  return lines;
}

/** `dumpxml`. The model does not record the hypervisor, so the caller may name it. */
export function formatDomainXml(config: DomainConfig, hypervisor = 'kvm'): string {
  return domainLines(config, hypervisor).join('\n') + '\n';
}

/** The `<memory snapshot=…>` libvirt would show: no memory for offline and disk-only snapshots. */
function memoryLocation(s: Snapshot): Location {
  if (s.diskOnly || s.state === 'shutoff' || s.state === 'disk-snapshot') return 'no';
  return s.external ? 'external' : 'internal';
}

/** libvirt prints creationTime as epoch seconds; the ledger may hold an ISO time. */
function epochSeconds(time: string): string {
  if (/^\d+$/.test(time)) return time;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? time : String(Math.floor(ms / 1000));
}

/** `snapshot-dumpxml`, in libvirt's element order, with the domain config embedded (when known). */
export function formatSnapshotXml(snapshot: Snapshot, domainConfig: DomainConfig | null, hypervisor = 'kvm'): string {
  const lines = ['<domainsnapshot>', `  <name>${text(snapshot.name)}</name>`];
  if (snapshot.description) lines.push(`  <description>${text(snapshot.description)}</description>`);
  lines.push(`  <state>${snapshot.state}</state>`);
  if (snapshot.parent !== null) lines.push('  <parent>', `    <name>${text(snapshot.parent)}</name>`, '  </parent>');
  lines.push(`  <creationTime>${text(epochSeconds(snapshot.creationTime))}</creationTime>`);
  lines.push(`  <memory snapshot='${memoryLocation(snapshot)}'/>`);
  if (snapshot.disks.length > 0) {
    lines.push('  <disks>');
    for (const d of snapshot.disks) {
      if (d.file === undefined && d.mirror === undefined) {
        lines.push(`    <disk name='${attrValue(d.target)}' snapshot='${d.snapshot}'/>`);
        continue;
      }
      lines.push(`    <disk name='${attrValue(d.target)}' snapshot='${d.snapshot}' type='file'>`);
      if (d.file !== undefined) lines.push(`      <source file='${attrValue(d.file)}'/>`);
      if (d.mirror !== undefined) lines.push(`      <mirror file='${attrValue(d.mirror)}'/>`);
      lines.push('    </disk>');
    }
    lines.push('  </disks>');
  }
  if (domainConfig) lines.push(...domainLines(domainConfig, hypervisor).map((l) => `  ${l}`));
  lines.push('</domainsnapshot>');
  return lines.join('\n') + '\n';
}
