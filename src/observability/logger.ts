// Logging for every part: pino, JSON when stdout is not a terminal, human-readable when it is.
// Secrets are masked on the serialised line, so no code path (message text, error objects,
// nested fields) can leak a configured password, token or key.
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';
import { createRequire } from 'node:module';

export type Logger = PinoLogger<'verbose' | 'silly'>;

/** Butler's level names, lowest to highest severity mapped to pino numbers. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'verbose', 'debug', 'silly'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const CUSTOM_LEVELS = { verbose: 25, silly: 5 } as const;

export interface LoggerOptions {
  level: LogLevel;
  /** Strings that must never appear in output (passwords, tokens, key material). */
  secrets?: readonly string[];
  /** Defaults to process.stdout.isTTY. */
  pretty?: boolean;
  /** Where lines go; defaults to stdout. Tests pass their own stream. */
  destination?: { write(line: string): unknown };
  /** A second destination that always gets the JSON lines (the log file), masked the same way. */
  file?: { write(line: string): unknown };
}

const MASK = '***';

// pino-pretty is only needed on a terminal; loaded then, so a service (stdout not a TTY) does not carry it.
const requireOptional = createRequire(import.meta.url);
const loadPretty = () => requireOptional('pino-pretty') as typeof import('pino-pretty');

export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    if (out.includes(secret)) out = out.split(secret).join(MASK);
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret && out.includes(escaped)) out = out.split(escaped).join(MASK);
  }
  return out;
}

export function createLogger(options: LoggerOptions): Logger {
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 3);
  const usePretty = options.pretty ?? Boolean(process.stdout.isTTY);
  // On a terminal every message says what matters in its text; the structured fields (kept in the
  // JSON lines and the log file) are shown, on one line, only from level verbose down.
  const showFields = options.level === 'verbose' || options.level === 'debug' || options.level === 'silly';
  const target: { write(line: string): unknown } = usePretty
    ? loadPretty()({ colorize: true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,name', hideObject: !showFields, singleLine: showFields, customLevels: 'verbose:25,silly:5', useOnlyCustomProps: false, destination: options.destination ? (options.destination as never) : 1, sync: true })
    : (options.destination ?? process.stdout);
  const emit = (text: string) => {
    const masked = secrets.length ? maskSecrets(text, secrets) : text;
    target.write(masked);
    options.file?.write(masked);
  };
  // JSON lines for stdout and the log file are gathered for one turn of the event loop and written
  // with one system call: a storm of alerts logs a line per alert, and a write per line was about 6%
  // of the bridge's CPU time (bench/storm.ts). They are written at the end of the turn and before the
  // process exits, so only a SIGKILL can lose the lines of the turn it interrupts.
  const destination: DestinationStream = usePretty || options.destination ? { write: emit } : turnBuffered(emit);
  return pino<'verbose' | 'silly'>(
    {
      level: options.level,
      customLevels: CUSTOM_LEVELS,
      base: { name: 'butler-mqtt' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger that writes nothing; for unit tests of parts that require one. */
export function silentLogger(): Logger {
  return pino<'verbose' | 'silly'>({ level: 'silent', customLevels: CUSTOM_LEVELS });
}

const flushOnExit = new Set<() => void>();

/** Collects lines until the check phase of this turn of the event loop (or process exit), then writes them as one. */
function turnBuffered(emit: (text: string) => void): DestinationStream {
  let lines: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (lines.length === 0) return;
    const text = lines.length === 1 ? (lines[0] as string) : lines.join('');
    lines = [];
    emit(text);
  };
  flushOnExit.add(flush);
  if (flushOnExit.size === 1) process.once('exit', () => flushOnExit.forEach((f) => f()));
  return {
    write(line: string) {
      lines.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    // pino's logger.flush() calls this: what is gathered is written now (before the log file closes).
    flush(cb?: (err?: Error) => void) {
      flush();
      cb?.();
    },
  } as DestinationStream;
}
