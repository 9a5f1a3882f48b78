// `butler-mqtt check-config`: validates the file, checks the files it names on this machine and prints
// the effective MQTT-related settings, secrets masked. Exit 0 when valid, 2 when not; with --connect,
// also tries the broker, QRS and Qlik Cloud (exit 1 when one of them fails).
import { cloudTenants } from '../cloud/tenants.ts';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { probeBroker, separateClientOptions } from '../mqtt/connection.ts';
import { commandFilter } from '../mqtt/command-source.ts';
import { loadConfigOrExit, preflightOrExit, EXIT_CONFIG_ERROR } from './config-file.ts';
import { mainConnectionOptions, deliveryQos } from '../app.ts';
import { formatIssue, type LoadedConfig } from '../config/load.ts';
import { formatProblem } from '../config/preflight.ts';
import { newXrfKey } from '../sense/qrs-client.ts';

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
            commandSubscription: commandFilter(m.subscriptionRootTopic, m.taskStartTopic, { wholeRoot: m.subscribeWholeRoot, pair: b.highAvailability.enable }),
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

export interface ConnectResult {
  name: string;
  ok: boolean;
  detail: string;
}

const CONNECT_TIMEOUT_MS = 10_000;

/** Resolves with the promise's value or rejects after `ms` (connectAsync can hang on a TLS close). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s (${what})`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function reasonOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: unknown };
  const cause = e.cause as NodeJS.ErrnoException | undefined;
  return [e.code, e.message, cause?.message].filter(Boolean).join(': ');
}

/** One MQTT connect and disconnect, with its own client id (the bridge's own session must not be taken over) and no will. */
async function tryBroker(name: string, url: string, options: IClientOptions): Promise<ConnectResult> {
  try {
    await within(probeBroker(url, options, CONNECT_TIMEOUT_MS), CONNECT_TIMEOUT_MS + 1000, 'MQTT CONNACK');
    return { name, ok: true, detail: 'connected and disconnected' };
  } catch (err) {
    return { name, ok: false, detail: reasonOf(err) };
  }
}

async function tryHttp(name: string, url: string, headers: Record<string, string>, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean }, timeoutMs: number, describe: (body: string) => string): Promise<ConnectResult> {
  // Loaded here, not at start: only --connect needs it.
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { ...tls, timeout: timeoutMs } });
  try {
    const res = await within(request(url, { dispatcher: agent, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }), timeoutMs + 1000, 'HTTP answer');
    const body = await res.body.text();
    if (res.statusCode !== 200) return { name, ok: false, detail: `HTTP ${res.statusCode}` };
    return { name, ok: true, detail: describe(body) };
  } catch (err) {
    return { name, ok: false, detail: reasonOf(err) };
  } finally {
    await agent.close();
  }
}

const pemOf = (file: string) => (file ? readFileSync(file) : undefined);

/** Tries every upstream the config uses; one result per upstream. */
export async function connectChecks(config: LoadedConfig): Promise<ConnectResult[]> {
  const b = config.butler;
  const m = b.mqttConfig;
  const checks: Promise<ConnectResult>[] = [];
  const suffix = `-check-${Math.random().toString(16).slice(2, 8)}`;
  if (m.enable) {
    if (m.embeddedBroker.enable && !m.brokerHost) {
      checks.push(Promise.resolve({ name: 'MQTT broker (embedded)', ok: true, detail: 'skipped: the embedded broker runs inside butler-mqtt' }));
    } else {
      const o = mainConnectionOptions(config);
      const { url, options } = separateClientOptions(o, `${o.clientId}${suffix}`);
      checks.push(tryBroker(`MQTT broker ${url}`, url, options));
    }
    const fwd = m.qlikSenseCloud.event.mqttForward;
    if (fwd.enable) {
      const url = `mqtts://${fwd.broker.host}:${fwd.broker.port}`;
      checks.push(
        tryBroker(`Qlik Cloud forward broker ${url}`, url, {
          clientId: `${config.clientId}-qscloud${suffix}`,
          username: fwd.broker.username || undefined,
          password: fwd.broker.password || undefined,
          ca: pemOf(fwd.broker.caFile),
          rejectUnauthorized: fwd.broker.rejectUnauthorized,
        }),
      );
    }
  }
  const q = b.configQRS;
  if (q.host) {
    const xrf = newXrfKey();
    const base = `${q.useSSL ? 'https' : 'http'}://${q.host.includes(':') ? `[${q.host}]` : q.host}:${q.port}`;
    const headers: Record<string, string> = { 'x-qlik-xrfkey': xrf, accept: 'application/json' };
    for (const h of q.headers.static) headers[h.name.toLowerCase()] = h.value;
    const tls = q.useSSL ? { cert: pemOf(b.cert.clientCert), key: pemOf(b.cert.clientCertKey), ca: pemOf(b.cert.clientCertCA), rejectUnauthorized: q.rejectUnauthorized } : { rejectUnauthorized: false };
    checks.push(
      tryHttp(`QRS ${base}`, `${base}/qrs/about?xrfkey=${xrf}`, headers, tls, q.timeoutMs, (body) => {
        try {
          const v = (JSON.parse(body) as { buildVersion?: unknown }).buildVersion;
          return typeof v === 'string' ? `GET /qrs/about answered, build ${v}` : 'GET /qrs/about answered';
        } catch {
          return 'GET /qrs/about answered';
        }
      }),
    );
  }
  const c = b.qlikSenseCloud;
  if (c.enable) {
    const t = c.event.mqtt.tenant;
    const base = t.tenantUrl.replace(/\/+$/, '');
    checks.push(tryHttp(`Qlik Cloud ${base}`, `${base}/api/v1/users/me`, { authorization: `Bearer ${t.auth.jwt.token}`, accept: 'application/json' }, { ca: pemOf(t.caFile), rejectUnauthorized: true }, 10_000, () => 'GET /api/v1/users/me answered'));
  }
  return Promise.all(checks);
}

export function registerCheckConfig(program: Command): void {
  program
    .command('check-config')
    .description('validate the config file and the files it names, and print the effective MQTT-related settings (secrets masked)')
    .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config/butler-mqtt.yaml)')
    .option('--strict', 'unknown keys inside the sections butler-mqtt reads are errors, not warnings')
    .option('--connect', 'also connect to the MQTT broker, QRS and Qlik Cloud, and report each (exit 1 when one fails)')
    .action(async (opts: { config?: string; strict?: boolean; connect?: boolean }) => {
      const config = loadConfigOrExit(opts.config, { strict: opts.strict === true });
      const warnings = preflightOrExit(config);
      for (const w of config.unknownKeys) process.stderr.write(`warning:${formatIssue(w)}\n`);
      for (const w of warnings) process.stderr.write(`warning:${formatProblem(w)}\n`);
      process.stdout.write(`${config.file}: configuration is valid\n${JSON.stringify(effectiveSettings(config), null, 2)}\n`);
      if (!opts.connect) return;
      let results: ConnectResult[];
      try {
        results = await connectChecks(config);
      } catch (err) {
        process.stderr.write(`butler-mqtt: connection checks could not run: ${(err as Error).message}\n`);
        process.exit(EXIT_CONFIG_ERROR);
      }
      process.stdout.write('connections:\n');
      for (const r of results) process.stdout.write(`  ${r.name}: ${r.ok ? 'ok' : 'failed'} (${r.detail})\n`);
      if (results.length === 0) process.stdout.write('  (none configured)\n');
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });
}
