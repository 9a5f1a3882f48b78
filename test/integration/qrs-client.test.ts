// The QRS client against a real HTTPS QRS simulator that requires a client certificate: the
// xrfkey and user headers, filter encoding, caching and coalescing, retries, deadlines,
// connection reuse, task starts, and how unreachable or refusing servers are reported.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestPki, writePkiFile, type TestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID, buildApp, sampleApp, sampleTask } from '../support/qrs-simulator.ts';
import { QrsClient, quoteFilterValue, type QrsClientOptions } from '../../src/sense/qrs-client.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';

let pki: TestPki;
let sim: QrsSimulator;
const clients: QrsClient[] = [];

const API_USER = 'UserDirectory=Internal;UserId=sa_api';
const UNKNOWN_TASK = '0b6e3c1a-7d2f-4e5a-9c8b-1f2e3d4c5b6a';

function options(extra: Partial<QrsClientOptions> = {}): QrsClientOptions {
  const cert = pki.client('butler-mqtt');
  return {
    host: 'localhost',
    port: sim.port,
    useSSL: true,
    rejectUnauthorized: true,
    headers: [{ name: 'X-Qlik-User', value: API_USER }],
    clientCert: cert.cert,
    clientCertKey: cert.key,
    clientCertCA: pki.caCert,
    timeoutMs: 2_000,
    retries: 2,
    retryBaseMs: 20,
    ...extra,
  };
}

function client(extra: Partial<QrsClientOptions> = {}, metrics?: Metrics): QrsClient {
  const c = new QrsClient(options(extra), { logger: silentLogger(), ...(metrics ? { metrics } : {}) });
  clients.push(c);
  return c;
}

