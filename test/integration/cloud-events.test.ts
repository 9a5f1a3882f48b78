// Qlik Cloud reload events end to end: a forward broker over TLS with user name and password, the
// bridge's second MQTT client, enrichment through a Qlik Cloud simulator, and the basic and full alerts
// on the main broker. Ignored events publish nothing and are counted and logged once each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudSimulator, CLOUD_TENANT_ID, CLOUD_USER_ID, buildCloudApp, buildCloudReload, buildReloadLog } from '../support/cloud-simulator.ts';
import { waitFor } from '../support/wait.ts';

type Json = Record<string, unknown>;

const TOKEN = 'eyJhbGciOiJFUzM4NCJ9.cloud-events-test.c2lnbmF0dXJl';
const FWD_USER = 'qscloud-forwarder';
const FWD_PASSWORD = 'fwd-password-for-tests';
const APP_ID = 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d';
const RELOAD_ID = '6735a1b2c3d4e5f6a7b8c9d0';
const TOPIC = `qscloud/app/reload/${CLOUD_TENANT_ID}`;
const BASIC = 'qscloud/butler/reload_failure';
const FULL = 'qscloud/butler/reload_failure_full';

// 22 lines: the alert carries the last 20.
const LOG_LINES = Array.from({ length: 22 }, (_, i) => `2026-11-20 06:00:${String(28 + i)} ${String(i + 1).padStart(4, '0')} line ${i + 1}`);

const tmp = tempDir('bm-cloud-');
let pki: TestPki;
let main: TestBroker;
let forward: TestBroker;
let sim: CloudSimulator;
let sub: Collector;
let fwdStatus: Collector;
let publisher: MqttClient;
let bridge: InProcessBridge;

function fwdOptions(): IClientOptions {
  return { ca: readFileSync(pki.caCert), servername: 'localhost', username: FWD_USER, password: FWD_PASSWORD };
}

function cloudButler(name: string, over: Json = {}): Json {
  return deepMerge(
    deepMerge(baseButler(main.port), {
      logLevel: 'debug',
      mqttConfig: {
        clientId: `bridge-${name}`,
        delivery: { outboxFile: `${name}/outbox.sqlite` },
        qlikSenseCloud: {
          event: {
            mqttForward: {
              enable: true,
              broker: { host: 'localhost', port: forward.port, username: FWD_USER, password: FWD_PASSWORD, caFile: pki.caCert },
              topic: { subscriptionRoot: 'qscloud/#', appReload: 'qscloud/app/reload' },
            },
          },
        },
      },
      qlikSenseCloud: {
        enable: true,
        event: { mqtt: { tenant: { id: CLOUD_TENANT_ID, tenantUrl: `https://127.0.0.1:${sim.port}`, caFile: pki.caCert, auth: { jwt: { token: TOKEN } } } } },
      },
    }),
    over,
  );
}

/** A failed app reload in CloudEvents 0.1 names, as Qlik forwards com.qlik.v1.app.reload.finished. */
function failedReload(eventId: string, over: { data?: Json; extensions?: Json } = {}): Json {
  return {
    cloudEventsVersion: '0.1',
    source: 'com.qlik/engine',
    contentType: 'application/json',
    eventId,
    eventTime: '2026-11-20T06:01:09Z',
    eventTypeVersion: '1.0.0',
    eventType: 'com.qlik.v1.app.reload.finished',
    extensions: { ownerId: CLOUD_USER_ID, tenantId: CLOUD_TENANT_ID, userId: CLOUD_USER_ID, topLevelResourceId: APP_ID, ...over.extensions },
    data: {
      status: 'error',
      name: 'Sales forecast',
      reloadId: RELOAD_ID,
      duration: 'PT41.263S',
      errors: [{ code: 'EngineScriptError', message: 'Field not found: <Regionn>' }],
      isPartialReload: false,
      ...over.data,
    },
  };
}

