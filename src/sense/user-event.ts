// Turns one UDP datagram from the Sense proxy audit log appender (user session start/stop,
// connection open/close) into a typed UserEvent, or a typed rejection. Pure: no I/O,
// never throws on any input.
import { decodeDatagramText, isBlank, quoteForDetail, splitKeepingLastField, type Result } from './datagram.ts';
import { sanitizeField } from './sanitize.ts';

export type UserCommand = 'Start session' | 'Stop session' | 'Open connection' | 'Close connection';

export interface UserEvent {
  messageType: 'session' | 'connection';
  host: string;
  command: UserCommand;
  userDirectory: string;
  userId: string;
  origin: string;
  context: string;
  message: string;
  /** Set when the context is `/app/<guid>`, alone or followed by `/`, `?` or `#`. */
  appId?: string;
}

export type UserEventRejectionReason = 'not_utf8' | 'empty' | 'unknown_type' | 'field_count' | 'unknown_command';

export interface UserEventRejection {
  reason: UserEventRejectionReason;
  detail: string;
}

/** type;host;command;userDirectory;userId;origin;context;message */
export const USER_EVENT_FIELD_COUNT = 8;
/** host;command;userDirectory;userId (the appender shipped with Butler 2–4) */
export const LEGACY_USER_EVENT_FIELD_COUNT = 4;

// `/proxy-session/` and `/proxy-connection/` are what the appender file in Butler's own
// documentation sends; they carry the same 8 fields, so they are accepted as aliases.
const MESSAGE_TYPES: ReadonlyMap<string, UserEvent['messageType']> = new Map<string, UserEvent['messageType']>([
  ['/qseow-proxy-session/', 'session'],
  ['/qseow-proxy-connection/', 'connection'],
  ['/proxy-session/', 'session'],
  ['/proxy-connection/', 'connection'],
]);

const COMMANDS: ReadonlyMap<string, { command: UserCommand; messageType: UserEvent['messageType'] }> = new Map([
  ['start session', { command: 'Start session', messageType: 'session' }],
  ['stop session', { command: 'Stop session', messageType: 'session' }],
  ['open connection', { command: 'Open connection', messageType: 'connection' }],
  ['close connection', { command: 'Close connection', messageType: 'connection' }],
] as const);

const APP_CONTEXT = /^\/app\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=$|[/?#])/i;

/** The app id in a proxy context such as `/app/<guid>` or `/app/<guid>/sheet/…`, as written (case kept). */
export function appIdFromContext(context: string): string | undefined {
  return APP_CONTEXT.exec(context)?.[1];
}

/**
 * Parses one proxy log-appender datagram, in either form:
 * - `/qseow-proxy-session/;host;command;userDir;userId;origin;context;message` (or
 *   `/qseow-proxy-connection/;…`); the message may contain `;`, everything after the seventh
 *   separator is the message; messageType comes from the type field;
 * - the older `host;command;userDir;userId` (exactly 4 fields); messageType comes from the
 *   command, origin/context/message are empty.
 * A field 0 that starts with `/` is a message type (unknown ones are refused as unknown_type);
 * anything else is read as the older form.
 *
 * Commands are the four fixed strings the proxy writes, compared case-insensitively with nothing
 * trimmed; the event carries the canonical spelling. The type field is compared case-insensitively
 * after trimming spaces. Every field is sanitised (control characters deleted, cut to 500), as
 * for task datagrams; the whole datagram is not trimmed.
 */
export function parseUserEvent(input: Buffer | string): Result<UserEvent, UserEventRejection> {
  const decoded = decodeDatagramText(input);
  if (!decoded.ok) return decoded;
  const text = decoded.value;
  if (isBlank(text)) return reject('empty', 'datagram is empty');

  const fieldCount = text.split(';').length;
  const firstSeparator = text.indexOf(';');
  const typeField = sanitizeField(firstSeparator === -1 ? text : text.substring(0, firstSeparator)).trim();

  if (typeField.startsWith('/')) {
    const messageType = MESSAGE_TYPES.get(typeField.toLowerCase());
    if (messageType === undefined) return reject('unknown_type', `unknown message type ${quoteForDetail(typeField)}`);
    const raw = splitKeepingLastField(text, USER_EVENT_FIELD_COUNT);
    if (raw === undefined) return reject('field_count', `expected ${USER_EVENT_FIELD_COUNT} fields, got ${fieldCount}`);
    const f = raw.map(sanitizeField);
    const found = COMMANDS.get((f[2] ?? '').toLowerCase());
    if (found === undefined) return reject('unknown_command', `unknown command ${quoteForDetail(f[2] ?? '')}`);
    return accept({
      messageType,
      host: f[1] ?? '',
      command: found.command,
      userDirectory: f[3] ?? '',
      userId: f[4] ?? '',
      origin: f[5] ?? '',
      context: f[6] ?? '',
      message: f[7] ?? '',
    });
  }

  if (fieldCount !== LEGACY_USER_EVENT_FIELD_COUNT) {
    return reject(
      'field_count',
      `expected ${LEGACY_USER_EVENT_FIELD_COUNT} fields (host;command;userDirectory;userId) or a /qseow-proxy-…/ type, got ${fieldCount}`,
    );
  }
  const f = text.split(';').map(sanitizeField);
  const found = COMMANDS.get((f[1] ?? '').toLowerCase());
  if (found === undefined) return reject('unknown_command', `unknown command ${quoteForDetail(f[1] ?? '')}`);
  return accept({
    messageType: found.messageType,
    host: f[0] ?? '',
    command: found.command,
    userDirectory: f[2] ?? '',
    userId: f[3] ?? '',
    origin: '',
    context: '',
    message: '',
  });
}

function accept(event: Omit<UserEvent, 'appId'>): { ok: true; value: UserEvent } {
  const appId = appIdFromContext(event.context);
  return { ok: true, value: appId === undefined ? event : { ...event, appId } };
}

function reject(reason: UserEventRejectionReason, detail: string): { ok: false; error: UserEventRejection } {
  return { ok: false, error: { reason, detail } };
}
