// Turns one UDP datagram from the Sense scheduler log appender into a typed SchedulerEvent, or a
// typed rejection saying why not. Pure: no I/O, no clock, never throws
// on any input, so the listener can count rejections by reason and move on.
import { isUtf8 } from 'node:buffer';
import { sanitizeField } from './sanitize.ts';

export type SchedulerEventType = 'failed' | 'aborted' | 'success' | 'distribute' | 'engine-reload-failed';

export interface SchedulerEvent {
  type: SchedulerEventType;
  /** Field 0 as received (case kept), sanitised like every other field, e.g. '/scheduler-reload-failed/'. */
  rawType: string;
  hostName: string;
  taskName: string;
  appName: string;
  user: string;
  taskId: string;
  appId: string;
  logTimeStamp: string;
  logLevel: string;
  executionId: string;
  logMessage: string;
  /** Every sanitised field, field 0 included, after the trailing message was re-joined. */
  fields: string[];
}

export type RejectionReason = 'not_utf8' | 'unknown_type' | 'field_count' | 'invalid_task_id' | 'invalid_app_id' | 'empty';

export interface Rejection {
  reason: RejectionReason;
  /** Short human text for the log line, e.g. "expected 11 fields, got 9". */
  detail: string;
}

export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

/** Fields in the scheduler layout: type;host;taskName;appName;user;taskId;appId;logTimestamp;logLevel;executionId;message */
export const SCHEDULER_FIELD_COUNT = 11;
/** Fields in the engine layout: type;host;appId;sessionId;userDirectory;userId;logTimestamp;logLevel;message */
export const ENGINE_FIELD_COUNT = 9;