async function send(payload: Json | string, topic = TOPIC): Promise<void> {
  await publisher.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
}

function logRecords(b: InProcessBridge): Json[] {
  return b.logs.map((l) => JSON.parse(l) as Json);
}

async function counters(b: InProcessBridge): Promise<Json> {
  const m = b.app.metrics;
  const rejected = (reason: string) => m.total('butler_mqtt_events_rejected_total', { source: 'cloud', reason });
  return {
    received: await m.total('butler_mqtt_events_received_total', { source: 'cloud' }),
    accepted: await m.total('butler_mqtt_events_accepted_total', { source: 'cloud' }),
    other_tenant: await rejected('other_tenant'),
    not_failed: await rejected('not_failed'),
    other_event_type: await rejected('other_event_type'),
    not_json: await rejected('not_json'),
    duplicate: await rejected('duplicate'),
  };
}

async function startCloudBridge(name: string, over: Json = {}): Promise<InProcessBridge> {
  const b = await startInProcess(writeConfig(tmp.dir, cloudButler(name, over), `${name}.yaml`));
  await waitFor(() => logRecords(b).some((r) => typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('subscribed to ') && (r['msg'] as string).endsWith(' on the Qlik Cloud forward broker')), 10_000, 'the cloud subscription');
  return b;
}

before(async () => {
  pki = await createTestPki();
  main = await startBroker();
  forward = await startBroker({ tls: { caCert: pki.caCert, serverCert: pki.serverCert, serverKey: pki.serverKey, requireCertificate: false }, users: [{ username: FWD_USER, password: FWD_PASSWORD }] });
  sim = await CloudSimulator.start({ pki, token: TOKEN });
  sim.addApp(buildCloudApp({ id: APP_ID, name: 'Sales forecast – EMEA' }));
  sim.addReload(buildCloudReload({ id: RELOAD_ID, appId: APP_ID }));
  sim.setReloadLog(APP_ID, RELOAD_ID, buildReloadLog(LOG_LINES));
  sub = await collect(main.url, ['qscloud/#']);
  fwdStatus = await collect(forward.url, ['butler/qscloud/event/mqttforward/status'], fwdOptions());
  publisher = await mqtt.connectAsync(forward.url, { ...fwdOptions(), clientId: 'qlik-cloud-forwarder', reconnectPeriod: 0 });
  bridge = await startCloudBridge('enriched');
});

after(async () => {
  await bridge.stop();
  await publisher.endAsync(true);
  await fwdStatus.close();
  await sub.close();
  await sim.stop();
  await forward.stop();
  await main.stop();
  await pki.cleanup();
  tmp.cleanup();
});

