// The shipped configuration runs out of the box: embedded broker, connect status and availability
// seen by an external subscriber, Ctrl-C (SIGINT) exits 0 after publishing "offline".
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { REPO_ROOT, spawnBridge, tempDir } from '../support/bridge.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { collect } from '../support/mqtt.ts';

const tmp = tempDir('bm-start-');
after(() => tmp.cleanup());

/** The shipped config with its fixed ports moved to free ones (1883/8080/9998 may be taken on a CI host). */
async function shippedConfigOnFreePorts(): Promise<{ file: string; mqttPort: number }> {
  const mqttPort = await freePort();
  const text = readFileSync(path.join(REPO_ROOT, 'config/butler-mqtt.yaml'), 'utf8')
    .replaceAll('port: 1883', `port: ${mqttPort}`)
    .replaceAll('brokerPort: 1883', `brokerPort: ${mqttPort}`)
    .replace('serverPort: 8080', `serverPort: ${await freePort()}`)
    .replace('portTaskFailure: 9998', `portTaskFailure: ${await freePort()}`)
    .replace('outboxFile: ../data/butler-mqtt.sqlite', 'outboxFile: data/butler-mqtt.sqlite');
  assert.ok(text.includes(`brokerPort: ${mqttPort}`) && text.includes(`port: ${mqttPort}`), 'ports replaced');
  const file = path.join(tmp.dir, 'butler-mqtt.yaml');
  writeFileSync(file, text);
  return { file, mqttPort };
}

/** mosquitto_sub when installed (an outside client, as an admin would use), MQTT.js otherwise. */
async function externalSubscriber(port: number): Promise<{ lines: () => string[]; stop: () => Promise<void> }> {
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', '#', '-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const ok = await new Promise<boolean>((resolve) => {
    sub.once('error', () => resolve(false));
    sub.once('spawn', () => resolve(true));
  });
  if (ok) {
    let out = '';
    sub.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    return { lines: () => out.split('\n').filter(Boolean), stop: async () => void sub.kill('SIGTERM') };
  }
  const c = await collect(`mqtt://127.0.0.1:${port}`, '#');
  return { lines: () => c.messages.map((m) => `${m.topic} ${m.text}`), stop: () => c.close() };
}

test('the shipped config: P1 and "online" seen from outside, SIGINT exits 0 and "offline" is seen', async () => {
  const { file, mqttPort } = await shippedConfigOnFreePorts();
  const bridge = await spawnBridge(file);
  const sub = await externalSubscriber(mqttPort);
  try {
    const p1 = `qliksense/butler/mqtt/status Connected to MQTT broker 127.0.0.1:${mqttPort} with client ID `;
    await waitFor(() => sub.lines().some((l) => l.startsWith(p1)), 10_000, 'P1 from outside');
    await waitFor(() => sub.lines().includes('qliksense/butler/mqtt/availability online'), 10_000, '"online" from outside');
    const code = await bridge.kill('SIGINT');
    assert.equal(code, 0);
    // A clean stop says nothing alarming: no warn or error line from the signal on.
    const fromSignal = bridge.lines.slice(bridge.lines.findIndex((l) => l.includes('SIGINT received: stopping')));
    assert.ok(fromSignal.length > 1 && fromSignal.some((l) => l.includes('butler-mqtt stopped')), fromSignal.join('\n'));
    const alarming = fromSignal.filter((l) => /"level":"(warn|error)"/.test(l));
    assert.deepEqual(alarming, []);
    // The embedded broker stops with the bridge; "offline" was delivered before it closed.
    await waitFor(() => sub.lines().includes('qliksense/butler/mqtt/availability offline'), 5000, '"offline" from outside');
  } finally {
    await bridge.kill('SIGKILL');
    await sub.stop();
  }
});
