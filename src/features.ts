// Builds the feature parts the config enables and registers them with the App, after the core
// (store, broker connection, publisher). A disabled feature is not constructed; one that needs a
// Sense connection that is not configured says so once and stays off.
import type { App } from './app.ts';
import { QrsClient } from './sense/qrs-client.ts';
import { parseSchedule } from './alerts/schedule.ts';
import { LicenseMonitor } from './alerts/license-monitor.ts';
import { ServiceMonitor } from './alerts/service-monitor.ts';
import { createScRunner } from './sense/windows-services.ts';
import { registerTaskAlerts } from './alerts/task-alerts.ts';
import { registerCloudReloadAlerts } from './alerts/cloud-reload-alerts.ts';
import { registerUserEvents } from './alerts/user-events.ts';
import { registerInbound } from './http/server.ts';
import { registerOperations } from './http/operations.ts';
import { BridgeInfo, enabledFeatures } from './alerts/bridge-info.ts';
import { HaDiscovery, connectionSubscriber, storedAnnouncedTopics } from './alerts/ha-discovery.ts';
import { packageVersion } from './package-root.ts';

/** Shared clients, built at most once and only when a feature asks for them. */
export class FeatureContext {
  private qrsClient: QrsClient | null | undefined;

  constructor(readonly app: App) {}

  /** The QRS client, or null when Butler.configQRS.host is empty. */
  qrs(): QrsClient | null {
    if (this.qrsClient !== undefined) return this.qrsClient;
    const b = this.app.config.butler;
    if (!b.configQRS.host) {
      this.qrsClient = null;
      return null;
    }
    const client = new QrsClient(
      {
        host: b.configQRS.host,
        port: b.configQRS.port,
        useSSL: b.configQRS.useSSL,
        rejectUnauthorized: b.configQRS.rejectUnauthorized,
        headers: b.configQRS.headers.static,
        clientCert: b.cert.clientCert || undefined,
        clientCertKey: b.cert.clientCertKey || undefined,
        clientCertCA: b.cert.clientCertCA || undefined,
        timeoutMs: b.configQRS.timeoutMs,
        retries: b.configQRS.retries,
        cacheTtlMs: b.configQRS.cacheTtlSeconds * 1000,
      },
      { logger: this.app.logger, metrics: this.app.metrics },
    );
    this.qrsClient = client;
    // Registered here so it closes after every part that uses it (parts stop in reverse order).
    this.app.addPart({ name: 'QRS client', start: () => undefined, stop: () => client.close() });
    return client;
  }
}

