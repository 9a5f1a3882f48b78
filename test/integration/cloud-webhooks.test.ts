// Qlik Cloud reload events straight from Qlik Cloud: two tenants, each a Qlik Cloud simulator that signs
// its webhook deliveries as Qlik documents (hex HMAC-SHA256 of the body in Qlik-Signature) and retries
// failed ones; the bridge's webhook route, its reloads API poller, and what reaches the main broker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudSimulator, CLOUD_TENANT_ID, buildCloudApp, buildCloudReload, buildReloadLog, buildReloadFinishedEvent, qlikSignature } from '../support/cloud-simulator.ts';
import { freePort, waitFor } from '../support/wait.ts';

type Json = Record<string, unknown>;

const ACME_TOKEN = 'eyJhbGciOiJFUzM4NCJ9.acme-key.c2lnbmF0dXJl';
const GLOBEX_TOKEN = 'eyJhbGciOiJFUzM4NCJ9.globex-key.c2lnbmF0dXJl';
const GLOBEX_TENANT_ID = 'Gl0bexTenant00000000000000000001';
const ACME_SECRET = 'a'.repeat(20) + '0123456789abcdef0123456789abcdef0123456789ab';
const GLOBEX_SECRET = 'Globex-webhook-secret-with-thirty-six!';
const APP_ID = 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d';
const RELOAD_ID = '6735a1b2c3d4e5f6a7b8c9d0';
const BASIC = 'qscloud/butler/reload_failure';
const FULL = 'qscloud/butler/reload_failure_full';

const tmp = tempDir('bm-cloudwh-');
let pki: TestPki;
let broker: TestBroker;
let acme: CloudSimulator;
let globex: CloudSimulator;
let sub: Collector;
let bridge: InProcessBridge;
let httpPort: number;
let configFile: string;

const webhookUrl = (tenant: string) => `http://127.0.0.1:${httpPort}/qlik-cloud/webhook/${tenant}`;

function butler(): Json {
  return deepMerge(baseButler(broker.port), {
    logLevel: 'debug',
    mqttConfig: { clientId: 'bridge-cloudwh', delivery: { outboxFile: 'cloudwh/outbox.sqlite' } },
    restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    restServerEndpointsEnable: { mqttPublishMessage: true },
    qlikSenseCloud: {
      tenants: [
        { name: 'acme', url: acme.url, tenantId: CLOUD_TENANT_ID, apiKey: ACME_TOKEN, caFile: pki.caCert, webhookSecret: ACME_SECRET, webhook: true, poller: false },
        { name: 'globex', url: globex.url, tenantId: GLOBEX_TENANT_ID, apiKey: GLOBEX_TOKEN, caFile: pki.caCert, webhookSecret: GLOBEX_SECRET, webhook: true, poller: true, pollIntervalSeconds: 1, pollLookbackMinutes: 60, pollOverlapMinutes: 10 },
      ],
    },
  });
}

async function post(tenant: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: Json }> {
  const res = await fetch(webhookUrl(tenant), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, body: (await res.json()) as Json };
}

const json = (topic: string): Json[] => sub.texts(topic).map((t) => JSON.parse(t) as Json);
const reloadTopic = (tenant: string, appId: string) => `qlikcloud/${tenant}/app/${appId}/reload`;
const stateTopic = (tenant: string, appId: string) => `qlikcloud/${tenant}/app/${appId}/state`;
/** Waits for the state message of a reload: the last of the messages a reload publishes. */
const stateFor = (tenant: string, appId: string, reloadId: string) =>
  waitFor(() => json(stateTopic(tenant, appId)).some((s) => s['reloadId'] === reloadId), 10_000, `the state message of ${reloadId}`);
const reloadsOf = (tenant: string) => sub.messages.filter((m) => m.topic.startsWith(`qlikcloud/${tenant}/`) && m.topic.endsWith('/reload')).map((m) => JSON.parse(m.text) as Json);

async function rejected(reason: string): Promise<number> {
  return bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'cloud_direct', reason });
}

