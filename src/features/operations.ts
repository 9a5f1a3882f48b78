// Operating the bridge over HTTP: Prometheus metrics and the status page, added to the HTTP server
// when there is one.
import dgram from 'node:dgram';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { packageVersion } from '../package-root.ts';
import type { Feature, FeatureContext } from './feature.ts';
import { metricsRoutes } from '../http/routes/metrics.ts';
import { statusRoutes, type StatusSnapshot, type TestEventResult } from '../http/routes/status.ts';
import type { Outbox } from '../store/outbox.ts';
import { asyncApiRoutes } from '../http/routes/asyncapi.ts';
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

/** The dead-letter section of the status page: how many, and the five moved last. */
export function deadLetterSummary(outbox: Outbox): { count: number; latest: { id: number; topic: string; kind: string; movedAt: number; attempts: number; reason: string }[] } {
  const count = outbox.deadLetters.count;
  const latest = count === 0 ? [] : outbox.deadLetters.latest(5).map((r) => ({ id: r.id, topic: r.topic, kind: r.kind, movedAt: r.movedAt, attempts: r.attempts, reason: r.reason }));
  return { count, latest };
}

export const operations: Feature = {
  name: 'metrics and status page',
  enabled: (b) => b.restServerConfig.enable,
  build(ctx) {
    registerOperations(ctx);
    return [];
  },
};

function registerOperations(ctx: FeatureContext): void {
  const http = ctx.http;
  if (!http) return;
  const b = ctx.config.butler;
  const m = b.mqttConfig;
  const { metrics, activity, logger } = ctx;
  const outbox = ctx.delivery?.outbox ?? null;
  const inbox = ctx.delivery?.inbox ?? null;
  const version = packageVersion();

  http.register(metricsRoutes, { metrics });
  http.register(asyncApiRoutes, { document: () => asyncApiDocument(b, { version }) });

  const qrs = ctx.qrs();
  const startedAt = Date.now();
  const fwd = m.qlikSenseCloud.event.mqttForward;
  const cloudEnabled = m.enable && fwd.enable;
  const udp = b.udpServerConfig;
  const conn = ctx.delivery?.connection ?? null;

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
            logger.info(`status page: test datagram sent to ${host}:${udp.portTaskFailure}`);
            return { ok: true, message: `test reload-failed datagram sent to ${host}:${udp.portTaskFailure}` };
          },
        }
      : testEventVia === 'outbox' && outbox
        ? {
            send: async () => {
              const id = activity.event({ source: 'status_page', summary: 'test message' });
              const payload = JSON.stringify({ test: true, from: os.hostname(), at: new Date().toISOString() });
              try {
                const rows = await outbox.enqueue([{ topic: TEST_EVENT_TOPIC, payload, kind: 'test_event' }]);
                activity.messages(id, rows, [TEST_EVENT_TOPIC]);
              } catch (err) {
                activity.failed(id, (err as Error).message);
                return { ok: false, message: `test message refused: ${(err as Error).message}` };
              }
              return { ok: true, message: `test message queued for ${TEST_EVENT_TOPIC}` };
            },
          }
        : null;

  /** Kernel receive-buffer drops over every UDP port (null where they cannot be read). */
  const udpKernelDrops = async (): Promise<number | null> => {
    const data = await metrics.udpKernelDrops.get();
    return data.values.length === 0 ? null : data.values.reduce((sum, v) => sum + v.value, 0);
  };

  const snapshot = async (): Promise<StatusSnapshot> => {
    const readiness = ctx.readiness();
    const health = qrs?.health() ?? null;
    return {
      version,
      host: os.hostname(),
      clientId: ctx.config.clientId,
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
      inbox: inbox ? { depth: inbox.depth, oldestAgeSeconds: inbox.oldestAgeSeconds(), quarantined: inbox.quarantined } : null,
      deadLetters: outbox ? deadLetterSummary(outbox) : null,
      ha: ctx.delivery?.ha
        ? {
            instanceId: ctx.delivery.ha.options.instanceId,
            priority: ctx.delivery.ha.options.priority,
            role: ctx.delivery.ha.role,
            since: ctx.delivery.ha.since,
            held: ctx.delivery.ha.heldCount,
            peers: ctx.delivery.ha.peerList().map((p) => ({ instanceId: p.instanceId, priority: p.priority, role: p.role, live: p.live, lastHeard: p.lastHeard })),
          }
        : null,
      udp: udp.enable ? { address: `${udp.serverHost}:${udp.portTaskFailure}`, kernelDrops: await udpKernelDrops() } : null,
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

  if (b.restServerConfig.testEventButton && !testEvent) logger.warn('restServerConfig.testEventButton is true but MQTT is disabled: the status page shows no test button');

  http.register(statusRoutes, {
    snapshot,
    activity,
    testEvent,
    hooks: { rateLimit: http.rateLimit, requireToken: http.requireToken },
    logger,
  });
}
