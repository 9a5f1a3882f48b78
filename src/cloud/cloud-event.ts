// Recognises a failed Qlik Cloud app reload in a CloudEvent forwarded over MQTT, for the configured tenant only.
// Pure: no I/O, never throws on any input; everything that is not a failed reload of our tenant comes back as a
// typed reason so the subscriber can log and count it.
//
// Two event types and two attribute spellings are accepted (Qlik's event catalogue on qlik.dev):
// - `com.qlik.v1.app.reload.finished` (source com.qlik/engine). Webhooks deliver it in CloudEvents 0.1 names:
//   `eventId`, `eventType`, `eventTime`, `extensions.{tenantId, userId, ownerId, topLevelResourceId}` (the app id);
//   `data.{name, status ("ok" | "error"), reloadId, duration, errors[]}`.
// - `com.qlik.v1.reload.finished` (source com.qlik/reloads), CloudEvents 1.0: `id`, `type`, `time`, and the Qlik
//   extension attributes at the top level in lower case (`tenantid`, `userid`, `ownerid`, `toplevelresourceid`);
//   `data.{id (the reload id), appId, userId, tenantId, status ("SUCCEEDED" | "FAILED" | "CANCELED" |
//   "EXCEEDED_LIMIT"), succeeded, errorCode, errorMessage, durationSeconds}`; it carries no app name.
// Either spelling is read for either type, since the same event reaches us both ways depending on the sender.

export const APP_RELOAD_FINISHED = 'com.qlik.v1.app.reload.finished';
export const RELOAD_FINISHED = 'com.qlik.v1.reload.finished';

export interface CloudReloadEvent {
  eventId: string;
  eventType: string;
  /** `eventTime` / `time` as sent; '' when absent. */
  eventTime: string;
  tenantId: string;
  appId: string;
  /** `data.name`; '' when absent (always so for com.qlik.v1.reload.finished). */
  appName: string;
  /** `data.reloadId`, else `data.id`; '' when absent. */
  reloadId: string;
  /** `data.status` as sent (original case); 'FAILED' when only `data.succeeded: false` was given. */
  status: string;
  userId: string;
  ownerId: string;
  /** `data.duration` (string as sent, a number as its decimal text), else `PT<data.durationSeconds>S`, else ''. */
  duration: string;
  /** `data.errors` when it is an array, else `[{code, message}]` built from `data.errorCode`/`errorMessage`, else []. */
  errors: unknown[];
  /** The whole parsed event, for full alert payloads. */
  raw: Record<string, unknown>;
}

export type CloudEventIgnoreReason =
  | 'not_json'
  | 'not_object'
  | 'wrong_topic'
  | 'other_event_type'
  | 'other_tenant'
  | 'not_failed'
  | 'missing_field';

export interface CloudEventFilter {
  /** Topic prefix (plain string prefix, no MQTT wildcards) of the forwarded reload events. */
  appReloadTopic: string;
  /** Compared exactly (tenant ids are case-sensitive). */
  tenantId: string;
}

export type CloudEventParseResult =
  | { ok: true; value: CloudReloadEvent }
  | { ok: false; error: { reason: CloudEventIgnoreReason; detail: string } };

// Case-insensitive: the older event says "error", the newer one "FAILED"; EXCEEDED_LIMIT means the reload did not
// complete either. "CANCELED" is a deliberate stop by a person, not a failure.
const FAILED_STATUSES = new Set(['error', 'failed', 'exceeded_limit']);

const MAX_ECHO = 100;

const utf8 = new TextDecoder('utf-8', { fatal: true });

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function quote(s: string): string {
  const chars = Array.from(s);
  return JSON.stringify(chars.length > MAX_ECHO ? `${chars.slice(0, MAX_ECHO).join('')}…` : s);
}

function ignore(reason: CloudEventIgnoreReason, detail: string): CloudEventParseResult {
  return { ok: false, error: { reason, detail } };
}

/** Own property only, so keys such as "__proto__" or "constructor" in hostile input read as absent. */
function own(o: unknown, key: string): unknown {
  return isObj(o) && Object.hasOwn(o, key) ? o[key] : undefined;
}

/** The first non-empty string among the candidates. */
function firstString(...candidates: unknown[]): string | undefined {
  for (const c of candidates) if (typeof c === 'string' && c !== '') return c;
  return undefined;
}

