// Every Sense task outcome from QRS, without log appenders: a change subscription on ExecutionResult
// updates whose callbacks arrive on the REST server, and a periodic catch-up read from a durable cursor.
// Both feed the qrs_notification lane; its handler fetches each result, its task and app from QRS and
// publishes the execution, the retained task state and, for reload failures and aborts, Butler's alerts.
import type { Feature, Part } from './feature.ts';
import { describeExecutionInput, QRS_NOTIFICATION_SOURCE, TaskExecutionHandler } from '../alerts/task-executions.ts';
import { QRS_CALLBACK_PATH, qrsCallbackRoutes } from '../http/routes/qrs-notifications.ts';
import { taskHealthRoutes } from '../http/routes/task-health.ts';
import { encodeChanged, parseCallbackBody, parseExecutionInput, QrsNotificationSource, type ExecutionInput } from '../sense/qrs-notifications.ts';

/** Callbacks per QRS node address and minute (a busy site changes a few results per execution). */
const CALLBACK_RATE_PER_MINUTE = 6000;
const CALLBACK_BODY_LIMIT = 256 * 1024;

export const qrsNotifications: Feature = {
  name: 'QRS change notifications',
  enabled: (b) => b.mqttConfig.enable && b.qrsChangeNotifications.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const q = b.qrsChangeNotifications;
    const { logger, metrics } = ctx;
    const qrs = ctx.qrs();
    if (!qrs) {
      logger.error('qrsChangeNotifications.enable is true but Butler.configQRS.host is empty: task outcomes from QRS are off');
      ctx.addReadinessCheck(() => 'qrsChangeNotifications needs Butler.configQRS.host');
      return [];
    }
    let callbackUrl = q.callbackUrl;
    if (callbackUrl !== '' && !ctx.http) {
      logger.error('qrsChangeNotifications.callbackUrl is set but the REST server is off (restServerConfig.enable): no subscription, the catch-up read alone finds task outcomes');
      callbackUrl = '';
    } else if (callbackUrl !== '') {
      let path = '';
      try {
        path = new URL(callbackUrl).pathname;
      } catch {
        path = '';
      }
      if (path !== QRS_CALLBACK_PATH) logger.warn(`qrsChangeNotifications.callbackUrl ends in "${path}"; the bridge serves the callback on ${QRS_CALLBACK_PATH} (a proxy in between must map it)`);
    }

    // A result handled through a callback is read again by the next catch-up (and an execution the log
    // appender alerted may be read later than its TTL while QRS was away): remember both for a day, or
    // three catch-up intervals, whichever is longer.
    const dedupTtlMs = Math.max(24 * 3600_000, 3 * q.catchUpIntervalSeconds * 1000, b.udpServerConfig.deduplication.ttlMinutes * 60_000);
    const handler = new TaskExecutionHandler(
      {
        failure: m.taskFailureTopic,
        failureFull: m.taskFailureSendFull ? m.taskFailureFullTopic : null,
        aborted: m.taskAbortedTopic,
        abortedFull: m.taskAbortedSendFull ? m.taskAbortedFullTopic : null,
        root: m.taskEventsTopicRoot.replace(/\/+$/, ''),
        retainState: !m.azureEventGrid.enable,
      },
      { qrs, inbox: delivery.inbox, db: delivery.store.db, logger, metrics, dedupTtlMs },
    );
    const lane = delivery.pipeline.lane<ExecutionInput>(
      {
        source: QRS_NOTIFICATION_SOURCE,
        name: 'QRS task executions',
        inputName: 'change',
        concurrency: 4,
        queueSize: 1000,
        // A QRS outage: retried for about 20 minutes before the event is quarantined (still retriable).
        maxAttempts: 25,
        retryBaseMs: 500,
        retryMaxMs: 60_000,
        dedupTtlMs,
      },
      { parse: (payload) => parseExecutionInput(payload), handle: (input) => handler.handle(input), describe: describeExecutionInput },
    );
    const source = new QrsNotificationSource(
      { callbackUrl, catchUpIntervalMs: q.catchUpIntervalSeconds * 1000, lookbackMs: q.lookbackMinutes * 60_000 },
      lane,
      { qrs, store: delivery.store, logger, metrics },
    );
    ctx.addReadinessCheck(() => source.readinessReason());

    const http = ctx.http;
    if (http && callbackUrl !== '') {
      http.register(qrsCallbackRoutes, {
        parse: parseCallbackBody,
        submit: async (id, from) => ((await lane.submit(encodeChanged(id), 'callback', from)).status === 'refused' ? 'refused' : 'accepted'),
        reject: (reason, detail, from) => lane.reject(reason, detail, from),
        bodyLimitBytes: CALLBACK_BODY_LIMIT,
        ratePerMinute: CALLBACK_RATE_PER_MINUTE,
        logger,
        metrics,
      });
    }
    if (http) http.register(taskHealthRoutes, { health: () => ({ ...handler.health(), source: source.status() }) });
    const parts: Part[] = [
      { name: 'QRS task execution pipeline', start: () => lane.start(), stop: () => lane.stop() },
      { name: 'QRS change subscription and catch-up', start: () => source.start(), stop: () => source.stop() },
    ];
    return parts;
  },
};
