// Unknown keys in the config file: a near miss of a key butler-mqtt reads is an error with its path, line
// and a "did you mean"; other unknown keys inside read sections are warnings (errors with --strict);
// Butler's own keys and sections are accepted; the real Butler fixture loads clean. YAML syntax errors:
// one message per mistake, with line and column.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseConfigText, loadConfigFile, ConfigError, type ConfigIssue } from '../../src/config/load.ts';
import { editDistance, nearMiss } from '../../src/config/unknown-keys.ts';
import { REPO_ROOT, tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-unknown-keys-');
after(() => tmp.cleanup());

function refused(text: string, strict = false): ConfigIssue[] {
  try {
    parseConfigText(text, path.join(tmp.dir, 'x.yaml'), { strict });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues;
  }
  assert.fail('expected the config to be refused');
}

const didYouMean = (key: string, meant: string) => `unknown key "${key}": did you mean "${meant}"? (as written it is ignored and "${meant}" keeps its default)`;

test('near misses of read keys are errors with path, line and a suggestion (the filter switch, the REST token)', () => {
  const text = [
    'Butler:',
    '  mqttConfig:',
    '    enable: true',
    '    brokerHost: broker.example',
    '  startTaskFilter:',
    '    enabled: true',
    '    allowTask:',
    '      taskIds: [a]',
    '  restServerConfig:',
    '    Enable: true',
    '    apiTokn: s3cret',
    '    api_token: s3cret',
    '  udpServerConfig:',
    '    allowedSource: [10.0.0.1]',
    '  mqttConfg:',
    '    enable: true',
    '',
  ].join('\n');
  assert.deepEqual(
    refused(text).map((i) => [i.path, i.message, i.line]),
    [
      ['Butler.startTaskFilter.enabled', didYouMean('enabled', 'enable'), 6],
      ['Butler.startTaskFilter.allowTask.taskIds', didYouMean('taskIds', 'taskId'), 8],
      ['Butler.restServerConfig.Enable', didYouMean('Enable', 'enable'), 10],
      ['Butler.restServerConfig.apiTokn', didYouMean('apiTokn', 'apiToken'), 11],
      ['Butler.restServerConfig.api_token', didYouMean('api_token', 'apiToken'), 12],
      ['Butler.udpServerConfig.allowedSource', didYouMean('allowedSource', 'allowedSources'), 14],
      ['Butler.mqttConfg', didYouMean('mqttConfg', 'mqttConfig'), 15],
    ],
  );
});

test('other unknown keys inside read sections are warnings with their path and line; --strict makes them errors', () => {
  const text = 'Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: broker.example\n    futureFeature: 1\n  restServerConfig:\n    tls:\n      minVersion: TLSv1.3\n  someNewButlerSection:\n    x: 1\n';
  const c = parseConfigText(text, path.join(tmp.dir, 'w.yaml'));
  assert.deepEqual(
    c.unknownKeys.map((i) => [i.path, i.message, i.line]),
    [
      ['Butler.mqttConfig.futureFeature', 'unknown key "futureFeature" is ignored (neither a Butler nor a butler-mqtt key here)', 5],
      ['Butler.restServerConfig.tls.minVersion', 'unknown key "minVersion" is ignored (neither a Butler nor a butler-mqtt key here)', 8],
    ],
  );
  assert.deepEqual(c.ignoredSections, ['someNewButlerSection']);
  assert.deepEqual(
    refused(text, true).map((i) => i.path),
    ['Butler.mqttConfig.futureFeature', 'Butler.restServerConfig.tls.minVersion'],
  );
});

test('the Butler production fixture loads with no error and no unknown-key warning; its unused sections are listed once', () => {
  const dir = path.join(tmp.dir, 'fixture');
  mkdirSync(path.join(dir, 'certs'), { recursive: true });
  for (const f of ['client.pem', 'client_key.pem', 'root.pem']) writeFileSync(path.join(dir, 'certs', f), 'test\n');
  const file = path.join(dir, 'butler.yaml');
  writeFileSync(file, readFileSync(path.join(REPO_ROOT, 'test/fixtures/butler-production.yaml'), 'utf8'));
  const c = loadConfigFile(file, { strict: true });
  assert.deepEqual(c.unknownKeys, []);
  assert.equal(new Set(c.ignoredSections).size, c.ignoredSections.length);
  for (const s of ['influxDb', 'emailNotification', 'restServerEndpointsConfig', 'keyValueStore']) assert.ok(c.ignoredSections.includes(s), s);
});

test('nearMiss and editDistance: case, separators, plural, transpositions; short keys allow one edit only', () => {
  assert.equal(editDistance('enalbe', 'enable'), 1);
  assert.equal(editDistance('abc', 'xyz'), 3);
  assert.equal(nearMiss('ENABLE', ['enable', 'host']), 'enable');
  assert.equal(nearMiss('api-token', ['apiToken']), 'apiToken');
  assert.equal(nearMiss('topics', ['topic']), 'topic');
  assert.equal(nearMiss('crt', ['cert', 'key', 'ca']), 'cert');
  assert.equal(nearMiss('id', ['ca']), undefined);
  assert.equal(nearMiss('queueMetrics', ['messageQueue', 'rateLimit']), undefined);
});

test('YAML syntax errors: one message per mistake, with line and column (no cascade)', () => {
  const tabs = refused('Butler:\n  mqttConfig:\n\tenable: true\n\tbrokerHost: x\n  udpServerConfig:\n    enable: false\n');
  assert.deepEqual(tabs.map((i) => [i.message, i.line, i.column]), [['YAML syntax error: Tabs are not allowed as indentation (also on line 4)', 3, 1]]);

  const indent = refused('Butler:\n  mqttConfig:\n    enable: true\n   brokerHost: x\n    brokerPort: 1\n  restServerConfig:\n    enable: false\n');
  assert.deepEqual(indent.map((i) => [i.message, i.line, i.column]), [['YAML syntax error: All mapping items must start at the same column', 4, 1]]);

  const quote = refused('Butler:\n  mqttConfig:\n    brokerHost: "abc\n    brokerPort: 1883\n    enable: true\n  udpServerConfig:\n    enable: false\n');
  assert.deepEqual(quote.map((i) => [i.message, i.line, i.column]), [['YAML syntax error: Missing closing "quote (the quoted value opened on line 3 is never closed)', 3, 17]]);

  const flow = refused(`Butler:\n  mqttConfig:\n    allowed: [a, b\n${Array.from({ length: 30 }, (_, i) => `    k${i}: ${i}\n`).join('')}`);
  assert.equal(flow.length, 1, JSON.stringify(flow));
  assert.equal(flow[0]?.line, 4);
});

test('check-config --strict exits 2 on an unknown key; without it the key is a warning on stderr and the exit is 0', () => {
  const file = path.join(tmp.dir, 'strict.yaml');
  writeFileSync(file, 'Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: broker.example\n    futureFeature: 1\n');
  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'check-config', '--config', file, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  const lenient = cli();
  assert.equal(lenient.status, 0, lenient.stderr);
  assert.match(lenient.stderr, /^warning: {2}Butler\.mqttConfig\.futureFeature: unknown key "futureFeature" is ignored \(neither a Butler nor a butler-mqtt key here\) \(line 5\)$/m);
  const strict = cli('--strict');
  assert.equal(strict.status, 2);
  assert.match(strict.stderr, /Butler\.mqttConfig\.futureFeature: unknown key "futureFeature" is ignored \(neither a Butler nor a butler-mqtt key here\); refused in strict mode \(line 5\)/);
});
