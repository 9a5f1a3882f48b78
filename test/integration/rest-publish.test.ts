// PUT /v4/mqttpublishmessage against a real broker over real HTTP: Butler's 201 echo byte for byte,
// Fastify's 400/404 bodies, the token (401), allow-list (403), rate limit (429), MQTT off (503), a
// full outbox (507), ?wait=true (201 after PUBACK, 504 on timeout), broker outages, TLS and OpenAPI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';

const JSON_UTF8 = 'application/json; charset=utf-8';
const PATH = '/v4/mqttpublishmessage';

const tmp = tempDir();
let broker: TestBroker;
let sub: Collector;
let main: InProcessBridge;
let mainUrl: string;
const cleanups: (() => Promise<void> | void)[] = [];

type Json = Record<string, unknown>;

async function bridgeWith(name: string, brokerPort: number, over: Json): Promise<{ bridge: InProcessBridge; url: string }> {
  const port = await freePort();
  const butler = deepMerge(
    deepMerge(baseButler(brokerPort), {
      mqttConfig: { delivery: { outboxFile: `${tmp.dir}/${name}/outbox.sqlite` } },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: port },
      restServerEndpointsEnable: { mqttPublishMessage: true },
    }),
    over,
  );
  const bridge = await startInProcess(writeConfig(tmp.dir, butler, `${name}.yaml`));
  cleanups.push(() => bridge.stop());
  return { bridge, url: `http://127.0.0.1:${port}` };
}

interface Answer {
  status: number;
  type: string | null;
  text: string;
  headers: Headers;
}

