// Operating the bridge over HTTP: Prometheus metrics and the status page, added to the HTTP server
// when there is one. Also wires the scrape-time gauges (age of the oldest outbox / inbox row), which
// matter even without HTTP for anyone reading the registry.
import dgram from 'node:dgram';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { packageVersion } from '../package-root.ts';
import type { App } from '../app.ts';
import type { FeatureContext } from '../features.ts';
import type { HttpServer } from './server.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { statusRoutes, type StatusSnapshot, type TestEventResult } from './routes/status.ts';
import { asyncApiRoutes } from './routes/asyncapi.ts';
import { asyncApiDocument } from '../contract/asyncapi.ts';

/** Topic of the test message when the UDP input is off. */
export const TEST_EVENT_TOPIC = 'qliksense/butler/mqtt/test';
export const TEST_TASK_NAME = 'butler-mqtt test event';


/** A reload-failed datagram as the Sense scheduler's log appender sends it; unique ids so dedup lets repeats through. */
export function testDatagram(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())} ${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())},${p(now.getMilliseconds(), 3)}`;
  const fields = [
    '/scheduler-reload-failed/',
    os.hostname(),
    TEST_TASK_NAME,
    'butler-mqtt test app',
    'INTERNAL\\sa_scheduler',
    randomUUID(),
    randomUUID(),
    stamp,
    'ERROR',
    randomUUID(),
    'Test event sent from the butler-mqtt status page; not a real reload failure.',
  ];
  return fields.join(';');
}

/** Where a datagram to the configured UDP input goes (a wildcard listen address means loopback). */
export function udpTarget(serverHost: string): string {
  if (serverHost === '' || serverHost === '0.0.0.0') return '127.0.0.1';
  if (serverHost === '::') return '::1';
  return serverHost;
}

async function sendUdp(host: string, port: number, text: string): Promise<void> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => socket.send(Buffer.from(text, 'utf8'), port, host, (err) => (err ? reject(err) : resolve())));
  } finally {
    socket.close();
  }
}

export function registerOperations(app: App, ctx: FeatureContext, http: HttpServer | null): void {
  const b = app.config.butler;
  const m = b.mqttConfig;
  const { metrics, outbox, inbox } = app;
  const version = packageVersion();
  metrics.buildInfo.set({ version, node: process.version }, 1);
  if (outbox) metrics.sampleOnCollect('outboxOldestAge', () => outbox.oldestAgeSeconds());
  if (inbox) metrics.sampleOnCollect('inboxOldestAge', () => inbox.oldestAgeSeconds());
  if (!http) return;

  http.register(metricsRoutes, { metrics });
  http.register(asyncApiRoutes, { document: asyncApiDocument(b, { version }) });

  const qrs = b.configQRS.host ? ctx.qrs() : null;
  const startedAt = Date.now();
  const fwd = m.qlikSenseCloud.event.mqttForward;
  const cloudEnabled = m.enable && fwd.enable;
  const udp = b.udpServerConfig;
  const conn = app.connection;

  const gaugeValue = async (name: string, labels: Record<string, string>): Promise<number | null> => {
    const metric = metrics.registry.getSingleMetric(name);
    if (!metric) return null;
    const data = await metric.get();
    const v = data.values.find((x) => Object.entries(labels).every(([k, val]) => String((x.labels as Record<string, unknown>)[k]) === val));
    return v ? v.value : null;
  };

  // The test button: with the UDP input on, a real reload-failed datagram walks the whole path
  // (listener, inbox, QRS, outbox, broker); with it off, one message goes straight to the outbox.
  const testEventVia: 'udp' | 'outbox' | null = !b.restServerConfig.testEventButton ? null : udp.enable && m.enable ? 'udp' : outbox ? 'outbox' : null;
  const testEvent: { send: () => Promise<TestEventResult> } | null =
    testEventVia === 'udp'
      ? {
          send: async () => {
            const host = udpTarget(udp.serverHost);
            try {
              await sendUdp(host, udp.portTaskFailure, testDatagram());
            } catch (err) {
              return { ok: false, message: `could not send the test datagram to ${host}:${udp.portTaskFailure}: ${(err as Error).message}` };
            }
            app.logger.info(`status page: test datagram sent to ${host}:${udp.portTaskFailure}`);
            return { ok: true, message: `test reload-failed datagram sent to ${host}:${udp.portTaskFailure}` };
          },
        }
      : testEventVia === 'outbox' && outbox
        ? {
            send: async () => {
              const id = app.activity.event({ source: 'status_page', summary: 'test message' });
              const payload = JSON.stringify({ test: true, from: os.hostname(), at: new Date().toISOString() });
              try {
                const rows = await outbox.enqueue([{ topic: TEST_EVENT_TOPIC, payload, kind: 'test_event' }]);
                app.activity.messages(id, rows, [TEST_EVENT_TOPIC]);
              } catch (err) {
                app.activity.failed(id, (err as Error).message);
                return { ok: false, message: `test message refused: ${(err as Error).message}` };
              }
              return { ok: true, message: `test message queued for ${TEST_EVENT_TOPIC}` };
            },
          }
        : null;

  const snapshot = async (): Promise<StatusSnapshot> => {
    const readiness = app.readiness();
    const health = qrs?.health() ?? null;
    return {
      version,
      host: os.hostname(),
      clientId: app.config.clientId,
      startedAt,
      now: Date.now(),
      ready: readiness.ready,
      reasons: readiness.reasons,
      broker: conn
        ? {
            enabled: true,
            connected: conn.connected,
            address: `${conn.options.protocol}://${conn.options.host}:${conn.options.port}`,
            reconnects: await metrics.total('butler_mqtt_broker_reconnects_total', { broker: 'main' }),
          }
        : { enabled: false },
      cloudBroker: cloudEnabled
        ? { enabled: true, connected: (await gaugeValue('butler_mqtt_broker_connected', { broker: 'cloud' })) === 1, address: `mqtts://${fwd.broker.host}:${fwd.broker.port}` }
        : { enabled: false },
      qrs: qrs && health
        ? { enabled: true, address: `${b.configQRS.useSSL ? 'https' : 'http'}://${b.configQRS.host}:${b.configQRS.port}`, reachable: health.reachable, lastSuccessAt: health.lastSuccessAt, lastError: health.lastError, lastErrorAt: health.lastErrorAt }
        : { enabled: false },
      outbox: outbox
        ? { depth: outbox.depth, bytes: outbox.byteSize, maxMessages: outbox.limits.maxMessages, maxBytes: outbox.limits.maxBytes, oldestAgeSeconds: outbox.oldestAgeSeconds() }
        : null,
      inbox: inbox ? { depth: inbox.depth, oldestAgeSeconds: inbox.oldestAgeSeconds() } : null,
      udp: udp.enable ? { address: `${udp.serverHost}:${udp.portTaskFailure}` } : null,
      totals: {
        received: await metrics.total('butler_mqtt_events_received_total'),
        accepted: await metrics.total('butler_mqtt_events_accepted_total'),
        rejected: await metrics.total('butler_mqtt_events_rejected_total'),
        delivered: await metrics.total('butler_mqtt_messages_delivered_total'),
        refused: await metrics.total('butler_mqtt_messages_refused_total'),
      },
      testEvent: testEvent ? { enabled: true, via: testEventVia, tokenRequired: Boolean(b.restServerConfig.apiToken) } : { enabled: false },
    };
  };

  if (b.restServerConfig.testEventButton && !testEvent) app.logger.warn('restServerConfig.testEventButton is true but MQTT is disabled: the status page shows no test button');

  http.register(statusRoutes, {
    snapshot,
    activity: app.activity,
    testEvent,
    hooks: { rateLimit: http.rateLimit, requireToken: http.requireToken },
    logger: app.logger,
  });
}
