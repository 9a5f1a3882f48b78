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
    out = out.split(secret).join(MASK);
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret) out = out.split(escaped).join(MASK);
  }
  return out;
}

export function createLogger(options: LoggerOptions): Logger {
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 3);
  const usePretty = options.pretty ?? Boolean(process.stdout.isTTY);
  const target: { write(line: string): unknown } = usePretty
    ? loadPretty()({ colorize: true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname', customLevels: 'verbose:25,silly:5', useOnlyCustomProps: false, destination: options.destination ? (options.destination as never) : 1, sync: true })
    : (options.destination ?? process.stdout);
  const destination: DestinationStream = {
    write(line: string) {
      const masked = secrets.length ? maskSecrets(line, secrets) : line;
      target.write(masked);
      options.file?.write(masked);
    },
  };
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
