// Turns the payload of a task-start message into a task id (plus an optional correlation id), or a typed reason
// why it cannot be used. Pure: no I/O, never throws on any input, so the subscriber only has to log, count and
// (for the JSON form) answer on the result topic.

export interface TaskStartCommand {
  /** The task id exactly as received, after trimming surrounding whitespace (letter case is kept). */
  taskId: string;
  /** Present only when the JSON form carried a string correlationId (kept verbatim). */
  correlationId?: string;
  form: 'plain' | 'json';
}

export type TaskStartRejectReason = 'empty' | 'invalid_uuid' | 'invalid_json' | 'missing_task_id' | 'not_utf8' | 'correlation_id_too_long';

/** Longest correlationId accepted (characters); it is echoed in the result and kept for deduplication. */
export const MAX_CORRELATION_ID = 200;

export interface TaskStartRejection {
  reason: TaskStartRejectReason;
  /** One line meant for an administrator reading the log; echoed input is quoted and shortened. */
  detail: string;
  /** Kept whenever the JSON form carried one, so the caller can still answer on the result topic. */
  correlationId?: string;
  /** The trimmed task id when one was found but refused. */
  taskId?: string;
}

export type TaskStartParseResult = { ok: true; value: TaskStartCommand } | { ok: false; error: TaskStartRejection };

/** Echoed input longer than this is cut in log details. */
const MAX_ECHO = 100;

// The set accepted by the `uuid` package's `validate`: RFC 9562 layout with version 1-8 and variant 10xx,
// plus the nil and max UUIDs. Case-insensitive, no braces, no urn: prefix.
const UUID_RE =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|0{8}-0{4}-0{4}-0{4}-0{12}|f{8}-f{4}-f{4}-f{4}-f{12})$/i;

export function isValidUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** Quotes (JSON-style, so control characters stay visible in a log line) and shortens a piece of input. */
function quoteForLog(s: string): string {
  const chars = Array.from(s);
  const cut = chars.length > MAX_ECHO ? `${chars.slice(0, MAX_ECHO).join('')}…` : s;
  return JSON.stringify(cut);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(payload: Buffer | string): string | undefined {
  if (typeof payload === 'string') return payload;
  try {
    return utf8.decode(payload);
  } catch {
    return undefined;
  }
}

function reject(reason: TaskStartRejectReason, detail: string, extra: { correlationId?: string; taskId?: string } = {}): TaskStartParseResult {
  const error: TaskStartRejection = { reason, detail };
  if (extra.correlationId !== undefined) error.correlationId = extra.correlationId;
  if (extra.taskId !== undefined) error.taskId = extra.taskId;
  return { ok: false, error };
}

/**
 * Accepted forms:
 * - plain: the whole payload (trimmed) is the task id;
 * - JSON: a payload starting with `{` (or `[`, so a stray array gets a clear message instead of "not a UUID") is
 *   parsed as JSON and must be an object with a string `taskId`; `correlationId` is kept when it is a string and
 *   ignored otherwise; other keys are ignored.
 */
export function parseTaskStartCommand(payload: Buffer | string): TaskStartParseResult {
  const text = decode(payload);
  if (text === undefined) return reject('not_utf8', 'payload is not valid UTF-8 text');

  const trimmed = text.trim();
  if (trimmed === '') return reject('empty', 'payload is empty; expected a task id');

  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return parseJsonForm(trimmed);

  if (!isValidUuid(trimmed)) {
    return reject('invalid_uuid', `task id ${quoteForLog(trimmed)} is not a valid UUID`, { taskId: trimmed });
  }
  return { ok: true, value: { taskId: trimmed, form: 'plain' } };
}

function parseJsonForm(text: string): TaskStartParseResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    // The engine's message may quote a raw slice of the input; keep the log line on one line.
    const why = (err instanceof Error ? err.message : String(err)).replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, ' ');
    return reject('invalid_json', `payload ${quoteForLog(text)} is not valid JSON (${why})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return reject('invalid_json', `JSON payload must be an object like {"taskId": "<uuid>"}, got ${Array.isArray(body) ? 'an array' : typeof body}`);
  }

  const obj = body as Record<string, unknown>;
  const rawCorrelation = Object.hasOwn(obj, 'correlationId') ? obj['correlationId'] : undefined;
  const correlationId = typeof rawCorrelation === 'string' ? rawCorrelation : undefined;
  if (correlationId !== undefined && correlationId.length > MAX_CORRELATION_ID) {
    // Not echoed: the answer would carry the whole oversized id back.
    return reject('correlation_id_too_long', `"correlationId" has ${correlationId.length} characters; at most ${MAX_CORRELATION_ID} are accepted`);
  }
  const extra = correlationId === undefined ? {} : { correlationId };

  const rawTaskId = Object.hasOwn(obj, 'taskId') ? obj['taskId'] : undefined;
  if (typeof rawTaskId !== 'string') {
    const what = rawTaskId === undefined ? 'has no "taskId"' : `has a "taskId" that is not a string (${rawTaskId === null ? 'null' : typeof rawTaskId})`;
    return reject('missing_task_id', `JSON payload ${what}`, extra);
  }
  const taskId = rawTaskId.trim();
  if (taskId === '') return reject('missing_task_id', 'JSON payload has an empty "taskId"', extra);
  if (!isValidUuid(taskId)) {
    return reject('invalid_uuid', `task id ${quoteForLog(taskId)} is not a valid UUID`, { ...extra, taskId });
  }

  const value: TaskStartCommand = { taskId, form: 'json' };
  if (correlationId !== undefined) value.correlationId = correlationId;
  return { ok: true, value };
}
