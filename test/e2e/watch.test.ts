// `butler-mqtt watch` as a person runs it, against a real broker: retained flag, plain and
// pretty-printed JSON payloads, --count exits 0, the config's broker with its own client id (the
// bridge's last will is not used), Ctrl-C (SIGINT) exits 0, an unreachable broker exits 1.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import mqtt from 'mqtt';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, tempDir, writeConfig } from '../support/bridge.ts';
import { freePort, waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-watch-');
after(() => tmp.cleanup());

interface WatchRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
// A test that fails half-way must not leave a watch process behind (it would keep the file's process alive).
afterEach(() => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  running.clear();
});

function watch(args: string[]): WatchRun {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'watch', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  running.add(child);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

test('--host/--port: a retained message flagged, text as is, JSON pretty-printed, exit 0 after --count', async () => {
  const broker = await startBroker();
  const pub = await mqtt.connectAsync(broker.url, { clientId: 'watch-test-pub' });
  try {
    await pub.publishAsync('qliksense/butler/mqtt/availability', 'online', { qos: 1, retain: true });
    const run = watch(['qliksense/#', '--host', '127.0.0.1', '--port', String(broker.port), '--json', '--count', '3']);
    await waitFor(() => run.stderr().includes('watching') || run.child.exitCode !== null, 15_000, 'watch to subscribe');
    assert.equal(run.stderr(), `watching "qliksense/#" on mqtt://127.0.0.1:${broker.port} (Ctrl-C to stop)\n`);
    await waitFor(() => run.stdout().includes('availability'), 5000, 'the retained message');
    await pub.publishAsync('qliksense/task_failure', 'Reload failed: Sales', { qos: 1 });
    await pub.publishAsync('qliksense/task_failure_full', '{"taskName":"Sales","qs_appTags":["a"]}', { qos: 1 });
    // Not counted: after the third message watch has ended.
    const end = await run.exit;
    assert.deepEqual(end, { code: 0, signal: null });
    assert.equal(
      run.stdout(),
      'qliksense/butler/mqtt/availability [retained] online\n' +
        'qliksense/task_failure Reload failed: Sales\n' +
        'qliksense/task_failure_full\n{\n  "taskName": "Sales",\n  "qs_appTags": [\n    "a"\n  ]\n}\n',
    );
  } finally {
    await pub.endAsync();
    await broker.stop();
  }
});

test('--config: the broker of the config with its own client id and no last will; Ctrl-C exits 0', async () => {
  const broker = await startBroker();
  const spy = await collect(broker.url, '#', { testTopics: ['qliksense/hello', 'qliksense/empty', 'qliksense/marker'] });
  const pub = await mqtt.connectAsync(broker.url, { clientId: 'watch-test-pub2' });
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { clientId: 'bridge-under-watch' } }), 'watch.yaml');
  try {
    const run = watch(['--config', file]);
    await waitFor(() => run.stderr().includes('watching'), 15_000, 'watch to subscribe');
    assert.equal(run.stderr(), `watching "#" on mqtt://127.0.0.1:${broker.port} (Ctrl-C to stop)\n`);
    await pub.publishAsync('qliksense/hello', 'from a load script', { qos: 1 });
    await pub.publishAsync('qliksense/empty', '', { qos: 1 });
    await waitFor(() => run.stdout().includes('qliksense/empty'), 5000, 'both messages');
    run.child.kill('SIGINT');
    assert.deepEqual(await run.exit, { code: 0, signal: null });
    assert.equal(run.stdout(), 'qliksense/hello from a load script\nqliksense/empty (empty)\n');
    // The bridge's availability will ("offline") was not set on watch's connection: nothing else crossed the broker.
    await pub.publishAsync('qliksense/marker', 'end', { qos: 1 });
    await spy.waitForCount(3);
    assert.deepEqual(spy.messages.map((m) => `${m.topic}=${m.text}`), ['qliksense/hello=from a load script', 'qliksense/empty=', 'qliksense/marker=end']);
  } finally {
    await pub.endAsync();
    await spy.close();
    await broker.stop();
  }
});

test('an unreachable broker: a message naming it and exit code 1', async () => {
  const port = await freePort();
  const run = watch(['--host', '127.0.0.1', '--port', String(port), '--count', '1']);
  const end = await run.exit;
  assert.deepEqual(end, { code: 1, signal: null });
  assert.match(run.stderr(), new RegExp(`^butler-mqtt watch: cannot connect to mqtt://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  assert.equal(run.stdout(), '');
});

test('bad input: --count 0 exits 2 before connecting', async () => {
  const run = watch(['--host', '127.0.0.1', '--count', '0']);
  assert.deepEqual(await run.exit, { code: 2, signal: null });
  assert.equal(run.stderr(), 'butler-mqtt watch: --count must be a whole number of 1 or more, got "0"\n');
});

test('appender-xml --help marks --host as required', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'appender-xml', '--help'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => child.once('close', resolve));
  assert.ok(out.startsWith('Usage: butler-mqtt appender-xml --host <host> [options]\n'), out);
  assert.match(out, /--host <host> +\(required\) host name/);
});
