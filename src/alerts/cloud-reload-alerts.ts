// Failed Qlik Cloud app reloads → a basic (app name) and a full JSON alert on the main broker. An accepted
// event is recorded in the durable inbox (dedup by event id, kept across restarts), enriched through the Qlik
// Cloud REST API when enabled, and completed into the outbox in one transaction; anything else is counted.
import type { App } from '../app.ts';
import type { FeatureContext } from '../features.ts';
import { parseCloudEvent, type CloudEventFilter, type CloudReloadEvent } from '../cloud/cloud-event.ts';
import { CloudClient, type CloudResult } from '../cloud/cloud-client.ts';
import { CloudEventSubscriber } from '../cloud/event-subscriber.ts';
import { InboxFullError, type Inbox, type InboxRow } from '../store/inbox.ts';
import { MessageRejectedError, OutboxFullError, type OutgoingMessage } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ActivityLog } from '../observability/activity.ts';

/** Inbox source of accepted cloud events. */
export const CLOUD_EVENT_SOURCE = 'cloud_event';
/** Metric label of the cloud input. */
const METRIC_SOURCE = 'cloud';
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

export interface CloudReloadAlertsOptions {
  filter: CloudEventFilter;
  topics: { basic: string; full: string };
  /** Script log lines in the full alert (default 20). */
  tailLines?: number;
  /** Wait before handling again an event whose messages could not be stored (outbox full). */
  retryDelayMs?: number;
  /** On stop, how long to wait for the event being handled. */
  stopTimeoutMs?: number;
}

export class CloudReloadAlerts {
  /** Inbox rows queued or being handled, so a sweep of pending rows does not take them twice. */
  private readonly queued = new Set<number>();
  private chain: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly options: CloudReloadAlertsOptions,
    private readonly deps: { inbox: Inbox; cloud: CloudEnricher | null; logger: Logger; metrics: Metrics; activity?: ActivityLog },
  ) {}

  /** Picks up events accepted before a restart and not yet handled. */
  start(): void {
    this.running = true;
    this.sweep();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // What is not finished stays in the inbox and is handled after the next start.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.chain, new Promise<void>((r) => (timer = setTimeout(r, this.options.stopTimeoutMs ?? 5000)))]);
    clearTimeout(timer);
  }

  /** One message from the forward broker. Never throws: every outcome is counted and logged. */
  async handleMessage(topic: string, payload: Buffer): Promise<void> {
    const { metrics, logger, inbox } = this.deps;
    metrics.eventsReceived.inc({ source: METRIC_SOURCE });
    const parsed = parseCloudEvent(topic, payload, this.options.filter);
    if (!parsed.ok) {
      const { reason, detail } = parsed.error;
      const level = reason === 'not_json' || reason === 'not_object' || reason === 'missing_field' ? 'warn' : 'debug';
      this.ignored(reason, level, `Qlik Cloud event on ${topic} ignored: ${detail}`, { topic });
      return;
    }
    const event = parsed.value;
    let outcome;
    try {
      outcome = await inbox.accept(CLOUD_EVENT_SOURCE, payload, dedupKeyOf(event.eventId), topic);
    } catch (err) {
      const full = err instanceof InboxFullError;
      this.ignored(full ? 'inbox_full' : 'store_error', 'error', `Qlik Cloud event ${event.eventId} for app ${event.appId} could not be recorded and is lost: ${(err as Error).message}`, { eventId: event.eventId });
      return;
    }
    if (outcome.status === 'duplicate') {
      this.ignored('duplicate', 'info', `Qlik Cloud event ${event.eventId} was already received; duplicate ignored`, { eventId: event.eventId });
      return;
    }
    metrics.eventsAccepted.inc({ source: METRIC_SOURCE });
    logger.info({ eventId: event.eventId, appId: event.appId, reloadId: event.reloadId }, `Qlik Cloud reload of app ${event.appName || event.appId} failed (event ${event.eventId})`);
    this.schedule({ id: outcome.id, source: CLOUD_EVENT_SOURCE, payload, dedupKey: dedupKeyOf(event.eventId), meta: topic, receivedAt: Date.now() });
  }

  private ignored(reason: string, level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>): void {
    this.deps.metrics.eventsRejected.inc({ source: METRIC_SOURCE, reason });
    this.deps.logger[level]({ source: METRIC_SOURCE, reason, ...fields }, message);
  }

  private schedule(row: InboxRow): void {
    if (this.queued.has(row.id)) return;
    this.queued.add(row.id);
    this.chain = this.chain.then(() => this.handleRow(row));
  }

  /** Queues every pending cloud event not already queued. */
  private sweep(): void {
    if (!this.running) return;
    let after = 0;
    for (;;) {
      const rows = this.deps.inbox.pending(CLOUD_EVENT_SOURCE, after, 500);
      for (const row of rows) this.schedule(row);
      const last = rows[rows.length - 1];
      if (!last || rows.length < 500) break;
      after = last.id;
    }
  }

  private retryLater(): void {
    if (!this.running || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.sweep();
    }, this.options.retryDelayMs ?? 5000);
    this.retryTimer.unref();
  }

  private async handleRow(row: InboxRow): Promise<void> {
    const { inbox, logger, cloud, metrics } = this.deps;
    try {
      if (!this.running) return;
      const topic = row.meta ?? '';
      const parsed = parseCloudEvent(topic, row.payload, this.options.filter);
      if (!parsed.ok) {
        // Only possible when the configuration changed since the event was accepted.
        logger.warn({ source: METRIC_SOURCE, reason: parsed.error.reason }, `stored Qlik Cloud event no longer matches the configuration and is dropped: ${parsed.error.detail}`);
        await inbox.discard(row);
        return;
      }
      const event = parsed.value;
      const enrichment = cloud ? await enrichCloudReload(event, cloud, this.options.tailLines ?? DEFAULT_LOG_TAIL_LINES) : null;
      if (enrichment?.error) logger.warn({ eventId: event.eventId, appId: event.appId, err: enrichment.error }, `Qlik Cloud enrichment incomplete for event ${event.eventId}; alerting with what is known`);
      const basic: OutgoingMessage = { topic: this.options.topics.basic, payload: cloudReloadBasicPayload(event, enrichment), kind: KIND_BASIC };
      const full: OutgoingMessage = { topic: this.options.topics.full, payload: cloudReloadFullPayload(event, enrichment), kind: KIND_FULL };
      // For the status page: the event and the rows its completion stored.
      const record = (ids: number[], sent: OutgoingMessage[]) =>
        this.deps.activity?.messages(this.deps.activity.event({ source: METRIC_SOURCE, summary: `cloud reload failed: "${event.appName || event.appId}"` }), ids, sent.map((m) => m.topic));
      try {
        record(await inbox.complete(row, [basic, full]), [basic, full]);
      } catch (err) {
        if (!(err instanceof MessageRejectedError)) throw err;
        // The broker would never take the full alert (e.g. too large for Azure Event Grid): send the basic one alone.
        metrics.messagesRefused.inc({ kind: KIND_FULL, reason: err.reason });
        logger.error({ eventId: event.eventId, reason: err.reason }, `full Qlik Cloud reload alert refused, sending the basic alert only: ${err.message}`);
        try {
          record(await inbox.complete(row, [basic]), [basic]);
        } catch (err2) {
          if (!(err2 instanceof MessageRejectedError)) throw err2;
          metrics.messagesRefused.inc({ kind: KIND_BASIC, reason: err2.reason });
          logger.error({ eventId: event.eventId, reason: err2.reason }, `Qlik Cloud reload alert refused by the outbox, nothing sent: ${err2.message}`);
          record(await inbox.complete(row, []), []);
        }
      }
    } catch (err) {
      // Outbox full or a store error: the event stays in the inbox and is tried again later.
      const level = err instanceof OutboxFullError ? 'warn' : 'error';
      logger[level]({ err: (err as Error).message }, `Qlik Cloud reload alert not stored yet, will retry: ${(err as Error).message}`);
      this.retryLater();
    } finally {
      this.queued.delete(row.id);
    }
  }
}