async function call(base: string, method: string, body: string | undefined, headers: Record<string, string> = {}, path = PATH): Promise<Answer> {
  const res = await fetch(base + path, { method, body, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text(), headers: res.headers };
}

const put = (base: string, body: string, headers: Record<string, string> = {}, query = '') => call(base, 'PUT', body, headers, PATH + query);

before(async () => {
  broker = await startBroker();
  sub = await collect(broker.url, 'test/rest/#');
  ({ bridge: main, url: mainUrl } = await bridgeWith('main', broker.port, { restServerConfig: { bodyLimitBytes: 1024 } }));
  await main.app.connection!.waitConnected(5000);
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await sub.close();
  await broker.stop();
  tmp.cleanup();
});

test('201: the body is echoed exactly as Butler does, with its content type, and the message is published', async () => {
  const cases: [string, string, string][] = [
    // request body, expected 201 body, expected payload on the broker
    ['{"topic":"test/rest/a","message":"dt=20201028"}', '{"topic":"test/rest/a","message":"dt=20201028"}', 'dt=20201028'],
    ['{ "message" : "first", "topic" : "test/rest/b" }', '{"message":"first","topic":"test/rest/b"}', 'first'],
    ['{"topic":"test/rest/c","message":"x","qos":2,"retain":true}', '{"topic":"test/rest/c","message":"x","qos":2,"retain":true}', 'x'],
    ['{"topic":"test/rest/d","message":123}', '{"topic":"test/rest/d","message":"123"}', '123'],
    ['{"topic":"test/rest/e","message":null}', '{"topic":"test/rest/e","message":""}', ''],
    ['{"topic":"test/rest/f","message":"{\\"k\\":\\"ü €\\"}"}', '{"topic":"test/rest/f","message":"{\\"k\\":\\"ü €\\"}"}', '{"k":"ü €"}'],
  ];
  for (const [body, echo] of cases) {
    const r = await put(mainUrl, body);
    assert.equal(r.status, 201, body);
    assert.equal(r.type, 'application/json; charset=utf-8');
    assert.equal(r.text, echo);
  }
  await sub.waitForCount(cases.length, 10_000);
  for (const [body, , payload] of cases) {
    const topic = (JSON.parse(body) as { topic: string }).topic;
    assert.deepEqual(sub.texts(topic), [payload], topic);
  }
  // The extra `qos`/`retain` keys are echoed but ignored: delivered at the configured QoS 1, not retained.
  assert.equal(sub.on('test/rest/c')[0]?.retain, false);
  assert.equal(await main.app.metrics.total('butler_mqtt_messages_enqueued_total', { kind: 'rest' }), cases.length);
});

test('POST with X-HTTP-Method-Override: PUT publishes; a plain POST is 404 as for an unknown route', async () => {
  const ok = await call(mainUrl, 'POST', '{"topic":"test/rest/post","message":"via POST"}', { 'X-HTTP-Method-Override': 'PUT' });
  assert.equal(ok.status, 201);
  assert.equal(ok.type, JSON_UTF8);
  assert.equal(ok.text, '{"topic":"test/rest/post","message":"via POST"}');
  await sub.waitForCount(1, 5000, 'test/rest/post');

  const plain = await call(mainUrl, 'POST', '{"topic":"test/rest/post","message":"no header"}');
  assert.equal(plain.status, 404);
  assert.equal(plain.type, JSON_UTF8);
  assert.equal(plain.text, '{"message":"Route POST:/v4/mqttpublishmessage not found","error":"Not Found","statusCode":404}');
  const other = await call(mainUrl, 'POST', '{"topic":"test/rest/post","message":"wrong header"}', { 'X-HTTP-Method-Override': 'DELETE' });
  assert.equal(other.status, 404);
  await sleep(200);
  assert.deepEqual(sub.texts('test/rest/post'), ['via POST']);
});

test('400 in Fastify\'s error shape: bad bodies, invalid JSON, empty topics and wildcards; nothing is stored', async () => {
  const enqueued = () => main.app.metrics.total('butler_mqtt_messages_enqueued_total', { kind: 'rest' });
  const before = await enqueued();
  const cases: [string, string][] = [
    ['{"topic":"test/rest/x"}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body must have required property \'message\'"}'],
    ['{"message":"m"}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body must have required property \'topic\'"}'],
    ['{"topic":"test/rest/x","message":{"a":1}}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/message must be string"}'],
    ['{"topic":"test/rest/x",', '{"statusCode":400,"code":"FST_ERR_CTP_INVALID_JSON_BODY","error":"Bad Request","message":"Body is not valid JSON but content-type is set to \'application/json\'"}'],
    ['"just a string"', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body must be object"}'],
    ['{"topic":"","message":"m"}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/topic must not be empty"}'],
    ['{"topic":null,"message":"m"}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/topic must not be empty"}'],
    ['{"topic":"test/rest/+","message":"m"}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/topic must not contain the MQTT wildcards + or #"}'],
    ['{"topic":"test/rest/#","message":"m"}', '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"body/topic must not contain the MQTT wildcards + or #"}'],
  ];
  for (const [body, expected] of cases) {
    const r = await put(mainUrl, body);
    assert.equal(r.status, 400, body);
    assert.equal(r.type, JSON_UTF8, body);
    assert.equal(r.text, expected, body);
  }
  assert.equal(await enqueued(), before);
  assert.equal(await main.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'rest', reason: 'invalid_topic' }), 4);
  assert.equal(await main.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'rest', reason: 'invalid_body' }), 5);
});

test('413 for a body over restServerConfig.bodyLimitBytes', async () => {
  const r = await put(mainUrl, JSON.stringify({ topic: 'test/rest/big', message: 'x'.repeat(2000) }));
  assert.equal(r.status, 413);
  assert.equal(r.text, '{"statusCode":413,"code":"FST_ERR_CTP_BODY_TOO_LARGE","error":"Payload Too Large","message":"Request body is too large"}');
  assert.equal(await main.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'rest', reason: 'body_too_large' }), 1);
});

