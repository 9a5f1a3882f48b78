// Qlik Cloud reload events straight from Qlik Cloud, for every tenant in Butler.qlikSenseCloud.tenants:
// signed webhook deliveries on the REST server and a catch-up poller over the reloads API. Both intakes
// feed one lane (source cloud_direct): one set of policies, one dedup table, and the completion step
// that reports each reload once whichever intake brought it first. The input's meta names the intake
// and the tenant.
import type { Feature, Part } from './feature.ts';
import { CloudClient } from '../cloud/cloud-client.ts';
import { cloudTenants } from '../cloud/tenants.ts';
import { ReloadPoller } from '../cloud/reload-poller.ts';
import { CloudReloadHandler } from '../alerts/cloud-reload-alerts.ts';
import { CLOUD_DIRECT_SOURCE, CloudDirectHandler, cloudInputMeta, describeCloudDirect, parseCloudDirect, type CloudDirectEvent } from '../alerts/cloud-reload-events.ts';
import { cloudWebhookRoutes, CLOUD_WEBHOOK_PATH } from '../http/routes/cloud-webhook.ts';
import { KeyValueTable } from '../store/kv.ts';

/** Reload ids remembered for cross-intake dedup; far beyond any poll lookback and Qlik's delivery history (7 days). */
const SEEN_TTL_MS = 30 * 24 * 3600_000;
/** Event ids are remembered longer than Qlik Cloud keeps a delivery it may resend (7 days). */
const DEDUP_TTL_MS = 8 * 24 * 3600_000;

export const cloudWebhooks: Feature = {
  name: 'Qlik Cloud webhooks and reload poller',
  enabled: (b) => b.mqttConfig.enable && cloudTenants(b).some((t) => t.webhook || t.poller),
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const { logger, metrics } = ctx;
    const tenants = cloudTenants(b).filter((t) => t.webhook || t.poller);
    // Names, secrets and what each intake needs were checked when the config was loaded.

    const parts: Part[] = [];
    const clients = new Map<string, CloudClient>();
    const perTenant = new Map<string, { alerts: CloudReloadHandler; cloud: CloudClient | null }>();
    for (const t of tenants) {
      const client = t.url && t.apiKey ? new CloudClient({ tenantUrl: t.url, token: t.apiKey, ca: t.caFile || undefined }, { logger, metrics }) : null;
      if (client) ctx.addHealth('qlik_cloud', () => client.health());
      if (client) clients.set(t.name, client);
      const enrich = t.enrich ? client : null;
      const alerts = new CloudReloadHandler(
        { filter: { appReloadTopic: '', tenantId: t.tenantId }, topics: { basic: m.cloudReloadFailureTopic, full: m.cloudReloadFailureFullTopic } },
        { cloud: enrich, validate: (messages) => delivery.outbox.validate(messages), logger, metrics },
      );
      perTenant.set(t.name, { alerts, cloud: enrich });
      if (t.webhook && !t.webhookSecret) logger.warn({ tenant: t.name }, `Qlik Cloud tenant ${t.name}: no webhookSecret, so webhook deliveries are accepted unsigned; set one (butler-mqtt cloud webhook create does)`);
    }
    const handler = new CloudDirectHandler({ tenants: perTenant, topicRoot: m.cloudEventsTopicRoot, logger });
    const lane = delivery.pipeline.lane<CloudDirectEvent>(
      { source: CLOUD_DIRECT_SOURCE, name: 'Qlik Cloud direct events', inputName: 'delivery', concurrency: 1, queueSize: 1000, dedupTtlMs: DEDUP_TTL_MS },
      { parse: parseCloudDirect(new Map(tenants.map((t) => [t.name, t.tenantId]))), handle: (ev) => handler.handle(ev), describe: describeCloudDirect },
    );
    for (const client of clients.values()) parts.push({ name: 'Qlik Cloud client', start: () => undefined, stop: () => client.close() });
    parts.push({ name: 'Qlik Cloud direct event pipeline', start: () => lane.start(), stop: () => lane.stop() });

    const webhookTenants = tenants.filter((t) => t.webhook);
    if (webhookTenants.length > 0) {
      if (!ctx.http) {
        logger.warn(`Qlik Cloud webhook intake is on for ${webhookTenants.map((t) => t.name).join(', ')} but restServerConfig.enable is false: no webhook deliveries can arrive`);
      } else {
        ctx.http.register(cloudWebhookRoutes, {
          secrets: new Map(webhookTenants.map((t) => [t.name, t.webhookSecret])),
          bodyLimitBytes: b.qlikSenseCloud.webhookBodyLimitBytes,
          submit: (tenant, body, from) => lane.submit(body, cloudInputMeta('webhook', tenant), from),
          reject: (reason, detail, from) => lane.reject(reason, detail, from),
          logger,
        });
        logger.info(`Qlik Cloud webhook deliveries accepted on ${CLOUD_WEBHOOK_PATH}/<tenant> for ${webhookTenants.map((t) => t.name).join(', ')}`);
      }
    }

    const store = delivery.store;
    const kv = new KeyValueTable(store.db);
    for (const t of tenants) {
      if (!t.poller) continue;
      const client = clients.get(t.name);
      if (!client) continue;
      const cursorKey = `cloud-poll-cursor:${t.name}`;
      const poller = new ReloadPoller(
        { tenant: t.name, intervalMs: t.pollIntervalSeconds * 1000, lookbackMs: t.pollLookbackMinutes * 60_000, overlapMs: t.pollOverlapMinutes * 60_000 },
        {
          client,
          cursor: {
            get: () => {
              const v = kv.get(cursorKey);
              return v === undefined ? null : Number(v);
            },
            set: (ms) => store.writeStatements(() => kv.put(cursorKey, String(ms))),
          },
          handOver: (record) => lane.submit(record, cloudInputMeta('poller', t.name), `reloads API (${t.name})`),
          logger,
        },
      );
      parts.push({ name: `Qlik Cloud reload poller (${t.name})`, start: () => poller.start(), stop: () => poller.stop() });
    }
    // Old reload ids are forgotten once a day.
    let pruneTimer: NodeJS.Timeout | null = null;
    const prune = () => void store.writeStatements((db) => CloudDirectHandler.prune(db, SEEN_TTL_MS)).catch((err: unknown) => logger.warn({ err }, 'pruning old Qlik Cloud reload ids failed'));
    parts.push({
      name: 'Qlik Cloud reload id pruning',
      start: () => {
        prune();
        pruneTimer = setInterval(prune, 24 * 3600_000);
        pruneTimer.unref();
      },
      stop: () => {
        if (pruneTimer) clearInterval(pruneTimer);
      },
    });
    return parts;
  },
};