// Matched after lower-casing field 0. `/scheduler-task-success//` (double slash) is what Butler's
// own shipped appender XML sends, so it is accepted as a success alias.
const EVENT_TYPES: ReadonlyMap<string, SchedulerEventType> = new Map<string, SchedulerEventType>([
  ['/scheduler-reload-failed/', 'failed'],
  ['/scheduler-task-failed/', 'failed'],
  ['/scheduler-reloadtask-failed/', 'failed'],
  ['/scheduler-reload-aborted/', 'aborted'],
  ['/scheduler-task-aborted/', 'aborted'],
  ['/scheduler-reloadtask-success/', 'success'],
  ['/scheduler-task-success/', 'success'],
  ['/scheduler-task-success//', 'success'],
  ['/scheduler-distribute/', 'distribute'],
  ['/engine-reload-failed/', 'engine-reload-failed'],
]);

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** 8-4-4-4-12 hexadecimal digits, either case, nothing around them (no version/variant check). */
export function isGuid(s: string): boolean {
  return GUID.test(s);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Decodes a datagram as strict UTF-8. A leading byte-order mark is dropped (some Windows writers
 * add one). A string argument is taken as already decoded; it is refused only when it holds a
 * lone surrogate, which no UTF-8 byte sequence can produce.
 */
export function decodeDatagramText(input: Buffer | string): Result<string, { reason: 'not_utf8'; detail: string }> {
  let text: string;
  if (typeof input === 'string') {
    if (LONE_SURROGATE.test(input)) {
      return { ok: false, error: { reason: 'not_utf8', detail: 'text contains an unpaired UTF-16 surrogate' } };
    }
    text = input;
  } else {
    if (!isUtf8(input)) {
      return { ok: false, error: { reason: 'not_utf8', detail: `${input.length} bytes that are not valid UTF-8` } };
    }
    text = input.toString('utf8');
  }
  return { ok: true, value: text.startsWith('\ufeff') ? text.slice(1) : text };
}

/** True when nothing would be left after deleting control characters and surrounding whitespace. */
export function isBlank(text: string): boolean {
  return text.replace(/[\u0000-\u001f\u007f]/g, '').trim() === '';
}

/**
 * Splits on `;` into exactly `count` fields: everything from field `count - 1` on is the free-text
 * log message and keeps its own `;` characters. Returns undefined when there are fewer fields.
 */
export function splitKeepingLastField(text: string, count: number): string[] | undefined {
  const parts = text.split(';');
  if (parts.length < count) return undefined;
  if (parts.length === count) return parts;
  return [...parts.slice(0, count - 1), parts.slice(count - 1).join(';')];
}

/** Quotes a piece of untrusted input for a rejection detail, bounded so a log line stays short. */
export function quoteForDetail(s: string): string {
  const shown = s.length > 60 ? `${s.substring(0, 60)}…` : s;
  return JSON.stringify(shown);
}

/**
 * Parses one scheduler/engine log-appender datagram.
 *
 * Whitespace: the datagram as a whole is not trimmed, so field values stay byte-identical to what
 * Butler publishes. A trailing CR/LF (log4net lines may end with one) cannot invalidate an event:
 * every field is sanitised, which deletes CR, LF and TAB. Only the type field is compared after
 * trimming surrounding spaces, so ` /scheduler-reload-failed/` is recognised; rawType keeps them.
 *
 * Order of checks: UTF-8, empty, type, field count, task id, app id. Every field is sanitised
 * (control characters deleted, cut to 500) right after the split, and the GUID checks look at the
 * sanitised values, i.e. at exactly what would be published.
 */
export function parseDatagram(input: Buffer | string): Result<SchedulerEvent, Rejection> {
  const decoded = decodeDatagramText(input);
  if (!decoded.ok) return decoded;
  const text = decoded.value;
  if (isBlank(text)) return reject('empty', 'datagram is empty');

  const firstSeparator = text.indexOf(';');
  const rawType = sanitizeField(firstSeparator === -1 ? text : text.substring(0, firstSeparator));
  const type = EVENT_TYPES.get(rawType.trim().toLowerCase());
  if (type === undefined) return reject('unknown_type', `unknown message type ${quoteForDetail(rawType)}`);

  const fieldCount = text.split(';').length;
  let raw: string[] | undefined;
  if (type === 'engine-reload-failed') {
    if (fieldCount !== ENGINE_FIELD_COUNT) {
      return reject('field_count', `expected ${ENGINE_FIELD_COUNT} fields, got ${fieldCount}`);
    }
    raw = text.split(';');
  } else {
    raw = splitKeepingLastField(text, SCHEDULER_FIELD_COUNT);
    if (raw === undefined) return reject('field_count', `expected ${SCHEDULER_FIELD_COUNT} fields, got ${fieldCount}`);
  }
  const fields = raw.map(sanitizeField);
  const at = (i: number): string => fields[i] ?? '';

  const event: SchedulerEvent =
    type === 'engine-reload-failed'
      ? {
          // Engine layout: type;host;appId;sessionId;userDirectory;userId;timestamp;level;message.
          // It has no task, so only the fields with a scheduler counterpart are named.
          type,
          rawType,
          hostName: at(1),
          taskName: '',
          appName: '',
          user: at(4) === '' && at(5) === '' ? '' : `${at(4)}\\${at(5)}`,
          taskId: '',
          appId: at(2),
          logTimeStamp: at(6),
          logLevel: at(7),
          executionId: '',
          logMessage: at(8),
          fields,
        }
      : {
          type,
          rawType,
          hostName: at(1),
          taskName: at(2),
          appName: at(3),
          user: at(4),
          taskId: at(5),
          appId: at(6),
          logTimeStamp: at(7),
          logLevel: at(8),
          executionId: at(9),
          logMessage: at(10),
          fields,
        };

  if (event.taskId !== '' && !isGuid(event.taskId)) {
    return reject('invalid_task_id', `task id ${quoteForDetail(event.taskId)} is not a GUID`);
  }
  if (event.appId !== '' && !isGuid(event.appId)) {
    return reject('invalid_app_id', `app id ${quoteForDetail(event.appId)} is not a GUID`);
  }
  return { ok: true, value: event };
}

function reject(reason: RejectionReason, detail: string): { ok: false; error: Rejection } {
  return { ok: false, error: { reason, detail } };
}
