// The upstream HTTP engine against a real local HTTPS server scripted per test: which failures are
// repeated for which method (never a non-idempotent request that may have reached the server),
// how answers and failures are classified and reported, Retry-After, certificate problems, the
// secret mask, and the health the status page shows.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { freePort } from '../support/wait.ts';
import { Upstream, type UpstreamOptions } from '../../src/net/upstream.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

type Reply = (res: ServerResponse, req: IncomingMessage) => void;

const ok = (body = '{"fine":true}'): Reply => (res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
};
const status = (code: number, body = '', headers: Record<string, string> = {}): Reply => (res) => {
  res.writeHead(code, { 'content-type': 'text/plain', ...headers });
  res.end(body);
};
/** Drops the connection after the request arrived: the server may have acted on it. */
const reset: Reply = (_res, req) => req.socket.destroy();
/** Never answers. */
const hang: Reply = () => undefined;

let pki: TestPki;
let server: Server;
let port = 0;
let seen: Seen[] = [];
let script: Reply[] = [];
/** TCP connections accepted (a TLS handshake refused by the client still counts one). */
let connections = 0;
const sockets = new Set<Socket>();
const engines: Upstream[] = [];

function engine(extra: Partial<UpstreamOptions> = {}, metrics?: Metrics): Upstream {
  const e = new Upstream({
    service: 'test_service',
    name: 'Test',
    origin: `https://localhost:${port}`,
    tls: { ca: pki.caCert },
    timeoutMs: 2_000,
    retries: 2,
    retryBaseMs: 10,
    maxBackoffMs: 2_000,
    connections: 2,
    logger: silentLogger(),
    metrics,
    ...extra,
  });
  engines.push(e);
  return e;
}

before(async () => {
  pki = await createTestPki();
  server = createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) });
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      (script.shift() ?? ok())(res, req);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await Promise.all(engines.map((e) => e.close()));
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  await pki.cleanup();
});

beforeEach(() => {
  seen = [];
  script = [];
  connections = 0;
});

test('a GET is repeated after 5xx answers and the answer that finally comes is returned', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ retries: 2 }, metrics);
  script = [status(503), status(502), ok('{"n":3}')];
  const result = await up.send({ method: 'GET', path: '/things/1?x=1', endpoint: 'things', headers: { accept: 'application/json' } });
  assert.deepEqual(result, { ok: true, value: { status: 200, text: '{"n":3}' } });
  assert.deepEqual(seen.map((s) => `${s.method} ${s.url}`), ['GET /things/1?x=1', 'GET /things/1?x=1', 'GET /things/1?x=1']);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'http_5xx' }), 2);
  const durations = await metrics.upstreamDuration.get();
  const count = durations.values.find((v) => v.metricName === 'butler_mqtt_upstream_request_duration_seconds_count' && v.labels['service'] === 'test_service');
  assert.deepEqual(count?.labels, { service: 'test_service', endpoint: 'things' });
  assert.equal(count?.value, 3);
  const health = up.health();
  assert.equal(health.reachable, true);
  assert.equal(health.lastError, null);
  assert.equal(typeof health.lastSuccessAt, 'number');
});

test('a POST carries its JSON body with content-type; any 2xx is an answer by default', async () => {
  const up = engine();
  script = [status(201, '{"id":"n1"}')];
  const result = await up.json({ method: 'POST', path: '/notification?name=ExecutionResult', endpoint: 'notification', headers: { 'X-Custom': 'a' }, body: '"https://bridge.example:8443/cb"' });
  assert.deepEqual(result, { ok: true, value: { id: 'n1' } });
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.method, 'POST');
  assert.equal(seen[0]!.body, '"https://bridge.example:8443/cb"');
  assert.equal(seen[0]!.headers['content-type'], 'application/json');
  assert.equal(seen[0]!.headers['x-custom'], 'a');
});

test('a POST answered with a 5xx is not repeated: the server may have done the work', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ retries: 3 }, metrics);
  script = [status(503, 'Service Unavailable')];
  const result = await up.send({ method: 'POST', path: '/task/1/start', endpoint: 'task/start', headers: {}, body: '{}' });
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 503, message: 'Test POST task/start answered HTTP 503: Service Unavailable' } });
  assert.equal(seen.length, 1);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'http_5xx' }), 1);
  assert.equal(up.health().reachable, false);
  assert.equal(up.health().lastError, 'Test POST task/start answered HTTP 503: Service Unavailable');
});

