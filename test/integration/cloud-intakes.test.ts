// The direct Qlik Cloud intakes next to the others: a reload that arrives both forwarded over MQTT and
// straight from Qlik Cloud alerts once; and webhook deliveries while the main broker is away — accepted
// into the durable inbox while there is room (the outbox being full does not refuse them), 503 once the
// inbox is full, and every one published once after the broker is back and Qlik Cloud delivered again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudSimulator, CLOUD_TENANT_ID, CLOUD_USER_ID, buildCloudApp, buildReloadFinishedEvent, qlikSignature } from '../support/cloud-simulator.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';

type Json = Record<string, unknown>;

const TOKEN = 'eyJhbGciOiJFUzM4NCJ9.intakes-key.c2lnbmF0dXJl';
const SECRET = 'intakes-webhook-secret-0123456789abcdef';
const FWD_USER = 'qscloud-forwarder';
const FWD_PASSWORD = 'fwd-password-for-tests';
const APP_ID = 'b7c8d9e0-f1a2-4b3c-8d4e-5f6a7b8c9d0e';
const BASIC = 'qscloud/butler/reload_failure';
const FULL = 'qscloud/butler/reload_failure_full';

const tmp = tempDir('bm-intakes-');
let pki: TestPki;
let main: TestBroker;
let forward: TestBroker;
let sim: CloudSimulator;
let publisher: MqttClient;

before(async () => {
  pki = await createTestPki();
  main = await startBroker({ persistence: true });
  forward = await startBroker({ tls: { caCert: pki.caCert, serverCert: pki.serverCert, serverKey: pki.serverKey, requireCertificate: false }, users: [{ username: FWD_USER, password: FWD_PASSWORD }] });
  sim = await CloudSimulator.start({ pki, token: TOKEN });
  sim.deliveryRetryBaseMs = 100;
  sim.addApp(buildCloudApp({ id: APP_ID, name: 'Inventory' }));
  publisher = await mqtt.connectAsync(forward.url, { ca: readFileSync(pki.caCert), servername: 'localhost', username: FWD_USER, password: FWD_PASSWORD, clientId: 'qlik-cloud-forwarder', reconnectPeriod: 0 });
});

after(async () => {
  await publisher.endAsync(true);
  await sim.stop();
  await forward.stop();
  await main.stop();
  await pki.cleanup();
  tmp.cleanup();
});

/** The single-tenant Butler keys plus a tenant that only names itself: it takes url, key and id from them. */
function butler(name: string, httpPort: number, over: Json = {}): Json {
  return deepMerge(
    deepMerge(baseButler(main.port), {
      logLevel: 'debug',
      mqttConfig: {
        clientId: `bridge-${name}`,
        delivery: { outboxFile: `${name}/outbox.sqlite` },
        qlikSenseCloud: { event: { mqttForward: { enable: true, broker: { host: 'localhost', port: forward.port, username: FWD_USER, password: FWD_PASSWORD, caFile: pki.caCert }, topic: { subscriptionRoot: 'qscloud/#', appReload: 'qscloud/app/reload' } } } },
      },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
      qlikSenseCloud: {
        enable: true,
        event: { mqtt: { tenant: { id: CLOUD_TENANT_ID, tenantUrl: sim.url, caFile: pki.caCert, auth: { jwt: { token: TOKEN } } } } },
        tenants: [{ name: 'acme', webhookSecret: SECRET, webhook: true, poller: false }],
      },
    }),
    over,
  );
}

/** A failed reload as a relay forwards com.qlik.v1.app.reload.finished (CloudEvents 0.1 names). */
function forwarded(eventId: string, reloadId: string): Json {
  return {
    cloudEventsVersion: '0.1',
    source: 'com.qlik/engine',
    eventId,
    eventTime: '2026-11-20T06:01:09Z',
    eventType: 'com.qlik.v1.app.reload.finished',
    extensions: { tenantId: CLOUD_TENANT_ID, userId: CLOUD_USER_ID, topLevelResourceId: APP_ID },
    data: { status: 'error', name: 'Inventory', reloadId, errors: [{ code: 'EngineScriptError', message: 'Table not found' }] },
  };
}

