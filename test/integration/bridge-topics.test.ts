// The bridge describes itself over a real broker: retained bridge/info, periodic bridge/health, the
// AsyncAPI document at /asyncapi.json, and Home Assistant discovery — announced, announced again when
// Home Assistant comes online, and cleared when switched off. Every message is checked against the
// contract by the collector.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Parser } from '@asyncapi/parser';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { freePort, waitFor } from '../support/wait.ts';

const tmp = tempDir();
after(() => tmp.cleanup());

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

test('bridge/info is retained with version, client id, features, config hash and start time; bridge/health follows every interval; /asyncapi.json describes this config', async () => {
  const broker = await startBroker();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { clientId: 'info-bridge', bridgeTopicRoot: 'qliksense/butler/mqtt', bridgeHealthIntervalSeconds: 1, delivery: { outboxFile: `${tmp.dir}/info/outbox.sqlite` } },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
      restServerEndpointsEnable: { mqttPublishMessage: true },
    }),
    'info.yaml',
  );
  const before = Date.now();
  const bridge = await startInProcess(file);
  try {
    await bridge.app.connection!.waitConnected(5000);
    await waitFor(() => bridge.app.outbox!.depth === 0, 5000, 'outbox drained');
    // A subscriber that joins later still gets the info (retained), then health messages.
    const sub = await collect(broker.url, 'qliksense/butler/mqtt/bridge/#');
    try {
      await sub.waitForCount(1, 5000, 'qliksense/butler/mqtt/bridge/info');
      const [info] = sub.on('qliksense/butler/mqtt/bridge/info');
      assert.equal(info?.retain, true);
      const body = JSON.parse(info?.text ?? '') as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['version', 'clientId', 'features', 'configSha256', 'startedAt']);
      assert.equal(body['version'], VERSION);
      assert.equal(body['clientId'], 'info-bridge');
      assert.deepEqual(body['features'], ['task_start_commands', 'rest_publish']);
      assert.equal(body['configSha256'], createHash('sha256').update(readFileSync(file)).digest('hex'));
      const startedAt = Date.parse(String(body['startedAt']));
      assert.ok(startedAt >= before - 1000 && startedAt <= Date.now(), `startedAt ${String(body['startedAt'])}`);

      await sub.waitForCount(2, 5000, 'qliksense/butler/mqtt/bridge/health');
      const health = JSON.parse(sub.texts('qliksense/butler/mqtt/bridge/health')[1] ?? '') as Record<string, unknown>;
      assert.deepEqual(health['inbox'], { depth: 0 });
      assert.equal(health['refused'], 0);
      assert.equal(health['qrs'], null, 'no QRS configured');
      assert.equal(health['qlikCloud'], null, 'no Qlik Cloud forwarding');
      assert.equal(typeof (health['outbox'] as { depth: unknown }).depth, 'number');
    } finally {
      await sub.close();
    }

    const res = await fetch(`http://127.0.0.1:${httpPort}/asyncapi.json`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    const text = await res.text();
    const doc = JSON.parse(text) as { asyncapi: string; channels: Record<string, { address: string }> };
    assert.equal(doc.asyncapi, '3.0.0');
    assert.equal(doc.channels['bridgeInfo']?.address, 'qliksense/butler/mqtt/bridge/info');
    assert.equal(doc.channels['restPublish']?.address, '{topic}', 'the REST endpoint is on in this config');
    assert.equal(doc.channels['homeAssistantStatus'], undefined, 'Home Assistant discovery is off');
    const diagnostics = await new Parser().validate(text);
    assert.deepEqual(diagnostics.filter((d) => d.severity <= 1).map((d) => d.message), []);
  } finally {
    await bridge.stop();
    await broker.stop();
  }
});

test('Home Assistant discovery: retained configs at start, again when Home Assistant says online, cleared with empty retained messages once switched off', async () => {
  const broker = await startBroker();
  const outboxFile = `${tmp.dir}/ha/outbox.sqlite`;
  const butler = (enable: boolean) =>
    deepMerge(baseButler(broker.port), { mqttConfig: { clientId: 'ha-bridge', bridgeTopicRoot: 'qliksense/butler/mqtt', homeAssistant: { enable }, delivery: { outboxFile } } });
  const node = 'butler_mqtt_ha-bridge';
  const expected = [`homeassistant/binary_sensor/${node}/connectivity/config`, `homeassistant/sensor/${node}/outbox_depth/config`, `homeassistant/sensor/${node}/outbox_oldest_age/config`];
  const sub = await collect(broker.url, 'homeassistant/#', { testTopics: ['homeassistant/zz_marker'] });
  try {
    const on = await startInProcess(writeConfig(tmp.dir, butler(true), 'ha-on.yaml'));
    try {
      await sub.waitForCount(3, 5000);
      assert.deepEqual(sub.messages.map((m) => m.topic).sort(), expected);
      const connectivity = JSON.parse(sub.texts(expected[0] as string)[0] ?? '') as Record<string, unknown>;
      assert.equal(connectivity['state_topic'], 'qliksense/butler/mqtt/availability');
      assert.equal(connectivity['payload_on'], 'online');
      assert.equal(connectivity['payload_off'], 'offline');

      // Home Assistant restarted: its birth message makes the bridge announce again.
      await sub.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
      await sub.waitForCount(3 + 1 + 3, 5000);
      assert.deepEqual(sub.messages.filter((m) => m.topic !== 'homeassistant/status').map((m) => m.topic).sort(), [...expected, ...expected].sort());
    } finally {
      await on.stop();
    }

    const off = await startInProcess(writeConfig(tmp.dir, butler(false), 'ha-off.yaml'));
    try {
      await sub.waitForCount(7 + 3, 5000);
      const removals = sub.messages.slice(7);
      assert.deepEqual(removals.map((m) => m.topic).sort(), expected);
      assert.ok(removals.every((m) => m.payload.length === 0));
    } finally {
      await off.stop();
    }
    // Nothing of the bridge is retained under the prefix any more: a late subscriber gets only the marker.
    await sub.client.publishAsync('homeassistant/zz_marker', 'end', { qos: 1, retain: true });
    const late = await collect(broker.url, 'homeassistant/#', { testTopics: ['homeassistant/zz_marker'] });
    try {
      await late.waitForCount(1, 5000);
      assert.deepEqual(late.messages.map((m) => m.topic), ['homeassistant/zz_marker']);
    } finally {
      await late.close();
    }
  } finally {
    await sub.close();
    await broker.stop();
  }
});