before(async () => {
  pki = await createTestPki();
  sim = await QrsSimulator.start({ pki });
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

test('quoteFilterValue wraps in single quotes and doubles inner quotes', () => {
  assert.equal(quoteFilterValue('Nightly'), "'Nightly'");
  assert.equal(quoteFilterValue("O'Brien's"), "'O''Brien''s'");
  assert.equal(quoteFilterValue(''), "''");
});

test('a request carries the client certificate, one xrfkey in query and header, and the configured user', async () => {
  const qrs = client();
  const result = await qrs.getTask(SAMPLE_TASK_ID);
  assert.equal(result.ok, true);
  assert.deepEqual(result.ok && result.value, [
    {
      id: SAMPLE_TASK_ID,
      operational: {
        id: sampleTask().operational.id,
        lastExecutionResult: { id: sampleTask().operational.lastExecutionResult.id, status: 8 },
        nextExecution: '2026-11-21T02:00:00.000Z',
      },
      name: 'Nightly finance reload',
      taskType: 0,
      enabled: true,
      taskSessionTimeout: 1440,
      maxRetries: 0,
      privileges: null,
    },
  ]);
  assert.equal(sim.requests.length, 1);
  const req = sim.requests[0]!;
  assert.equal(req.method, 'GET');
  assert.equal(req.clientCertCN, 'butler-mqtt');
  assert.equal(req.headers['x-qlik-user'], API_USER);
  const key = req.query['xrfkey'];
  assert.match(key ?? '', /^[A-Za-z0-9]{16}$/);
  assert.equal(req.headers['x-qlik-xrfkey'], key);
  assert.equal(req.rawUrl, `/qrs/task?xrfkey=${key}&filter=id%20eq%20${SAMPLE_TASK_ID}`);
  assert.equal(req.query['filter'], `id eq ${SAMPLE_TASK_ID}`);
});

test('each request gets a fresh xrfkey', async () => {
  const qrs = client();
  await qrs.getTask(SAMPLE_TASK_ID);
  await qrs.getTaskFull(SAMPLE_TASK_ID);
  await qrs.getAppFull(SAMPLE_APP_ID);
  const keys = sim.requests.map((r) => r.query['xrfkey']);
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 3);
  for (const r of sim.requests) assert.equal(r.headers['x-qlik-xrfkey'], r.query['xrfkey']);
});

test('license calls use the repository service account whatever user is configured', async () => {
  const qrs = client({ headers: [{ name: 'x-qlik-user', value: API_USER }, { name: 'X-Custom', value: 'kept' }] });
  const result = await qrs.getLicense();
  assert.equal(result.ok, true);
  const license = result.ok ? result.value : {};
  assert.equal(license['isExpired'], false);
  assert.equal(license['keyDetails'], 'Valid From: 2025-01-01\nValid To: 2027-01-31\nProduct: Qlik Sense Enterprise\nCores: 8\n');
  assert.equal(license['serial'], '9999 0000 1111 2222');
  const req = sim.requests[0]!;
  assert.equal(req.rawUrl, `/qrs/license?xrfkey=${req.query['xrfkey']}`);
  assert.equal(req.headers['x-qlik-user'], 'UserDirectory=Internal; UserId=sa_repository');
  assert.equal(req.headers['x-custom'], 'kept');
});

test('full task and app objects arrive unchanged, with every field the repository sent', async () => {
  const qrs = client();
  const task = await qrs.getTaskFull(SAMPLE_TASK_ID);
  const app = await qrs.getAppFull(SAMPLE_APP_ID);
  assert.deepEqual(task, { ok: true, value: [sampleTask()] });
  assert.deepEqual(app, { ok: true, value: [sampleApp()] });
  const appObject: Record<string, unknown> = app.ok ? app.value[0]! : {};
  assert.deepEqual((appObject['tags'] as { name: string }[]).map((t) => t.name), ['Finance']);
  assert.equal(appObject['description'], 'Monthly and year-to-date finance figures, “Q4” view included.');
  assert.deepEqual(await qrs.getTaskFull(UNKNOWN_TASK), { ok: true, value: [] });
});

test('filters with quotes are percent-encoded and understood', async () => {
  const tagged = sim.addReloadTask({ name: "O'Brien sales reload", tags: ["O'Brien"], customProperties: [{ name: 'CostCenter', value: "Sales 'EU'" }] });
  const qrs = client();

  const byTag = await qrs.findTasksFull(`tags.name eq ${quoteFilterValue("O'Brien")}`);
  assert.deepEqual(byTag, { ok: true, value: [tagged] });
  const tagReq = sim.requests[0]!;
  assert.equal(tagReq.rawUrl, `/qrs/task/full?xrfkey=${tagReq.query['xrfkey']}&filter=tags.name%20eq%20'O''Brien'`);
  assert.equal(tagReq.query['filter'], "tags.name eq 'O''Brien'");

  const filter = `(customProperties.definition.name eq ${quoteFilterValue('CostCenter')}) and (customProperties.value eq ${quoteFilterValue("Sales 'EU'")})`;
  const byProperty = await qrs.findTasksFull(filter);
  assert.deepEqual(byProperty, { ok: true, value: [tagged] });
  const cpReq = sim.requests[1]!;
  assert.equal(
    cpReq.rawUrl,
    `/qrs/task/full?xrfkey=${cpReq.query['xrfkey']}&filter=(customProperties.definition.name%20eq%20'CostCenter')%20and%20(customProperties.value%20eq%20'Sales%20''EU''')`,
  );
  sim.removeTask(tagged.id);
});

test('task and app lookups are cached: a repeat makes no request, until the entry expires', async () => {
  const qrs = client({ cacheTtlMs: 60_000 });
  const first = await qrs.getTaskFull(SAMPLE_TASK_ID);
  const second = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.deepEqual(second, first);
  assert.equal(sim.requests.length, 1);

  // Callers share one frozen answer: a caller cannot change what the next caller sees (the write
  // throws, nested objects included).
  assert.ok(second.ok);
  assert.throws(() => {
    second.value[0]!['name'] = 'changed by a caller';
  }, TypeError);
  const nested = Object.values(second.value[0]!).find((v) => v !== null && typeof v === 'object') as Record<string, unknown> | undefined;
  assert.ok(nested, 'the sample task has a nested object');
  assert.throws(() => {
    nested['added'] = 1;
  }, TypeError);
  assert.deepEqual(await qrs.getTaskFull(SAMPLE_TASK_ID), { ok: true, value: [sampleTask()] });

  // Other endpoints and other ids are separate entries.
  await qrs.getTask(SAMPLE_TASK_ID);
  await qrs.getAppFull(SAMPLE_APP_ID);
  await qrs.getAppFull(SAMPLE_APP_ID);
  assert.deepEqual(sim.requests.map((r) => r.path), ['/qrs/task/full', '/qrs/task', '/qrs/app/full']);

  const shortLived = client({ cacheTtlMs: 40 });
  sim.clearRequests();
  await shortLived.getAppFull(SAMPLE_APP_ID);
  await new Promise((r) => setTimeout(r, 80));
  await shortLived.getAppFull(SAMPLE_APP_ID);
  assert.equal(sim.requests.length, 2);
});

test('peekCached answers from the cache only, without a request, and not once the entry expired', async () => {
  const qrs = client({ cacheTtlMs: 150 });
  assert.equal(qrs.peekCached('task/full', SAMPLE_TASK_ID), undefined, 'nothing cached yet');
  assert.equal(sim.requests.length, 0, 'peeking makes no request');
  const fetched = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.ok(fetched.ok);
  assert.equal(qrs.peekCached('task/full', SAMPLE_TASK_ID), fetched.value, 'the same shared answer');
  assert.equal(qrs.peekCached('task', SAMPLE_TASK_ID), undefined, 'endpoints are separate entries');
  assert.equal(qrs.peekCached('app/full', SAMPLE_APP_ID), undefined);
  assert.equal(sim.requests.length, 1);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(qrs.peekCached('task/full', SAMPLE_TASK_ID), undefined, 'expired');
  await qrs.getTaskFull(UNKNOWN_TASK);
  assert.equal(qrs.peekCached('task/full', UNKNOWN_TASK), undefined, 'not-found answers are not cached');
});

test('not-found answers and failures are not cached', async () => {
  const qrs = client({ retries: 0 });
  await qrs.getTaskFull(UNKNOWN_TASK);
  await qrs.getTaskFull(UNKNOWN_TASK);
  assert.equal(sim.requests.length, 2);

  sim.clearRequests();
  sim.failNext(1, 500);
  const failed = await qrs.getAppFull(SAMPLE_APP_ID);
  assert.equal(failed.ok, false);
  const recovered = await qrs.getAppFull(SAMPLE_APP_ID);
  assert.deepEqual(recovered, { ok: true, value: [sampleApp()] });
  assert.equal(sim.requests.length, 2);
});

test('the cache keeps at most cacheMaxEntries entries, dropping the oldest', async () => {
  const apps = [1, 2, 3].map((n) => sim.addApp(buildApp({ name: `Cache app ${n}` })));
  const qrs = client({ cacheMaxEntries: 2 });
  for (const app of apps) await qrs.getAppFull(app.id);
  sim.clearRequests();
  await qrs.getAppFull(apps[2]!.id);
  await qrs.getAppFull(apps[1]!.id);
  assert.equal(sim.requests.length, 0);
  await qrs.getAppFull(apps[0]!.id);
  assert.equal(sim.requests.length, 1);
  for (const app of apps) sim.removeApp(app.id);
});

test('concurrent identical lookups share one request', async () => {
  const qrs = client();
  sim.setLatency(150);
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => qrs.getAppFull(SAMPLE_APP_ID)));
  assert.equal(sim.requests.length, 1);
  for (const r of results) assert.deepEqual(r, { ok: true, value: [sampleApp()] });
});