test('?wait=true answers 201 only after the broker acknowledged: the subscriber already has the message', async () => {
  const delivered = () => main.app.metrics.total('butler_mqtt_messages_delivered_total', { kind: 'rest' });
  for (let i = 0; i < 5; i++) {
    const topic = `test/rest/wait/${i}`;
    const before = await delivered();
    const r = await put(mainUrl, JSON.stringify({ topic, message: `w${i}` }), {}, '?wait=true');
    assert.equal(r.status, 201);
    assert.equal(r.text, `{"topic":"${topic}","message":"w${i}"}`);
    // The PUBACK was in before the answer.
    assert.equal(await delivered(), before + 1);
    if (broker.kind === 'mosquitto') {
      // Mosquitto hands a QoS 1 message to its subscribers before it acknowledges it.
      assert.deepEqual(sub.texts(topic), [`w${i}`], 'received before the response arrived');
    } else {
      // Aedes acknowledges a QoS 1 PUBLISH first and forwards it right after.
      await sub.waitForCount(1, 2000, topic);
      assert.deepEqual(sub.texts(topic), [`w${i}`]);
    }
  }
});

test('health, readiness and the OpenAPI document with its UI', async () => {
  const health = await call(mainUrl, 'GET', undefined, {}, '/health');
  assert.equal(health.status, 200);
  assert.equal(health.text, '{"status":"ok"}');
  const ready = await call(mainUrl, 'GET', undefined, {}, '/ready');
  assert.equal(ready.status, 200);
  assert.equal(ready.text, '{"ready":true,"reasons":[]}');

  const doc = await call(mainUrl, 'GET', undefined, {}, '/documentation/json');
  assert.equal(doc.status, 200);
  const api = JSON.parse(doc.text) as Json & { openapi: string; info: Json; paths: Record<string, Record<string, Json>> };
  assert.match(api.openapi, /^3\.\d+\.\d+$/);
  assert.equal(typeof api.info['title'], 'string');
  assert.equal(typeof api.info['version'], 'string');
  const item = api.paths[PATH];
  assert.ok(item, 'the publish path is documented');
  const op = item['put'] as { requestBody: { required: boolean; content: Record<string, { schema: { type: string; required: string[]; properties: Record<string, { type: string }> } }> }; responses: Record<string, unknown> };
  const schema = op.requestBody.content['application/json']?.schema;
  assert.ok(schema);
  assert.equal(schema.type, 'object');
  assert.deepEqual(schema.required, ['topic', 'message']);
  assert.equal(schema.properties['topic']?.type, 'string');
  assert.equal(schema.properties['message']?.type, 'string');
  assert.deepEqual(Object.keys(op.responses).sort(), ['201', '400', '401', '403', '415', '421', '429', '503', '504', '507']);
  assert.ok(item['post'], 'the POST form is documented');
  assert.ok(api.paths['/health']?.['get']);
  assert.ok(api.paths['/ready']?.['get']);
  // Every operation has responses (an OpenAPI 3 requirement).
  for (const [path, ops] of Object.entries(api.paths)) for (const [method, o] of Object.entries(ops)) assert.ok((o as Json)['responses'], `${method} ${path}`);

  const ui = await fetch(`${mainUrl}/documentation`);
  assert.equal(ui.status, 200);
  assert.match(ui.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(await ui.text(), /swagger-ui/i);
});

test('401 without or with a wrong API token, 201 with Bearer or X-Api-Token; 403 outside the allowed prefixes', async () => {
  const token = 'tok-9f3a2c7e5b1d';
  const { bridge, url } = await bridgeWith('auth', broker.port, {
    restServerConfig: { apiToken: token, publishAllowedTopicPrefixes: ['test/rest/allowed/', 'qliksense/'] },
  });
  const body = '{"topic":"test/rest/allowed/x","message":"auth"}';
  const missing = await put(url, body);
  assert.equal(missing.status, 401);
  assert.equal(missing.type, JSON_UTF8);
  assert.equal(
    missing.text,
    '{"statusCode":401,"code":"BUTLER_MQTT_UNAUTHORIZED","error":"Unauthorized","message":"an API token is required: send \\"Authorization: Bearer <token>\\" or \\"X-Api-Token: <token>\\""}',
  );
  const wrong = await put(url, body, { authorization: 'Bearer tok-9f3a2c7e5b1e' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.text, '{"statusCode":401,"code":"BUTLER_MQTT_UNAUTHORIZED","error":"Unauthorized","message":"the API token is wrong"}');
  const wrongHeader = await put(url, body, { 'x-api-token': `${token}x` });
  assert.equal(wrongHeader.status, 401);
  // A token check comes before the body: an invalid body without a token is still 401.
  assert.equal((await put(url, '{"topic":')).status, 401);

  const bearer = await put(url, body, { authorization: `Bearer ${token}` });
  assert.equal(bearer.status, 201);
  assert.equal(bearer.text, body);
  const header = await put(url, body, { 'X-Api-Token': token });
  assert.equal(header.status, 201);

  const outside = await put(url, '{"topic":"test/rest/other","message":"no"}', { authorization: `Bearer ${token}` });
  assert.equal(outside.status, 403);
  assert.equal(outside.type, JSON_UTF8);
  assert.equal(
    outside.text,
    '{"statusCode":403,"code":"BUTLER_MQTT_TOPIC_NOT_ALLOWED","error":"Forbidden","message":"topic \\"test/rest/other\\" is not under any of restServerConfig.publishAllowedTopicPrefixes"}',
  );
  await sub.waitForCount(2, 5000, 'test/rest/allowed/x');
  await sleep(200);
  assert.deepEqual(sub.texts('test/rest/other'), []);
  assert.equal(await bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'rest', reason: 'unauthorized' }), 4);
  assert.ok(!bridge.logs.some((l) => l.includes(token)), 'the token never appears in the log');
});

