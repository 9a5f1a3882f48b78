// Secrets never reach a log line, a page or an endpoint. A full run as a child process at the most
// verbose level (silly), with the log file on and rotating: MQTT user/password, a TLS forward broker
// with its own password, a REST API token, a Qlik Cloud API key, a QRS client key file. A reload
// failure, REST calls (right and wrong token) and a Qlik Cloud event go through; then SIGTERM. Every
// line of stdout/stderr and of every log file is searched for each secret.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { request } from 'undici';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, spawnBridge, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../support/qrs-simulator.ts';
import { CloudSimulator, CLOUD_TENANT_ID, CLOUD_USER_ID, buildCloudApp } from '../support/cloud-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-logging-');
after(() => tmp.cleanup());

const MQTT_USER = 'butler';
const MQTT_PASSWORD = 'mqtt-Pa55word-never-logged';
const FWD_USER = 'qscloud-forwarder';
const FWD_PASSWORD = 'forward-Pa55word-never-logged';
const API_TOKEN = 'rest-api-token-never-logged-93f1';
const CLOUD_TOKEN = 'eyJhbGciOiJFUzM4NCJ9.never-logged-cloud-key.c2lnbmF0dXJl';
const CLOUD_APP_ID = 'b1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d';

test('a full run at level silly: no secret in stdout, stderr, the rotated log files, the status page or /metrics', async () => {
  const pki = await createTestPki();
  const qrs = await QrsSimulator.start({ pki });
  const cloud = await CloudSimulator.start({ pki, token: CLOUD_TOKEN });
  cloud.addApp(buildCloudApp({ id: CLOUD_APP_ID, name: 'Forecast' }));
  const main = await startBroker({ users: [{ username: MQTT_USER, password: MQTT_PASSWORD }] });
  const forward = await startBroker({ tls: { caCert: pki.caCert, serverCert: pki.serverCert, serverKey: pki.serverKey, requireCertificate: false }, users: [{ username: FWD_USER, password: FWD_PASSWORD }] });
  const sub = await collect(main.url, ['qliksense/#', 'qscloud/#', 'logtest/#'], { username: MQTT_USER, password: MQTT_PASSWORD });
  const client = pki.client('butler-mqtt');
  const keyText = readFileSync(client.key, 'utf8');
  const keyLines = keyText.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
  assert.ok(keyLines.length >= 3, 'the key file has body lines to look for');

  const udpPort = await freeUdpPort();
  const httpPort = await freePort();
  const logDir = path.join(tmp.dir, 'log');
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(main.port), {
      logLevel: 'silly',
      fileLogging: true,
      logDirectory: 'log',
      logFileMaxBytes: 4096,
      logFileCount: 50,
      mqttConfig: {
        username: MQTT_USER,
        password: MQTT_PASSWORD,
        qlikSenseCloud: {
          event: {
            mqttForward: {
              enable: true,
              broker: { host: 'localhost', port: forward.port, username: FWD_USER, password: FWD_PASSWORD, caFile: pki.caCert },
              topic: { subscriptionRoot: 'qscloud/#', appReload: 'qscloud/app/reload' },
            },
          },
        },
      },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort, apiToken: API_TOKEN, testEventButton: true },
      restServerEndpointsEnable: { mqttPublishMessage: true },
      ...senseConnection(qrs.port, pki),
      qlikSenseCloud: {
        enable: true,
        event: { mqtt: { tenant: { id: CLOUD_TENANT_ID, tenantUrl: `https://127.0.0.1:${cloud.port}`, caFile: pki.caCert, auth: { jwt: { token: CLOUD_TOKEN } } } } },
      },
    }),
  );

  const bridge = await spawnBridge(file);
  const base = `http://127.0.0.1:${httpPort}`;
  const pages: string[] = [];
  let code: number | null = null;
  try {
    await bridge.waitForLine(/on the Qlik Cloud forward broker/);
    await sub.waitForCount(1, 10_000, 'qliksense/butler/task_failure_server');

    // A reload failure, enriched through QRS with the client key.
    await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: 'a11ce000-0000-4000-8000-000000000001' }));
    // REST: the right token, a wrong one, none.
    const put = async (token: string | null) => {
      const r = await request(`${base}/v4/mqttpublishmessage`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ topic: 'logtest/rest', message: 'hello' }),
      });
      await r.body.text();
      return r.statusCode;
    };
    assert.equal(await put(API_TOKEN), 201);
    assert.equal(await put(`${API_TOKEN}x`), 401);
    assert.equal(await put(null), 401);
    // A failed Qlik Cloud reload, enriched with the API key.
    const fwdClient = await mqtt.connectAsync(forward.url, { ca: readFileSync(pki.caCert), servername: 'localhost', username: FWD_USER, password: FWD_PASSWORD, reconnectPeriod: 0 });
    await fwdClient.publishAsync(
      `qscloud/app/reload/${CLOUD_TENANT_ID}`,
      JSON.stringify({
        cloudEventsVersion: '0.1',
        eventId: 'e7e7e7e7-1111-4222-8333-000000000001',
        eventTime: '2026-11-20T06:01:09Z',
        eventType: 'com.qlik.v1.app.reload.finished',
        extensions: { ownerId: CLOUD_USER_ID, tenantId: CLOUD_TENANT_ID, userId: CLOUD_USER_ID, topLevelResourceId: CLOUD_APP_ID },
        data: { status: 'error', name: 'Forecast', reloadId: '6735a1b2c3d4e5f6a7b8c9d1', errors: [] },
      }),
      { qos: 1 },
    );
    await fwdClient.endAsync(true);

    await sub.waitForCount(1, 10_000, 'qliksense/task_failure_full');
    await sub.waitForCount(1, 10_000, 'logtest/rest');
    await sub.waitForCount(1, 15_000, 'qscloud/butler/reload_failure_full');

    // Every page and endpoint a person or a scraper reads.
    for (const p of ['/', '/status/api', '/metrics', '/ready', '/health', '/documentation/json']) {
      const r = await request(`${base}${p}`);
      pages.push(`${p}\n${await r.body.text()}`);
    }
    code = await bridge.kill('SIGTERM');
  } finally {
    await bridge.kill('SIGKILL');
    await sub.close();
    await forward.stop();
    await main.stop();
    await cloud.stop();
    await qrs.stop();
    await pki.cleanup();
  }
  assert.equal(code, 0, 'SIGTERM: clean exit');

  const logFiles = readdirSync(logDir).sort();
  assert.ok(logFiles.includes('butler-mqtt.log') && logFiles.includes('butler-mqtt.log.1'), `the log file rotated: ${logFiles.join(', ')}`);
  const fileLines = logFiles.flatMap((f) => readFileSync(path.join(logDir, f), 'utf8').split('\n').filter(Boolean));
  const stdLines = bridge.lines;

  // The run really logged what it did, verbosely, in both places.
  for (const lines of [stdLines, fileLines]) {
    const records = lines.map((l) => JSON.parse(l) as { level: string; msg: string });
    assert.ok(records.some((r) => r.msg.startsWith('butler-mqtt started')));
    assert.ok(records.some((r) => r.msg === 'butler-mqtt stopped'));
    assert.ok(records.some((r) => r.level === 'debug'), 'debug lines at level silly');
    assert.ok(records.some((r) => r.msg === 'REST publish stored'), 'the REST publish is logged (debug)');
    assert.ok(records.some((r) => r.msg.startsWith('reload task "Nightly finance reload" failed')), 'the reload failure is logged');
  }
  assert.ok(fileLines.length >= stdLines.length - 5, `the file has the lines stdout has (${fileLines.length} vs ${stdLines.length})`);

  const secrets: [string, string][] = [
    ['MQTT password', MQTT_PASSWORD],
    ['forward broker password', FWD_PASSWORD],
    ['REST API token', API_TOKEN],
    ['Qlik Cloud API key', CLOUD_TOKEN],
    ['key file content', keyText],
    ...keyLines.map((l, i): [string, string] => [`key file line ${i + 1}`, l]),
  ];
  const places: [string, string[]][] = [
    ['stdout/stderr', stdLines],
    ['log files', fileLines],
    ['pages', pages],
  ];
  for (const [where, lines] of places) {
    for (const [what, secret] of secrets) {
      const hit = lines.find((l) => l.includes(secret) || l.includes(JSON.stringify(secret).slice(1, -1)));
      assert.equal(hit, undefined, `${what} found in ${where}: ${hit?.slice(0, 300)}`);
    }
  }
});