test('a 503 is retried and the call then succeeds', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const qrs = client({ retries: 2 }, metrics);
  sim.failNext(2, 503);
  const result = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.deepEqual(result, { ok: true, value: [sampleTask()] });
  assert.equal(sim.requests.length, 3);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'qrs', reason: 'http_5xx' }), 2);
  const durations = await metrics.upstreamDuration.get();
  const count = durations.values.find((v) => v.metricName === 'butler_mqtt_upstream_request_duration_seconds_count' && v.labels['endpoint'] === 'task/full');
  assert.equal(count?.value, 3);
  assert.deepEqual(count?.labels, { service: 'qrs', endpoint: 'task/full' });
  assert.equal(qrs.health().reachable, true);
});

test('retries are bounded: the last 5xx is reported', async () => {
  const qrs = client({ retries: 2 });
  sim.setFailing(502);
  const result = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.kind, 'http');
  assert.equal(!result.ok && result.error.status, 502);
  assert.equal(sim.requests.length, 3);
  assert.equal(qrs.health().reachable, false);
});

test('a 4xx answer is not retried', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const qrs = client({ retries: 3 }, metrics);
  sim.failNext(1, 404);
  const result = await qrs.getTask(SAMPLE_TASK_ID);
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 404, message: 'QRS GET task answered HTTP 404: Request failed' } });
  assert.equal(sim.requests.length, 1);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'qrs', reason: 'http_4xx' }), 1);
});

