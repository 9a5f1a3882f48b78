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

/** Percent-encoding of every byte of `s` outside `keep`, with upper- or lower-case hex digits. */
function percentEncode(s: string, keep: RegExp, lower: boolean): string {
  let out = '';
  for (const ch of s) {
    if (keep.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) {
      const hex = byte.toString(16).toUpperCase().padStart(2, '0');
      out += `%${lower ? hex.toLowerCase() : hex}`;
    }
  }
  return out;
}

/**
 * Every form in which a secret can reach a log line: as is; JSON-escaped up to three times (JSON texts
 * logged as string fields); percent-encoded as a URL or form encoder writes it (a token in a query string),
 * with either case of hex digits and spaces as `+` or `%20`; base64 and base64url (a secret inside a
 * header or a Basic credential `user:password`). Longest first, so a longer form is masked whole.
 */
export function secretForms(secret: string): string[] {
  if (!secret) return [];
  const forms = new Set<string>([secret]);
  // A JSON text logged as a string field is escaped once more by the line itself: up to three levels.
  let escaped = secret;
  for (let level = 0; level < 3; level++) forms.add((escaped = JSON.stringify(escaped).slice(1, -1)));
  for (const lower of [false, true]) {
    forms.add(percentEncode(secret, /[A-Za-z0-9\-_.!~*'()]/, lower)); // encodeURIComponent
    forms.add(percentEncode(secret, /[A-Za-z0-9\-_.~]/, lower)); // RFC 3986 unreserved only
    forms.add(percentEncode(secret, /[A-Za-z0-9\-_.!~*'();/?:@&=+$,#]/, lower)); // encodeURI
    forms.add(percentEncode(secret, /[A-Za-z0-9\-_.* ]/, lower).replace(/ /g, '+')); // form encoding (URLSearchParams)
  }
  const bytes = Buffer.from(secret, 'utf8');
  forms.add(bytes.toString('base64'));
  forms.add(bytes.toString('base64').replace(/=+$/, ''));
  forms.add(bytes.toString('base64url'));
  return [...forms].filter((f) => f.length >= 3).sort((a, b) => b.length - a.length);
}

export function maskSecrets(text: string, secrets: readonly string[]): string {
  const masker = secretMasker(secrets);
  return masker ? masker(text) : text;
}

/**
 * One pass over a line for every form of every secret: a regular expression of the forms, longest
 * first so the longest form at a position wins. (Measured: faster than one `includes` per form.)
 */
function secretMasker(secrets: readonly string[]): ((text: string) => string) | null {
  const forms = [...new Set(secrets.flatMap(secretForms))].sort((a, b) => b.length - a.length);
  if (forms.length === 0) return null;
  const pattern = new RegExp(forms.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  return (text) => text.replace(pattern, MASK);
}

export function createLogger(options: LoggerOptions): Logger {
  const masker = secretMasker((options.secrets ?? []).filter((s) => s.length >= 3));
  const usePretty = options.pretty ?? Boolean(process.stdout.isTTY);
  // On a terminal every message says what matters in its text; the structured fields (kept in the
  // JSON lines and the log file) are shown, on one line, only from level verbose down.
  const showFields = options.level === 'verbose' || options.level === 'debug' || options.level === 'silly';
  const target: { write(line: string): unknown } = usePretty
    ? loadPretty()({ colorize: true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,name', hideObject: !showFields, singleLine: showFields, customLevels: 'verbose:25,silly:5', useOnlyCustomProps: false, destination: options.destination ? (options.destination as never) : 1, sync: true })
    : (options.destination ?? process.stdout);
  const emit = (text: string) => {
    const masked = masker ? masker(text) : text;
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
