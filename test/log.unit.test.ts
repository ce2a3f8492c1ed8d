// services/log.ts: JSON lines for a pipeline, text lines for a terminal, levels, child bindings on every line.
import { describe, expect, it } from 'vitest';

import { createLogger } from '../services/log';

function collect(format: 'json' | 'text', level = 'info') {
  const lines: string[] = [];
  const log = createLogger({ format, level, destination: { write: (line: string) => void lines.push(line) } });
  return { log, lines };
}

describe('createLogger', () => {
  it('writes one JSON object per line with the level by name, the time, and a child logger\'s fields', () => {
    const { log, lines } = collect('json');
    const cmdLog = log.child({ component: 'service' }).child({ cmd: 'c-1', host: 'local', domain: 'web1' });
    cmdLog.warn({ subject: 'vmledger.cmd.start' }, 'event store unavailable');
    cmdLog.error({ err: new Error('disk on fire') }, 'handler threw');
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 'warn',
      name: 'vmledger',
      component: 'service',
      cmd: 'c-1',
      host: 'local',
      domain: 'web1',
      subject: 'vmledger.cmd.start',
      msg: 'event store unavailable',
    });
    expect(Date.parse(String(first.time))).not.toBeNaN();
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'error', cmd: 'c-1', err: { type: 'Error', message: 'disk on fire' } });
  });

  it('drops lines below its level', () => {
    const { log, lines } = collect('json', 'warn');
    log.info('not shown');
    log.debug('not shown either');
    log.warn('shown');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });

  it('on a terminal writes plain lines: component, level, message, then the other fields', () => {
    const { log, lines } = collect('text');
    log.child({ component: 'serve' }).info("serving 'vmledger'");
    log.child({ component: 'service', cmd: 'c-2', domain: 'db' }).warn('refused');
    expect(lines).toEqual(["vmledger serve info: serving 'vmledger'\n", 'vmledger service warn: refused {"cmd":"c-2","domain":"db"}\n']);
  });

  it('names a bad level', () => {
    expect(() => createLogger({ level: 'loud' })).toThrow(/log level must be one of trace, debug, info, warn, error, fatal, silent, got 'loud'/);
  });
});
