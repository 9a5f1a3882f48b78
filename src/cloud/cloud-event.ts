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
// The CloudEvents 1.0 name is read first: since November 2025 Qlik Cloud sends events that were not yet
// CloudEvents in a hybrid form carrying both spellings, and the legacy names (`eventType`,
// `extensions.tenantId`, …) are going away.

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

  const eventType = firstString(own(ev, 'type'), own(ev, 'eventType'));
  if (eventType !== APP_RELOAD_FINISHED && eventType !== RELOAD_FINISHED) {
    const shown = eventType === undefined ? 'no event type (eventType or type)' : `event type ${quote(eventType)}`;
    return ignore('other_event_type', `${shown}; only ${APP_RELOAD_FINISHED} and ${RELOAD_FINISHED} are handled`);
  }

  const tenantId = firstString(
    own(ev, 'tenantid'),
    own(ext, 'tenantId'),
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

  const eventId = firstString(own(ev, 'id'), own(ev, 'eventId'));
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
      eventTime: firstString(own(ev, 'time'), own(ev, 'eventTime')) ?? '',
      tenantId,
      appId,
      appName: firstString(own(data, 'name')) ?? '',
      reloadId: firstString(own(data, 'reloadId'), own(data, 'id')) ?? '',
      status,
      userId: firstString(own(ev, 'userid'), own(ext, 'userId'), own(ev, 'userId'), own(ext, 'userid'), own(data, 'userId')) ?? '',
      ownerId: firstString(own(ev, 'ownerid'), own(ext, 'ownerId'), own(ev, 'ownerId'), own(ext, 'ownerid')) ?? '',
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

// -------------------------------------------------------------------------------------------------
// Every finished reload (not only failures), from a webhook delivery or a reloads API record.

/** Reload statuses of the reloads API that mean the reload is over. */
export const FINISHED_RELOAD_STATUSES = ['SUCCEEDED', 'FAILED', 'CANCELED', 'EXCEEDED_LIMIT'] as const;

export interface FinishedReload {
  tenantId: string;
  appId: string;
  /** '' when the input does not say. */
  appName: string;
  /** '' when the input does not say. */
  reloadId: string;
  /** SUCCEEDED, FAILED, CANCELED or EXCEEDED_LIMIT (the older event's "ok" / "error" mapped). */
  status: string;
  /** FAILED or EXCEEDED_LIMIT. */
  failed: boolean;
  /** ISO time stamps as sent; '' when not known. */
  startTime: string;
  stopTime: string;
  /** Milliseconds; null when not known. */
  durationMs: number | null;
  /** The alert view of the same reload (for the existing failure alerts). */
  event: CloudReloadEvent;
}

export type FinishedReloadResult = { ok: true; value: FinishedReload } | { ok: false; error: { reason: CloudEventIgnoreReason; detail: string } };

function fail(reason: CloudEventIgnoreReason, detail: string): FinishedReloadResult {
  return { ok: false, error: { reason, detail } };
}

/** `ok` → SUCCEEDED, `error` → FAILED, anything else upper-cased. */
export function normaliseReloadStatus(status: string): string {
  const s = status.toLowerCase();
  if (s === 'ok') return 'SUCCEEDED';
  if (s === 'error') return 'FAILED';
  return status.toUpperCase();
}

/** An ISO 8601 duration such as `PT1M2.5S` (days and smaller; what the reloads API sends) → ms, else null. */
export function isoDurationMs(text: string): number | null {
  const m = /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text);
  if (!m || text === 'P' || text === 'PT') return null;
  const [d, h, min, sec] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v))) as [number, number, number, number];
  return Math.round((((d * 24 + h) * 60 + min) * 60 + sec) * 1000);
}

function timeMs(text: string): number | null {
  if (text === '') return null;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

function durationFrom(data: unknown, startTime: string, stopTime: string): number | null {
  const secs = own(data, 'durationSeconds');
  if (typeof secs === 'number' && Number.isFinite(secs) && secs >= 0) return Math.round(secs * 1000);
  const d = own(data, 'duration');
  if (typeof d === 'string') {
    const ms = isoDurationMs(d);
    if (ms !== null) return ms;
  }
  const a = timeMs(startTime);
  const b = timeMs(stopTime);
  return a !== null && b !== null && b >= a ? b - a : null;
}

function decodeObject(payload: Buffer | string): { ok: true; value: Obj } | { ok: false; error: { reason: CloudEventIgnoreReason; detail: string } } {
  let text: string;
  if (typeof payload === 'string') text = payload;
  else {
    try {
      text = utf8.decode(payload);
    } catch {
      return { ok: false, error: { reason: 'not_json', detail: 'payload is not valid UTF-8 text' } };
    }
  }
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: { reason: 'not_json', detail: `payload ${quote(text)} is not valid JSON` } };
  }
  if (!isObj(parsed)) {
    const kind = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed;
    return { ok: false, error: { reason: 'not_object', detail: `payload is JSON but ${kind}, not an event object` } };
  }
  return { ok: true, value: parsed };
}

/**
 * A reload-finished event as Qlik Cloud's webhooks deliver it: CloudEvents 1.0 (`specversion`, `id`,
 * `type`, `time`, `tenantid`, `data`), the hybrid form, or the legacy names. Any status; the caller
 * decides what a failure is. `tenantId` '' accepts any tenant.
 */
