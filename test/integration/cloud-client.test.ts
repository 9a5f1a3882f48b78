// The Qlik Cloud client against a real HTTPS Qlik Cloud simulator: Bearer authentication, the app,
// reload and script-log lookups, tenant URL forms, retries, deadlines, connection reuse, and that
// the token never reaches a log line or an error message.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudSimulator, buildCloudApp, buildCloudReload, buildReloadLog } from '../support/cloud-simulator.ts';
import { CloudClient, normaliseTenantUrl, type CloudClientOptions } from '../../src/cloud/cloud-client.ts';
import { createLogger, silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const TOKEN = 'eyJhbGciOiJFUzM4NCJ9.test-token-payload.c2lnbmF0dXJl';
const APP_ID = 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d';
const RELOAD_ID = '6735a1b2c3d4e5f6a7b8c9d0';

let pki: TestPki;
let sim: CloudSimulator;
const clients: CloudClient[] = [];

function options(extra: Partial<CloudClientOptions> = {}): CloudClientOptions {
  return { tenantUrl: `https://localhost:${sim.port}`, token: TOKEN, ca: pki.caCert, timeoutMs: 2_000, retries: 2, retryBaseMs: 20, ...extra };
}

function client(extra: Partial<CloudClientOptions> = {}, deps: { metrics?: Metrics; logger?: ReturnType<typeof silentLogger> } = {}): CloudClient {
  const c = new CloudClient(options(extra), { logger: deps.logger ?? silentLogger(), ...(deps.metrics ? { metrics: deps.metrics } : {}) });
  clients.push(c);
  return c;
}

before(async () => {
  pki = await createTestPki();
  sim = await CloudSimulator.start({ pki, token: TOKEN });
  sim.addApp(buildCloudApp({ id: APP_ID, name: 'Sales forecast' }));
  sim.addReload(buildCloudReload({ id: RELOAD_ID, appId: APP_ID }));
  sim.setReloadLog(APP_ID, RELOAD_ID, buildReloadLog());
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sim.stop();
  await pki.cleanup();
});

beforeEach(async () => {
  sim.resetFaults();
  await sim.start();
  sim.clearRequests();
});

test('tenant URLs are accepted with or without scheme and trailing slashes', () => {
  assert.deepEqual(normaliseTenantUrl('mytenant.eu.qlikcloud.com'), { origin: 'https://mytenant.eu.qlikcloud.com', basePath: '' });
  assert.deepEqual(normaliseTenantUrl('https://mytenant.eu.qlikcloud.com/'), { origin: 'https://mytenant.eu.qlikcloud.com', basePath: '' });
  assert.deepEqual(normaliseTenantUrl(' HTTPS://MyTenant.eu.qlikcloud.com// '), { origin: 'https://mytenant.eu.qlikcloud.com', basePath: '' });
  assert.deepEqual(normaliseTenantUrl('https://gateway.example.com/qlik/'), { origin: 'https://gateway.example.com', basePath: '/qlik' });
  assert.throws(() => normaliseTenantUrl(''), /empty/);
  assert.throws(() => normaliseTenantUrl('ftp://tenant.example.com'), /must use https/);
});

test('getApp sends the Bearer token and returns the app object as sent', async () => {
  const cloud = client();
  const result = await cloud.getApp(APP_ID);
  assert.deepEqual(result, { ok: true, value: buildCloudApp({ id: APP_ID, name: 'Sales forecast' }) });
  const attributes = result.ok ? (result.value['attributes'] as Record<string, unknown>) : {};
  assert.equal(attributes['name'], 'Sales forecast');
  assert.equal(attributes['description'], 'Weekly forecast per region – “EMEA” included');
  assert.equal(sim.requests.length, 1);
  const req = sim.requests[0]!;
  assert.equal(req.method, 'GET');
  assert.equal(req.rawUrl, `/api/v1/apps/${APP_ID}`);
  assert.equal(req.headers['authorization'], `Bearer ${TOKEN}`);
  assert.equal(req.headers['accept'], 'application/json');
});

test('getReload returns the reload record', async () => {
  const cloud = client();
  const result = await cloud.getReload(RELOAD_ID);
  assert.equal(result.ok, true);
  const reload = result.ok ? result.value : {};
  assert.equal(reload['id'], RELOAD_ID);
  assert.equal(reload['appId'], APP_ID);
  assert.equal(reload['status'], 'FAILED');
  assert.equal(reload['errorMessage'], 'Field not found: <Regionn>');
  assert.equal(reload['duration'], 'PT41.263S');
  assert.equal(sim.requests[0]!.rawUrl, `/api/v1/reloads/${RELOAD_ID}`);
});

test('getReloadLog returns the script log text unchanged, CRLF line ends included', async () => {
  const cloud = client();
  const result = await cloud.getReloadLog(APP_ID, RELOAD_ID);
  assert.deepEqual(result, {
    ok: true,
    value:
      '2026-11-20 06:00:28 0000 Started loading data\r\n' +
      '2026-11-20 06:00:29 0003 Sales:\r\n' +
      '2026-11-20 06:00:29 0004 LOAD Regionn FROM [lib://Data/sales.qvd] (qvd)\r\n' +
      '2026-11-20 06:01:09      Error: Field not found: <Regionn>\r\n' +
      '2026-11-20 06:01:09      Execution Failed\r\n' +
      '2026-11-20 06:01:09      Execution finished.\r\n',
  });
  const req = sim.requests[0]!;
  assert.equal(req.rawUrl, `/api/v1/apps/${APP_ID}/reloads/logs/${RELOAD_ID}`);
  assert.equal(req.headers['accept'], 'text/plain');
});

test('a tenant URL without scheme and with a trailing slash reaches the same API', async () => {
  const cloud = client({ tenantUrl: `localhost:${sim.port}/` });
  assert.equal((await cloud.getApp(APP_ID)).ok, true);
  assert.equal(sim.requests[0]!.rawUrl, `/api/v1/apps/${APP_ID}`);
});

test('ids are percent-encoded into the path', async () => {
  const cloud = client();
  const result = await cloud.getApp('../reloads/x y');
  assert.equal(!result.ok && result.error.status, 404);
  assert.equal(sim.requests[0]!.rawUrl, '/api/v1/apps/..%2Freloads%2Fx%20y');
});

test('a wrong token is a 401 error, asked once, and the token is not in the message', async () => {
  const wrong = 'wrong-token-value-123';
  const cloud = client({ token: wrong, retries: 3 });
  const result = await cloud.getApp(APP_ID);
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 401, message: 'Qlik Cloud GET apps answered HTTP 401: Unauthorized (HTTP-401)' } });
  assert.equal(sim.requests.length, 1);
  assert.equal(sim.requests[0]!.headers['authorization'], `Bearer ${wrong}`);
  assert.equal(cloud.health().reachable, true);
});

