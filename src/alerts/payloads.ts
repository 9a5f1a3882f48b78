// Every payload whose bytes must match Butler's lives here (connect status, task alerts, services,
// license, and the session payloads; docs/messages.md shows each). Pure functions from typed inputs to the exact string that goes on the wire:
// key order matters, JSON is compact (JSON.stringify without spacing), no trailing newline.
import type { SchedulerEvent } from '../sense/datagram.ts';
import type { UserEvent } from '../sense/user-event.ts';

/** P1, published on each successful connect. */
export function connectedStatusPayload(host: string, port: number, clientId: string): string {
  return `Connected to MQTT broker ${host}:${port} with client ID ${clientId}`;
}

/** P5 / P7: just the task name (datagram field 2, already sanitised by the parser). */
export function taskBasicPayload(event: SchedulerEvent): string {
  return event.taskName;
}

/** Raw QRS objects as received: the single element of `task/full?filter=…` and `app/full?filter=…`. */
export interface TaskEnrichment {
  taskFull?: Record<string, unknown>;
  appFull?: Record<string, unknown>;
}

/**
 * P6. Keys: hostName, user, taskName, taskId, appName, appId, logTimeStamp, logLevel, executionId,
 * logMessage, qs_appTags, qs_appCustomProperties, qs_taskTags, qs_taskCustomProperties,
 * qs_taskMetadata, then `enrichmentError` only when one is given.
 *
 * When an object is missing from `enrichment` (QRS could not be asked), its lists are `[]` and its
 * metadata is `{}`: the same values Butler derives from an object without tags or custom
 * properties, so consumers parsing the payload see the usual types, and `enrichmentError` says why
 * they are empty.
 */
export function taskFailureFullPayload(event: SchedulerEvent, enrichment: TaskEnrichment, enrichmentError?: string): string {
  return `{${headMembers(event, enrichment)},"qs_taskMetadata":${sharedJson(enrichment.taskFull ?? {})}${errorMember(enrichmentError)}}`;
}

/** P8: as P6, with `qs_appMetadata` (the raw app/full object) just before `qs_taskMetadata`. */
export function taskAbortedFullPayload(event: SchedulerEvent, enrichment: TaskEnrichment, enrichmentError?: string): string {
  return `{${headMembers(event, enrichment)},"qs_appMetadata":${sharedJson(enrichment.appFull ?? {})},"qs_taskMetadata":${sharedJson(enrichment.taskFull ?? {})}${errorMember(enrichmentError)}}`;
}

// P6 and P8 are put together from member texts in one template: the bytes JSON.stringify gives for
// the whole object, with the large QRS objects copied once (when the text is written), not once per
// concatenation step.

/** The datagram and list fields of P6/P8 as JSON members, without the braces (never empty). */
function headMembers(event: SchedulerEvent, enrichment: TaskEnrichment): string {
  return JSON.stringify(fullPayloadHead(event, enrichment)).slice(1, -1);
}

/** `,"enrichmentError":"…"`, or nothing when QRS answered. */
function errorMember(enrichmentError: string | undefined): string {
  return enrichmentError === undefined ? '' : `,"enrichmentError":${JSON.stringify(enrichmentError)}`;
}

const sharedJsonText = new WeakMap<object, string>();

/**
 * JSON text of a QRS object. The QRS cache shares its answers frozen (src/sense/qrs-cache.ts), so
 * the text of one cannot change and is made once, not for every alert that embeds it (the task/full
 * object is most of a full message's bytes).
 */
function sharedJson(value: object): string {
  if (!Object.isFrozen(value)) return JSON.stringify(value);
  let text = sharedJsonText.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    sharedJsonText.set(value, text);
  }
  return text;
}


export interface ServiceState {
  host: string;
  serviceName: string;
  friendlyName: string;
  displayName: string;
  dependencies: string[];
  startType: string;
  exePath: string;
  status: 'RUNNING' | 'STOPPED';
}

/** P9 (service changed to STOPPED). Note serviceFriendlyName comes before serviceDisplayName here only. */
export function serviceStoppedPayload(s: ServiceState, prevStatus: string): string {
  return JSON.stringify({
    serviceHost: s.host,
    serviceName: s.serviceName,
    serviceFriendlyName: s.friendlyName,
    serviceDisplayName: s.displayName,
    serviceDependencies: s.dependencies,
    serviceStartType: s.startType,
    serviceExePath: s.exePath,
    serviceStatus: s.status,
    servicePrevStatus: prevStatus.toUpperCase(),
    serviceStatusChanged: true,
  });
}

/** P10 (service changed to RUNNING). */
export function serviceRunningPayload(s: ServiceState, prevStatus: string): string {
  return JSON.stringify({
    ...serviceStatusFields(s),
    servicePrevStatus: prevStatus.toUpperCase(),
    serviceStatusChanged: true,
  });
}

