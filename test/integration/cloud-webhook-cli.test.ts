// `butler-mqtt cloud webhook create | list | delete` against the Qlik Cloud simulator's webhooks API,
// run as the real command line: the webhook is created with a generated secret for
// com.qlik.v1.reload.finished, and the same secret lands in the config file with its comments kept.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, tempDir } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudSimulator } from '../support/cloud-simulator.ts';

const run = promisify(execFile);
const TOKEN = 'eyJhbGciOiJFUzM4NCJ9.cli-key.c2lnbmF0dXJl';
const tmp = tempDir('bm-cloudcli-');
let pki: TestPki;
let sim: CloudSimulator;
let file: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'cloud', 'webhook', ...args, '--config', file], { cwd: REPO_ROOT });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  pki = await createTestPki();
  sim = await CloudSimulator.start({ pki, token: TOKEN });
  file = path.join(tmp.dir, 'butler.yaml');
  writeFileSync(
    file,
    [
      '# Production bridge',
      'Butler:',
      '  qlikSenseCloud:',
      '    tenants:',
      '      # the analytics tenant',
      '      - name: acme',
      `        url: ${sim.url}`,
      `        apiKey: ${TOKEN} # rotated yearly`,
      `        caFile: ${pki.caCert}`,
      '        poller: false',
      '',
    ].join('\n'),
  );
});

after(async () => {
  await sim.stop();
  await pki.cleanup();
  tmp.cleanup();
});

test('create: a webhook for com.qlik.v1.reload.finished at <url>/qlik-cloud/webhook/<tenant> with a 64-character secret, the same secret written to the config file', async () => {
  const r = await cli('create', '--tenant', 'acme', '--url', 'https://bridge.example.com/');
  assert.equal(r.code, 0, r.stderr);
  const hooks = [...sim.webhooks.values()];
  assert.equal(hooks.length, 1);
  const w = hooks[0]!;
  assert.deepEqual([w.name, w.url, w.eventTypes, w.enabled, w.level], ['butler-mqtt acme', 'https://bridge.example.com/qlik-cloud/webhook/acme', ['com.qlik.v1.reload.finished'], true, 'tenant']);
  assert.match(w.secret, /^[0-9a-f]{64}$/);
  assert.equal(r.stdout, `created webhook ${w.id} → https://bridge.example.com/qlik-cloud/webhook/acme (com.qlik.v1.reload.finished)\nthe secret is in ${file} (tenant acme, webhookSecret); restart the bridge to use it\n`);
  const text = readFileSync(file, 'utf8');
  assert.ok(text.includes('# Production bridge') && text.includes('# the analytics tenant') && text.includes('# rotated yearly'), text);
  assert.ok(text.includes(`        webhookSecret: ${w.secret}\n`), text);
  assert.ok(!r.stdout.includes(w.secret) && !r.stderr.includes(w.secret), 'the secret is not printed');
});

test('list shows it, delete removes it', async () => {
  const w = [...sim.webhooks.values()][0]!;
  const list = await cli('list', '--tenant', 'acme');
  assert.equal(list.stdout, `${w.id}  enabled   butler-mqtt acme  https://bridge.example.com/qlik-cloud/webhook/acme  com.qlik.v1.reload.finished\n`);
  const del = await cli('delete', '--tenant', 'acme', w.id);
  assert.equal(del.stdout, `deleted webhook ${w.id}\n`);
  assert.equal(sim.webhooks.size, 0);
  assert.equal((await cli('list', '--tenant', 'acme')).stdout, 'no webhooks\n');
});

test('create refused by Qlik Cloud: exit 1 and the config file is put back as it was', async () => {
  const before = readFileSync(file, 'utf8');
  sim.failNext(1, 403, '/api/v1/webhooks');
  const r = await cli('create', '--tenant', 'acme', '--url', 'https://bridge.example.com');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^butler-mqtt: Qlik Cloud did not create the webhook: .*; .* is unchanged\n$/);
  assert.equal(readFileSync(file, 'utf8'), before);
  assert.equal(sim.webhooks.size, 0);
  const unknown = await cli('create', '--tenant', 'initech', '--url', 'https://bridge.example.com');
  assert.deepEqual([unknown.code, unknown.stderr], [2, `butler-mqtt: no tenant named "initech" in Butler.qlikSenseCloud.tenants of ${file} (known: acme)\n`]);
});
