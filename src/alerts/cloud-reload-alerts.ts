// Failed Qlik Cloud app reloads → a basic (app name) and a full JSON alert on the main broker, enriched
// through the Qlik Cloud REST API when it is enabled. The pipeline accepts the event durably first
// (dedup by event id, kept across restarts) and commits the alerts with its completion.
import { parseCloudEvent, type CloudEventFilter, type CloudReloadEvent } from '../cloud/cloud-event.ts';
import type { CloudClient, CloudResult } from '../cloud/cloud-client.ts';
import type { ParseResult } from '../pipeline/lane.ts';
import { MessageRejectedError, type OutgoingMessage } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/** Inbox source of accepted cloud events. */
export const CLOUD_EVENT_SOURCE = 'cloud_event';
/** Metric label of the cloud input. */
export const CLOUD_METRIC_SOURCE = 'cloud';
export const KIND_BASIC = 'cloud_reload_failure';
export const KIND_FULL = 'cloud_reload_failure_full';
export const DEFAULT_LOG_TAIL_LINES = 20;

/** The three Qlik Cloud REST calls used for enrichment (CloudClient, or a stand-in in tests). */
export type CloudEnricher = Pick<CloudClient, 'getApp' | 'getReload' | 'getReloadLog'>;

export interface CloudEnrichment {
  /** `attributes.name` of the app, '' when not known. */
  appName: string;
  /** The reload record as received, null when not fetched. */
  reload: Record<string, unknown> | null;
  /** The last lines of the reload's script log. */
  scriptLogTail: string[];
  /** Set when at least one call failed: what went wrong, short. */
  error?: string;
}

/** The last `count` lines of a script log (CRLF or LF line ends; a final line end adds no empty line). */
export function logTail(text: string, count: number): string[] {
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return count > 0 ? lines.slice(-count) : [];
}

/** The basic alert: the app name, or the app id when the name is not known. */
export function cloudReloadBasicPayload(event: CloudReloadEvent, enrichment: CloudEnrichment | null): string {
  return enrichment?.appName || event.appName || event.appId;
}

/**
 * The full alert. Keys, in this order: tenantId, appId, appName, reloadId, eventId, eventType, eventTime,
 * status, userId, ownerId, duration, errors, reload, scriptLogTail, and enrichmentError only when
 * enrichment was tried and failed. Without enrichment `reload` is null and `scriptLogTail` is [].
 */
export function cloudReloadFullPayload(event: CloudReloadEvent, enrichment: CloudEnrichment | null): string {
  const body: Record<string, unknown> = {
    tenantId: event.tenantId,
    appId: event.appId,
    appName: enrichment?.appName || event.appName,
    reloadId: event.reloadId,
    eventId: event.eventId,
    eventType: event.eventType,
    eventTime: event.eventTime,
    status: event.status,
    userId: event.userId,
    ownerId: event.ownerId,
    duration: event.duration,
    errors: event.errors,
    reload: enrichment?.reload ?? null,
    scriptLogTail: enrichment?.scriptLogTail ?? [],
  };
  if (enrichment?.error !== undefined) body['enrichmentError'] = enrichment.error;
  return JSON.stringify(body);
}

/** Looks up app, reload record and script log; a failed call leaves its part empty and says why. */
export async function enrichCloudReload(event: CloudReloadEvent, cloud: CloudEnricher, tailLines: number): Promise<CloudEnrichment> {
  const problems: string[] = [];
  const note = <T>(r: CloudResult<T>): T | null => {
    if (r.ok) return r.value;
    if (!problems.includes(r.error.message)) problems.push(r.error.message);
    return null;
  };
  const noReloadId = event.reloadId === '';
  const [app, reload, log] = await Promise.all([
    cloud.getApp(event.appId),
    noReloadId ? null : cloud.getReload(event.reloadId),
    noReloadId ? null : cloud.getReloadLog(event.appId, event.reloadId),
  ]);
  const appValue = note(app);
  const attributes = appValue?.['attributes'];
  const name = attributes && typeof attributes === 'object' ? (attributes as Record<string, unknown>)['name'] : undefined;
  const enrichment: CloudEnrichment = {
    appName: typeof name === 'string' ? name : '',
    reload: reload ? note(reload) : null,
    scriptLogTail: [],
  };
  if (log) {
    const text = note(log);
    if (text !== null) enrichment.scriptLogTail = logTail(text, tailLines);
  }
  if (noReloadId) problems.push('the event carries no reload id: reload record and script log not fetched');
  if (problems.length > 0) enrichment.error = problems.join('; ');
  return enrichment;
}

