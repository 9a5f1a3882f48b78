// The HTTP server against hostile or careless callers, over real HTTP with a real broker: topics the broker
// would answer with a disconnect ($-topics, more than 100 levels) and non-string topics are refused at the
// door and counted; the Host allow-list (DNS rebinding); nosniff everywhere; a CSP on the API documentation
// that still lets Swagger UI work in Chromium; 415 for a body that is not JSON.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { chromium } from 'playwright-core';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { freePort } from '../support/wait.ts';
import { allowedHostSet, hostOf, DOCUMENTATION_CSP } from '../../src/http/security.ts';

const PATH = '/v4/mqttpublishmessage';
const tmp = tempDir('bm-http-hardening-');
let broker: TestBroker;
let sub: Collector;
let bridge: InProcessBridge;
let port: number;
let base: string;

before(async () => {
  broker = await startBroker();
  sub = await collect(broker.url, ['hard/#']);
  port = await freePort();
  const butler = deepMerge(baseButler(broker.port), {
    mqttConfig: { delivery: { outboxFile: `${tmp.dir}/outbox.sqlite` } },
    restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: port, allowedHosts: ['bridge.corp.example'] },
    restServerEndpointsEnable: { mqttPublishMessage: true },
  });
  bridge = await startInProcess(writeConfig(tmp.dir, butler));
  await bridge.app.connection!.waitConnected(5000);
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await bridge.stop();
  await sub.close();
  await broker.stop();
  tmp.cleanup();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(method: 'GET' | 'PUT', url: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(base + url, { method, body, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers } });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const rejected = (reason: string, source = 'rest') => bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source, reason });
const enqueued = () => bridge.app.metrics.total('butler_mqtt_messages_enqueued_total', { kind: 'rest' });

