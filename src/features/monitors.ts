// The scheduled monitors: the server license (through QRS) and Windows services (through sc.exe).
// Their source is a timer; their messages go through the pipeline's timer sink, which commits them in
// order and waits out a full outbox.
import type { Feature } from './feature.ts';
import { parseSchedule } from '../alerts/schedule.ts';
import { LicenseMonitor } from '../alerts/license-monitor.ts';
import { ServiceMonitor } from '../alerts/service-monitor.ts';
import { createScRunner } from '../sense/windows-services.ts';

export const licenseMonitor: Feature = {
  name: 'server license monitor',
  enabled: (b) => b.mqttConfig.enable && b.qlikSenseLicense.serverLicenseMonitor.enable && b.qlikSenseLicense.serverLicenseMonitor.destination.mqtt.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const lic = b.qlikSenseLicense.serverLicenseMonitor;
    const qrs = ctx.qrs();
    if (!qrs) {
      ctx.logger.warn('server license monitor is enabled but Butler.configQRS.host is empty: the license monitor stays off');
      return [];
    }
    const schedule = parseSchedule(lic.frequency);
    if (!schedule.ok) return [];
    const monitor = new LicenseMonitor(
      {
        schedule: schedule.value,
        thresholdDays: lic.alert.thresholdDays,
        sendRecurring: lic.destination.mqtt.sendRecurring.enable,
        sendAlert: lic.destination.mqtt.sendAlert.enable,
        topics: { license: b.mqttConfig.qlikSenseServerLicenseTopic, expire: b.mqttConfig.qlikSenseServerLicenseExpireTopic },
      },
      { qrs, sink: delivery.pipeline.timerSink('license_monitor', () => 'server license check'), logger: ctx.logger, metrics: ctx.metrics },
    );
    return [{ name: 'license monitor', start: () => monitor.start(), stop: () => monitor.stop() }];
  },
};

export const serviceMonitor: Feature = {
  name: 'Windows service monitor',
  enabled: (b) => b.mqttConfig.enable && b.serviceMonitor.enable && b.serviceMonitor.alertDestination.mqtt.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const svc = ctx.config.butler.serviceMonitor;
    const m = ctx.config.butler.mqttConfig;
    const schedule = parseSchedule(svc.frequency);
    if (!schedule.ok) return [];
    const monitor = new ServiceMonitor(
      {
        hosts: svc.monitor.map((h) => ({ host: h.host, services: h.services.map((s) => ({ name: s.name, friendlyName: s.friendlyName })) })),
        schedule: schedule.value,
        topics: { running: m.serviceRunningTopic, stopped: m.serviceStoppedTopic, status: m.serviceStatusTopic },
        timeoutMs: svc.checkTimeoutSeconds * 1000,
        // An explicit command also lifts the Windows-only check (a wrapper answering like sc.exe).
        runner: svc.scCommand ? createScRunner({ command: svc.scCommand }) : undefined,
      },
      {
        sink: delivery.pipeline.timerSink('service_monitor', (messages) => `Windows service check: ${messages.map((x) => x.topic).join(', ')}`),
        logger: ctx.logger,
        metrics: ctx.metrics,
      },
    );
    return [{ name: 'service monitor', start: () => monitor.start(), stop: () => monitor.stop() }];
  },
};
