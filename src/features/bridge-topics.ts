// The bridge describing itself on MQTT: retained <root>/bridge/info and a periodic <root>/bridge/health,
// and (opt-in) Home Assistant discovery. Discovery is also built when it is off: it then removes what
// an earlier run announced.
import type { Feature } from './feature.ts';
import { BridgeInfo, enabledFeatures } from '../alerts/bridge-info.ts';
import { HaDiscovery, connectionSubscriber, monitoredFromDelivery, storedAnnouncedTopics } from '../alerts/ha-discovery.ts';
import type { DeliveryEvent } from '../mqtt/publisher.ts';
import { packageVersion } from '../package-root.ts';

export const bridgeTopics: Feature = {
  name: 'bridge info and health',
  enabled: (b) => b.mqttConfig.enable && b.mqttConfig.bridgeTopicRoot !== '',
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const qrs = b.configQRS.host ? ctx.qrs() : null;
    const { outbox, inbox } = delivery;
    const metrics = ctx.metrics;
    // The Qlik Cloud API clients of the cloud features (built before this one).
    const cloudHealth = ctx.healthOf('qlik_cloud');
    const bridgeInfo = new BridgeInfo(
      { topicRoot: m.bridgeTopicRoot, healthIntervalSeconds: m.bridgeHealthIntervalSeconds, retainInfo: !m.azureEventGrid.enable, version: packageVersion(), clientId: ctx.config.clientId, features: enabledFeatures(b), configFile: ctx.config.file },
      {
        sink: outbox,
        stats: async () => ({
          outboxDepth: outbox.depth,
          outboxOldestAgeSeconds: outbox.oldestAgeSeconds(),
          inboxDepth: inbox.depth,
          refused: await metrics.total('butler_mqtt_messages_refused_total'),
          qrs: qrs ? { reachable: qrs.health().reachable, lastError: qrs.health().lastError } : null,
          qlikCloud: m.qlikSenseCloud.event.mqttForward.enable || cloudHealth.length > 0 ? { forwardBrokerConnected: (await metrics.total('butler_mqtt_broker_connected', { broker: 'cloud' })) === 1, api: combinedHealth(cloudHealth) } : null,
        }),
        logger: ctx.logger,
      },
    );
    return [{ name: 'bridge info', start: () => bridgeInfo.start(), stop: () => bridgeInfo.stop() }];
  },
};

export const homeAssistantDiscovery: Feature = {
  name: 'Home Assistant discovery',
  enabled: (b) => b.mqttConfig.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const lic = b.qlikSenseLicense.serverLicenseMonitor;
    const svc = b.serviceMonitor;
    const haDiscovery = new HaDiscovery(
      {
        enable: m.homeAssistant.enable,
        discoveryPrefix: m.homeAssistant.discoveryPrefix,
        statusTopic: m.homeAssistant.statusTopic,
        clientId: ctx.config.clientId,
        version: packageVersion(),
        retain: !m.azureEventGrid.enable,
        availability: m.availability.enable ? { topic: m.availability.topic, online: m.availability.onlinePayload, offline: m.availability.offlinePayload } : null,
        health: m.bridgeTopicRoot ? { topic: `${m.bridgeTopicRoot}/bridge/health`, intervalSeconds: m.bridgeHealthIntervalSeconds } : null,
        licenseTopic: lic.enable && lic.destination.mqtt.enable && lic.destination.mqtt.sendRecurring.enable && b.configQRS.host && m.qlikSenseServerLicenseTopic ? m.qlikSenseServerLicenseTopic : null,
        services: svc.enable && svc.alertDestination.mqtt.enable && m.serviceStatusTopic ? svc.monitor.flatMap((h) => h.services.map((s) => ({ statusTopicRoot: m.serviceStatusTopic, host: h.host, name: s.name, friendlyName: s.friendlyName }))) : [],
      },
      { sink: delivery.outbox, announced: storedAnnouncedTopics(delivery.store), subscribe: connectionSubscriber(delivery.connection), logger: ctx.logger },
    );
    // One problem sensor per Sense task and Qlik Cloud app with a retained state topic: announced when
    // the broker acknowledges its first state message (the features that publish them need not know).
    const roots = { task: m.taskEventsTopicRoot.replace(/\/+$/, ''), cloud: m.cloudEventsTopicRoot.replace(/\/+$/, '') };
    const onDelivered = (d: DeliveryEvent) => {
      const item = m.homeAssistant.enable ? monitoredFromDelivery(d, roots) : null;
      if (item) void haDiscovery.addMonitored(item);
    };
    return [
      {
        name: 'Home Assistant discovery',
        start: async () => {
          delivery.publisher.on('delivered', onDelivered);
          await haDiscovery.start();
        },
        stop: async () => {
          delivery.publisher.off('delivered', onDelivered);
          await haDiscovery.stop();
        },
      },
    ];
  },
};

/** Several clients of one service as one health: reachable when every one that was used is; the first error. */
function combinedHealth(readers: (() => { reachable: boolean | null; lastError: string | null })[]): { reachable: boolean | null; lastError: string | null } | null {
  if (readers.length === 0) return null;
  const all = readers.map((r) => r());
  const known = all.filter((h) => h.reachable !== null);
  return {
    reachable: known.length === 0 ? null : known.every((h) => h.reachable === true),
    lastError: all.find((h) => h.reachable === false)?.lastError ?? null,
  };
}
