// Azure Event Grid mode against an "Event Grid–like" broker: TLS only, a client certificate required,
// the certificate identity as user name and an ACL that admits only the registered identity. Also the
// Event Grid limits: config refusals (QoS 2, retained will, keep-alive, topic levels) and messages
// refused at the outbox (packets over 512 KiB, long or deep topics) that never reach the broker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt';
import { stringify } from 'yaml';
import { startBroker, brokerKind, type TestBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, spawnBridge, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki, type CertPair, type TestPki } from '../support/certs.ts';
import { waitFor } from '../support/wait.ts';
import { ConfigError, loadConfigFile, parseConfigText } from '../../src/config/load.ts';
import { App, mainConnectionOptions } from '../../src/app.ts';
import { MessageRejectedError } from '../../src/store/types.ts';

/** Messages these tests put into the outbox themselves (not channels of the bridge). */
const TEST_TRAFFIC = ['qliksense/eg/#', 'qliksense/big/#'];

type Json = Record<string, unknown>;
type ConnectPacket = Extract<Packet, { cmd: 'connect' }>;
type PublishPacket = Extract<Packet, { cmd: 'publish' }>;

const IDENTITY = 'butler-mqtt-eg';
const SESSION = 'butler-mqtt-session-1';
const MOSQUITTO = brokerKind() === 'mosquitto';

const tmp = tempDir('bm-eg-');
let pki: TestPki;
let identityCert: CertPair;
let broker: TestBroker;

before(async () => {
  pki = await createTestPki();
  identityCert = pki.client(IDENTITY);
  broker = await startBroker({
    tls: { caCert: pki.caCert, serverCert: pki.serverCert, serverKey: pki.serverKey, requireCertificate: true, identityAsUsername: true, allowedIdentity: IDENTITY },
  });
});

after(async () => {
  await broker.stop();
  await pki.cleanup();
  tmp.cleanup();
});

function egButler(name: string, over: Json = {}): Json {
  return deepMerge(
    deepMerge(baseButler(broker.port), {
      mqttConfig: {
        brokerHost: 'localhost',
        azureEventGrid: { enable: true, clientId: SESSION, clientCertFile: identityCert.cert, clientKeyFile: identityCert.key, authenticationName: IDENTITY, caFile: pki.caCert },
        delivery: { outboxFile: `${name}/outbox.sqlite` },
      },
    }),
    over,
  );
}

function tlsOptions(pair: CertPair | null): IClientOptions {
  return { ca: readFileSync(pki.caCert), servername: 'localhost', ...(pair ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) } : {}) };
}

/** One connection attempt of a plain test client: 'connected' or the error it got. */
async function connectOnce(options: IClientOptions): Promise<{ outcome: string; client: MqttClient }> {
  const client = mqtt.connect(broker.url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: `probe-${Math.random().toString(16).slice(2, 10)}`, ...options });
  const outcome = await new Promise<string>((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.once('error', (err) => resolve(`error: ${err.message}`));
    client.once('close', () => resolve('closed'));
  });
  return { outcome, client };
}

/** Starts the bridge in this process, recording every packet its main connection sends. */
async function startRecorded(file: string): Promise<{ app: App; logs: string[]; sent: Packet[]; stop(): Promise<void> }> {
  const logs: string[] = [];
  const app = new App(loadConfigFile(file), { logDestination: { write: (l: string) => logs.push(l) }, logPretty: false });
  const sent: Packet[] = [];
  app.connection!.observeSentPackets((p) => sent.push(p));
  await app.start();
  return { app, logs, sent, stop: () => app.stop() };
}