/** A reload record of the globex tenant. */
const globexReload = (spec: Parameters<typeof buildCloudReload>[0]) => ({ ...buildCloudReload(spec), tenantId: GLOBEX_TENANT_ID });

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

before(async () => {
  pki = await createTestPki();
  broker = await startBroker();
  acme = await CloudSimulator.start({ pki, token: ACME_TOKEN });
  globex = await CloudSimulator.start({ pki, token: GLOBEX_TOKEN });
  for (const s of [acme, globex]) s.deliveryRetryBaseMs = 100;
  acme.addApp(buildCloudApp({ id: APP_ID, name: 'Sales forecast – EMEA' }));
  acme.addReload(buildCloudReload({ id: RELOAD_ID, appId: APP_ID }));
  acme.setReloadLog(APP_ID, RELOAD_ID, buildReloadLog());
  httpPort = await freePort();
  sub = await collect(broker.url, ['qscloud/#', 'qlikcloud/#']);
  configFile = writeConfig(tmp.dir, butler());
  bridge = await startInProcess(configFile);
  acme.addWebhook({ url: webhookUrl('acme'), secret: ACME_SECRET });
  globex.addWebhook({ url: webhookUrl('globex'), secret: GLOBEX_SECRET });
});

after(async () => {
  await bridge.stop();
  await sub.close();
  await acme.stop();
  await globex.stop();
  await broker.stop();
  await pki.cleanup();
  tmp.cleanup();
});

test('a correctly signed reload.finished delivery (FAILED): 200, the failure alerts enriched from Qlik Cloud, the reload and the retained app state', async () => {
  const event = buildReloadFinishedEvent({ eventId: 'evt-acme-0001', reloadId: RELOAD_ID, appId: APP_ID, status: 'FAILED', startTime: '2026-11-20T06:00:28.114Z', endTime: '2026-11-20T06:01:09.377Z' });
  assert.deepEqual(await acme.emit(event), [200]);
  await sub.waitForCount(1, 10_000, stateTopic('acme', APP_ID));
  assert.deepEqual(sub.texts(BASIC), ['Sales forecast – EMEA']);
  const full = json(FULL)[0] as Json;
  assert.equal(full['eventId'], 'evt-acme-0001');
  assert.equal(full['eventType'], 'com.qlik.v1.reload.finished');
  assert.equal(full['appName'], 'Sales forecast – EMEA');
  assert.equal(full['status'], 'FAILED');
  assert.deepEqual(full['errors'], [{ code: 'EngineScriptError', message: 'Field not found: <Regionn>' }]);
  assert.deepEqual(full['scriptLogTail'], ['2026-11-20 06:00:28 0000 Started loading data', '2026-11-20 06:00:29 0003 Sales:', '2026-11-20 06:00:29 0004 LOAD Regionn FROM [lib://Data/sales.qvd] (qvd)', '2026-11-20 06:01:09      Error: Field not found: <Regionn>', '2026-11-20 06:01:09      Execution Failed', '2026-11-20 06:01:09      Execution finished.']);
  assert.deepEqual(json(reloadTopic('acme', APP_ID)), [
    {
      tenant: 'acme',
      tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
      appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
      appName: 'Sales forecast – EMEA',
      reloadId: '6735a1b2c3d4e5f6a7b8c9d0',
      status: 'FAILED',
      startTime: '2026-11-20T06:00:28.114Z',
      stopTime: '2026-11-20T06:01:09.377Z',
      duration: 41263,
      errors: [{ code: 'EngineScriptError', message: 'Field not found: <Regionn>' }],
      intake: 'webhook',
      eventId: 'evt-acme-0001',
      eventType: 'com.qlik.v1.reload.finished',
    },
  ]);
  const state = sub.on(stateTopic('acme', APP_ID));
  assert.equal(state[0]?.retain, false, 'a live subscriber gets the retained message without the retain flag');
  assert.deepEqual(JSON.parse(state[0]?.text ?? ''), {
    tenant: 'acme',
    tenantId: 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh',
    appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
    appName: 'Sales forecast – EMEA',
    reloadId: '6735a1b2c3d4e5f6a7b8c9d0',
    status: 'FAILED',
    startTime: '2026-11-20T06:00:28.114Z',
    stopTime: '2026-11-20T06:01:09.377Z',
    duration: 41263,
    consecutiveFailures: 1,
    lastSuccessTime: '',
  });
  // Retained: a subscriber that joins later still gets it.
  const late = await collect(broker.url, stateTopic('acme', APP_ID));
  try {
    await late.waitForCount(1, 5_000);
    assert.equal(late.messages[0]?.retain, true);
  } finally {
    await late.close();
  }
});

