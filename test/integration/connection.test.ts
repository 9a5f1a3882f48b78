// Broker connections against real brokers: connect status (P1) and availability with last-will,
// user/password, TLS with a required client certificate (and the clean refusal without one),
// MQTT 5.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, brokerKind } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, spawnBridge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { sleep, waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-conn-');
let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});
after(async () => {
  await pki.cleanup();
  tmp.cleanup();
});

test('on connect the bridge publishes P1 and a retained "online"; a clean stop publishes "offline"', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, ['qliksense/butler/mqtt/status', 'qliksense/butler/mqtt/availability']);
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { clientId: 'bridge-p1', delivery: { outboxFile: 'p1/outbox.sqlite' } } }), 'p1.yaml');
  const bridge = await spawnBridge(file);
  try {
    await sub.waitForCount(1, 10_000, 'qliksense/butler/mqtt/status');
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/status'), [`Connected to MQTT broker 127.0.0.1:${broker.port} with client ID bridge-p1`]);
    await sub.waitForCount(1, 10_000, 'qliksense/butler/mqtt/availability');
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/availability'), ['online']);
    // A subscriber that joins later gets the retained state.
    const late = await collect(broker.url, 'qliksense/butler/mqtt/availability');
    await late.waitForCount(1, 5000);
    assert.deepEqual(late.messages.map((m) => [m.text, m.retain]), [['online', true]]);
    await late.close();

    const code = await bridge.kill('SIGINT');
    assert.equal(code, 0);
    await sub.waitForCount(2, 5000, 'qliksense/butler/mqtt/availability');
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/availability'), ['online', 'offline']);
  } finally {
    await bridge.kill('SIGKILL');
    await sub.close();
    await broker.stop();
  }
});

test('the last-will publishes "offline" when the bridge dies without saying goodbye', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, 'qliksense/butler/mqtt/availability');
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { keepaliveSeconds: 1, delivery: { outboxFile: 'will/outbox.sqlite' } } }), 'will.yaml');
  const bridge = await spawnBridge(file);
  try {
    await sub.waitForCount(1, 10_000);
    await bridge.kill('SIGKILL');
    await sub.waitForCount(2, 10_000);
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/availability'), ['online', 'offline']);
  } finally {
    await sub.close();
    await broker.stop();
  }
});

test('a broker that requires a user name and password: connects with them, refused (and logged) without', async () => {
  const users = [{ username: 'bridge', password: 'pw-for-test-only' }];
  const broker = await startBroker({ users });
  const sub = await collect(broker.url, 'qliksense/butler/mqtt/status', { username: 'bridge', password: 'pw-for-test-only' });
  const good = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { username: 'bridge', password: 'pw-for-test-only', delivery: { outboxFile: 'auth/a.sqlite' } } }), 'auth-good.yaml');
  const bad = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { username: 'bridge', password: 'wrong-password', delivery: { outboxFile: 'auth/b.sqlite' } } }), 'auth-bad.yaml');
  const ok = await startInProcess(good);
  const refused = await startInProcess(bad);
  try {
    await sub.waitForCount(1, 10_000);
    assert.equal(ok.app.connection?.connected, true);
    await waitFor(() => refused.logs.some((l) => l.includes('bad user name or password') || l.includes('not authorised')), 10_000, 'the refusal to be logged');
    assert.equal(refused.app.connection?.connected, false);
    // Neither password appears in any log line.
    for (const line of [...ok.logs, ...refused.logs]) {
      assert.ok(!line.includes('pw-for-test-only') && !line.includes('wrong-password'), `secret in log: ${line}`);
    }
  } finally {
    await ok.stop();
    await refused.stop();
    await sub.close();
    await broker.stop();
  }
});

test('a TLS broker that requires a client certificate: the bridge connects with its certificate', async () => {
  const broker = await startBroker({ tls: { caCert: pki.caCert, serverCert: pki.serverCert, serverKey: pki.serverKey, requireCertificate: true } });
  const subCert = pki.client('subscriber');
  const sub = await collect(broker.url, 'qliksense/butler/mqtt/status', { ca: [await readText(pki.caCert)], cert: await readText(subCert.cert), key: await readText(subCert.key), servername: 'localhost' });
  const cert = pki.client('bridge');
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { brokerHost: 'localhost', clientId: 'bridge-tls', tls: { enable: true, caFile: pki.caCert, certFile: cert.cert, keyFile: cert.key }, delivery: { outboxFile: 'tls/ok.sqlite' } },
    }),
    'tls-ok.yaml',
  );
  const bridge = await startInProcess(file);
  try {
    await sub.waitForCount(1, 10_000);
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/status'), [`Connected to MQTT broker localhost:${broker.port} with client ID bridge-tls`]);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('without a client certificate the TLS broker refuses: one clear log line, backoff, no crash loop', async () => {
  const broker = await startBroker({ tls: { caCert: pki.caCert, serverCert: pki.serverCert, serverKey: pki.serverKey, requireCertificate: true } });
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { brokerHost: 'localhost', tls: { enable: true, caFile: pki.caCert }, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, delivery: { outboxFile: 'tls/refused.sqlite' } },
    }),
    'tls-refused.yaml',
  );
  const bridge = await startInProcess(file);
  try {
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_broker_reconnects_total')) >= 4, 15_000, 'four reconnect attempts');
    assert.equal(bridge.app.connection?.connected, false);
    const warnings = bridge.logs.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'warn' && l.msg.startsWith(`MQTT broker localhost:${broker.port}:`));
    // The same refusal is logged once, not once per attempt.
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    // The process keeps running and keeps its outbox: a message enqueued now is stored, not lost.
    await bridge.app.outbox!.enqueue([{ topic: 'test/tls', payload: 'kept', kind: 'test' }]);
    assert.equal(bridge.app.outbox!.depth, 1);
  } finally {
    await bridge.stop();
    await broker.stop();
  }
});

test(`MQTT 5 connection (${brokerKind() === 'mosquitto' ? 'Mosquitto' : 'Aedes speaks 3.1.1 only: the refusal is logged and retried'})`, async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, 'test/v5/#');
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { protocolVersion: '5', delivery: { outboxFile: 'v5/outbox.sqlite' } } }), 'v5.yaml');
  const bridge = await startInProcess(file);
  try {
    await bridge.app.outbox!.enqueue([{ topic: 'test/v5/a', payload: 'over v5', kind: 'test' }]);
    if (broker.kind === 'mosquitto') {
      await sub.waitForCount(1, 10_000);
      assert.deepEqual(sub.texts('test/v5/a'), ['over v5']);
      assert.equal(bridge.app.connection?.protocolVersion, 5);
    } else {
      await sleep(1000);
      assert.equal(bridge.app.connection?.connected, false);
      assert.equal(bridge.app.outbox!.depth, 1);
    }
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

async function readText(file: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(file, 'utf8');
}
