// Fault configuration (services/drivers/faults.ts): `--fault` flags and the JSON file, both validated.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, test } from 'vitest';

import {
  collectFaultFlag,
  describeFaults,
  FaultSpecError,
  loadFaultsFile,
  NO_FAULTS,
  parseFaultFlags,
  parseFaultsJson,
  underPrefix,
} from '../../services/drivers/faults';

describe('--fault flags', () => {
  test('every kind', () => {
    const f = parseFaultFlags([
      'readonly:/ro/',
      'full:/full',
      'fail-disk:2',
      'migrate-fail:perform',
      'migrate-fail:confirm',
      'mirror-never-ready',
      'no-transaction',
    ]);
    expect(f).toEqual({
      readonly: ['/ro'],
      full: ['/full'],
      failDisk: 2,
      migrateFail: ['perform', 'confirm'],
      mirrorNeverReady: true,
      noTransaction: true,
    });
    expect(describeFaults(f)).toEqual([
      'readonly:/ro',
      'full:/full',
      'fail-disk:2',
      'migrate-fail:perform',
      'migrate-fail:confirm',
      'mirror-never-ready',
      'no-transaction',
    ]);
    expect(parseFaultFlags(describeFaults(f))).toEqual(f);
    expect(parseFaultFlags([])).toEqual(NO_FAULTS);
  });

  test.each([
    ['readonly', "fault 'readonly': 'readonly' needs path (readonly:PATH)"],
    ['readonly:relative/path', "fault 'readonly:relative/path': the path must be absolute"],
    ['fail-disk:0', "fault 'fail-disk:0': N must be a whole number from 1"],
    ['fail-disk:two', "fault 'fail-disk:two': N must be a whole number from 1"],
    ['migrate-fail:begin', "fault 'migrate-fail:begin': the phase must be one of prepare, perform, finish, confirm"],
    ['no-transaction:yes', "fault 'no-transaction:yes': 'no-transaction' takes no argument"],
    ['disk-on-fire', "unknown fault 'disk-on-fire'; faults are: readonly:/path, full:/path, fail-disk:N, migrate-fail:prepare|perform|finish|confirm, mirror-never-ready, no-transaction"],
  ])('%s is refused with a message that says why', (spec, message) => {
    expect(() => parseFaultFlags([spec])).toThrow(new FaultSpecError(message));
    expect(() => collectFaultFlag(spec, [])).toThrow(FaultSpecError);
  });

  test('collectFaultFlag accumulates repeated flags (for commander)', () => {
    expect(collectFaultFlag('full:/b', collectFaultFlag('readonly:/a', []))).toEqual(['readonly:/a', 'full:/b']);
  });

  test('storage prefixes match on path segments', () => {
    expect(underPrefix('/ro/x.qcow2', '/ro')).toBe(true);
    expect(underPrefix('/ro', '/ro')).toBe(true);
    expect(underPrefix('/ro2/x.qcow2', '/ro')).toBe(false);
    expect(underPrefix('/anything', '/')).toBe(true);
  });
});

describe('faults file (JSON, zod-validated)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmledger-faults-'));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  test('the object form and the list-of-flags form', async () => {
    const object = await loadFaultsFile(write('a.json', JSON.stringify({ readonly: ['/ro'], failDisk: 2, noTransaction: true })));
    expect(object).toEqual({ ...NO_FAULTS, readonly: ['/ro'], failDisk: 2, noTransaction: true });
    const list = await loadFaultsFile(write('b.json', JSON.stringify(['readonly:/ro', 'fail-disk:2', 'no-transaction'])));
    expect(list).toEqual(object);
  });

  test('invalid files are refused, naming the file and the field', async () => {
    await expect(loadFaultsFile(write('c.json', '{ not json'))).rejects.toThrow(/faults file .*c\.json: not JSON/);
    await expect(loadFaultsFile(write('d.json', JSON.stringify({ failDisk: 0 })))).rejects.toThrow(/faults file .*d\.json: invalid faults: failDisk: /);
    await expect(loadFaultsFile(write('e.json', JSON.stringify({ readonly: ['ro'] })))).rejects.toThrow(/readonly\.0: must be an absolute path/);
    await expect(loadFaultsFile(write('f.json', JSON.stringify({ surprise: true })))).rejects.toThrow(/invalid faults/);
    expect(() => parseFaultsJson([1, 2])).toThrow(/faults list must hold flag strings/);
    rmSync(dir, { recursive: true, force: true });
  });
});
