// `--connect` values (services/libvirt/connect.ts): one URI for every host, HOST=URI for one host, repeated.
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';

import { connectOption, parseConnectSpec } from '../services/libvirt/connect';

const SOCKET_URI = 'qemu+unix:///session?socket=/run/a/libvirt-sock';

describe('--connect', () => {
  it('keeps one URI as the connection of every host, its query intact', () => {
    expect(parseConnectSpec(SOCKET_URI)).toEqual({ default: SOCKET_URI, hosts: new Map() });
  });

  it('gives each HOST=URI host its own connection beside the default one', () => {
    const targets = parseConnectSpec(['qemu:///system', `a=${SOCKET_URI}`, 'b=qemu+ssh://b.example/system']);
    expect(targets.default).toBe('qemu:///system');
    expect([...targets.hosts]).toEqual([
      ['a', SOCKET_URI],
      ['b', 'qemu+ssh://b.example/system'],
    ]);
  });

  it('refuses a host given twice, two URIs without a host, and a value that is no URI, naming them', () => {
    expect(() => parseConnectSpec(['a=qemu:///system', 'a=qemu:///session'])).toThrow(
      "--connect: host 'a' is given two libvirt connections ('qemu:///system' and 'qemu:///session')",
    );
    expect(() => parseConnectSpec(['qemu:///system', 'qemu:///session'])).toThrow(
      "--connect: two connections without a host ('qemu:///system' and 'qemu:///session'): give the others as HOST=URI",
    );
    expect(() => parseConnectSpec('b=not a uri')).toThrow("invalid libvirt URI 'b=not a uri': expected DRIVER[+TRANSPORT]://[HOST]/PATH");
    expect(() => parseConnectSpec('')).toThrow("invalid libvirt URI ''");
  });

  it("refuses a plain URI beside another for the default host, whichever comes first", () => {
    const message =
      "--connect: the default host 'local' is given two libvirt connections ('qemu:///system', without a host, and 'local=qemu:///session'): " +
      'give one of them, and the other hosts theirs as HOST=URI';
    expect(() => parseConnectSpec(['qemu:///system', 'local=qemu:///session'])).toThrow(message);
    expect(() => parseConnectSpec(['local=qemu:///session', 'b=qemu+ssh://b.example/system', 'qemu:///system'])).toThrow(message);
  });

  it('takes the same URI given plainly and as local=URI as the one default connection', () => {
    expect(parseConnectSpec(['qemu:///system', 'local=qemu:///system'])).toEqual({ default: 'qemu:///system', hosts: new Map() });
    const targets = parseConnectSpec([`local=${SOCKET_URI}`, 'b=qemu+ssh://b.example/system', ` ${SOCKET_URI} `]);
    expect(targets).toEqual({ default: SOCKET_URI, hosts: new Map([['b', 'qemu+ssh://b.example/system']]) });
    // Without a plain URI, local=URI stays the default host's own connection.
    expect(parseConnectSpec(['local=qemu:///system', 'b=qemu:///session']).hosts.get('local')).toBe('qemu:///system');
  });

  it('collects a repeated option; given once it stays one string', () => {
    const parse = (argv: string[]) => new Command().addOption(connectOption()).parse(argv, { from: 'user' }).opts().connect as unknown;
    expect(parse(['-c', 'qemu:///system'])).toBe('qemu:///system');
    expect(parse(['-c', 'a=qemu:///system', '--connect', `b=${SOCKET_URI}`])).toEqual(['a=qemu:///system', `b=${SOCKET_URI}`]);
  });
});