test('a failed reload of the configured tenant: basic and full alert on the main broker, enriched from Qlik Cloud; the status message on the forward broker', async () => {
  await fwdStatus.waitForCount(1, 10_000);
  assert.deepEqual(fwdStatus.texts('butler/qscloud/event/mqttforward/status'), [`Connected to MQTT broker "mqtts://localhost:${forward.port}" with client ID bridge-enriched-qscloud`]);

  await send(failedReload('f2a4c6e8-1111-4222-8333-000000000001'));
  await sub.waitForCount(1, 15_000, FULL);
  assert.deepEqual(sub.texts(BASIC), ['Sales forecast – EMEA']);
  const expected = {
    tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
    appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
    appName: 'Sales forecast – EMEA',
    reloadId: '6735a1b2c3d4e5f6a7b8c9d0',
    eventId: 'f2a4c6e8-1111-4222-8333-000000000001',
    eventType: 'com.qlik.v1.app.reload.finished',
    eventTime: '2026-11-20T06:01:09Z',
    status: 'error',
    userId: '6601a2b3c4d5e6f7a8b9c0d1',
    ownerId: '6601a2b3c4d5e6f7a8b9c0d1',
    duration: 'PT41.263S',
    errors: [{ code: 'EngineScriptError', message: 'Field not found: <Regionn>' }],
    reload: {
      id: '6735a1b2c3d4e5f6a7b8c9d0',
      appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
      tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
      userId: '6601a2b3c4d5e6f7a8b9c0d1',
      type: 'chronos',
      status: 'FAILED',
      log: 'The following error occurred:\nField not found: <Regionn>\nThe error occurred here:\nLOAD Regionn FROM [lib://Data/sales.qvd] (qvd)',
      errorCode: 'EngineScriptError',
      errorMessage: 'Field not found: <Regionn>',
      partial: false,
      creationTime: '2026-11-20T06:00:27.901Z',
      startTime: '2026-11-20T06:00:28.114Z',
      endTime: '2026-11-20T06:01:09.377Z',
      duration: 'PT41.263S',
      engineTime: '2026-11-20T06:00:28.402Z',
      weight: 1,
      links: { self: { href: 'https://tenant.eu.qlikcloud.com/api/v1/reloads/6735a1b2c3d4e5f6a7b8c9d0' } },
    },
    scriptLogTail: [
      '2026-11-20 06:00:30 0003 line 3',
      '2026-11-20 06:00:31 0004 line 4',
      '2026-11-20 06:00:32 0005 line 5',
      '2026-11-20 06:00:33 0006 line 6',
      '2026-11-20 06:00:34 0007 line 7',
      '2026-11-20 06:00:35 0008 line 8',
      '2026-11-20 06:00:36 0009 line 9',
      '2026-11-20 06:00:37 0010 line 10',
      '2026-11-20 06:00:38 0011 line 11',
      '2026-11-20 06:00:39 0012 line 12',
      '2026-11-20 06:00:40 0013 line 13',
      '2026-11-20 06:00:41 0014 line 14',
      '2026-11-20 06:00:42 0015 line 15',
      '2026-11-20 06:00:43 0016 line 16',
      '2026-11-20 06:00:44 0017 line 17',
      '2026-11-20 06:00:45 0018 line 18',
      '2026-11-20 06:00:46 0019 line 19',
      '2026-11-20 06:00:47 0020 line 20',
      '2026-11-20 06:00:48 0021 line 21',
      '2026-11-20 06:00:49 0022 line 22',
    ],
  };
  assert.deepEqual(sub.texts(FULL), [JSON.stringify(expected)]);
  // Enriched with the three documented calls, each with the Bearer token.
  assert.deepEqual(sim.requests.map((r) => r.rawUrl).sort(), [
    `/api/v1/apps/${APP_ID}`,
    `/api/v1/apps/${APP_ID}/reloads/logs/${RELOAD_ID}`,
    `/api/v1/reloads/${RELOAD_ID}`,
  ]);
  for (const line of bridge.logs) {
    assert.ok(!line.includes(TOKEN) && !line.includes(FWD_PASSWORD), `secret in log: ${line}`);
  }
});

