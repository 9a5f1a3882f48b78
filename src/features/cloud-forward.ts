// Qlik Cloud reload failures forwarded onto an MQTT broker (Butler's design): the forward-broker
// subscriber is the source, the cloud event lane accepts and dedups, the handler enriches through the
// Qlik Cloud API (when enabled) and builds the alerts.
import type { Feature } from './feature.ts';
import { CLOUD_EVENT_SOURCE, CLOUD_METRIC_SOURCE, CloudReloadHandler, cloudRejectionLog, describeCloudEvent, parseForwardedCloudEvent } from '../alerts/cloud-reload-alerts.ts';
import type { CloudReloadEvent } from '../cloud/cloud-event.ts';
import { CloudClient } from '../cloud/cloud-client.ts';
import { CloudEventSubscriber } from '../cloud/event-subscriber.ts';
import { alertOncePerReload } from '../alerts/cloud-reload-events.ts';
import { cloudTenants } from '../cloud/tenants.ts';
import type { Part } from './feature.ts';

export const cloudForward: Feature = {
  name: 'Qlik Cloud forwarded events',
  enabled: (b) => b.mqttConfig.enable && b.mqttConfig.qlikSenseCloud.event.mqttForward.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const fwd = m.qlikSenseCloud.event.mqttForward;
    const tenant = b.qlikSenseCloud.event.mqtt.tenant;
    const { logger, metrics } = ctx;
    let cloud: CloudClient | null = null;
    if (b.qlikSenseCloud.enable) {
      cloud = new CloudClient({ tenantUrl: tenant.tenantUrl, token: tenant.auth.jwt.token, ca: tenant.caFile || undefined }, { logger, metrics });
    } else {
      logger.info('Butler.qlikSenseCloud.enable is false: Qlik Cloud reload alerts carry only what the event says (no app, reload or script log lookup)');
    }
    const forwardClient = cloud;
    if (forwardClient) ctx.addHealth('qlik_cloud', () => forwardClient.health());
    const filter = { appReloadTopic: fwd.topic.appReload, tenantId: tenant.id };
    const reconcile = cloudTenants(b).some((t) => (t.webhook || t.poller) && t.tenantId === tenant.id);
    const handler = new CloudReloadHandler(
      { filter, topics: { basic: m.cloudReloadFailureTopic, full: m.cloudReloadFailureFullTopic } },
      { cloud, validate: (messages) => delivery.outbox.validate(messages), logger, metrics },
    );
    const lane = delivery.pipeline.lane<CloudReloadEvent>(
      { source: CLOUD_EVENT_SOURCE, label: CLOUD_METRIC_SOURCE, name: 'Qlik Cloud events', concurrency: 1, queueSize: 1000 },
      {
        parse: parseForwardedCloudEvent(filter),
        // When the tenant's reloads also come straight from Qlik Cloud (webhook or poller), a reload alerts once
        // whichever intake brings it first; otherwise every forwarded failure alerts, as in Butler.
        handle: reconcile
          ? async (event) => ({ messages: [], step: alertOncePerReload(event.tenantId, event.reloadId, await handler.handle(event), logger) })
          : (event) => handler.handle(event),
        describe: describeCloudEvent,
        logRejection: cloudRejectionLog,
      },
    );
    const subscriber = new CloudEventSubscriber(
      {
        host: fwd.broker.host,
        port: fwd.broker.port,
        username: fwd.broker.username,
        password: fwd.broker.password,
        caFile: fwd.broker.caFile,
        rejectUnauthorized: fwd.broker.rejectUnauthorized,
        clientId: `${ctx.config.clientId}-qscloud`,
        subscriptionRoot: fwd.topic.subscriptionRoot,
        keepaliveSeconds: m.keepaliveSeconds,
        minDelayMs: m.reconnect.minDelayMs,
        maxDelayMs: m.reconnect.maxDelayMs,
      },
      (topic, payload) => void lane.submit(payload, topic, topic),
      { logger, metrics },
    );
    // Stop in reverse: the subscriber first (no new input), then the lane, then the REST client.
    const parts: Part[] = [];
    const client = cloud;
    if (client) parts.push({ name: 'Qlik Cloud client', start: () => undefined, stop: () => client.close() });
    parts.push({ name: 'Qlik Cloud event pipeline', start: () => lane.start(), stop: () => lane.stop() });
    parts.push({ name: 'Qlik Cloud event subscriber', start: () => subscriber.start(), stop: () => subscriber.stop() });
    return parts;
  },
};