test('429 past restServerConfig.rateLimitPerMinute, with @fastify/rate-limit\'s body and headers; health is not limited', async () => {
  const { url } = await bridgeWith('rate', broker.port, { restServerConfig: { rateLimitPerMinute: 3 } });
  for (let i = 0; i < 3; i++) {
    const r = await put(url, `{"topic":"test/rest/rate","message":"r${i}"}`);
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('x-ratelimit-limit'), '3');
    assert.equal(r.headers.get('x-ratelimit-remaining'), String(2 - i));
  }
  const limited = await put(url, '{"topic":"test/rest/rate","message":"r3"}');
  assert.equal(limited.status, 429);
  assert.equal(limited.type, JSON_UTF8);
  assert.equal(limited.text, '{"statusCode":429,"error":"Too Many Requests","message":"Rate limit exceeded, retry in 1 minute"}');
  assert.equal(limited.headers.get('x-ratelimit-remaining'), '0');
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
  // The POST form shares the client's window.
  assert.equal((await call(url, 'POST', '{"topic":"test/rest/rate","message":"p"}', { 'X-HTTP-Method-Override': 'PUT' })).status, 429);
  assert.equal((await call(url, 'GET', undefined, {}, '/health')).status, 200);
  await sub.waitForCount(3, 5000, 'test/rest/rate');
  await sleep(200);
  assert.deepEqual(sub.texts('test/rest/rate'), ['r0', 'r1', 'r2']);
});

test('503 when MQTT is disabled; the server still answers health, and readiness says why', async () => {
  const { url } = await bridgeWith('nomqtt', broker.port, { mqttConfig: { enable: false } });
  const r = await put(url, '{"topic":"test/rest/off","message":"m"}');
  assert.equal(r.status, 503);
  assert.equal(r.type, JSON_UTF8);
  assert.equal(r.text, '{"statusCode":503,"code":"BUTLER_MQTT_DISABLED","error":"Service Unavailable","message":"MQTT is disabled (Butler.mqttConfig.enable is false): nothing can be published"}');
  const health = await call(url, 'GET', undefined, {}, '/health');
  assert.equal(health.status, 200);
  assert.equal(health.text, '{"status":"ok"}');
  const ready = await call(url, 'GET', undefined, {}, '/ready');
  assert.equal(ready.status, 503);
  assert.equal(ready.text, '{"ready":false,"reasons":["MQTT is disabled"]}');
});