test('missing, malformed, wrong and replayed signatures: 401 for the first three and nothing published; a verbatim resend is Qlik\'s retry and answers 200 duplicate, publishing nothing', async () => {
  const before = { missing: await rejected('signature_missing'), malformed: await rejected('signature_malformed'), invalid: await rejected('signature_invalid') };
  const bad = JSON.stringify(buildReloadFinishedEvent({ eventId: 'evt-acme-bad', reloadId: 'reload-never-published', appId: 'app-never-published', status: 'FAILED' }));
  const noSig = await post('acme', bad, {});
  assert.equal(noSig.status, 401);
  assert.equal(noSig.body['message'], 'the delivery has no Qlik-Signature header');
  assert.equal((await post('acme', bad, { 'qlik-signature': 'sha256=abc' })).status, 401);
  const wrongKey = await post('acme', bad, { 'qlik-signature': qlikSignature(bad, GLOBEX_SECRET) });
  assert.equal(wrongKey.status, 401);
  assert.equal(wrongKey.body['message'], 'Qlik-Signature does not match the body and the webhook secret');
  // The right signature over another body (a tampered delivery).
  const tampered = bad.replace('reload-never-published', 'reload-never-publishee');
  assert.equal((await post('acme', tampered, { 'qlik-signature': qlikSignature(bad, ACME_SECRET) })).status, 401);
  assert.equal(await rejected('signature_missing'), before.missing + 1);
  assert.equal(await rejected('signature_malformed'), before.malformed + 1);
  assert.equal(await rejected('signature_invalid'), before.invalid + 2);

  // The first test's delivery again, byte for byte with its signature (Qlik's retry, or the resend API).
  const first = acme.deliveries.find((d) => d.eventId === 'evt-acme-0001' && d.status === 200);
  assert.ok(first);
  const replay = await post('acme', first.body, { 'qlik-signature': first.signature });
  assert.deepEqual([replay.status, replay.body], [200, { status: 'duplicate' }]);

  // A marker delivery after all of them: once it is out, nothing else can still be on its way.
  const marker = buildReloadFinishedEvent({ eventId: 'evt-acme-0002', reloadId: 'reload-acme-0002', appId: APP_ID, status: 'SUCCEEDED', startTime: '2026-11-20T07:00:00.000Z', endTime: '2026-11-20T07:00:05.000Z' });
  assert.deepEqual(await acme.emit(marker), [200]);
  await stateFor('acme', APP_ID, 'reload-acme-0002');
  assert.deepEqual(json(reloadTopic('acme', APP_ID)).map((r) => r['reloadId']), [RELOAD_ID, 'reload-acme-0002']);
  assert.equal(sub.messages.filter((m) => m.text.includes('never-publish')).length, 0);
  assert.equal(sub.texts(BASIC).length, 1, 'the replay did not alert again');
  const state = json(stateTopic('acme', APP_ID)).at(-1) as Json;
  assert.deepEqual([state['status'], state['consecutiveFailures'], state['lastSuccessTime'], state['duration']], ['SUCCEEDED', 0, '2026-11-20T07:00:05.000Z', 5000]);
});