export function parseReloadFinishedEvent(payload: Buffer | string, tenantId: string): FinishedReloadResult {
  const decoded = decodeObject(payload);
  if (!decoded.ok) return decoded;
  const ev = decoded.value;
  const ext = own(ev, 'extensions');
  const data = own(ev, 'data');
  const eventType = firstString(own(ev, 'type'), own(ev, 'eventType'));
  if (eventType !== APP_RELOAD_FINISHED && eventType !== RELOAD_FINISHED) {
    const shown = eventType === undefined ? 'no event type (type or eventType)' : `event type ${quote(eventType)}`;
    return fail('other_event_type', `${shown}; only ${RELOAD_FINISHED} and ${APP_RELOAD_FINISHED} are handled`);
  }
  const tenant = firstString(own(ev, 'tenantid'), own(ext, 'tenantId'), own(ev, 'tenantId'), own(data, 'tenantId'));
  if (tenant === undefined) return fail('missing_field', 'event carries no tenant id (tenantid or extensions.tenantId)');
  if (tenantId !== '' && tenant !== tenantId) return fail('other_tenant', `tenant ${quote(tenant)} is not this tenant's id`);
  const eventId = firstString(own(ev, 'id'), own(ev, 'eventId'));
  if (eventId === undefined) return fail('missing_field', 'event has no id (id or eventId)');
  const appId = firstString(own(data, 'appId'), own(ev, 'toplevelresourceid'), own(ext, 'topLevelResourceId'), own(ev, 'topLevelResourceId'));
  if (appId === undefined) return fail('missing_field', `event ${quote(eventId)} has no app id (data.appId or toplevelresourceid)`);
  const rawStatus = own(data, 'status');
  let status = typeof rawStatus === 'string' && rawStatus !== '' ? rawStatus : undefined;
  if (status === undefined && typeof own(data, 'succeeded') === 'boolean') status = own(data, 'succeeded') ? 'SUCCEEDED' : 'FAILED';
  if (status === undefined) return fail('missing_field', `event ${quote(eventId)} has no data.status`);
  const eventTime = firstString(own(ev, 'time'), own(ev, 'eventTime')) ?? '';
  // com.qlik.v1.reload.finished: data.id is the reload id; the older event names it data.reloadId.
  const reloadId = firstString(own(data, 'reloadId'), own(data, 'id')) ?? '';
  const normalised = normaliseReloadStatus(status);
  const startTime = firstString(own(data, 'startTime')) ?? '';
  const stopTime = firstString(own(data, 'endTime'), own(data, 'stopTime')) ?? eventTime;
  const event: CloudReloadEvent = {
    eventId,
    eventType,
    eventTime,
    tenantId: tenant,
    appId,
    appName: firstString(own(data, 'name'), own(data, 'appName')) ?? '',
    reloadId,
    status,
    userId: firstString(own(ev, 'userid'), own(ext, 'userId'), own(ev, 'userId'), own(data, 'userId')) ?? '',
    ownerId: firstString(own(ev, 'ownerid'), own(ext, 'ownerId'), own(ev, 'ownerId')) ?? '',
    duration: durationOf(data),
    errors: errorsOf(data),
    raw: ev,
  };
  return {
    ok: true,
    value: {
      tenantId: tenant,
      appId,
      appName: event.appName,
      reloadId,
      status: normalised,
      failed: FAILED_STATUSES.has(status.toLowerCase()),
      startTime,
      stopTime,
      durationMs: durationFrom(data, startTime, stopTime),
      event,
    },
  };
}

/**
 * A record of `GET /api/v1/reloads` (id, appId, tenantId, userId, type, status, errorCode, errorMessage,
 * partial, creationTime, startTime, endTime, duration, …). Only finished reloads are accepted; the alert
 * view names it `eventType` com.qlik.v1.reload.finished with an empty `eventId` (no event was received).
 */
export function parseReloadRecord(payload: Buffer | string, tenantId: string): FinishedReloadResult {
  const decoded = decodeObject(payload);
  if (!decoded.ok) return decoded;
  const r = decoded.value;
  const reloadId = firstString(own(r, 'id'));
  if (reloadId === undefined) return fail('missing_field', 'reload record has no id');
  const appId = firstString(own(r, 'appId'));
  if (appId === undefined) return fail('missing_field', `reload ${quote(reloadId)} has no appId`);
  const tenant = firstString(own(r, 'tenantId')) ?? tenantId;
  if (tenant === '') return fail('missing_field', `reload ${quote(reloadId)} has no tenantId`);
  if (tenantId !== '' && tenant !== tenantId) return fail('other_tenant', `tenant ${quote(tenant)} is not this tenant's id`);
  const status = firstString(own(r, 'status'))?.toUpperCase();
  if (status === undefined || !(FINISHED_RELOAD_STATUSES as readonly string[]).includes(status)) {
    return fail('not_failed', `reload ${quote(reloadId)} has status ${quote(status ?? '')}, not a finished one`);
  }
  const startTime = firstString(own(r, 'startTime')) ?? '';
  const stopTime = firstString(own(r, 'endTime')) ?? '';
  const failed = FAILED_STATUSES.has(status.toLowerCase());
  const event: CloudReloadEvent = {
    eventId: '',
    eventType: RELOAD_FINISHED,
    eventTime: stopTime,
    tenantId: tenant,
    appId,
    appName: '',
    reloadId,
    status,
    userId: firstString(own(r, 'userId')) ?? '',
    ownerId: '',
    duration: firstString(own(r, 'duration')) ?? '',
    errors: failed ? errorsOf(r) : [],
    raw: r,
  };
  return {
    ok: true,
    value: { tenantId: tenant, appId, appName: '', reloadId, status, failed, startTime, stopTime, durationMs: durationFrom(r, startTime, stopTime), event },
  };
}