test('a body that is not JSON is a parse error, not retried', async () => {
  const qrs = client();
  sim.failNext(1, 200);
  const result = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.kind, 'parse');
  assert.equal(sim.requests.length, 1);
});

test('a server that never answers makes the call time out, after the allowed retries', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const qrs = client({ timeoutMs: 300, retries: 1 }, metrics);
  sim.setHang(true);
  const result = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.kind, 'timeout');
  assert.match(!result.ok ? result.error.message : '', /no answer within 300 ms/);
  assert.equal(sim.requests.length, 2);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'qrs', reason: 'timeout' }), 2);
  const health = qrs.health();
  assert.equal(health.reachable, false);
  assert.match(health.lastError ?? '', /no answer within 300 ms/);
});

test('calls reuse one kept-alive TLS connection', async () => {
  // A simulator of its own, so connections other tests' clients may still open are not counted.
  const own = await QrsSimulator.start({ pki });
  const qrs = client({ port: own.port, cacheTtlMs: 0 });
  try {
    for (let i = 0; i < 6; i++) {
      const r = await qrs.getTaskFull(SAMPLE_TASK_ID);
      assert.equal(r.ok, true);
    }
    await qrs.getLicense();
    await Promise.all([qrs.getTask(SAMPLE_TASK_ID), qrs.getAppFull(SAMPLE_APP_ID)]);
    assert.equal(own.requests.length, 9);
    // Two calls at once need two connections; everything else rides on the first.
    assert.equal(own.tlsConnections, 2);
  } finally {
    await qrs.close();
    await own.stop();
  }
});

test('start task: 204 is a start, the id stays as received, the body is {}', async () => {
  const qrs = client();
  const upper = SAMPLE_TASK_ID.toUpperCase();
  assert.deepEqual(await qrs.startTask(upper), { ok: true, value: { status: 204 } });
  const req = sim.requests[0]!;
  assert.equal(req.method, 'POST');
  assert.equal(req.path, '/qrs/task/9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F/start');
  assert.equal(req.rawUrl, `/qrs/task/9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F/start?xrfkey=${req.query['xrfkey']}`);
  assert.equal(req.body, '{}');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.equal(req.headers['x-qlik-user'], API_USER);
  assert.deepEqual(sim.startedTasks.slice(-1), ['9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F']);
});

test('start task: an unknown id is a 404 error, asked once', async () => {
  const qrs = client({ retries: 3 });
  assert.deepEqual(await qrs.startTask(UNKNOWN_TASK), { ok: false, error: { kind: 'http', status: 404, message: 'QRS POST task/start answered HTTP 404' } });
  assert.equal(sim.requests.length, 1);
});

test('start task is not repeated after a 5xx or a dropped connection, which may have started it', async () => {
  const qrs = client({ retries: 3 });
  sim.failNext(1, 503);
  const r1 = await qrs.startTask(SAMPLE_TASK_ID);
  assert.equal(!r1.ok && r1.error.status, 503);
  assert.equal(sim.requests.length, 1);

  sim.clearRequests();
  sim.failNext(1, 'reset');
  const r2 = await qrs.startTask(SAMPLE_TASK_ID);
  assert.equal(!r2.ok && r2.error.kind, 'network');
  assert.equal(sim.requests.length, 1);
});

test('start task is repeated when the connection was refused, since nothing was sent', async () => {
  const qrs = client({ retries: 2, retryBaseMs: 300 });
  await sim.stop();
  const pending = qrs.startTask(SAMPLE_TASK_ID);
  await new Promise((r) => setTimeout(r, 30));
  await sim.start();
  assert.deepEqual(await pending, { ok: true, value: { status: 204 } });
  assert.equal(sim.requests.length, 1);
});