test('broker down: plain PUT is 201, ?wait=true is 504, a full outbox is 507; both stored messages arrive once the broker is back', async () => {
  const outage = await startBroker({ persistence: true });
  cleanups.push(() => outage.stop());
  const outageSub = await collect(outage.url, 'test/outage/#', { clean: false, clientId: `sub-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 100 });
  cleanups.push(() => outageSub.close());
  // Mosquitto writes its persistence file (with the subscriber's session) on a graceful stop; Aedes
  // keeps its sessions in the broker object, which kill() (listener only) leaves alive.
  if (outage.kind === 'mosquitto') await outage.stop();
  else await outage.kill();

  const { bridge, url } = await bridgeWith('outage', outage.port, { mqttConfig: { delivery: { maxMessages: 2 } }, restServerConfig: { waitTimeoutMs: 300 } });
  const plain = await put(url, '{"topic":"test/outage/plain","message":"m1"}');
  assert.equal(plain.status, 201);
  assert.equal(plain.text, '{"topic":"test/outage/plain","message":"m1"}');

  const waited = await put(url, '{"topic":"test/outage/wait","message":"m2"}', {}, '?wait=true');
  assert.equal(waited.status, 504);
  assert.equal(waited.type, JSON_UTF8);
  assert.equal(
    waited.text,
    '{"statusCode":504,"code":"BUTLER_MQTT_DELIVERY_TIMEOUT","error":"Gateway Timeout","message":"the message is stored but the broker did not acknowledge it within 300 ms; it stays queued and will be delivered when the broker takes it"}',
  );
  assert.equal(bridge.app.outbox!.depth, 2);

  const full = await put(url, '{"topic":"test/outage/full","message":"m3"}');
  assert.equal(full.status, 507);
  assert.equal(full.type, JSON_UTF8);
  assert.equal(full.text, '{"statusCode":507,"code":"BUTLER_MQTT_OUTBOX_FULL","error":"Insufficient Storage","message":"outbox full: messages limit 2 reached (currently 2); message refused, nothing stored"}');

  await outage.restart();
  await outageSub.waitForCount(2, 20_000).catch((e: Error) => {
    throw new Error(`${e.message}; bridge connected=${bridge.app.connection!.connected} depth=${bridge.app.outbox!.depth} sub=${outageSub.client.connected}\n${bridge.logs.slice(-15).join('')}`);
  });
  await waitFor(() => bridge.app.outbox!.depth === 0, 5000, 'outbox to drain');
  assert.deepEqual(
    outageSub.messages.map((m) => [m.topic, m.text]),
    [
      ['test/outage/plain', 'm1'],
      ['test/outage/wait', 'm2'],
    ],
  );
});

test('HTTPS when restServerConfig.tls.enable: the same endpoint over TLS with the configured certificate', async () => {
  const pki: TestPki = await createTestPki();
  cleanups.push(() => pki.cleanup());
  const port = await freePort();
  const { bridge } = await bridgeWith('tls', broker.port, {
    restServerConfig: { serverPort: port, tls: { enable: true, cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert } },
  });
  const dispatcher = new Agent({ connect: { ca: readFileSync(pki.caCert) } });
  cleanups.push(() => dispatcher.close());
  const res = await undiciFetch(`https://127.0.0.1:${port}${PATH}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: '{"topic":"test/rest/tls","message":"secure"}',
    dispatcher,
  });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get('content-type'), JSON_UTF8);
  assert.equal(await res.text(), '{"topic":"test/rest/tls","message":"secure"}');
  await sub.waitForCount(1, 5000, 'test/rest/tls');
  assert.deepEqual(sub.texts('test/rest/tls'), ['secure']);
  // Plain HTTP to the TLS port does not get an answer from the API.
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`).then((r) => r.text()));
  assert.ok(bridge.logs.some((l) => l.includes(`https://127.0.0.1:${port}`)));
});
