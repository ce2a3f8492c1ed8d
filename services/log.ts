// Logs of the long-running parts (the NATS command service, `vmledger serve`), through pino: one JSON object per
// line (`level`, `time`, `msg`, pid and hostname, and on every line about a command its `cmd`, `host` and
// `domain`, from a child logger) for a log pipeline, or plain text lines for someone watching a terminal.
//
//   const log = createLogger();                       // stderr; text on a terminal, JSON otherwise
//   log.warn({ subject }, 'event store unavailable'); // {"level":"warn",...,"subject":"…","msg":"event store unavailable"}
//   const cmdLog = log.child({ cmd: commandId, host, domain });
//
// The level comes from $VMLEDGER_LOG_LEVEL (trace, debug, info, warn, error, fatal, silent), default info.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Where the lines go. Default: stderr, written synchronously (a kill -9 right after loses no line). */
  destination?: DestinationStream;
  /** JSON lines, or text (`vmledger service warn: message {"cmd":…}`). Default: text when stderr is a terminal. */
  format?: 'json' | 'text';
  /** The lowest level written. Default $VMLEDGER_LOG_LEVEL, else info. */
  level?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? (process.env.VMLEDGER_LOG_LEVEL?.trim() || 'info');
  if (!(level in pino.levels.values) && level !== 'silent') {
    throw new TypeError(`log level must be one of ${[...Object.keys(pino.levels.values), 'silent'].join(', ')}, got '${level}'`);
  }
  const format = options.format ?? (options.destination === undefined && process.stderr.isTTY ? 'text' : 'json');
  const out = options.destination ?? pino.destination({ dest: 2, sync: true });
  return pino(
    {
      name: 'vmledger',
      level,
      // Level names, not pino's numbers: readable in a raw line and in `jq 'select(.level == "error")'`.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    format === 'text' ? textLines(out) : out,
  );
}

/**
 * Turns pino's JSON lines into `vmledger <component> <level>: <msg> {other fields}` (time, pid and hostname left
 * out: a terminal is one process, now).
 */
function textLines(out: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      const { level, msg, component, time: _time, pid: _pid, hostname: _hostname, name: _name, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
      out.write(`vmledger${component === undefined ? '' : ` ${String(component)}`} ${String(level)}: ${String(msg ?? '')}${extra}\n`);
    },
  };
}
