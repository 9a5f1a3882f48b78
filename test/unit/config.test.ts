// The config loader: a Butler-structured file loads unchanged; each kind of bad config gives its
// specific message (all at once) and the CLI exits with code 2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadConfigFile, parseConfigText, ConfigError } from '../../src/config/load.ts';
import { REPO_ROOT, tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-config-');
after(() => tmp.cleanup());

const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/butler-production.yaml');

/** The fixture next to the certificate files it names (contents do not matter to the loader). */
function fixtureCopy(name: string, text = readFileSync(FIXTURE, 'utf8')): string {
  const dir = path.join(tmp.dir, name);
  mkdirSync(path.join(dir, 'certs'), { recursive: true });
  for (const f of ['client.pem', 'client_key.pem', 'root.pem']) writeFileSync(path.join(dir, 'certs', f), 'test\n');
  const file = path.join(dir, 'butler.yaml');
  writeFileSync(file, text);
  return file;
}

function issuesOf(text: string, dir = tmp.dir): string[] {
  try {
    parseConfigText(text, path.join(dir, 'x.yaml'));
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected the config to be refused');
}

/** Minimal valid config text with one replacement applied. */
const minimal = (mqtt: string, extra = '') => `Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: broker.example\n${mqtt}${extra}`;

test('a Butler production config (full template structure) loads unchanged', () => {
  const file = fixtureCopy('fixture');
  const c = loadConfigFile(file);
  const b = c.butler;
  // Values written in the fixture (different from the defaults, so they prove the file was read).
  assert.equal(b.logLevel, 'verbose');
  assert.equal(b.mqttConfig.brokerHost, 'mqtt.corp.example');
  assert.equal(b.mqttConfig.taskAbortedSendFull, false);
  assert.equal(b.udpServerConfig.maxMessageSize, 8192);
  assert.deepEqual(
    [b.udpServerConfig.messageQueue.maxConcurrent, b.udpServerConfig.messageQueue.maxSize, b.udpServerConfig.messageQueue.backpressureThreshold],
    [4, 150, 70],
  );
  assert.equal(b.udpServerConfig.rateLimit.enable, true);
  assert.equal(b.udpServerConfig.rateLimit.maxMessagesPerMinute, 1200);
  assert.equal(b.udpServerConfig.deduplication.ttlMinutes, 15);
  assert.equal(b.restServerConfig.serverPort, 8180);
  assert.equal(b.qlikSenseLicense.serverLicenseMonitor.alert.thresholdDays, 45);
  // Relative certificate paths resolve against the file's directory.
  assert.equal(b.cert.clientCert, path.join(path.dirname(file), 'certs/client.pem'));
  // Keys butler-mqtt adds take their defaults.
  assert.equal(b.mqttConfig.delivery.qos, 1);
  assert.equal(b.mqttConfig.delivery.maxMessages, 100000);
  assert.equal(b.mqttConfig.availability.enable, true);
  // Sections Butler has and we do not read are listed (and later logged once).
  for (const s of ['emailNotification', 'influxDb', 'slackNotification', 'teamsNotification', 'scheduler', 'webhookNotification']) {
    assert.ok(c.ignoredSections.includes(s), `${s} is ignored`);
  }
  assert.ok(!c.ignoredSections.includes('mqttConfig'));
});

test('a wrong type names the path, the expectation and the value', () => {
  assert.deepEqual(issuesOf(minimal('    brokerPort: abc\n')), ['Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "abc"']);
});

test('a port out of range is refused', () => {
  assert.deepEqual(issuesOf(minimal('    brokerPort: 70000\n')), ['Butler.mqttConfig.brokerPort: expected an integer 1-65535, got 70000']);
});

test('a placeholder left from the template in an enabled section is refused; in a disabled one it is fine', () => {
  const text = 'Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: <FQDN or IP of MQTT server>\n';
  assert.deepEqual(issuesOf(text), ['Butler.mqttConfig.brokerHost: expected a real value, got the placeholder "<FQDN or IP of MQTT server>"']);
  const disabled = 'Butler:\n  mqttConfig:\n    enable: false\n    brokerHost: <FQDN or IP of MQTT server>\n';
  assert.equal(parseConfigText(disabled, path.join(tmp.dir, 'd.yaml')).butler.mqttConfig.brokerHost, '<FQDN or IP of MQTT server>');
});

test('a wildcard in a publish topic is refused', () => {
  assert.deepEqual(issuesOf(minimal('    taskFailureTopic: qliksense/+/failure\n')), [
    'Butler.mqttConfig.taskFailureTopic: expected an MQTT topic to publish to, got "qliksense/+/failure": topic contains a wildcard (+ or #), which is only allowed in subscriptions',
  ]);
});

test('taskStartTopic must be matched by subscriptionRootTopic', () => {
  assert.deepEqual(issuesOf(minimal('    subscriptionRootTopic: sense/#\n')), [
    'Butler.mqttConfig.taskStartTopic: expected a topic matched by subscriptionRootTopic "sense/#", got "qliksense/start_task"',
  ]);
});

test('Event Grid mode with a missing certificate file is a config error, not a crash later', () => {
  const text = minimal('    azureEventGrid:\n      enable: true\n      clientId: bridge-1\n      clientCertFile: certs/missing.pem\n      clientKeyFile: certs/missing.key\n');
  assert.deepEqual(issuesOf(text), [
    'Butler.mqttConfig.azureEventGrid.clientCertFile: expected the client certificate file, but the file "certs/missing.pem" does not exist',
    'Butler.mqttConfig.azureEventGrid.clientKeyFile: expected the client key file, but the file "certs/missing.key" does not exist',
  ]);
});

test('every problem is reported at once, with line numbers', () => {
  const text = 'Butler:\n  logLevel: loud\n  mqttConfig:\n    enable: true\n    brokerHost: broker.example\n    brokerPort: 0\n  udpServerConfig:\n    portTaskFailure: "x"\n';
  let error: ConfigError | undefined;
  try {
    parseConfigText(text, path.join(tmp.dir, 'many.yaml'));
  } catch (err) {
    error = err as ConfigError;
  }
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(
    error.issues.map((i) => [i.path, i.line]),
    [
      ['Butler.logLevel', 2],
      ['Butler.mqttConfig.brokerPort', 6],
      ['Butler.udpServerConfig.portTaskFailure', 8],
    ],
  );
  assert.equal(error.issues[0]?.message, 'expected one of error, warn, info, verbose, debug, silly, got "loud"');
});

test('YAML syntax errors and a missing Butler key are reported, not thrown raw', () => {
  assert.deepEqual(issuesOf('Other:\n  a: 1\n'), ['(top level): expected a mapping with a top-level "Butler" key']);
  const syntax = issuesOf('Butler:\n  mqttConfig: [\n');
  assert.equal(syntax.length >= 1, true);
  assert.match(syntax[0] as string, /^\(yaml\): YAML syntax error: /);
});

test('check-config exits 2 with the messages on stderr, and 0 with masked secrets on stdout', () => {
  const bad = path.join(tmp.dir, 'bad.yaml');
  writeFileSync(bad, minimal('    brokerPort: abc\n'));
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'check-config', '--config', bad], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Butler\.mqttConfig\.brokerPort: expected an integer 1-65535, got "abc" \(line 5\)/);

  const good = path.join(tmp.dir, 'good.yaml');
  writeFileSync(good, minimal('    password: s3cret-broker-pw\n    username: bridge\n', '  restServerConfig:\n    apiToken: s3cret-api-token\n'));
  const ok = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'check-config', '--config', good], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(!ok.stdout.includes('s3cret'), 'no secret in the output');
  const printed = JSON.parse(ok.stdout.slice(ok.stdout.indexOf('{'))) as { mqtt: { broker: string; username: string; password: string } };
  assert.equal(printed.mqtt.broker, 'mqtt://broker.example:1883');
  assert.equal(printed.mqtt.username, 'bridge');
  assert.equal(printed.mqtt.password, '********');
});

test('the shipped config is valid', () => {
  const shipped = path.join(REPO_ROOT, 'config/butler-mqtt.yaml');
  const copy = path.join(tmp.dir, 'shipped.yaml');
  copyFileSync(shipped, copy);
  const c = loadConfigFile(copy);
  assert.equal(c.butler.mqttConfig.embeddedBroker.enable, true);
  assert.equal(c.butler.udpServerConfig.serverHost, '127.0.0.1');
  assert.equal(c.butler.restServerConfig.serverPort, 8080);
  assert.equal(c.butler.configQRS.host, '');
});
