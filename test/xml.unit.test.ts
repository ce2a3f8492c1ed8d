import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainConfig, Snapshot } from '../machines/model';
import {
  XML_MAX_BYTES,
  XmlError,
  formatDomainXml,
  formatSnapshotXml,
  parseDomainXml,
  parseSnapshotXml,
} from '../services/xml';
import { TEST_CONFIG, TEST_UUID } from './support/given';

const EXAMPLES = new URL('./fixtures/libvirt-examples/', import.meta.url);
const example = (file: string) => readFileSync(new URL(file, EXAMPLES), 'utf8');

/** The XmlError a call throws (fails the test if it returns or throws anything else). */
function xmlError(fn: () => unknown): XmlError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(XmlError);
    const err = e as XmlError;
    expect(err.code).toBe(27);
    expect(err.codeName).toBe('VIR_ERR_XML_ERROR');
    expect(err.message).toMatch(/^XML error: /);
    return err;
  }
  throw new Error('expected an XmlError, but the call succeeded');
}

const MULTI_DISK = `<?xml version="1.0" encoding="UTF-8"?>
<!-- written by hand: every disk and hostdev shape the model knows -->
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web &amp; db &lt;1&gt;</name>
  <uuid>  A1B2C3D4E5F60718293A4B5C6D7E8F90 </uuid>
  <memory unit='KiB'>1048576</memory>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>coredump-restart</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type="block" device="disk">
      <source dev="/dev/sdb"/>
      <target dev="vdb"/>
      <shareable/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='default' volume='data.img'/>
      <target dev='vdc'/>
      <readonly/>
    </disk>
    <disk type='network' device='lun'>
      <source protocol='iscsi' name='iqn.2013-07.com.example:iscsi/1'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <disk type='file' device='floppy'>
      <source file='/images/boot.img'/>
      <target dev='fda'/>
    </disk>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/></source>
    </hostdev>
    <hostdev type='usb'/>
    <hostdev mode='capabilities' type='storage'/>
    <interface type='hostdev' managed='yes'>
      <source><address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></source>
    </interface>
    <interface type='network'><source network='default'/></interface>
  </devices>
  <qemu:commandline><qemu:arg value='-S'/></qemu:commandline>
</domain>
`;

const MULTI_DISK_CONFIG: DomainConfig = {
  name: 'web & db <1>',
  uuid: 'a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90',
  disks: [
    { target: 'vda', source: '/var/lib/libvirt/images/web.qcow2', device: 'disk', readonly: false, shareable: false, storage: 'managed' },
    { target: 'vdb', source: '/dev/sdb', device: 'disk', readonly: false, shareable: true, storage: 'unmanaged' },
    { target: 'hdc', device: 'cdrom', readonly: true, shareable: false, storage: 'managed' },
    { target: 'vdc', source: 'default/data.img', device: 'disk', readonly: true, shareable: false, storage: 'managed' },
    { target: 'sda', source: 'iqn.2013-07.com.example:iscsi/1', device: 'disk', readonly: false, shareable: false, storage: 'unmanaged' },
    { target: 'fda', source: '/images/boot.img', device: 'disk', readonly: false, shareable: false, storage: 'managed' },
  ],
  hostdevs: [
    { mode: 'subsystem', type: 'pci' },
    { mode: 'subsystem', type: 'usb' },
    { mode: 'capabilities', type: 'storage' },
    { mode: 'subsystem', type: 'pci' },
  ],
  onPoweroff: 'destroy',
  onReboot: 'restart',
  onCrash: 'coredump-restart',
};

