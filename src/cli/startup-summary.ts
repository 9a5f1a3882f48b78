// The few lines printed once the bridge has started: what runs and where, the status page, what is
// not configured (and what that means for the messages), and the one next step. Pure: the config and
// the addresses in, lines out, so the wording is tested without starting anything.
import os from 'node:os';
import type { LoadedConfig } from '../config/load.ts';

export interface Address {
  host: string;
  port: number;
}

/** Where the parts listen or connect (bound ports where known, configured ones otherwise). */
export interface StartupAddresses {
  /** The embedded broker, when it runs. */
  embeddedBroker: Address | null;
  /** The broker the bridge publishes to (null when MQTT is off). */
  broker: (Address & { protocol: string }) | null;
  /** The HTTP server, when it runs. */
  http: (Address & { tls: boolean }) | null;
  /** UDP inputs that listen. */
  udp: (Address & { name: string })[];
}

/** Addresses from the config alone (what the parts are told to bind; port 0 stays 0). */
export function configuredAddresses(config: LoadedConfig): StartupAddresses {
  const b = config.butler;
  const m = b.mqttConfig;
  const u = b.udpServerConfig;
  const r = b.restServerConfig;
  const embedded = m.enable && m.embeddedBroker.enable && !m.azureEventGrid.enable;
  const toEmbedded = embedded && !m.brokerHost;
  const udp: StartupAddresses['udp'] = [];
  if (m.enable && u.enable) {
    udp.push({ name: 'reload task events', host: u.serverHost, port: u.portTaskFailure });
    if (u.sessionConnectionEvents.enable) udp.push({ name: 'session events', host: u.serverHost, port: u.portSessionConnectionEvents });
  }
  return {
    embeddedBroker: embedded ? { host: m.embeddedBroker.host, port: m.embeddedBroker.port } : null,
    broker: m.enable
      ? {
          protocol: m.azureEventGrid.enable || m.tls.enable ? 'mqtts' : 'mqtt',
          host: toEmbedded ? m.embeddedBroker.host : m.brokerHost,
          port: toEmbedded ? m.embeddedBroker.port : m.brokerPort,
        }
      : null,
    http: r.enable ? { host: r.serverHost, port: r.serverPort, tls: r.tls.enable } : null,
    udp,
  };
}

const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '::', '[::]']);

/** A URL a person can open: a wildcard bind is shown with this machine's name. */
export function browsableUrl(a: Address & { tls: boolean }, hostname = os.hostname()): string {
  const host = WILDCARD_HOSTS.has(a.host) ? hostname : a.host;
  const shown = host.includes(':') ? `[${host}]` : host;
  return `${a.tls ? 'https' : 'http'}://${shown}:${a.port}/`;
}

function hostPort(a: Address): string {
  return `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** The start-up summary; every line stands on its own (each is logged as one record). */
export function startupSummary(config: LoadedConfig, at: StartupAddresses, hostname = os.hostname()): string[] {
  const b = config.butler;
  const m = b.mqttConfig;
  // The line before, "butler-mqtt started on <host> with config <file>", names the config.
  const lines: string[] = [];

  if (!m.enable) {
    lines.push('MQTT: off (Butler.mqttConfig.enable is false), so nothing is published');
  } else {
    const target = at.broker ? `${at.broker.protocol}://${hostPort(at.broker)}` : '';
    const eb = at.embeddedBroker;
    if (m.azureEventGrid.enable) lines.push(`MQTT: publishing to Azure Event Grid at ${target} as ${config.clientId}`);
    else if (eb && at.broker && eb.host === at.broker.host && eb.port === at.broker.port) lines.push(`MQTT: embedded broker on ${hostPort(eb)}, the bridge publishes to it as ${config.clientId}`);
    else if (eb) lines.push(`MQTT: embedded broker on ${hostPort(eb)}; the bridge publishes to ${target} as ${config.clientId}`);
    else lines.push(`MQTT: publishing to ${target} as ${config.clientId}`);
  }

  if (at.udp.length > 0) lines.push(`UDP: ${at.udp.map((u) => `${u.name} on ${hostPort(u)}`).join(', ')}`);
  else if (m.enable) lines.push('UDP: off (Butler.udpServerConfig.enable is false), so no reload alerts from the Sense scheduler');

  const fwd = m.qlikSenseCloud.event.mqttForward;
  if (m.enable && fwd.enable) lines.push(`Qlik Cloud events: forwarded over MQTT from ${fwd.broker.host}:${fwd.broker.port} (${fwd.topic.subscriptionRoot})`);

  if (at.http) {
    const url = browsableUrl(at.http, hostname);
    lines.push(`HTTP: ${hostPort(at.http)}${b.restServerEndpointsEnable.mqttPublishMessage ? ', PUT /v4/mqttpublishmessage on' : ''}, API documentation at ${url}documentation`);
    lines.push(`Status page: ${url}`);
  } else {
    lines.push('HTTP: off (Butler.restServerConfig.enable is false), so no status page, health or metrics');
  }

  const missing: string[] = [];
  const qrsMissing = !b.configQRS.host;
  if (m.enable && qrsMissing) {
    const effects = ['reload alerts carry "enrichmentError":"QRS not configured"', 'task starts via MQTT are refused'];
    if (b.qlikSenseLicense.serverLicenseMonitor.enable) effects.push('the license monitor stays off');
    lines.push(`Not configured: Qlik Sense repository (Butler.configQRS.host is empty): ${effects.join(', ')}`);
    missing.push('qrs');
  }

  lines.push(`Next step: ${nextStep(config, at, missing)}`);
  return lines;
}

function nextStep(config: LoadedConfig, at: StartupAddresses, missing: string[]): string {
  const m = config.butler.mqttConfig;
  if (!m.enable) return 'set Butler.mqttConfig.enable to true and the broker in Butler.mqttConfig (docs/configuration.md)';
  if (missing.includes('qrs')) {
    const tour = at.http && config.butler.restServerConfig.testEventButton ? 'try it from the status page ("Send test event"), then ' : '';
    return `${tour}connect it to your Sense site: docs/connect-to-sense.md`;
  }
  return `check the Sense connection with "butler-mqtt check-config --connect --config ${config.file}"`;
}