test('other tenant, status ok, other event type, non-JSON and a repeated event id publish nothing; each is counted and logged once', async () => {
  await waitFor(() => sub.on(FULL).length >= 1, 15_000, 'the first test to have published'); // the duplicate below repeats its event
  const before = await counters(bridge);
  const published = sub.messages.length;
  const logCount = bridge.logs.length;

  await send(failedReload('f2a4c6e8-1111-4222-8333-000000000002', { extensions: { tenantId: 'SomeOtherTenant0000000000000000x' } }));
  await send(failedReload('f2a4c6e8-1111-4222-8333-000000000003', { data: { status: 'ok', errors: [] } }));
  await send({ ...failedReload('f2a4c6e8-1111-4222-8333-000000000004'), eventType: 'com.qlik.v1.app.created' });
  await send('reload failed, but this is not JSON');
  await send(failedReload('f2a4c6e8-1111-4222-8333-000000000001'));
  // A last good event: once its alerts arrive, everything sent before it has been handled.
  await send(failedReload('f2a4c6e8-1111-4222-8333-000000000005'));
  await waitFor(() => sub.texts(FULL).some((t) => t.includes('f2a4c6e8-1111-4222-8333-000000000005')), 15_000, 'the marker event');

  const after = await counters(bridge);
  const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v as number) - (before[k] as number)]));
  assert.deepEqual(delta, { received: 6, accepted: 1, other_tenant: 1, not_failed: 1, other_event_type: 1, not_json: 1, duplicate: 1 });
  // Only the marker's two alerts were published.
  assert.deepEqual(sub.messages.slice(published).map((m) => m.topic), [BASIC, FULL]);

  const logged = bridge.logs.slice(logCount).map((l) => JSON.parse(l) as Json).filter((r) => r['source'] === 'cloud');
  assert.deepEqual(
    logged.map((r) => [r['reason'], r['level']]),
    [
      ['other_tenant', 'debug'],
      ['not_failed', 'debug'],
      ['other_event_type', 'debug'],
      ['not_json', 'warn'],
      ['duplicate', 'info'],
    ],
  );
  assert.equal(logged[3]?.['msg'], `Qlik Cloud event on ${TOPIC} ignored: payload "reload failed, but this is not JSON" is not valid JSON`);
});

test('Qlik Cloud unreachable: the alert is published anyway, with what the event says and enrichmentError', async () => {
  await sim.stop();
  try {
    await send(failedReload('f2a4c6e8-1111-4222-8333-000000000006'));
    await waitFor(() => sub.texts(FULL).some((t) => t.includes('f2a4c6e8-1111-4222-8333-000000000006')), 20_000, 'the alert');
  } finally {
    await sim.start();
  }
  const text = sub.texts(FULL).find((t) => t.includes('f2a4c6e8-1111-4222-8333-000000000006')) as string;
  const full = JSON.parse(text) as Json;
  const enrichmentError = full['enrichmentError'];
  assert.equal(typeof enrichmentError, 'string');
  const parts = (enrichmentError as string).split('; ');
  assert.equal(parts.length, 3);
  assert.match(parts[0] as string, new RegExp(`^Qlik Cloud GET apps \\(https://127\\.0\\.0\\.1:${sim.port}\\): .*ECONNREFUSED`));
  assert.match(parts[1] as string, new RegExp(`^Qlik Cloud GET reloads \\(https://127\\.0\\.0\\.1:${sim.port}\\): .*ECONNREFUSED`));
  assert.match(parts[2] as string, new RegExp(`^Qlik Cloud GET reload_logs \\(https://127\\.0\\.0\\.1:${sim.port}\\): .*ECONNREFUSED`));
  delete full['enrichmentError'];
  assert.equal(
    JSON.stringify(full),
    JSON.stringify({
      tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
      appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
      appName: 'Sales forecast',
      reloadId: '6735a1b2c3d4e5f6a7b8c9d0',
      eventId: 'f2a4c6e8-1111-4222-8333-000000000006',
      eventType: 'com.qlik.v1.app.reload.finished',
      eventTime: '2026-11-20T06:01:09Z',
      status: 'error',
      userId: '6601a2b3c4d5e6f7a8b9c0d1',
      ownerId: '6601a2b3c4d5e6f7a8b9c0d1',
      duration: 'PT41.263S',
      errors: [{ code: 'EngineScriptError', message: 'Field not found: <Regionn>' }],
      reload: null,
      scriptLogTail: [],
    }),
  );
  // enrichmentError is the last key.
  assert.deepEqual(Object.keys(JSON.parse(text) as Json).slice(-2), ['scriptLogTail', 'enrichmentError']);
  assert.ok(sub.texts(BASIC).includes('Sales forecast'));
});