describe('libvirt example files', () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.xml'));

  it('finds the examples', () => {
    expect(files).toEqual(expect.arrayContaining(['test.xml', 's1.xml', 'test_nouuid.xml', 'x1_missing_parent.xml']));
  });

  it.each(files)('parses %s', (file) => {
    const xml = example(file);
    if (xml.trimStart().startsWith('<domainsnapshot')) {
      expect(parseSnapshotXml(xml).name).toBe(file.replace(/(_self_parent|_missing_parent|_parent_s1)?\.xml$/, ''));
    } else {
      expect(parseDomainXml(xml, () => 'generated-uuid').disks).toHaveLength(1);
    }
  });

  it('test.xml: the dumpxml of the test driver domain', () => {
    expect(parseDomainXml(example('test.xml'))).toEqual(TEST_CONFIG);
  });

  it('t2.xml and other_same_uuid.xml', () => {
    expect(parseDomainXml(example('t2.xml'))).toMatchObject({ name: 't2', uuid: '11111111-2222-3333-4444-555555555555' });
    expect(parseDomainXml(example('other_same_uuid.xml'))).toMatchObject({ name: 'other', uuid: TEST_UUID });
  });

  it('test_nouuid.xml has no uuid: the caller supplies one, or it is an error', () => {
    expect(xmlError(() => parseDomainXml(example('test_nouuid.xml'))).message).toBe('XML error: missing domain uuid');
    const config = parseDomainXml(example('test_nouuid.xml'), () => '00000000-0000-4000-8000-000000000001');
    expect(config).toMatchObject({ name: 'test', uuid: '00000000-0000-4000-8000-000000000001' });
  });

  it('the generator is only called when the uuid is missing', () => {
    let calls = 0;
    parseDomainXml(example('test.xml'), () => `${++calls}`);
    expect(calls).toBe(0);
  });

  it('s1.xml: a running snapshot', () => {
    expect(parseSnapshotXml(example('s1.xml'))).toEqual({
      name: 's1',
      description: 'first',
      state: 'running',
      creationTime: '1795300779',
      memory: 'internal',
      disks: [{ target: 'vda', snapshot: 'internal' }],
    });
  });

  it('off1.xml: a shutoff snapshot without memory', () => {
    expect(parseSnapshotXml(example('off1.xml'))).toMatchObject({ name: 'off1', state: 'shutoff', memory: 'no' });
  });

  it('parents', () => {
    expect(parseSnapshotXml(example('s1.xml')).parent).toBeUndefined();
    expect(parseSnapshotXml(example('s1_self_parent.xml'))).toMatchObject({ name: 's1', parent: 's1' });
    expect(parseSnapshotXml(example('x1_missing_parent.xml'))).toMatchObject({ name: 'x1', parent: 'nosuch' });
    expect(parseSnapshotXml(example('c1_parent_s1.xml'))).toMatchObject({ name: 'c1', parent: 's1' });
  });

  it('a document of the other kind names the root it found', () => {
    expect(xmlError(() => parseDomainXml(example('s1.xml'))).message).toBe(
      'XML error: unexpected root element <domainsnapshot>, expecting <domain>',
    );
    expect(xmlError(() => parseSnapshotXml(example('test.xml'))).message).toBe(
      'XML error: unexpected root element <domain>, expecting <domainsnapshot>',
    );
  });
});

describe('parseDomainXml', () => {
  it('reads every disk and hostdev shape', () => {
    expect(parseDomainXml(MULTI_DISK)).toEqual(MULTI_DISK_CONFIG);
  });

  it('a domain without devices or lifecycle actions', () => {
    expect(parseDomainXml(`<domain><name>bare</name><uuid>${TEST_UUID}</uuid></domain>`)).toEqual({
      name: 'bare',
      uuid: TEST_UUID,
      disks: [],
      hostdevs: [],
    });
  });

  const withBody = (body: string, name = '<name>x</name>') => `<domain type='kvm'>${name}<uuid>${TEST_UUID}</uuid>${body}</domain>`;
  it.each([
    ['no name', withBody('', ''), 'XML error: missing domain name'],
    ['an empty name', withBody('', '<name></name>'), 'XML error: missing domain name'],
    ['a newline in the name', withBody('', '<name>a&#10;b</name>'), 'XML error: invalid domain name: invalid char in name: 0x0a'],
    ['a name too long', withBody('', `<name>${'n'.repeat(256)}</name>`), 'XML error: invalid domain name: must be at most 255 characters'],
    ['a malformed uuid', `<domain><name>x</name><uuid>not-a-uuid</uuid></domain>`, "XML error: malformed uuid element 'not-a-uuid'"],
    ['a disk without target', withBody("<devices><disk type='file'><source file='/a'/></disk></devices>"), 'XML error: missing target information for device /a'],
    [
      'a duplicated target',
      withBody("<devices><disk><source file='/a'/><target dev='vda'/></disk><disk><source file='/b'/><target dev='vda'/></disk></devices>"),
      "XML error: target 'vda' duplicated for disk sources '/a' and '/b'",
    ],
    ['an unknown disk device', withBody("<devices><disk device='tape'><target dev='st0'/></disk></devices>"), "XML error: unknown disk device 'tape'"],
    ['an unknown disk type', withBody("<devices><disk type='tape'><target dev='st0'/></disk></devices>"), "XML error: unknown disk type 'tape'"],
    ['an unknown hostdev mode', withBody("<devices><hostdev mode='magic' type='pci'/></devices>"), "XML error: unknown hostdev mode 'magic'"],
    ['a hostdev without type', withBody("<devices><hostdev mode='subsystem'/></devices>"), 'XML error: missing type in hostdev'],
    ['an unknown lifecycle action', withBody('<on_crash>explode</on_crash>'), "XML error: invalid on_crash value: 'explode'"],
  ])('refuses %s', (_what, xml, message) => {
    expect(xmlError(() => parseDomainXml(xml)).message).toBe(message);
  });
});

