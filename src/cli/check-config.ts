// `butler-mqtt check-config`: validates the file and prints the effective MQTT-related settings,
// secrets masked. Exit 0 when valid, 2 when not.
import { cloudTenants } from '../cloud/tenants.ts';
import type { Command } from 'commander';
import { loadConfigOrExit } from './config-file.ts';
import { mainConnectionOptions, deliveryQos } from '../app.ts';
import type { LoadedConfig } from '../config/load.ts';

const MASK = '********';
const mask = (s: string) => (s ? MASK : '(not set)');

export function effectiveSettings(config: LoadedConfig): Record<string, unknown> {
  const b = config.butler;
  const m = b.mqttConfig;
  const conn = m.enable ? mainConnectionOptions(config) : null;
  const fwd = m.qlikSenseCloud.event.mqttForward;
  return {
    configFile: config.file,
    ignoredSections: config.ignoredSections,
    logLevel: b.logLevel,
    mqtt: m.enable
      ? {
          broker: `${conn?.protocol}://${conn?.host}:${conn?.port}`,
          clientId: config.clientId,
          username: conn?.username ?? '(not set)',
          password: mask(m.azureEventGrid.enable ? '' : m.password),
          protocolVersion: m.protocolVersion,
          azureEventGrid: m.azureEventGrid.enable,
          tls: m.azureEventGrid.enable || m.tls.enable,
          embeddedBroker: m.embeddedBroker.enable ? `${m.embeddedBroker.host}:${m.embeddedBroker.port}` : false,
          qos: deliveryQos(b),
          outbox: { file: m.delivery.outboxFile, maxMessages: m.delivery.maxMessages, maxBytes: m.delivery.maxBytes },
          availability: m.availability.enable ? m.availability.topic : false,
          topics: {
            taskFailure: m.taskFailureTopic,
            taskFailureFull: m.taskFailureSendFull ? m.taskFailureFullTopic : false,
            taskAborted: m.taskAbortedTopic,
            taskAbortedFull: m.taskAbortedSendFull ? m.taskAbortedFullTopic : false,
            taskFailureServerStatus: m.taskFailureServerStatusTopic,
            taskSuccess: m.taskSuccessTopic || false,
            subscriptionRoot: m.subscriptionRootTopic,
            taskStart: m.taskStartTopic,
            serviceRunning: m.serviceRunningTopic,
            serviceStopped: m.serviceStoppedTopic,
            serviceStatus: m.serviceStatusTopic,
            license: m.qlikSenseServerLicenseTopic,
            licenseExpire: m.qlikSenseServerLicenseExpireTopic,
          },
          qlikCloudForward: fwd.enable ? { broker: `mqtts://${fwd.broker.host}:${fwd.broker.port}`, username: fwd.broker.username, password: mask(fwd.broker.password), subscriptionRoot: fwd.topic.subscriptionRoot } : false,
        }
      : false,
    udp: b.udpServerConfig.enable ? `${b.udpServerConfig.serverHost}:${b.udpServerConfig.portTaskFailure}` : false,
    rest: b.restServerConfig.enable
      ? { listen: `${b.restServerConfig.tls.enable ? 'https' : 'http'}://${b.restServerConfig.serverHost}:${b.restServerConfig.serverPort}`, publishEndpoint: b.restServerEndpointsEnable.mqttPublishMessage, apiToken: mask(b.restServerConfig.apiToken) }
      : false,
    qrs: b.configQRS.host ? `${b.configQRS.useSSL ? 'https' : 'http'}://${b.configQRS.host}:${b.configQRS.port}` : '(not set: features that need Sense stay off)',
    licenseMonitor: b.qlikSenseLicense.serverLicenseMonitor.enable ? b.qlikSenseLicense.serverLicenseMonitor.frequency : false,
    serviceMonitor: b.serviceMonitor.enable ? b.serviceMonitor.frequency : false,
    qlikCloud: b.qlikSenseCloud.enable ? { tenantUrl: b.qlikSenseCloud.event.mqtt.tenant.tenantUrl, token: mask(b.qlikSenseCloud.event.mqtt.tenant.auth.jwt.token) } : false,
    qlikCloudTenants: cloudTenants(b).map((t) => ({ name: t.name, url: t.url, webhook: t.webhook, poller: t.poller, apiKey: mask(t.apiKey), webhookSecret: mask(t.webhookSecret) })),
  };
}

export function registerCheckConfig(program: Command): void {
  program
    .command('check-config')
    .description('validate the config file and print the effective MQTT-related settings (secrets masked)')
    .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config/butler-mqtt.yaml)')
    .action((opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      process.stdout.write(`${config.file}: configuration is valid\n${JSON.stringify(effectiveSettings(config), null, 2)}\n`);
    });
}