export function buildFeatures(app: App): FeatureContext {
  const ctx = new FeatureContext(app);
  const b = app.config.butler;
  const inbound = registerInbound(app, ctx); // HTTP server (also when MQTT is off) and MQTT task-start commands
  registerOperations(app, ctx, inbound.http); // metrics and status page on that server
  if (!app.outbox) return ctx; // MQTT disabled: nothing to publish to
  const outbox = app.outbox;

  const lic = b.qlikSenseLicense.serverLicenseMonitor;
  if (lic.enable && lic.destination.mqtt.enable) {
    const qrs = ctx.qrs();
    if (!qrs) {
      app.logger.warn('server license monitor is enabled but Butler.configQRS.host is empty: the license monitor stays off');
    } else {
      const schedule = parseSchedule(lic.frequency);
      if (schedule.ok) {
        const monitor = new LicenseMonitor(
          {
            schedule: schedule.value,
            thresholdDays: lic.alert.thresholdDays,
            sendRecurring: lic.destination.mqtt.sendRecurring.enable,
            sendAlert: lic.destination.mqtt.sendAlert.enable,
            topics: { license: b.mqttConfig.qlikSenseServerLicenseTopic, expire: b.mqttConfig.qlikSenseServerLicenseExpireTopic },
          },
          { qrs, sink: outbox, logger: app.logger, metrics: app.metrics },
        );
        app.addPart({ name: 'license monitor', start: () => monitor.start(), stop: () => monitor.stop() });
      }
    }
  }

  const svc = b.serviceMonitor;
  if (svc.enable && svc.alertDestination.mqtt.enable) {
    const schedule = parseSchedule(svc.frequency);
    if (schedule.ok) {
      const monitor = new ServiceMonitor(
        {
          hosts: svc.monitor.map((h) => ({ host: h.host, services: h.services.map((s) => ({ name: s.name, friendlyName: s.friendlyName })) })),
          schedule: schedule.value,
          topics: { running: b.mqttConfig.serviceRunningTopic, stopped: b.mqttConfig.serviceStoppedTopic, status: b.mqttConfig.serviceStatusTopic },
          mqttEnabled: true,
          timeoutMs: svc.checkTimeoutSeconds * 1000,
          // An explicit command also lifts the Windows-only check (a wrapper answering like sc.exe).
          runner: svc.scCommand ? createScRunner({ command: svc.scCommand }) : undefined,
        },
        { sink: outbox, logger: app.logger, metrics: app.metrics },
      );
      app.addPart({ name: 'service monitor', start: () => monitor.start(), stop: () => monitor.stop() });
    }
  }

  // Feature registrations (one line each) follow.
  registerTaskAlerts(app, ctx);
  registerCloudReloadAlerts(app, ctx);
  registerUserEvents(app, ctx);

  // ---- Bridge info and health: <root>/bridge/info (retained) and <root>/bridge/health ----
  if (b.mqttConfig.bridgeTopicRoot) {
    const m = b.mqttConfig;
    const qrs = b.configQRS.host ? ctx.qrs() : null;
    const { inbox, metrics } = app;
    const bridgeInfo = new BridgeInfo(
      { topicRoot: m.bridgeTopicRoot, healthIntervalSeconds: m.bridgeHealthIntervalSeconds, retainInfo: !m.azureEventGrid.enable, version: packageVersion(), clientId: app.config.clientId, features: enabledFeatures(b), configFile: app.config.file },
      {
        sink: outbox,
        stats: async () => ({
          outboxDepth: outbox.depth,
          outboxOldestAgeSeconds: outbox.oldestAgeSeconds(),
          inboxDepth: inbox?.depth ?? 0,
          refused: await metrics.total('butler_mqtt_messages_refused_total'),
          qrs: qrs ? { reachable: qrs.health().reachable, lastError: qrs.health().lastError } : null,
          // The Qlik Cloud API client lives inside the cloud reload feature; its health is not shared yet.
          qlikCloud: m.qlikSenseCloud.event.mqttForward.enable ? { forwardBrokerConnected: (await metrics.total('butler_mqtt_broker_connected', { broker: 'cloud' })) === 1, api: null } : null,
        }),
        logger: app.logger,
      },
    );
    app.addPart({ name: 'bridge info', start: () => bridgeInfo.start(), stop: () => bridgeInfo.stop() });
  }

  // ---- Home Assistant discovery (opt-in). Also built when off: it then removes what an earlier run announced ----
  // The task/app state feature calls haDiscovery.addMonitored({ kind: 'sense_task', taskId, taskName, stateTopic })
  // (or kind 'cloud_app' with tenantId, appId, appName) when it first publishes a state topic.
  if (app.store) {
    const m = b.mqttConfig;
    const lic = b.qlikSenseLicense.serverLicenseMonitor;
    const svc = b.serviceMonitor;
    const haDiscovery = new HaDiscovery(
      {
        enable: m.homeAssistant.enable,
        discoveryPrefix: m.homeAssistant.discoveryPrefix,
        statusTopic: m.homeAssistant.statusTopic,
        clientId: app.config.clientId,
        version: packageVersion(),
        retain: !m.azureEventGrid.enable,
        availability: m.availability.enable ? { topic: m.availability.topic, online: m.availability.onlinePayload, offline: m.availability.offlinePayload } : null,
        health: m.bridgeTopicRoot ? { topic: `${m.bridgeTopicRoot}/bridge/health`, intervalSeconds: m.bridgeHealthIntervalSeconds } : null,
        licenseTopic: lic.enable && lic.destination.mqtt.enable && lic.destination.mqtt.sendRecurring.enable && b.configQRS.host && m.qlikSenseServerLicenseTopic ? m.qlikSenseServerLicenseTopic : null,
        services: svc.enable && svc.alertDestination.mqtt.enable && m.serviceStatusTopic ? svc.monitor.flatMap((h) => h.services.map((s) => ({ statusTopicRoot: m.serviceStatusTopic, host: h.host, name: s.name, friendlyName: s.friendlyName }))) : [],
      },
      { sink: outbox, announced: storedAnnouncedTopics(app.store), subscribe: app.connection ? connectionSubscriber(app.connection, app.logger) : null, logger: app.logger },
    );
    app.addPart({ name: 'Home Assistant discovery', start: () => haDiscovery.start(), stop: () => haDiscovery.stop() });
  }
  return ctx;
}