describe('parseSnapshotXml', () => {
  it('reads a mirrored snapshot (seed 002)', () => {
    const xml = `<domainsnapshot>
  <name>migrate</name>
  <disks>
    <disk name='vda' snapshot='external'>
      <driver type='qcow2'/>
      <source file='/path1/to/old.migrate'/>
      <mirror file='/path2/to/new.qcow2'/>
    </disk>
    <disk name='vdb' snapshot='no'/>
  </disks>
</domainsnapshot>`;
    expect(parseSnapshotXml(xml)).toEqual({
      name: 'migrate',
      disks: [
        { target: 'vda', snapshot: 'external', file: '/path1/to/old.migrate', mirror: '/path2/to/new.qcow2' },
        { target: 'vdb', snapshot: 'no' },
      ],
    });
  });

  it('a disk naming a file (element or old attribute) without a snapshot mode is external', () => {
    const xml = `<domainsnapshot><disks>
      <disk name='vda'><source file='/new/a.qcow2'/></disk>
      <disk name='vdb' file='/new/b.qcow2'/>
      <disk name='vdc'><mirror file='/mirror/c.qcow2'/></disk>
      <disk name='vdd'/>
    </disks></domainsnapshot>`;
    expect(parseSnapshotXml(xml).disks).toEqual([
      { target: 'vda', snapshot: 'external', file: '/new/a.qcow2' },
      { target: 'vdb', snapshot: 'external', file: '/new/b.qcow2' },
      { target: 'vdc', snapshot: 'external', mirror: '/mirror/c.qcow2' },
      { target: 'vdd', snapshot: 'internal' },
    ]);
  });

  it('an empty <domainsnapshot/> is a valid request (libvirt names it itself)', () => {
    expect(parseSnapshotXml('<domainsnapshot/>')).toEqual({ disks: [] });
  });

  it('a memory file implies external memory', () => {
    expect(parseSnapshotXml("<domainsnapshot><memory file='/m.save'/></domainsnapshot>").memory).toBe('external');
  });

  const snap = (body: string) => `<domainsnapshot>${body}</domainsnapshot>`;
  it.each([
    ['an unknown state', snap('<state>exploded</state>'), "XML error: Invalid state 'exploded' in domain snapshot XML"],
    ['an unknown memory setting', snap("<memory snapshot='maybe'/>"), "XML error: unknown memory snapshot setting 'maybe'"],
    ['a memory file for internal memory', snap("<memory snapshot='internal' file='/m'/>"), "XML error: memory filename '/m' requires external snapshot"],
    ['a disk without name', snap("<disks><disk snapshot='internal'/></disks>"), 'XML error: missing name from disk snapshot element'],
    ['an unknown disk setting', snap("<disks><disk name='vda' snapshot='sideways'/></disks>"), "XML error: unknown disk snapshot setting 'sideways'"],
    ['a disk given twice', snap("<disks><disk name='vda'/><disk name='vda'/></disks>"), "XML error: disk 'vda' specified twice"],
    ['a control character in the name', snap('<name>a&#9;b</name>'), 'XML error: invalid snapshot definition: name: invalid char in name: 0x09'],
  ])('refuses %s', (_what, xml, message) => {
    expect(xmlError(() => parseSnapshotXml(xml)).message).toBe(message);
  });
});