test('a dropped connection after the request went out: a POST is not repeated, a DELETE and a GET are', async () => {
  const up = engine({ retries: 2 });
  script = [reset];
  const post = await up.send({ method: 'POST', path: '/webhooks', endpoint: 'webhooks', headers: {}, body: '{"url":"x"}' });
  assert.equal(post.ok, false);
  assert.equal(!post.ok && post.error.kind, 'network');
  assert.equal(seen.length, 1);

  seen = [];
  script = [reset, reset, status(204)];
  const del = await up.send({ method: 'DELETE', path: '/webhooks/w1', endpoint: 'webhooks', headers: {}, expect: [204] });
  assert.deepEqual(del, { ok: true, value: { status: 204, text: '' } });
  assert.equal(seen.length, 3);

  seen = [];
  script = [reset];
  const get = await up.send({ method: 'GET', path: '/webhooks', endpoint: 'webhooks', headers: {} });
  assert.equal(get.ok, true);
  assert.equal(seen.length, 2);
});

test('a POST explicitly marked idempotent is repeated like a GET', async () => {
  const up = engine({ retries: 1 });
  script = [status(500), status(200, '[]')];
  const result = await up.send({ method: 'POST', path: '/search', endpoint: 'search', headers: {}, body: '{}', idempotent: true });
  assert.equal(result.ok, true);
  assert.equal(seen.length, 2);
});

test('a deadline that passes: a POST is not repeated, a GET is, and both are timeouts', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ timeoutMs: 200, retries: 1 }, metrics);
  script = [hang, hang, hang];
  const post = await up.send({ method: 'POST', path: '/p', endpoint: 'p', headers: {}, body: '{}' });
  assert.deepEqual(post, { ok: false, error: { kind: 'timeout', message: `Test POST p (https://localhost:${port}): no answer within 200 ms` } });
  assert.equal(seen.length, 1);
  const get = await up.send({ method: 'GET', path: '/g', endpoint: 'g', headers: {} });
  assert.equal(!get.ok && get.error.kind, 'timeout');
  assert.equal(seen.length, 3);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'timeout' }), 3);
  assert.equal(up.health().reachable, false);
});

test('a refused connection is repeated even for a POST, since nothing was sent', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const closedPort = await freePort();
  const up = engine({ origin: `https://localhost:${closedPort}`, retries: 2 }, metrics);
  const result = await up.send({ method: 'POST', path: '/task/1/start', endpoint: 'task/start', headers: {}, body: '{}' });
  assert.equal(!result.ok && result.error.kind, 'network');
  const message = !result.ok ? result.error.message : '';
  assert.ok(message.startsWith(`Test POST task/start (https://localhost:${closedPort}): `), message);
  assert.match(message, /ECONNREFUSED/);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'network' }), 3, 'three attempts');
  assert.equal(up.health().reachable, false);
});

test('a 429 is repeated for any method, after the Retry-After the server asks for', async () => {
  const up = engine({ retries: 1, retryBaseMs: 1 });
  script = [status(429, '{"errors":[{"title":"Too many requests","code":"HTTP-429"}]}', { 'retry-after': '1' }), status(201, '{}')];
  const result = await up.send({ method: 'POST', path: '/reloads', endpoint: 'reloads', headers: {}, body: '{"appId":"a"}' });
  assert.equal(result.ok, true);
  assert.equal(seen.length, 2);
  const gap = seen[1]!.at - seen[0]!.at;
  assert.ok(gap >= 900, `waited ${gap} ms, expected about 1000`);

  seen = [];
  script = [status(429, '{"errors":[{"title":"Too many requests","code":"HTTP-429"}]}'), status(429, '{"errors":[{"title":"Too many requests","code":"HTTP-429"}]}')];
  const exhausted = await up.send({ method: 'GET', path: '/reloads', endpoint: 'reloads', headers: {} });
  assert.deepEqual(exhausted, { ok: false, error: { kind: 'http', status: 429, message: 'Test GET reloads answered HTTP 429: Too many requests (HTTP-429)' } });
  assert.equal(seen.length, 2);
  assert.equal(up.health().reachable, true, 'a service that answers 429 is there');
});