test('an absent QRS is a network error naming the cause; the client recovers when it is back', async () => {
  const qrs = client({ retries: 1 });
  assert.deepEqual(qrs.health(), { reachable: null, lastSuccessAt: null, lastError: null, lastErrorAt: null });
  await sim.stop();
  const down = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.equal(down.ok, false);
  assert.equal(!down.ok && down.error.kind, 'network');
  assert.match(!down.ok ? down.error.message : '', /ECONNREFUSED/);
  assert.equal(qrs.health().reachable, false);
  assert.match(qrs.health().lastError ?? '', /ECONNREFUSED/);

  await sim.start();
  const up = await qrs.getTaskFull(SAMPLE_TASK_ID);
  assert.equal(up.ok, true);
  const health = qrs.health();
  assert.equal(health.reachable, true);
  assert.equal(typeof health.lastSuccessAt, 'number');
});

test('without a client certificate the call fails with a network error and QRS sees no request', async () => {
  const qrs = client({ clientCert: undefined, clientCertKey: undefined, retries: 0 });
  const result = await qrs.getTask(SAMPLE_TASK_ID);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.kind, 'network');
  assert.match(!result.ok ? result.error.message : '', /client certificate/);
  assert.equal(sim.requests.length, 0);
});

test('a client certificate from another CA is refused the same way', async () => {
  const qrs = client({ clientCert: pki.foreignClient.cert, clientCertKey: pki.foreignClient.key, retries: 0 });
  const failuresBefore = sim.tlsFailures;
  const result = await qrs.getTask(SAMPLE_TASK_ID);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.error.kind, 'network');
  assert.equal(sim.requests.length, 0);
  assert.equal(sim.tlsFailures - failuresBefore, 1);
});

test('a server certificate from an untrusted CA is refused when rejectUnauthorized is on, accepted when off', async () => {
  const strict = client({ clientCertCA: pki.foreignClient.caCert, retries: 2 });
  const refused = await strict.getTask(SAMPLE_TASK_ID);
  assert.equal(refused.ok, false);
  assert.match(!refused.ok ? refused.error.message : '', /TLS handshake refused/);
  assert.equal(sim.requests.length, 0);

  const lax = client({ clientCertCA: pki.foreignClient.caCert, rejectUnauthorized: false });
  assert.equal((await lax.getTask(SAMPLE_TASK_ID)).ok, true);
});

test('an unreadable or broken certificate file stops construction with the file named', () => {
  const missing = `${pki.dir}/no-such-cert.pem`;
  assert.throws(() => new QrsClient(options({ clientCert: missing }), { logger: silentLogger() }), (err: Error) => {
    assert.equal(err.message, `QRS client certificate file "${missing}" cannot be read (ENOENT)`);
    return true;
  });
  const broken = writePkiFile(pki, 'broken.pem', '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
  assert.throws(() => new QrsClient(options({ clientCert: broken }), { logger: silentLogger() }), (err: Error) => {
    assert.ok(err.message.startsWith(`QRS certificate files "${broken}"`), err.message);
    return true;
  });
});

test('useSSL false speaks plain HTTP with the same headers', async () => {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('[{"id":"a"}]');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const qrs = client({ host: '127.0.0.1', port, useSSL: false, clientCert: undefined, clientCertKey: undefined, clientCertCA: undefined });
  try {
    assert.deepEqual(await qrs.findTasksFull('name eq \'x\''), { ok: true, value: [{ id: 'a' }] });
    const key = seen[0]!.headers['x-qlik-xrfkey'];
    assert.equal(seen[0]!.url, `/qrs/task/full?xrfkey=${key}&filter=name%20eq%20'x'`);
    assert.equal(seen[0]!.headers['x-qlik-user'], API_USER);
  } finally {
    await qrs.close();
    await new Promise((r) => server.close(r));
  }
});

test('a closed client answers with an error instead of throwing', async () => {
  const qrs = client();
  await qrs.close();
  const result = await qrs.getLicense();
  assert.deepEqual(result, { ok: false, error: { kind: 'network', message: 'QRS client is closed' } });
});