test('an unknown app or reload is a 404 error', async () => {
  const cloud = client({ retries: 3 });
  assert.deepEqual(await cloud.getApp('00000000-0000-4000-8000-000000000000'), {
    ok: false,
    error: { kind: 'http', status: 404, message: 'Qlik Cloud GET apps answered HTTP 404: App not found (HTTP-404)' },
  });
  const log = await cloud.getReloadLog(APP_ID, 'ffffffffffffffffffffffff');
  assert.equal(!log.ok && log.error.status, 404);
  assert.equal(sim.requests.length, 2);
});

test('5xx answers are retried, boundedly, and counted', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const cloud = client({ retries: 2 }, { metrics });
  sim.failNext(2, 503);
  assert.equal((await cloud.getReload(RELOAD_ID)).ok, true);
  assert.equal(sim.requests.length, 3);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'qlik_cloud', reason: 'http_5xx' }), 2);
  const durations = await metrics.upstreamDuration.get();
  const count = durations.values.find((v) => v.metricName === 'butler_mqtt_upstream_request_duration_seconds_count' && v.labels['service'] === 'qlik_cloud');
  assert.deepEqual(count?.labels, { service: 'qlik_cloud', endpoint: 'reloads' });
  assert.equal(count?.value, 3);

  sim.clearRequests();
  sim.setFailing(500);
  const failed = await cloud.getReload(RELOAD_ID);
  assert.equal(!failed.ok && failed.error.status, 500);
  assert.equal(sim.requests.length, 3);
  assert.equal(cloud.health().reachable, false);
});

test('a server that never answers times out', async () => {
  const cloud = client({ timeoutMs: 250, retries: 1 });
  sim.setHang(true);
  const result = await cloud.getApp(APP_ID);
  assert.deepEqual(result, { ok: false, error: { kind: 'timeout', message: `Qlik Cloud GET apps (https://localhost:${sim.port}): no answer within 250 ms` } });
  assert.equal(sim.requests.length, 2);
});

test('an absent API is a network error; the client recovers when it is back', async () => {
  const cloud = client({ retries: 1 });
  await sim.stop();
  const down = await cloud.getApp(APP_ID);
  assert.equal(!down.ok && down.error.kind, 'network');
  assert.match(!down.ok ? down.error.message : '', /ECONNREFUSED/);
  assert.equal(cloud.health().reachable, false);
  await sim.start();
  assert.equal((await cloud.getApp(APP_ID)).ok, true);
  assert.equal(cloud.health().reachable, true);
});

test('a server certificate from an unknown CA is refused, unless verification is off', async () => {
  const strict = client({ ca: undefined, retries: 2 });
  const refused = await strict.getApp(APP_ID);
  assert.equal(!refused.ok && refused.error.kind, 'network');
  assert.match(!refused.ok ? refused.error.message : '', /TLS handshake refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
  assert.equal(sim.requests.length, 0);
  const lax = client({ ca: undefined, rejectUnauthorized: false });
  assert.equal((await lax.getApp(APP_ID)).ok, true);
});

test('calls reuse one kept-alive TLS connection', async () => {
  const own = await CloudSimulator.start({ pki, token: TOKEN });
  own.addApp(buildCloudApp({ id: APP_ID }));
  const cloud = client({ tenantUrl: own.url });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await cloud.getApp(APP_ID)).ok, true);
    assert.equal(own.requests.length, 5);
    assert.equal(own.tlsConnections, 1);
  } finally {
    await cloud.close();
    await own.stop();
  }
});

test('the token appears in no log line and no error text', async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'silly', pretty: false, destination: { write: (line: string) => lines.push(line) } });
  const cloud = client({ retries: 1, timeoutMs: 250 }, { logger });
  await cloud.getApp(APP_ID);
  sim.failNext(1, 503);
  await cloud.getReload(RELOAD_ID);
  sim.setHang(true);
  const timedOut = await cloud.getReloadLog(APP_ID, RELOAD_ID);
  sim.setHang(false);
  assert.ok(lines.length >= 3, `expected debug lines, got ${lines.length}`);
  for (const line of lines) assert.ok(!line.includes(TOKEN), line);
  assert.ok(!JSON.stringify(timedOut).includes(TOKEN));
  assert.ok(!JSON.stringify(cloud.health()).includes(TOKEN));
});

test('an unreadable CA file stops construction with the file named', () => {
  const missing = `${pki.dir}/missing-ca.pem`;
  assert.throws(() => new CloudClient(options({ ca: missing }), { logger: silentLogger() }), {
    message: `Qlik Cloud CA file "${missing}" cannot be read (ENOENT)`,
  });
});