test('while the store refuses writes a delivery gets 503; Qlik Cloud delivers it again and it is published once', async () => {
  const store = bridge.app.delivery?.store;
  assert.ok(store);
  store.db.exec("CREATE TRIGGER test_store_down BEFORE INSERT ON inbox BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
  const event = buildReloadFinishedEvent({ eventId: 'evt-acme-0003', reloadId: 'reload-acme-0003', appId: APP_ID, status: 'FAILED', startTime: '2026-11-20T08:00:00.000Z', endTime: '2026-11-20T08:00:10.000Z' });
  const delivered = acme.emit(event);
  try {
    await waitFor(() => acme.deliveries.some((d) => d.eventId === 'evt-acme-0003' && d.status === 503), 10_000, 'a 503 answer');
    assert.equal(sub.messages.filter((m) => m.text.includes('reload-acme-0003')).length, 0);
  } finally {
    store.db.exec('DROP TRIGGER test_store_down');
  }
  assert.deepEqual(await delivered, [200]);
  await waitFor(() => json(reloadTopic('acme', APP_ID)).some((r) => r['reloadId'] === 'reload-acme-0003'), 10_000, 'the reload after the retry');
  const attempts = acme.deliveries.filter((d) => d.eventId === 'evt-acme-0003').map((d) => d.status);
  assert.equal(attempts.at(-1), 200);
  assert.ok(attempts.slice(0, -1).every((s) => s === 503) && attempts.length >= 2, `attempts: ${attempts.join(',')}`);
  assert.ok((await rejected('store_error')) >= 1);
  assert.equal(json(reloadTopic('acme', APP_ID)).filter((r) => r['reloadId'] === 'reload-acme-0003').length, 1);
});

test('two tenants at once: each delivery verified with its own secret, published under its own tenant name', async () => {
  const a = buildReloadFinishedEvent({ eventId: 'evt-acme-0004', reloadId: 'reload-acme-0004', appId: 'app-acme-2', status: 'SUCCEEDED', startTime: '2026-11-20T09:00:00.000Z', endTime: '2026-11-20T09:00:01.000Z' });
  const g = buildReloadFinishedEvent({ eventId: 'evt-globex-0001', tenantId: GLOBEX_TENANT_ID, reloadId: 'reload-globex-0001', appId: 'app-globex-1', status: 'FAILED', startTime: '2026-11-20T09:00:00.000Z', endTime: '2026-11-20T09:00:02.000Z' });
  assert.deepEqual(await Promise.all([acme.emit(a), globex.emit(g)]), [[200], [200]]);
  await sub.waitForCount(1, 10_000, stateTopic('globex', 'app-globex-1'));
  await sub.waitForCount(1, 10_000, stateTopic('acme', 'app-acme-2'));
  assert.deepEqual(json(reloadTopic('acme', 'app-acme-2')).map((r) => [r['tenantId'], r['status']]), [[CLOUD_TENANT_ID, 'SUCCEEDED']]);
  assert.deepEqual(json(reloadTopic('globex', 'app-globex-1')).map((r) => [r['tenantId'], r['status']]), [[GLOBEX_TENANT_ID, 'FAILED']]);
  // A globex event at the acme URL: signed with globex's secret, so refused there.
  const body = JSON.stringify(g);
  assert.equal((await post('acme', body, { 'qlik-signature': qlikSignature(body, GLOBEX_SECRET) })).status, 401);
  // Signed with acme's secret but about globex: acme's tenant id is configured, so it is ignored (202).
  const other = await post('acme', body, { 'qlik-signature': qlikSignature(body, ACME_SECRET) });
  assert.deepEqual([other.status, other.body['status'], other.body['reason']], [202, 'ignored', 'other_tenant']);
  // No such tenant: 404. A body over qlikSenseCloud.webhookBodyLimitBytes (256 KiB): 413, before any check.
  const unknown = await post('initech', body, { 'qlik-signature': qlikSignature(body, ACME_SECRET) });
  assert.deepEqual([unknown.status, unknown.body['code']], [404, 'BUTLER_MQTT_UNKNOWN_TENANT']);
  const huge = JSON.stringify({ ...g, data: { pad: 'x'.repeat(262_144) } });
  assert.equal((await post('acme', huge, { 'qlik-signature': qlikSignature(huge, ACME_SECRET) })).status, 413);
  // The raw-body parser is the webhook route's own: the publish endpoint still parses JSON.
  const put = await fetch(`http://127.0.0.1:${httpPort}/v4/mqttpublishmessage`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'qlikcloud/test/publish', message: 'still JSON' }) });
  assert.equal(put.status, 201);
  await sub.waitForCount(1, 10_000, 'qlikcloud/test/publish');
});