describe('formatting', () => {
  it('domain: format then parse gives the config back', () => {
    const xml = formatDomainXml(MULTI_DISK_CONFIG);
    expect(xml).toMatch(/^<domain type='kvm'>\n {2}<name>web &amp; db &lt;1&gt;<\/name>\n/);
    expect(parseDomainXml(xml)).toEqual(MULTI_DISK_CONFIG);
    expect(formatDomainXml(parseDomainXml(example('test.xml')), 'test')).toBe(`<domain type='test'>
  <name>test</name>
  <uuid>${TEST_UUID}</uuid>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda'/>
    </disk>
  </devices>
</domain>
`);
  });

  it('escapes markup, quotes and whitespace in text and attributes', () => {
    const config: DomainConfig = {
      name: `a'b"c<d>&e ]]> f`,
      uuid: TEST_UUID,
      disks: [
        { target: 'v"d\'a', source: "/img/it's <a>\t&\n\r b.qcow2", device: 'disk', readonly: false, shareable: false, storage: 'unmanaged' },
      ],
      hostdevs: [],
    };
    const xml = formatDomainXml(config);
    expect(xml).not.toMatch(/\t|\r|]]>/);
    expect(parseDomainXml(xml)).toEqual(config);
  });

  it('characters XML cannot carry are dropped, as libvirt does', () => {
    const xml = formatDomainXml({ name: 'ok', uuid: TEST_UUID, disks: [{ target: 'vda', source: '/a\u0001b', device: 'disk', readonly: false, shareable: false, storage: 'managed' }], hostdevs: [] });
    expect(parseDomainXml(xml).disks[0]?.source).toBe('/ab');
  });

  const config = parseDomainXml(example('test.xml'));
  const snapshot: Snapshot = {
    name: 'migrate',
    description: 'move <storage> & "pivot"',
    parent: 's1',
    state: 'disk-snapshot',
    diskOnly: true,
    external: true,
    creationTime: '2026-11-20T10:00:00.000Z',
    disks: [{ target: 'vda', snapshot: 'external', file: '/path1/to/old.migrate', mirror: '/path2/to/new.qcow2' }],
    mirrored: true,
  };

  it('snapshot: format then parse gives the definition back, with the domain embedded', () => {
    const xml = formatSnapshotXml(snapshot, config);
    expect(xml).toContain("<mirror file='/path2/to/new.qcow2'/>");
    expect(xml).toContain("  <domain type='kvm'>\n    <name>test</name>");
    expect(parseSnapshotXml(xml)).toEqual({
      name: 'migrate',
      description: 'move <storage> & "pivot"',
      parent: 's1',
      state: 'disk-snapshot',
      creationTime: String(Date.parse('2026-11-20T10:00:00.000Z') / 1000),
      memory: 'no',
      disks: [{ target: 'vda', snapshot: 'external', file: '/path1/to/old.migrate', mirror: '/path2/to/new.qcow2' }],
    });
  });

  it('snapshot: a root internal snapshot looks like the test driver dumpxml (s1.xml)', () => {
    const s1: Snapshot = { name: 's1', description: 'first', parent: null, state: 'running', diskOnly: false, external: false, creationTime: '1795300779', disks: [{ target: 'vda', snapshot: 'internal' }], mirrored: false };
    const xml = formatSnapshotXml(s1, config, 'test');
    expect(xml).toMatch(/^<domainsnapshot>\n {2}<name>s1<\/name>\n {2}<description>first<\/description>\n {2}<state>running<\/state>\n {2}<creationTime>1795300779<\/creationTime>\n {2}<memory snapshot='internal'\/>\n {2}<disks>\n {4}<disk name='vda' snapshot='internal'\/>\n {2}<\/disks>\n {2}<domain type='test'>/);
    expect(parseSnapshotXml(xml)).toEqual(parseSnapshotXml(example('s1.xml')));
    expect(formatSnapshotXml(s1, null)).not.toContain('<domain type');
  });

  // Names and paths as a user could type them: any printable text, with markup characters mixed in. Only the
  // NFC form of a name is accepted (the README's normalisation decision; test/hostile refuses the other forms).
  const typed = fc
    .string({ unit: fc.oneof(fc.constantFrom('<', '>', '&', '"', "'", ';', ' ', ']]>', '&amp;'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 30 })
    .filter((text) => text === text.normalize('NFC'));

  it('property: any domain config survives format → parse', () => {
    const disk = fc.record({
      target: typed,
      source: fc.option(typed, { nil: undefined }),
      device: fc.constantFrom('disk' as const, 'cdrom' as const),
      readonly: fc.boolean(),
      shareable: fc.boolean(),
      storage: fc.constantFrom('managed' as const, 'unmanaged' as const),
    }, { requiredKeys: ['target', 'device', 'readonly', 'shareable', 'storage'] });
    const configs = fc.record({
      name: typed,
      uuid: fc.uuid(),
      disks: fc.uniqueArray(disk, { selector: (d) => d.target, maxLength: 4 }),
      hostdevs: fc.array(fc.record({ mode: fc.constantFrom('subsystem' as const, 'capabilities' as const), type: typed }), { maxLength: 3 }),
      onCrash: fc.constantFrom('destroy', 'restart', 'preserve'),
    });
    fc.assert(
      fc.property(configs, (c) => {
        // libvirt forces cdroms read-only, so the parsed config says so too.
        const expected = { ...c, disks: c.disks.map((d) => (d.device === 'cdrom' ? { ...d, readonly: true } : d)) };
        expect(parseDomainXml(formatDomainXml(c))).toEqual(expected);
      }),
    );
  });

  it('property: snapshot names, descriptions and files survive format → parse', () => {
    fc.assert(
      fc.property(typed, typed, typed, typed, (name, description, file, mirror) => {
        const s: Snapshot = { ...snapshot, name, description, parent: name, disks: [{ target: 'vda', snapshot: 'external', file, mirror }] };
        expect(parseSnapshotXml(formatSnapshotXml(s, config))).toMatchObject({ name, description, parent: name, disks: s.disks });
      }),
    );
  });
});

