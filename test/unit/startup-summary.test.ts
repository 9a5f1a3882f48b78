// The start-up summary: what runs and where, the status page, what is missing and the next step,
// for the shipped config and for a production-like one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadConfigFile } from '../../src/config/load.ts';
import { REPO_ROOT, tempDir, writeConfig } from '../support/bridge.ts';
import { browsableUrl, configuredAddresses, startupSummary } from '../../src/cli/startup-summary.ts';

const tmp = tempDir('bm-summary-');
after(() => tmp.cleanup());

test('the shipped config: embedded broker, UDP 9998, HTTP 8080, the status page, no QRS and the next step', () => {
  const file = path.join(REPO_ROOT, 'config/butler-mqtt.yaml');
  const config = loadConfigFile(file);
  const at = configuredAddresses(config);
  assert.deepEqual(at, {
    embeddedBroker: { host: '127.0.0.1', port: 1883 },
    broker: { protocol: 'mqtt', host: '127.0.0.1', port: 1883 },
    http: { host: '127.0.0.1', port: 8080, tls: false },
    udp: [{ name: 'reload task events', host: '127.0.0.1', port: 9998 }],
  });
  assert.deepEqual(startupSummary(config, at, 'sense-node'), [
    `MQTT: embedded broker on 127.0.0.1:1883, the bridge publishes to it as butler-mqtt-${os.hostname()}`,
    'UDP: reload task events on 127.0.0.1:9998',
    'HTTP: 127.0.0.1:8080, PUT /v4/mqttpublishmessage on, API documentation at http://127.0.0.1:8080/documentation',
    'Status page: http://127.0.0.1:8080/',
    'Not configured: Qlik Sense repository (Butler.configQRS.host is empty): reload alerts carry "enrichmentError":"QRS not configured", task starts via MQTT are refused',
    'Next step: try it from the status page ("Send test event"), then connect it to your Sense site: docs/connect-to-sense.md',
  ]);
});

test('a production config: external TLS broker, all interfaces, session events, QRS with a certificate', () => {
  for (const f of ['c.pem', 'k.pem', 'r.pem']) writeFileSync(path.join(tmp.dir, f), '');
  const file = writeConfig(tmp.dir, {
    mqttConfig: { enable: true, brokerHost: 'mqtt.example.com', brokerPort: 8883, clientId: 'bridge-1', tls: { enable: true }, delivery: { outboxFile: 'o.sqlite' } },
    udpServerConfig: { enable: true, serverHost: '0.0.0.0', portTaskFailure: 9998, sessionConnectionEvents: { enable: true } },
    restServerConfig: { enable: true, serverHost: '0.0.0.0', serverPort: 8081 },
    configQRS: { host: 'sense.example.com' },
    cert: { clientCert: 'c.pem', clientCertKey: 'k.pem', clientCertCA: 'r.pem' },
  });
  const config = loadConfigFile(file);
  assert.deepEqual(startupSummary(config, configuredAddresses(config), 'sense-node'), [
    'MQTT: publishing to mqtts://mqtt.example.com:8883 as bridge-1',
    'UDP: reload task events on 0.0.0.0:9998, session events on 0.0.0.0:9997',
    'HTTP: 0.0.0.0:8081, API documentation at http://sense-node:8081/documentation',
    'Status page: http://sense-node:8081/',
    `Next step: check the Sense connection with "butler-mqtt check-config --connect --config ${file}"`,
  ]);
});

test('MQTT off and HTTP off: each said once, with the key that turns it on', () => {
  const file = writeConfig(tmp.dir, { mqttConfig: { enable: false }, restServerConfig: { enable: false } }, 'off.yaml');
  const config = loadConfigFile(file);
  assert.deepEqual(startupSummary(config, configuredAddresses(config), 'h'), [
    'MQTT: off (Butler.mqttConfig.enable is false), so nothing is published',
    'HTTP: off (Butler.restServerConfig.enable is false), so no status page, health or metrics',
    'Next step: set Butler.mqttConfig.enable to true and the broker in Butler.mqttConfig (docs/configuration.md)',
  ]);
});

test('status page URL: wildcard binds show the machine name, IPv6 in brackets, https with TLS', () => {
  assert.equal(browsableUrl({ host: '0.0.0.0', port: 80, tls: false }, 'node1'), 'http://node1:80/');
  assert.equal(browsableUrl({ host: '::', port: 8080, tls: true }, 'node1'), 'https://node1:8080/');
  assert.equal(browsableUrl({ host: '::1', port: 8080, tls: false }, 'node1'), 'http://[::1]:8080/');
});