function configIssues(text: string, file: string): string[] {
  try {
    parseConfigText(text, file);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

test('Event Grid mode connection options: mqtts, session name as client id, authentication name as user name, certificate and key, server certificate verified, will not retained, QoS at most 1', () => {
  const file = path.join(tmp.dir, 'options.yaml');
  const config = parseConfigText(stringify({ Butler: egButler('options') }), file);
  const o = mainConnectionOptions(config);
  assert.equal(o.protocol, 'mqtts');
  assert.equal(o.host, 'localhost');
  assert.equal(o.port, broker.port);
  assert.equal(o.clientId, SESSION);
  assert.equal(o.username, IDENTITY);
  assert.equal(o.password, undefined);
  assert.deepEqual(o.cert, readFileSync(identityCert.cert));
  assert.deepEqual(o.key, readFileSync(identityCert.key));
  assert.deepEqual(o.ca, readFileSync(pki.caCert));
  assert.equal(o.rejectUnauthorized, true);
  assert.deepEqual(o.will, { topic: 'qliksense/butler/mqtt/availability', payload: 'offline', qos: 1, retain: false });
  // Without an authentication name the user name is the client id (the session name).
  const plain = parseConfigText(stringify({ Butler: egButler('options', { mqttConfig: { azureEventGrid: { authenticationName: '' } } }) }), file);
  assert.equal(mainConnectionOptions(plain).username, SESSION);
});

test(`Event Grid–like broker: the bridge connects with certificate and key, keeps its session name across a reconnect, publishes and subscribes; availability not retained; ${MOSQUITTO ? 'MQTT 5: user properties on no packet' : 'MQTT 3.1.1 (Aedes has no MQTT 5)'}`, async () => {
  const sub = await collect(broker.url, ['qliksense/#'], { ...tlsOptions(identityCert), testTopics: TEST_TRAFFIC });
  const file = writeConfig(tmp.dir, egButler('connect', MOSQUITTO ? { mqttConfig: { protocolVersion: '5' } } : {}), 'connect.yaml');
  const bridge = await startRecorded(file);
  try {
    const status = `Connected to MQTT broker localhost:${broker.port} with client ID ${SESSION}`;
    await sub.waitForCount(1, 10_000, 'qliksense/butler/mqtt/status');
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/status'), [status]);

    // Publish through it.
    await bridge.app.outbox!.enqueue([{ topic: 'qliksense/eg/out', payload: 'through the Event Grid–like broker', kind: 'test' }]);
    await sub.waitForCount(1, 10_000, 'qliksense/eg/out');
    assert.deepEqual(sub.texts('qliksense/eg/out'), ['through the Event Grid–like broker']);

    // Subscribe through it (QoS 1, so the bridge sends a PUBACK too); outside qliksense/#, which the
    // bridge's command subscription already covers.
    const received: string[] = [];
    const subscription = bridge.app.connection!.subscribe('egtest/in', { qos: 1 }, (topic, payload) => {
      if (topic === 'egtest/in') received.push(payload.toString());
    });
    assert.equal(await subscription.whenGranted(10_000), 1);
    await sub.client.publishAsync('egtest/in', 'to the bridge', { qos: 1 });
    await waitFor(() => received.length === 1, 10_000, 'the bridge to receive its message');
    assert.deepEqual(received, ['to the bridge']);

    // A subscriber arriving now gets no retained availability message.
    const late = await collect(broker.url, ['qliksense/butler/mqtt/availability', 'qliksense/eg/marker'], { ...tlsOptions(identityCert), testTopics: TEST_TRAFFIC });
    await bridge.app.outbox!.enqueue([{ topic: 'qliksense/eg/marker', payload: 'marker', kind: 'test' }]);
    await late.waitForCount(1, 10_000, 'qliksense/eg/marker');
    assert.deepEqual(late.on('qliksense/butler/mqtt/availability'), []);
    await late.close();

    // The connection drops: the bridge reconnects with the same client id (session name) and user name.
    bridge.app.connection!.dropSocket();
    await sub.waitForCount(2, 10_000, 'qliksense/butler/mqtt/status');
    assert.deepEqual(sub.texts('qliksense/butler/mqtt/status'), [status, status]);
    const connects = bridge.sent.filter((p) => p.cmd === 'connect') as ConnectPacket[];
    assert.equal(connects.length, 2);
    for (const c of connects) {
      assert.equal(c.clientId, SESSION);
      assert.equal(c.username, IDENTITY);
      assert.equal(c.will?.retain, false);
      assert.equal(c.will?.qos, 1);
      assert.equal(c.protocolVersion, MOSQUITTO ? 5 : 4);
    }
    // Event Grid fails CONNECT, SUBSCRIBE, DISCONNECT, PUBACK and AUTH packets that carry user properties.
    const cmds = new Set(bridge.sent.map((p) => p.cmd));
    for (const cmd of ['connect', 'subscribe', 'puback', 'publish']) assert.ok(cmds.has(cmd as Packet['cmd']), `a ${cmd} packet was sent`);
    const withUserProperties = bridge.sent.filter((p) => (p as { properties?: { userProperties?: unknown } }).properties?.userProperties !== undefined);
    assert.deepEqual(withUserProperties.map((p) => p.cmd), []);
    // Nothing is published with the retain flag or QoS 2 in this mode.
    const publishes = bridge.sent.filter((p) => p.cmd === 'publish') as PublishPacket[];
    assert.deepEqual(publishes.filter((p) => p.retain || p.qos > 1).map((p) => p.topic), []);
  } finally {
    await bridge.stop();
    await sub.close();
  }
});

test('refused without a client certificate and with a certificate of another CA; a certificate of the right CA with another identity gets no topic access (the test broker cannot refuse that CONNECT itself, as Event Grid does)', async () => {
  // No certificate: the TLS handshake fails.
  const none = await connectOnce(tlsOptions(null));
  none.client.end(true);
  assert.notEqual(none.outcome, 'connected');

  // In Event Grid mode a missing certificate is a configuration error, not a connection attempt.
  const file = path.join(tmp.dir, 'nocert.yaml');
  assert.deepEqual(configIssues(stringify({ Butler: egButler('nocert', { mqttConfig: { azureEventGrid: { clientCertFile: '', clientKeyFile: 'missing-key.pem' } } }) }), file), [
    'Butler.mqttConfig.azureEventGrid.clientCertFile: expected the path of the client certificate file, got an empty value',
    'Butler.mqttConfig.azureEventGrid.clientKeyFile: expected the client key file, but the file "missing-key.pem" does not exist',
  ]);

  // The bridge with a certificate of an unrelated CA never gets connected; it logs the refusal and keeps trying.
  const sub = await collect(broker.url, ['qliksense/#'], { ...tlsOptions(identityCert), testTopics: TEST_TRAFFIC });
  const foreignFile = writeConfig(
    tmp.dir,
    egButler('foreign', { mqttConfig: { azureEventGrid: { clientId: 'session-foreign', clientCertFile: pki.foreignClient.cert, clientKeyFile: pki.foreignClient.key } } }),
    'foreign.yaml',
  );
  const foreign = await startRecorded(foreignFile);
  try {
    await waitFor(async () => (await foreign.app.metrics.total('butler_mqtt_broker_reconnects_total')) >= 3, 15_000, 'three reconnect attempts');
    assert.equal(foreign.app.connection!.connected, false);
    const attempts = foreign.logs.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg.startsWith(`reconnecting to MQTT broker localhost:${broker.port} in `));
    assert.ok(attempts.length >= 1, 'the retry is logged');
    assert.deepEqual(foreign.sent.filter((p) => p.cmd === 'publish'), []);
  } finally {
    await foreign.stop();
  }

  // Right CA, other identity: connected by the test broker, but nothing it publishes arrives and it receives nothing.
  const intruder = await connectOnce({ ...tlsOptions(pki.client('someone-else')), username: IDENTITY });
  const intruderReceived: string[] = [];
  intruder.client.on('message', (topic) => intruderReceived.push(topic));
  if (intruder.outcome === 'connected') {
    await intruder.client.subscribeAsync('qliksense/#', { qos: 1 }).catch(() => undefined);
    await intruder.client.publishAsync('qliksense/eg/intruder', 'should not arrive', { qos: 0 }).catch(() => undefined);
  }
  const marker = await connectOnce(tlsOptions(identityCert));
  await marker.client.publishAsync('qliksense/eg/marker', 'after the intruder', { qos: 1 });
  await sub.waitForCount(1, 10_000, 'qliksense/eg/marker');
  assert.deepEqual(sub.on('qliksense/eg/intruder'), []);
  assert.deepEqual(intruderReceived, []);
  // The bridge with the foreign certificate never published its status.
  assert.deepEqual(sub.texts('qliksense/butler/mqtt/status').filter((t) => t.includes('session-foreign')), []);
  intruder.client.end(true);
  marker.client.end(true);
  await sub.close();
});

test('QoS 2, a retained will, a keep-alive over 1,160 s and topics over 8 levels are refused at config load, also by `check-config` (exit code 2)', async () => {
  const butler = egButler('refused', {
    mqttConfig: {
      keepaliveSeconds: 1200,
      delivery: { qos: 2 },
      availability: { retain: true },
      subscriptionRootTopic: 'qliksense/a/b/c/d/e/f/g/#',
      taskStartTopic: 'qliksense/a/b/c/d/e/f/g/start',
      taskFailureTopic: `qliksense/${'x'.repeat(250)}`,
    },
  });
  const expected = [
    'Butler.mqttConfig.taskFailureTopic: expected a topic of at most 256 bytes (Azure Event Grid limit)',
    'Butler.mqttConfig.taskStartTopic: expected a topic of at most 8 levels (Azure Event Grid limit), got 9',
    'Butler.mqttConfig.subscriptionRootTopic: expected a topic of at most 8 levels (Azure Event Grid limit), got 9',
    'Butler.mqttConfig.delivery.qos: expected 0 or 1 in Azure Event Grid mode (Event Grid does not support QoS 2), got 2',
    'Butler.mqttConfig.availability.retain: expected false or empty in Azure Event Grid mode (Event Grid refuses retained will messages), got true',
    "Butler.mqttConfig.keepaliveSeconds: expected at most 1160 in Azure Event Grid mode (Event Grid's keep-alive maximum), got 1200",
  ];
  assert.deepEqual(configIssues(stringify({ Butler: butler }), path.join(tmp.dir, 'refused.yaml')), expected);

  const file = writeConfig(tmp.dir, butler, 'refused.yaml');
  const cli = await spawnBridge(file, ['check-config']);
  const code = await cli.exit;
  assert.equal(code, 2);
  assert.equal(cli.lines[0], 'butler-mqtt: invalid configuration');
  for (const issue of expected) assert.ok(cli.lines.some((l) => l.trim().startsWith(issue)), `stderr names: ${issue}\n${cli.lines.join('\n')}`);
});

test('a 600 KiB message is refused at enqueue (too_large, counted) and never reaches the broker; a packet of exactly 512 KiB passes; long or deep topics are refused', async () => {
  const sub = await collect(broker.url, ['qliksense/big/#'], { ...tlsOptions(identityCert), testTopics: TEST_TRAFFIC });
  const bridge = await startRecorded(writeConfig(tmp.dir, egButler('big'), 'big.yaml'));
  try {
    await bridge.app.connection!.waitConnected(10_000);
    const outbox = bridge.app.outbox!;
    const refused = (reason: string) => bridge.app.metrics.total('butler_mqtt_messages_refused_total', { kind: 'test', reason });

    await assert.rejects(outbox.enqueue([{ topic: 'qliksense/big/600k', payload: Buffer.alloc(600 * 1024, 0x61), kind: 'test' }]), (err: unknown) => {
      assert.ok(err instanceof MessageRejectedError);
      assert.equal(err.reason, 'too_large');
      assert.equal(err.message, 'message to "qliksense/big/600k" is 614427 bytes as an MQTT packet; the broker accepts at most 524288');
      return true;
    });
    assert.equal(await refused('too_large'), 1);
    assert.equal(outbox.depth, 0);

    // Topic and payload together 512 KiB: the packet headers push it over the limit.
    await assert.rejects(outbox.enqueue([{ topic: 'qliksense/big/edge', payload: Buffer.alloc(524_288 - 18, 0x62), kind: 'test' }]), /is 524297 bytes as an MQTT packet/);
    await assert.rejects(outbox.enqueue([{ topic: 'qliksense/big/edge', payload: Buffer.alloc(524_262, 0x62), kind: 'test' }]), /is 524289 bytes as an MQTT packet/);
    assert.equal(await refused('too_large'), 3);
    // 1 + 3 (remaining length) + 2 + 18 (topic) + 2 (packet id) + 1 (properties) + 524,261 = 524,288 bytes.
    await outbox.enqueue([{ topic: 'qliksense/big/edge', payload: Buffer.alloc(524_261, 0x62), kind: 'test' }]);

    await assert.rejects(outbox.enqueue([{ topic: 'qliksense/big/a/b/c/d/e/f/g', payload: 'x', kind: 'test' }]), (err: unknown) => {
      assert.ok(err instanceof MessageRejectedError);
      assert.equal(err.reason, 'bad_topic');
      assert.equal(err.message, 'topic "qliksense/big/a/b/c/d/e/f/g" has 9 levels; Azure Event Grid allows 8');
      return true;
    });
    await assert.rejects(outbox.enqueue([{ topic: `qliksense/big/${'y'.repeat(243)}`, payload: 'x', kind: 'test' }]), /longer than 256 bytes \(Azure Event Grid limit\)/);
    assert.equal(await refused('bad_topic'), 2);

    await outbox.enqueue([{ topic: 'qliksense/big/marker', payload: 'done', kind: 'test' }]);
    await sub.waitForCount(1, 20_000, 'qliksense/big/marker');
    assert.deepEqual(sub.on('qliksense/big/600k'), []);
    assert.deepEqual(sub.on('qliksense/big/edge').map((m) => m.payload.length), [524_261]);
    assert.deepEqual(sub.messages.map((m) => m.topic), ['qliksense/big/edge', 'qliksense/big/marker']);
  } finally {
    await bridge.stop();
    await sub.close();
  }
});