test('the same reload forwarded over MQTT and delivered by the webhook alerts once, whichever comes first; the reload and state topics still follow', async () => {
  const httpPort = await freePort();
  const sub = await collect(main.url, ['qscloud/butler/#', 'qlikcloud/#']);
  const bridge = await startInProcess(writeConfig(tmp.dir, butler('both', httpPort), 'both.yaml'));
  sim.webhooks.clear();
  sim.addWebhook({ url: `http://127.0.0.1:${httpPort}/qlik-cloud/webhook/acme`, secret: SECRET });
  try {
    await waitFor(() => bridge.logs.some((l) => l.includes('on the Qlik Cloud forward broker')), 10_000, 'the forward subscription');
    // 1. Forwarded first, then the webhook (another event id, the same reload).
    await publisher.publishAsync(`qscloud/app/reload/${CLOUD_TENANT_ID}`, JSON.stringify(forwarded('fwd-0001', 'reload-both-1')), { qos: 1 });
    await sub.waitForCount(1, 10_000, BASIC);
    assert.deepEqual(await sim.emit(buildReloadFinishedEvent({ eventId: 'wh-0001', reloadId: 'reload-both-1', appId: APP_ID, status: 'FAILED' })), [200]);
    await sub.waitForCount(1, 10_000, `qlikcloud/acme/app/${APP_ID}/state`);
    // 2. The webhook first, then the same event (same id) forwarded by a relay.
    const event = buildReloadFinishedEvent({ eventId: 'wh-0002', reloadId: 'reload-both-2', appId: APP_ID, status: 'FAILED' });
    assert.deepEqual(await sim.emit(event), [200]);
    await sub.waitForCount(2, 10_000, `qlikcloud/acme/app/${APP_ID}/state`);
    await publisher.publishAsync(`qscloud/app/reload/${CLOUD_TENANT_ID}`, JSON.stringify(event), { qos: 1 });
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'cloud', reason: 'duplicate' })) === 1, 10_000, 'the forwarded copy counted as a duplicate');
    // A marker through the forward lane: once its alert is out, the copies above are done too.
    await publisher.publishAsync(`qscloud/app/reload/${CLOUD_TENANT_ID}`, JSON.stringify(forwarded('fwd-marker', 'reload-marker')), { qos: 1 });
    await waitFor(() => sub.texts(FULL).some((t) => t.includes('fwd-marker')), 10_000, 'the marker alert');
    const fulls = sub.texts(FULL).map((t) => JSON.parse(t) as Json);
    assert.deepEqual(fulls.map((f) => [f['reloadId'], f['eventId']]), [['reload-both-1', 'fwd-0001'], ['reload-both-2', 'wh-0002'], ['reload-marker', 'fwd-marker']]);
    assert.deepEqual(sub.texts(BASIC), ['Inventory', 'Inventory', 'Inventory']);
    const reloads = sub.texts(`qlikcloud/acme/app/${APP_ID}/reload`).map((t) => JSON.parse(t) as Json);
    assert.deepEqual(reloads.map((r) => [r['reloadId'], r['intake'], r['appName']]), [['reload-both-1', 'webhook', 'Inventory'], ['reload-both-2', 'webhook', 'Inventory']]);
  } finally {
    await bridge.stop();
    await sub.close();
  }
});

test('broker away: deliveries are accepted while the inbox has room (full outbox or not), 503 once it is full; after the broker is back and the refused ones are delivered again, all are published once', async (t) => {
  const httpPort = await freePort();
  const clientId = `intakes-sub-${randomUUID().slice(0, 8)}`;
  const sub = await collect(main.url, ['qlikcloud/#'], { clean: false, clientId, reconnectPeriod: 100 });
  // The subscription must be on disk before the kill.
  await main.sessionSaved(clientId, ['qlikcloud/#']);
  await main.kill();
  // Outbox: 4 messages = 2 reloads (reload + state each); inbox: 100 events.
  const bridge = await startInProcess(writeConfig(tmp.dir, butler('away', httpPort, { mqttConfig: { delivery: { maxMessages: 4 } }, udpServerConfig: { inboxMaxEvents: 100 }, qlikSenseCloud: { tenants: [{ name: 'acme', webhookSecret: SECRET, webhook: true, poller: false, enrich: false }] } }), 'away.yaml'));
  try {
    const bodies: string[] = [];
    const statuses: number[] = [];
    const answerMs: number[] = [];
    for (let i = 1; i <= 105; i++) {
      const body = JSON.stringify(buildReloadFinishedEvent({ eventId: `away-${i}`, reloadId: `reload-away-${String(i).padStart(3, '0')}`, appId: APP_ID, status: 'SUCCEEDED', endTime: new Date(Date.UTC(2026, 10, 20, 10, 0, i)).toISOString() }));
      bodies.push(body);
      const sent = performance.now();
      const res = await fetch(`http://127.0.0.1:${httpPort}/qlik-cloud/webhook/acme`, { method: 'POST', headers: { 'content-type': 'application/json', 'qlik-signature': qlikSignature(body, SECRET) }, body });
      answerMs.push(performance.now() - sent);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    // 2 reloads completed into the full outbox + 100 waiting in the inbox are accepted; the last 3 are refused.
    assert.deepEqual(statuses, [...Array<number>(102).fill(200), 503, 503, 503]);
    assert.equal(await bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'cloud_direct', reason: 'inbox_full' }), 3);
    await main.restart();
    // Qlik Cloud delivers the refused ones again (same body, same signature) until they are taken.
    for (const body of bodies.slice(102)) {
      await waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${httpPort}/qlik-cloud/webhook/acme`, { method: 'POST', headers: { 'content-type': 'application/json', 'qlik-signature': qlikSignature(body, SECRET) }, body });
        await res.arrayBuffer();
        return res.status === 200;
      }, 20_000, 'a refused delivery accepted on retry', 200);
    }
    const topic = `qlikcloud/acme/app/${APP_ID}/reload`;
    await sub.waitForCount(105, 45_000, topic);
    await waitFor(() => bridge.app.inbox!.depth === 0 && bridge.app.outbox!.depth === 0, 10_000, 'inbox and outbox to empty');
    const ids = sub.texts(topic).map((x) => (JSON.parse(x) as Json)['reloadId'] as string);
    assert.equal(new Set(ids).size, 105);
    assert.equal(ids.length, 105, 'each once');
    assert.deepEqual(ids, [...ids].sort(), 'in the order accepted');
    const sorted = answerMs.slice(0, 102).sort((a, b) => a - b);
    const pct = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0).toFixed(1);
    t.diagnostic(`102 accepted while the broker was away (4 messages in the outbox, 100 events in the inbox), 3 refused with 503 and taken on retry; 105 of 105 published once; answer time of an accepted delivery (verify + durable accept): p50 ${pct(50)} ms, p99 ${pct(99)} ms`);
  } finally {
    await bridge.stop();
    await sub.close();
  }
});