export function parseCloudEvent(topic: string, payload: Buffer | string, filter: CloudEventFilter): CloudEventParseResult {
  if (!topic.startsWith(filter.appReloadTopic)) {
    return ignore('wrong_topic', `topic ${quote(topic)} does not start with ${quote(filter.appReloadTopic)}`);
  }

  let text: string;
  if (typeof payload === 'string') {
    text = payload.startsWith('\uFEFF') ? payload.slice(1) : payload;
  } else {
    try {
      text = utf8.decode(payload);
    } catch {
      return ignore('not_json', 'payload is not valid UTF-8 text');
    }
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return ignore('not_json', `payload ${quote(text)} is not valid JSON`);
  }
  if (!isObj(parsed)) {
    const kind = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed;
    return ignore('not_object', `payload is JSON but ${kind}, not an event object`);
  }
  const ev = parsed;
  const ext = own(ev, 'extensions');
  const data = own(ev, 'data');

  const eventType = firstString(own(ev, 'eventType'), own(ev, 'type'));
  if (eventType !== APP_RELOAD_FINISHED && eventType !== RELOAD_FINISHED) {
    const shown = eventType === undefined ? 'no event type (eventType or type)' : `event type ${quote(eventType)}`;
    return ignore('other_event_type', `${shown}; only ${APP_RELOAD_FINISHED} and ${RELOAD_FINISHED} are handled`);
  }

  const tenantId = firstString(
    own(ext, 'tenantId'),
    own(ev, 'tenantid'),
    own(ev, 'tenantId'),
    own(ext, 'tenantid'),
    own(data, 'tenantId'),
  );
  if (tenantId === undefined) {
    return ignore('other_tenant', 'event carries no tenant id (extensions.tenantId or tenantid)');
  }
  if (tenantId !== filter.tenantId) {
    return ignore('other_tenant', `tenant ${quote(tenantId)} is not the configured tenant`);
  }

  const rawStatus = own(data, 'status');
  let status: string | undefined = typeof rawStatus === 'string' && rawStatus !== '' ? rawStatus : undefined;
  if (status === undefined && own(data, 'succeeded') === false) status = 'FAILED';
  if (status === undefined) return ignore('not_failed', 'event has no data.status');
  if (!FAILED_STATUSES.has(status.toLowerCase())) {
    return ignore('not_failed', `reload status ${quote(status)} is not a failure`);
  }

  const eventId = firstString(own(ev, 'eventId'), own(ev, 'id'));
  if (eventId === undefined) return ignore('missing_field', 'failed-reload event has no event id (eventId or id)');
  const appId = firstString(
    own(data, 'appId'),
    own(ext, 'topLevelResourceId'),
    own(ev, 'toplevelresourceid'),
    own(ev, 'topLevelResourceId'),
    own(ext, 'toplevelresourceid'),
  );
  if (appId === undefined) {
    return ignore('missing_field', `failed-reload event ${quote(eventId)} has no app id (extensions.topLevelResourceId, toplevelresourceid or data.appId)`);
  }

  return {
    ok: true,
    value: {
      eventId,
      eventType,
      eventTime: firstString(own(ev, 'eventTime'), own(ev, 'time')) ?? '',
      tenantId,
      appId,
      appName: firstString(own(data, 'name')) ?? '',
      reloadId: firstString(own(data, 'reloadId'), own(data, 'id')) ?? '',
      status,
      userId: firstString(own(ext, 'userId'), own(ev, 'userid'), own(ev, 'userId'), own(ext, 'userid'), own(data, 'userId')) ?? '',
      ownerId: firstString(own(ext, 'ownerId'), own(ev, 'ownerid'), own(ev, 'ownerId'), own(ext, 'ownerid')) ?? '',
      duration: durationOf(data),
      errors: errorsOf(data),
      raw: ev,
    },
  };
}

function durationOf(data: unknown): string {
  const d = own(data, 'duration');
  if (typeof d === 'string') return d;
  if (typeof d === 'number' && Number.isFinite(d)) return String(d);
  const secs = own(data, 'durationSeconds');
  if (typeof secs === 'number' && Number.isFinite(secs)) return `PT${secs}S`;
  return '';
}

function errorsOf(data: unknown): unknown[] {
  const errors = own(data, 'errors');
  if (Array.isArray(errors)) return errors;
  const code = own(data, 'errorCode');
  const message = own(data, 'errorMessage');
  if (typeof code !== 'string' && typeof message !== 'string') return [];
  const one: Record<string, string> = {};
  if (typeof code === 'string') one['code'] = code;
  if (typeof message === 'string') one['message'] = message;
  return [one];
}
