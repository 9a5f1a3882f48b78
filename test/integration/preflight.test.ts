// Start-up checks on the machine: an outbox path that is a directory or under a file, a file that is not a
// PEM certificate or key — check-config and run name the config key and exit 2 without a stack trace.
// check-config --connect tries the real broker and the HTTPS QRS simulator (client certificate required)
// and reports each on its own line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator } from '../support/qrs-simulator.ts';
import { REPO_ROOT, baseButler, deepMerge, tempDir, writeConfig } from '../support/bridge.ts';
import { freePort } from '../support/wait.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { preflight } from '../../src/config/preflight.ts';

const tmp = tempDir('bm-preflight-');
let broker: TestBroker;
let pki: TestPki;
let qrs: QrsSimulator;

before(async () => {
  broker = await startBroker();
  pki = await createTestPki();
  qrs = await QrsSimulator.start({ pki });
});

after(async () => {
  await qrs.stop();
  await pki.cleanup();
  await broker.stop();
  tmp.cleanup();
});

/** Runs the CLI (async, so the in-process broker and simulator keep answering). */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), ...args], { cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

function configWith(name: string, over: Record<string, unknown>): string {
  const dir = path.join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  return writeConfig(dir, deepMerge(baseButler(broker.port), over));
}

test('preflight: outbox path that is a directory or under a file; a certificate or key that is not PEM — each with its key', () => {
  const dir = path.join(tmp.dir, 'unit');
  mkdirSync(path.join(dir, 'adir'), { recursive: true });
  writeFileSync(path.join(dir, 'afile'), 'x');
  writeFileSync(path.join(dir, 'bad-cert.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  writeFileSync(path.join(dir, 'bad-key.pem'), 'hello\n');
  const text = (outbox: string) =>
    `Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: 127.0.0.1\n    delivery:\n      outboxFile: ${outbox}\n  restServerConfig:\n    enable: true\n    tls:\n      enable: true\n      cert: bad-cert.pem\n      key: bad-key.pem\n`;
  const problems = preflight(parseConfigText(text('adir'), path.join(dir, 'c.yaml')));
  assert.deepEqual(
    problems.map((p) => p.key),
    ['Butler.restServerConfig.tls.cert', 'Butler.restServerConfig.tls.key', 'Butler.mqttConfig.delivery.outboxFile'],
  );
  assert.match(problems[0]!.message, /^the HTTPS server certificate ".*bad-cert\.pem" is not a valid PEM certificate: /);
  assert.match(problems[1]!.message, /^the HTTPS server key ".*bad-key\.pem" is not a valid PEM private key: /);
  assert.match(problems[2]!.message, /^the outbox cannot be stored there: ".*adir" is a directory; give the path of a file in it$/);

  const under = preflight(parseConfigText(text('afile/data/outbox.sqlite'), path.join(dir, 'c.yaml'))).filter((p) => p.key.endsWith('outboxFile'));
  assert.equal(under.length, 1);
  assert.match(under[0]!.message, /^the outbox cannot be stored there: ".*afile" is a file, so nothing can be created under it$/);

  const good = preflight(parseConfigText(`Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: 127.0.0.1\n    delivery:\n      outboxFile: new/dir/outbox.sqlite\n`, path.join(dir, 'c.yaml')));
  assert.deepEqual(good, []);
});

test('run and check-config: an outbox under a file exits 2 naming Butler.mqttConfig.delivery.outboxFile, no stack trace', async () => {
  const dir = path.join(tmp.dir, 'run');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'blocker'), 'x');
  const file = configWith('run', { mqttConfig: { delivery: { outboxFile: path.join(dir, 'blocker', 'outbox.sqlite') } } });
  for (const command of ['run', 'check-config']) {
    const r = await cli([command, '--config', file]);
    assert.equal(r.status, 2, `${command}: ${r.stderr}`);
    assert.match(r.stderr, /^butler-mqtt: the configuration cannot be used on this machine$/m, command);
    assert.match(r.stderr, /^ {2}Butler\.mqttConfig\.delivery\.outboxFile: the outbox cannot be stored there: ".*blocker" is a file, so nothing can be created under it$/m, command);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `${command}: no stack trace`);
  }
});

test('check-config --connect: the broker and QRS (client certificate) each reported ok; a closed port is reported failed, exit 1', async () => {
  const client = pki.client('butler-mqtt');
  const file = configWith('connect', {
    configQRS: { host: 'localhost', port: qrs.port, useSSL: true, rejectUnauthorized: true, headers: { static: [{ name: 'X-Qlik-User', value: 'UserDirectory=Internal;UserId=sa_api' }] } },
    cert: { clientCert: client.cert, clientCertKey: client.key, clientCertCA: pki.caCert },
  });
  const ok = await cli(['check-config', '--connect', '--config', file]);
  assert.equal(ok.status, 0, ok.stderr);
  const lines = ok.stdout.slice(ok.stdout.indexOf('connections:\n')).trim().split('\n');
  assert.deepEqual(lines, [
    'connections:',
    `  MQTT broker mqtt://127.0.0.1:${broker.port}: ok (connected and disconnected)`,
    `  QRS https://localhost:${qrs.port}: ok (GET /qrs/about answered, build 14.187.4.0)`,
  ]);

  const closed = await freePort();
  const bad = configWith('connect-bad', { mqttConfig: { brokerPort: closed } });
  const failed = await cli(['check-config', '--connect', '--config', bad]);
  assert.equal(failed.status, 1, failed.stderr);
  assert.match(failed.stdout, new RegExp(`^ {2}MQTT broker mqtt://127\\.0\\.0\\.1:${closed}: failed \\(.*ECONNREFUSED.*\\)$`, 'm'));
});