/** Namespaced, since the dedup table is shared with the Sense inputs. */
function dedupKeyOf(eventId: string): string {
  return `cloud:${eventId}`;
}

/** Builds the cloud event subscriber and the alerts when MQTT and the Qlik Cloud forward are enabled. */
export function registerCloudReloadAlerts(app: App, _ctx: FeatureContext): void {
  const b = app.config.butler;
  const m = b.mqttConfig;
  const fwd = m.qlikSenseCloud.event.mqttForward;
  if (!m.enable || !fwd.enable || !app.inbox) return;
  const tenant = b.qlikSenseCloud.event.mqtt.tenant;
  const { logger, metrics } = app;

  let cloud: CloudClient | null = null;
  if (b.qlikSenseCloud.enable) {
    cloud = new CloudClient({ tenantUrl: tenant.tenantUrl, token: tenant.auth.jwt.token, ca: tenant.caFile || undefined }, { logger, metrics });
  } else {
    logger.info('Butler.qlikSenseCloud.enable is false: Qlik Cloud reload alerts carry only what the event says (no app, reload or script log lookup)');
  }
  const alerts = new CloudReloadAlerts(
    { filter: { appReloadTopic: fwd.topic.appReload, tenantId: tenant.id }, topics: { basic: m.cloudReloadFailureTopic, full: m.cloudReloadFailureFullTopic } },
    { inbox: app.inbox, cloud, logger, metrics, activity: app.activity },
  );
  const subscriber = new CloudEventSubscriber(
    {
      host: fwd.broker.host,
      port: fwd.broker.port,
      username: fwd.broker.username,
      password: fwd.broker.password,
      caFile: fwd.broker.caFile,
      rejectUnauthorized: fwd.broker.rejectUnauthorized,
      clientId: `${app.config.clientId}-qscloud`,
      subscriptionRoot: fwd.topic.subscriptionRoot,
      keepaliveSeconds: m.keepaliveSeconds,
      minDelayMs: m.reconnect.minDelayMs,
      maxDelayMs: m.reconnect.maxDelayMs,
    },
    (topic, payload) => void alerts.handleMessage(topic, payload),
    { logger, metrics },
  );
  // Parts stop in reverse: the subscriber first (no new input), then the alerts, then the REST client.
  const client = cloud;
  if (client) app.addPart({ name: 'Qlik Cloud client', start: () => undefined, stop: () => client.close() });
  app.addPart({ name: 'Qlik Cloud reload alerts', start: () => alerts.start(), stop: () => alerts.stop() });
  app.addPart({ name: 'Qlik Cloud event subscriber', start: () => subscriber.start(), stop: () => subscriber.stop() });
}