test('a 4xx is final: asked once, the detail kept, the service reachable and the error noted', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ retries: 3 }, metrics);
  script = [status(403, 'Access  denied\r\n for  this user')];
  const result = await up.send({ method: 'GET', path: '/license', endpoint: 'license', headers: {} });
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 403, message: 'Test GET license answered HTTP 403: Access denied for this user' } });
  assert.equal(seen.length, 1);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'http_4xx' }), 1);
  const health = up.health();
  assert.equal(health.reachable, true);
  assert.equal(typeof health.lastSuccessAt, 'number');
  assert.equal(health.lastError, 'Test GET license answered HTTP 403: Access denied for this user');
});

test('an unexpected success status is an error, not repeated', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ retries: 3 }, metrics);
  script = [status(200, 'started')];
  const result = await up.send({ method: 'POST', path: '/task/1/start', endpoint: 'task/start', headers: {}, body: '{}', expect: [204] });
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 200, message: 'Test POST task/start answered HTTP 200: started' } });
  assert.equal(seen.length, 1);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'http_other' }), 1);
});

test('a server certificate from an unknown CA is refused once, never repeated', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ tls: {}, retries: 3 }, metrics);
  const result = await up.send({ method: 'GET', path: '/x', endpoint: 'x', headers: {} });
  assert.equal(!result.ok && result.error.kind, 'network');
  assert.match(!result.ok ? result.error.message : '', /^Test GET x \(https:\/\/localhost:\d+\): TLS handshake refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
  assert.equal(connections, 1, 'one connection attempt, no retry');
  assert.equal(seen.length, 0);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'network' }), 1);

  const lax = engine({ tls: { rejectUnauthorized: false } });
  assert.equal((await lax.send({ method: 'GET', path: '/x', endpoint: 'x', headers: {} })).ok, true);
});

test('answers of the wrong shape are parse errors, counted, not repeated, the service reachable', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const up = engine({ retries: 3 }, metrics);
  script = [ok('<html>login</html>')];
  assert.deepEqual(await up.json({ method: 'GET', path: '/a', endpoint: 'a', headers: {} }), { ok: false, error: { kind: 'parse', message: 'Test GET a: unexpected answer, body is not JSON' } });
  script = [ok('[1,2]')];
  assert.deepEqual(await up.jsonObject({ method: 'GET', path: '/a', endpoint: 'a', headers: {} }), { ok: false, error: { kind: 'parse', message: 'Test GET a: unexpected answer, expected a JSON object' } });
  script = [ok('[{"id":"a"},null]')];
  assert.deepEqual(await up.jsonList({ method: 'GET', path: '/a', endpoint: 'a', headers: {} }), { ok: false, error: { kind: 'parse', message: 'Test GET a: unexpected answer, expected a JSON array of objects' } });
  script = [ok('[{"id":"a"},{"id":"b"}]')];
  assert.deepEqual(await up.jsonList({ method: 'GET', path: '/a', endpoint: 'a', headers: {} }), { ok: true, value: [{ id: 'a' }, { id: 'b' }] });
  assert.equal(seen.length, 4);
  assert.equal(await metrics.total('butler_mqtt_upstream_errors_total', { service: 'test_service', reason: 'parse' }), 3);
  assert.equal(up.health().reachable, true);
});

test('the secret is masked wherever the server echoes it', async () => {
  const secret = 'sk-live-0123456789abcdef';
  const up = engine({ secret, retries: 0 });
  script = [(res, req) => status(400, `bad header: ${req.headers['authorization']}`)(res, req)];
  const result = await up.send({ method: 'GET', path: '/a', endpoint: 'a', headers: { authorization: `Bearer ${secret}` } });
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 400, message: 'Test GET a answered HTTP 400: bad header: Bearer ***' } });
  assert.equal(seen[0]!.headers['authorization'], `Bearer ${secret}`);
  assert.ok(!JSON.stringify(up.health()).includes(secret));
});

test('a closed engine answers with an error and sends nothing', async () => {
  const up = engine();
  await up.close();
  assert.deepEqual(await up.send({ method: 'GET', path: '/a', endpoint: 'a', headers: {} }), { ok: false, error: { kind: 'network', message: 'Test client is closed' } });
  assert.equal(seen.length, 0);
});