/** P11 (every check). */
export function serviceStatusPayload(s: ServiceState): string {
  return JSON.stringify(serviceStatusFields(s));
}

/** P12 (every license check). */
export function licenseStatusPayload(p: { licenseExpired: boolean; expiryDateStr: string; daysUntilExpiry: number }): string {
  return JSON.stringify({
    licenseExpired: p.licenseExpired,
    expiryDateStr: p.expiryDateStr,
    daysUntilExpiry: p.daysUntilExpiry,
  });
}

/** P13, license already expired. */
export function licenseExpiredPayload(expiryDateStr: string): string {
  return `Qlik Sense server license expired on ${expiryDateStr}`;
}

/** P13, license expires within the threshold. */
export function licenseExpiringPayload(days: number, expiryDateStr: string): string {
  return `Qlik Sense server license is about to expire in ${days} days, on ${expiryDateStr}`;
}

/** Legacy session/connection topics (Butler 2–4): `<host>: <userDir>/<userId>`. */
export function sessionLegacyPayload(e: UserEvent): string {
  return `${e.host}: ${e.userDirectory}/${e.userId}`;
}

/**
 * The JSON user event: messageType, host, command, user_directory, user_id, origin, context,
 * message, user_full, then appId only when the context named an app. As Butler SOS: messageType is
 * the appender's type without its slashes (`qseow-proxy-session`, `qseow-proxy-connection`, also
 * for the older 4-field form and the `/proxy-…/` aliases), and user_full is `<userDir>\<userId>`,
 * or empty when either part is empty.
 */
export function userEventJsonPayload(e: UserEvent): string {
  return JSON.stringify({
    messageType: `qseow-proxy-${e.messageType}`,
    host: e.host,
    command: e.command,
    user_directory: e.userDirectory,
    user_id: e.userId,
    origin: e.origin,
    context: e.context,
    message: e.message,
    user_full: e.userDirectory !== '' && e.userId !== '' ? `${e.userDirectory}\\${e.userId}` : '',
    ...(e.appId === undefined ? {} : { appId: e.appId }),
  });
}

/** Retained active-user count: the number in decimal, as Butler 2–4. */
export function activeUserCountPayload(count: number): string {
  return String(count);
}

/** Retained active-user list: a compact JSON array of `<userDir>/<userId>` strings. */
export function activeUsersPayload(names: readonly string[]): string {
  return JSON.stringify(names);
}

/** Each `\\` (two backslashes) becomes one `\`, left to right without overlap, as Butler does for `user`. */
export function collapseDoubleBackslashes(s: string): string {
  return s.split('\\\\').join('\\');
}

function fullPayloadHead(event: SchedulerEvent, enrichment: TaskEnrichment) {
  return {
    hostName: event.hostName,
    user: collapseDoubleBackslashes(event.user),
    taskName: event.taskName,
    taskId: event.taskId,
    appName: event.appName,
    appId: event.appId,
    logTimeStamp: event.logTimeStamp,
    logLevel: event.logLevel,
    executionId: event.executionId,
    logMessage: event.logMessage,
    qs_appTags: tagNames(enrichment.appFull),
    qs_appCustomProperties: customProperties(enrichment.appFull),
    qs_taskTags: tagNames(enrichment.taskFull),
    qs_taskCustomProperties: customProperties(enrichment.taskFull),
  };
}

function serviceStatusFields(s: ServiceState) {
  return {
    serviceHost: s.host,
    serviceName: s.serviceName,
    serviceDisplayName: s.displayName,
    serviceFriendlyName: s.friendlyName,
    serviceDependencies: s.dependencies,
    serviceStartType: s.startType,
    serviceExePath: s.exePath,
    serviceStatus: s.status,
  };
}

// QRS objects are untyped JSON, so these read them defensively. A tag without a name yields
// `undefined`, which JSON.stringify writes as `null` inside an array, as Butler's output does; a
// custom property without a value or definition name loses that key, as JSON.stringify drops
// undefined members.
function tagNames(qrsObject: Record<string, unknown> | undefined): unknown[] {
  const tags = qrsObject?.['tags'];
  if (!Array.isArray(tags)) return [];
  return tags.map((tag: unknown) => member(tag, 'name'));
}

function customProperties(qrsObject: Record<string, unknown> | undefined): { name: unknown; value: unknown }[] {
  const props = qrsObject?.['customProperties'];
  if (!Array.isArray(props)) return [];
  return props.map((cp: unknown) => ({ name: member(member(cp, 'definition'), 'name'), value: member(cp, 'value') }));
}

function member(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}