describe('hostile input gives XmlError, never a crash or a hang', () => {
  it.each([
    ['an empty string', '', 'XML error: failed to parse xml document: document is empty'],
    ['whitespace', ' \n\t ', 'XML error: failed to parse xml document: document is empty'],
    ['a comment only', '<!-- nothing -->', 'XML error: failed to parse xml document: line 1: Start tag expected.'],
    ['plain text', 'domain', "XML error: failed to parse xml document: line 1, column 1: char 'd' is not expected."],
    ['a wrong root', '<network/>', 'XML error: unexpected root element <network>, expecting <domain>'],
    ['two roots', '<domain/><domain/>', 'XML error: failed to parse xml document: extra content at the end of the document: <domain>'],
    ['text after a self-closing root', '<domain/>junk', 'XML error: failed to parse xml document: extra content at the end of the document'],
    ['a mismatched end tag', '<domain><name>x</nam></domain>', "XML error: failed to parse xml document: line 1, column 16: Expected closing tag 'name' (opened in line 1, col 9) instead of closing tag 'nam'."],
    ['an undefined entity', '<domain><name>&nbsp;</name></domain>', "XML error: failed to parse xml document: entity 'nbsp' not defined"],
    ['a bare ampersand in an attribute', "<domain a='&'/>", "XML error: failed to parse xml document: malformed entity or character reference '&'"],
    ['an invalid character reference', '<domain><name>&#0;</name></domain>', "XML error: failed to parse xml document: invalid character reference '&#0;'"],
    ['a control character', '<domain>\u0007</domain>', 'XML error: failed to parse xml document: invalid character U+0007 at line 1, column 9'],
    ['an unescaped < in an attribute', "<domain a='<'/>", "XML error: failed to parse xml document: unescaped '<' not allowed in the value of attribute 'a'"],
    ['a DOCTYPE', '<!DOCTYPE domain><domain/>', 'XML error: failed to parse xml document: DOCTYPE declarations are not allowed'],
  ])('%s', (_what, xml, message) => {
    expect(xmlError(() => parseDomainXml(xml)).message).toBe(message);
  });

  it('entity bombs are refused before anything expands', () => {
    const lol = Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`).join('');
    const bomb = `<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY lol0 "lol">${lol}]><domain><name>&lol9;</name></domain>`;
    expect(xmlError(() => parseDomainXml(bomb)).message).toMatch(/DOCTYPE declarations are not allowed/);
    const external = `<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><domainsnapshot><name>&x;</name></domainsnapshot>`;
    expect(xmlError(() => parseSnapshotXml(external)).message).toMatch(/DOCTYPE/);
  });

  it('input over 1 MiB is refused unread', () => {
    const big = `<domain><name>${'x'.repeat(XML_MAX_BYTES)}</name></domain>`;
    expect(xmlError(() => parseDomainXml(big)).message).toBe('XML error: document is larger than 1 MiB (1048576 bytes)');
    // The limit counts UTF-8 bytes, not UTF-16 units.
    const wide = `<domainsnapshot><description>${'é'.repeat(XML_MAX_BYTES / 2)}</description></domainsnapshot>`;
    expect(wide.length).toBeLessThan(XML_MAX_BYTES);
    expect(xmlError(() => parseSnapshotXml(wide)).message).toMatch(/larger than 1 MiB/);
  });

  it('pathological inputs near the limit finish quickly', () => {
    const n = XML_MAX_BYTES - 64;
    const fill = (s: string) => s.repeat(Math.floor(n / s.length));
    for (const xml of [fill('<'), fill('<a>'), fill('<a '), `<domain>${fill('&amp;')}</domain>`, `<domain/>${fill('-->')}`, fill('<!--'), `<domain>${fill('<b/>')}</domain>`]) {
      const started = performance.now();
      const err = xmlError(() => parseDomainXml(xml.slice(0, n)));
      expect(err.message.length).toBeLessThan(300);
      expect(performance.now() - started).toBeLessThan(5000);
    }
  });

  it('every truncation of test.xml is an XmlError', () => {
    const xml = example('test.xml');
    const end = xml.lastIndexOf('</domain>') + '</domain>'.length;
    for (let i = 0; i < end; i++) xmlError(() => parseDomainXml(xml.slice(0, i)));
    expect(parseDomainXml(xml.slice(0, end)).name).toBe('test');
  });

  it('non-string input from JavaScript callers', () => {
    xmlError(() => parseDomainXml(null as unknown as string));
    xmlError(() => parseSnapshotXml(42 as unknown as string));
  });

  /** Parses with both entry points; anything but success or XmlError fails the property. */
  const onlyXmlErrors = (xml: string) => {
    for (const parse of [parseDomainXml, parseSnapshotXml]) {
      try {
        parse(xml);
      } catch (e) {
        if (!(e instanceof XmlError)) throw e;
      }
    }
  };

  it('property: arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), onlyXmlErrors), { numRuns: 500 });
  });

  it('property: random bytes decoded as UTF-8', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => onlyXmlErrors(Buffer.from(bytes).toString('utf8'))), { numRuns: 300 });
  });

  it('property: XML-shaped junk', () => {
    const token = fc.constantFrom(
      '<', '>', '/', '/>', '</', '=', "'", '"', '&', ';', '&amp;', '&#x41;', '&#;', '<!--', '-->', '<![CDATA[', ']]>', '<?', '?>',
      '<!DOCTYPE', '<!ENTITY', 'domain', 'domainsnapshot', 'name', 'uuid', 'disk', 'disks', 'devices', 'source', 'target', 'hostdev',
      'mirror', 'memory', 'snapshot', 'file', 'dev', ' ', '\n', 'x', '__proto__', 'constructor', 'vda', TEST_UUID,
    );
    fc.assert(fc.property(fc.array(token, { maxLength: 60 }).map((t) => t.join('')), onlyXmlErrors), { numRuns: 1000 });
  });

  it('property: mutations of the real examples', () => {
    const docs = ['test.xml', 's1.xml'].map(example);
    const mutation = fc.record({ doc: fc.constantFrom(...docs), at: fc.nat(), cut: fc.nat({ max: 20 }), insert: fc.string({ unit: 'binary-ascii', maxLength: 8 }) });
    fc.assert(
      fc.property(mutation, ({ doc, at, cut, insert }) => {
        const i = at % doc.length;
        onlyXmlErrors(doc.slice(0, i) + insert + doc.slice(i + cut));
      }),
      { numRuns: 1000 },
    );
  });
});