export interface CloudReloadHandlerOptions {
  filter: CloudEventFilter;
  topics: { basic: string; full: string };
  /** Script log lines in the full alert (default 20). */
  tailLines?: number;
}

/** Parses a forwarded event for the pipeline (the MQTT topic is the input's meta); dedup by event id. */
export function parseForwardedCloudEvent(filter: CloudEventFilter): (payload: Buffer, meta: string | null) => ParseResult<CloudReloadEvent> {
  return (payload, meta) => {
    const parsed = parseCloudEvent(meta ?? '', payload, filter);
    if (!parsed.ok) return { ok: false, reason: parsed.error.reason, detail: parsed.error.detail };
    return { ok: true, event: parsed.value, dedupKey: cloudDedupKey(parsed.value.eventId) };
  };
}

/**
 * Events on the forward broker that are not failed reloads of this tenant are expected traffic (debug);
 * a malformed event is a warning, a repeated one information.
 */
export function cloudRejectionLog(reason: string, detail: string, topic: string): { level: 'debug' | 'info' | 'warn'; msg: string } {
  if (reason === 'duplicate') return { level: 'info', msg: `Qlik Cloud event was already received; duplicate ignored (${detail})` };
  const level = reason === 'not_json' || reason === 'not_object' || reason === 'missing_field' ? 'warn' : 'debug';
  return { level, msg: `Qlik Cloud event on ${topic} ignored: ${detail}` };
}

export function describeCloudEvent(event: CloudReloadEvent): string {
  return `cloud reload failed: "${event.appName || event.appId}"`;
}

/** One accepted Qlik Cloud reload failure → the basic and the full alert, enriched when a client is given. */
export class CloudReloadHandler {
  constructor(
    private readonly options: CloudReloadHandlerOptions,
    private readonly deps: {
      cloud: CloudEnricher | null;
      /** Throws MessageRejectedError for a message the broker would never take (the outbox's check). */
      validate: (messages: OutgoingMessage[]) => void;
      logger: Logger;
      metrics: Metrics;
    },
  ) {}

  async handle(event: CloudReloadEvent): Promise<OutgoingMessage[]> {
    const { logger, cloud, metrics } = this.deps;
    const enrichment = cloud ? await enrichCloudReload(event, cloud, this.options.tailLines ?? DEFAULT_LOG_TAIL_LINES) : null;
    if (enrichment?.error) logger.warn({ eventId: event.eventId, appId: event.appId, err: enrichment.error }, `Qlik Cloud enrichment incomplete for event ${event.eventId}; alerting with what is known`);
    logger.info({ eventId: event.eventId, appId: event.appId, reloadId: event.reloadId }, `Qlik Cloud reload of app ${event.appName || event.appId} failed (event ${event.eventId})`);
    const basic: OutgoingMessage = { topic: this.options.topics.basic, payload: cloudReloadBasicPayload(event, enrichment), kind: KIND_BASIC };
    const full: OutgoingMessage = { topic: this.options.topics.full, payload: cloudReloadFullPayload(event, enrichment), kind: KIND_FULL };
    try {
      this.deps.validate([full]);
      return [basic, full];
    } catch (err) {
      if (!(err instanceof MessageRejectedError)) throw err;
      // The broker would never take the full alert (e.g. too large for Azure Event Grid): the basic one goes alone.
      metrics.messagesRefused.inc({ kind: KIND_FULL, reason: err.reason });
      logger.error({ eventId: event.eventId, reason: err.reason }, `full Qlik Cloud reload alert refused, sending the basic alert only: ${err.message}`);
      return [basic];
    }
  }
}

/** Namespaced, since the dedup table is shared with the Sense inputs. */
export function cloudDedupKey(eventId: string): string {
  return `cloud:${eventId}`;
}