test('with Butler.qlikSenseCloud.enable false: alerts from the event alone, no Qlik Cloud calls; an accepted event id stays a duplicate after a restart', async () => {
  // Own topics, so this bridge and the one above never see each other's events.
  const over = {
    mqttConfig: {
      cloudReloadFailureTopic: 'qscloud/plain/reload_failure',
      cloudReloadFailureFullTopic: 'qscloud/plain/reload_failure_full',
      qlikSenseCloud: { event: { mqttForward: { topic: { subscriptionRoot: 'qsplain/#', appReload: 'qsplain/app/reload' } } } },
    },
    qlikSenseCloud: { enable: false },
  };
  const plainTopic = `qsplain/app/reload/${CLOUD_TENANT_ID}`;
  sim.clearRequests();
  let plain = await startCloudBridge('plain', over);
  try {
    // The newer event type carries no app name: the basic alert falls back to the app id.
    await send(
      {
        id: 'b347fd0d-1321-417f-91ee-90e96c76389c',
        time: '2026-11-20T07:06:22Z',
        type: 'com.qlik.v1.reload.finished',
        source: 'com.qlik/reloads',
        specversion: '1.0',
        datacontenttype: 'application/json',
        tenantid: CLOUD_TENANT_ID,
        userid: CLOUD_USER_ID,
        ownerid: CLOUD_USER_ID,
        toplevelresourceid: APP_ID,
        data: { id: RELOAD_ID, appId: APP_ID, userId: CLOUD_USER_ID, status: 'FAILED', succeeded: false, errorCode: 'EngineError', errorMessage: 'Field not found', durationSeconds: 12.5 },
      },
      plainTopic,
    );
    await send(failedReload('f2a4c6e8-1111-4222-8333-000000000007'), plainTopic);
    await sub.waitForCount(2, 15_000, 'qscloud/plain/reload_failure_full');
    assert.deepEqual(sub.texts('qscloud/plain/reload_failure'), [APP_ID, 'Sales forecast']);
    assert.deepEqual(sub.texts('qscloud/plain/reload_failure_full'), [
      JSON.stringify({
        tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
        appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
        appName: '',
        reloadId: '6735a1b2c3d4e5f6a7b8c9d0',
        eventId: 'b347fd0d-1321-417f-91ee-90e96c76389c',
        eventType: 'com.qlik.v1.reload.finished',
        eventTime: '2026-11-20T07:06:22Z',
        status: 'FAILED',
        userId: '6601a2b3c4d5e6f7a8b9c0d1',
        ownerId: '6601a2b3c4d5e6f7a8b9c0d1',
        duration: 'PT12.5S',
        errors: [{ code: 'EngineError', message: 'Field not found' }],
        reload: null,
        scriptLogTail: [],
      }),
      JSON.stringify({
        tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
        appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
        appName: 'Sales forecast',
        reloadId: '6735a1b2c3d4e5f6a7b8c9d0',
        eventId: 'f2a4c6e8-1111-4222-8333-000000000007',
        eventType: 'com.qlik.v1.app.reload.finished',
        eventTime: '2026-11-20T06:01:09Z',
        status: 'error',
        userId: '6601a2b3c4d5e6f7a8b9c0d1',
        ownerId: '6601a2b3c4d5e6f7a8b9c0d1',
        duration: 'PT41.263S',
        errors: [{ code: 'EngineScriptError', message: 'Field not found: <Regionn>' }],
        reload: null,
        scriptLogTail: [],
      }),
    ]);
    assert.deepEqual(sim.requests, []);

    // Restart on the same outbox file: the handled event id is still known.
    await plain.stop();
    plain = await startCloudBridge('plain', over);
    await send(failedReload('f2a4c6e8-1111-4222-8333-000000000007'), plainTopic);
    await waitFor(async () => (await plain.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'cloud', reason: 'duplicate' })) === 1, 10_000, 'the duplicate to be counted');
    assert.equal(await plain.app.metrics.total('butler_mqtt_events_accepted_total', { source: 'cloud' }), 0);
    assert.equal(sub.on('qscloud/plain/reload_failure_full').length, 2);
  } finally {
    await plain.stop();
  }
});