test('topics starting with $ and topics of more than 100 levels are refused with 400 and counted; 100 levels is delivered', async () => {
  const before = await enqueued();
  const cases: [string, string, string][] = [
    ['$SYS/broker/x', 'reserved_topic', 'body/topic must not start with "$": topic starts with "$", which MQTT reserves for the broker\'s own topics (such as $SYS)'],
    ['$share/group/hard/x', 'reserved_topic', 'body/topic must not start with "$": topic starts with "$", which MQTT reserves for the broker\'s own topics (such as $SYS)'],
    [`hard${'/l'.repeat(100)}`, 'invalid_topic', 'body/topic is not a topic a message can be published to: topic has 101 levels; brokers accept at most 100'],
  ];
  for (const [topic, , message] of cases) {
    const r = await call('PUT', PATH, JSON.stringify({ topic, message: 'm' }));
    assert.equal(r.status, 400, topic);
    assert.equal(r.text, JSON.stringify({ statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request', message }), topic);
  }
  assert.equal(await rejected('reserved_topic'), 2);
  assert.equal(await rejected('invalid_topic'), 1);
  assert.equal(await enqueued(), before);

  // The limit itself is fine, and the connection stays up to deliver it.
  const hundred = `hard${'/l'.repeat(99)}`;
  const ok = await call('PUT', `${PATH}?wait=true`, JSON.stringify({ topic: hundred, message: 'deep' }));
  assert.equal(ok.status, 201);
  await sub.waitForCount(1, 5000, hundred);
  assert.deepEqual(sub.texts(hundred), ['deep']);
});

test('a topic that is not a JSON string is 400 (not a publish to topic "42"); the message may still be a number', async () => {
  const before = await enqueued();
  const invalidBefore = await rejected('invalid_topic');
  const cases: [string, string][] = [
    ['{"topic":42,"message":"m"}', 'body/topic must be a string, got number'],
    ['{"topic":true,"message":"m"}', 'body/topic must be a string, got boolean'],
    ['{"topic":["hard/a"],"message":"m"}', 'body/topic must be a string, got a list'],
    ['{"topic":{"t":"hard/a"},"message":"m"}', 'body/topic must be a string, got an object'],
  ];
  for (const [body, message] of cases) {
    const r = await call('PUT', PATH, body);
    assert.equal(r.status, 400, body);
    assert.equal(r.text, JSON.stringify({ statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request', message }), body);
  }
  assert.equal(await rejected('invalid_topic'), invalidBefore + cases.length);
  assert.equal(await enqueued(), before);
  const numberMessage = await call('PUT', PATH, '{"topic":"hard/n","message":42}');
  assert.equal(numberMessage.status, 201);
  assert.equal(numberMessage.text, '{"topic":"hard/n","message":"42"}');
});

test('Host allow-list: localhost, loopback, the bind address and configured names pass; any other Host gets 421, counted', async () => {
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`, `bridge.corp.example:${port}`, 'Bridge.Corp.Example']) {
    const r = await call('GET', '/health', undefined, { host });
    assert.equal(r.status, 200, host);
  }
  const refused: [string, string][] = [
    [`evil.example:${port}`, '/health'],
    ['attacker.example', '/'],
    ['bridge.corp.example.evil.example', '/status/api'],
    ['127.0.0.1.nip.io', PATH],
  ];
  for (const [host, url] of refused) {
    const r = url === PATH ? await call('PUT', url, '{"topic":"hard/host","message":"m"}', { host }) : await call('GET', url, undefined, { host });
    assert.equal(r.status, 421, host);
    assert.equal(
      r.text,
      JSON.stringify({ statusCode: 421, code: 'BUTLER_MQTT_HOST_NOT_ALLOWED', error: 'Misdirected Request', message: `the Host ${JSON.stringify(host)} is not one this server answers to; add it to restServerConfig.allowedHosts` }),
    );
  }
  assert.equal(await rejected('host_not_allowed', 'http'), refused.length);
  assert.deepEqual(sub.texts('hard/host'), []);
  // One warning per distinct Host, not per request.
  await call('GET', '/health', undefined, { host: 'attacker.example' });
  assert.equal(bridge.logs.filter((l) => l.includes('Host \\"attacker.example\\" is not in restServerConfig.allowedHosts')).length, 1);
});

test('X-Content-Type-Options: nosniff on every answer, including errors and 404s', async () => {
  const answers = [
    await call('GET', '/health'),
    await call('GET', '/'),
    await call('GET', '/no/such/route'),
    await call('PUT', PATH, '{"topic":"","message":"m"}'),
    await call('GET', '/documentation/json'),
    await call('GET', '/health', undefined, { host: 'evil.example' }),
  ];
  for (const a of answers) assert.equal(a.headers['x-content-type-options'], 'nosniff');
});

test('415 for a body that is not JSON, counted as invalid_body; documented in the OpenAPI responses', async () => {
  const before = await rejected('invalid_body');
  const r = await call('PUT', PATH, '<topic>hard/x</topic>', { 'content-type': 'application/xml' });
  assert.equal(r.status, 415);
  assert.equal(r.text, '{"statusCode":415,"code":"FST_ERR_CTP_INVALID_MEDIA_TYPE","error":"Unsupported Media Type","message":"Unsupported Media Type"}');
  assert.equal(await rejected('invalid_body'), before + 1);
  const doc = JSON.parse((await call('GET', '/documentation/json')).text) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  assert.ok(doc.paths[PATH]?.['put']?.responses['415']);
  assert.ok(doc.paths[PATH]?.['put']?.responses['421']);
});

test('the API documentation has a Content-Security-Policy, and Swagger UI still renders under it in Chromium', async () => {
  for (const url of ['/documentation', '/documentation/', '/documentation/static/swagger-initializer.js', '/documentation/json']) {
    const page = await call('GET', url);
    assert.ok(page.status === 200 || page.status === 302, `${url}: ${page.status}`);
    assert.equal(page.headers['content-security-policy'], DOCUMENTATION_CSP, url);
  }
  // The status page keeps its own, stricter policy.
  const status = await call('GET', '/');
  assert.match(String(status.headers['content-security-policy']), /^default-src 'none'/);

  const profile = mkdtempSync(path.join(os.tmpdir(), 'bm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const tab = await context.newPage();
    const problems: string[] = [];
    tab.on('console', (m) => {
      if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(m.text());
    });
    tab.on('pageerror', (e) => problems.push(e.message));
    await tab.goto(`${base}/documentation`);
    // The publish operation is rendered from /documentation/json: scripts ran and fetched the document.
    await tab.locator('.opblock-summary-path', { hasText: PATH }).first().waitFor({ timeout: 15_000 });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
});

test('hostOf and allowedHostSet: ports and brackets stripped; a wildcard bind adds this machine; "*" switches the check off', () => {
  assert.equal(hostOf('Example.COM:8080'), 'example.com');
  assert.equal(hostOf('[::1]:8080'), '::1');
  assert.equal(hostOf('host.example.'), 'host.example');
  assert.equal(hostOf('a:b:c'), null);
  assert.equal(hostOf(''), null);
  const loopback = allowedHostSet('127.0.0.1', []);
  assert.deepEqual([...(loopback ?? [])].sort(), ['127.0.0.1', '::1', 'localhost']);
  const wildcard = allowedHostSet('0.0.0.0', ['sense-bridge.corp.example:8180']);
  assert.ok(wildcard?.has(os.hostname().toLowerCase()));
  assert.ok(wildcard?.has('sense-bridge.corp.example'));
  assert.equal(allowedHostSet('0.0.0.0', ['*']), null);
});