test('bridge down for ten reloads: after the restart the poller delivers all ten, oldest first, once; a late webhook delivery of one of them publishes nothing', async () => {
  // The poller has run (interval 1 s) and stored its cursor; one reload before the outage.
  globex.addReload(globexReload({ id: 'globex-r00', appId: 'app-globex-2', status: 'SUCCEEDED', creationTime: iso(120_000), startTime: iso(119_000), endTime: iso(110_000) }));
  await waitFor(() => reloadsOf('globex').some((r) => r['reloadId'] === 'globex-r00'), 10_000, 'the poller delivering globex-r00');
  await bridge.stop();

  const ids: string[] = [];
  for (let i = 1; i <= 10; i++) {
    const id = `globex-r${String(i).padStart(2, '0')}`;
    ids.push(id);
    // Ten reloads over the outage, app-globex-2; the last three fail.
    globex.addReload(globexReload({ id, appId: 'app-globex-2', status: i >= 8 ? 'FAILED' : 'SUCCEEDED', creationTime: iso(100_000 - i * 5000), startTime: iso(99_000 - i * 5000), endTime: iso(98_000 - i * 5000) }));
  }
  // And one still running: not finished, not delivered.
  globex.addReload(globexReload({ id: 'globex-running', appId: 'app-globex-2', status: 'RELOADING', creationTime: iso(1000), startTime: iso(900), endTime: '' }));
  const pollsBefore = globex.requestsTo('/api/v1/reloads', 'GET').length;

  bridge = await startInProcess(configFile);
  await waitFor(() => ids.every((id) => reloadsOf('globex').some((r) => r['reloadId'] === id)), 15_000, 'all ten reloads');
  await stateFor('globex', 'app-globex-2', 'globex-r10');
  // Two more polls after that: nothing is delivered twice.
  const seen = globex.requestsTo('/api/v1/reloads', 'GET').length;
  await waitFor(() => globex.requestsTo('/api/v1/reloads', 'GET').length >= seen + 2, 10_000, 'two more polls');
  assert.ok(seen > pollsBefore);
  const delivered = reloadsOf('globex').filter((r) => r['appId'] === 'app-globex-2');
  assert.deepEqual(delivered.map((r) => r['reloadId']), ['globex-r00', ...ids]);
  assert.ok(delivered.every((r) => r['intake'] === 'poller'));
  assert.equal(sub.texts(BASIC).filter((t) => t === 'app-globex-2').length, 3, 'three failure alerts (no app name: the app is unknown to the tenant)');
  const state = json(stateTopic('globex', 'app-globex-2')).at(-1) as Json;
  assert.deepEqual([state['reloadId'], state['status'], state['consecutiveFailures'], state['lastSuccessTime']], ['globex-r10', 'FAILED', 3, (globex.reloads.get('globex-r07') as { endTime: string }).endTime]);

  // Qlik Cloud's webhook delivery of globex-r05 arrives late: accepted, but the reload was already reported.
  const late = buildReloadFinishedEvent({ eventId: 'evt-globex-r05', tenantId: GLOBEX_TENANT_ID, reloadId: 'globex-r05', appId: 'app-globex-2', status: 'SUCCEEDED' });
  assert.deepEqual(await globex.emit(late), [200]);
  const marker = buildReloadFinishedEvent({ eventId: 'evt-globex-marker', tenantId: GLOBEX_TENANT_ID, reloadId: 'globex-marker', appId: 'app-globex-3', status: 'SUCCEEDED' });
  assert.deepEqual(await globex.emit(marker), [200]);
  await waitFor(() => reloadsOf('globex').some((r) => r['reloadId'] === 'globex-marker'), 10_000, 'the marker');
  assert.equal(reloadsOf('globex').filter((r) => r['reloadId'] === 'globex-r05').length, 1);
  assert.equal(reloadsOf('globex').filter((r) => r['reloadId'] === 'globex-running').length, 0);
});
