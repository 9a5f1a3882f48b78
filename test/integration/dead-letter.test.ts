// A message the broker answers with a disconnect is moved to the dead-letter table after
// deadLetterAfterDisconnects closes in a row, while the messages behind it are delivered; the
// table is counted, on /ready and the status snapshot, and handled with `butler-mqtt outbox`.
// A broker that is killed and restarted dead-letters nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { deadLetterSummary } from '../../src/features/operations.ts';

const tmp = tempDir('bm-dead-letter-');
after(() => tmp.cleanup());

/** Runs `butler-mqtt outbox <args> --config <file>` as an admin would; resolves with its exit code and output. */
function cli(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'outbox', ...args, '--config', file], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

// A topic of 101 levels: the embedded broker (Aedes) drops the connection for it every time. ($ topics,
// the other classic poison, are refused by the outbox before they are stored.)
const POISON = Array.from({ length: 101 }, (_, i) => `l${i}`).join('/');

test('embedded broker: a PUBLISH it drops the connection for each time is dead-lettered after 3 disconnects; the messages behind it are delivered; counted, on /ready and the status snapshot', async () => {
  const brokerPort = await freePort();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(brokerPort), {
      mqttConfig: { brokerHost: '', embeddedBroker: { enable: true, host: '127.0.0.1', port: brokerPort }, delivery: { outboxFile: 'sys/outbox.sqlite' } },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    }),
    'sys.yaml',
  );
  const bridge = await startInProcess(file);
  const sub = await collect(`mqtt://127.0.0.1:${brokerPort}`, 'test/dl/#', { testTopics: ['test/dl/#'] });
  try {
    const { app } = bridge;
    await app.connection!.waitConnected(10_000);
    await app.outbox!.enqueue([
      { topic: 'test/dl/a', payload: 'before', kind: 'rest' },
      { topic: POISON, payload: 'poison', kind: 'rest' },
      { topic: 'test/dl/b', payload: 'after-1', kind: 'rest' },
      { topic: 'test/dl/c', payload: 'after-2', kind: 'rest' },
    ]);
    await sub.waitForCount(3, 20_000);
    await waitFor(() => app.outbox!.depth === 0, 10_000, 'the outbox to be empty').catch((e: Error) => { throw new Error(`${e.message} depth=${app.outbox!.depth} dead=${app.outbox!.deadLetters.count}\n${bridge.logs.map((l) => l.slice(0, 300)).join('')}`); });
    // At least once: "before" reached the subscriber but the broker closed the connection before
    // acknowledging it, so it may come twice.
    assert.deepEqual([...new Set(sub.messages.map((m) => `${m.topic} ${m.text}`))], ['test/dl/a before', 'test/dl/b after-1', 'test/dl/c after-2']);

    const dead = app.outbox!.deadLetters.latest(10);
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.topic, POISON);
    assert.equal(String(dead[0]!.payload), 'poison');
    assert.equal(dead[0]!.kind, 'rest');
    assert.equal(dead[0]!.attempts, 3);
    assert.equal(dead[0]!.reason, 'the broker closed the connection each time it was sent (3 times in a row)');
    assert.equal(await app.metrics.total('butler_mqtt_dead_letters_total', { kind: 'rest' }), 1);
    const metricsText = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    assert.match(metricsText, /^butler_mqtt_dead_letters 1$/m);
    assert.ok(bridge.logs.some((l) => l.includes('moved to the dead-letter table')), 'the move is logged');

    const ready = await fetch(`http://127.0.0.1:${httpPort}/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(((await ready.json()) as { reasons: string[] }).reasons, ['1 message in the dead-letter table (butler-mqtt outbox dead)']);
    const summary = deadLetterSummary(app.outbox!);
    assert.equal(summary.count, 1);
    assert.deepEqual(summary.latest.map((r) => [r.topic, r.kind, r.attempts]), [[POISON, 'rest', 3]]);

    // Delivery goes on, on a healthy connection.
    await app.outbox!.enqueue([{ topic: 'test/dl/d', payload: 'later', kind: 'rest' }]);
    await sub.waitForCount(1, 10_000, 'test/dl/d');
    assert.deepEqual(sub.texts('test/dl/d'), ['later']);
    assert.equal(app.connection!.state, 'connected');

    // Retried while the bridge runs: it comes back and, still refused, is dead-lettered again.
    const retried = await cli(file, ['retry', String(dead[0]!.id)]);
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(retried.stdout, `1 message(s) moved back to the outbox: ${dead[0]!.id}\n`);
    await waitFor(() => (app.outbox!.deadLetters.latest(1)[0]?.id ?? 0) > dead[0]!.id, 20_000, 'the retried message to be dead-lettered again');
    assert.equal(app.outbox!.deadLetters.count, 1);
    assert.equal(await app.metrics.total('butler_mqtt_dead_letters_total', { kind: 'rest' }), 2);

    const dropped = await cli(file, ['drop', 'all']);
    assert.equal(dropped.code, 0, dropped.stderr);
    assert.match(dropped.stdout, /^1 dead letter\(s\) dropped: \d+\n$/);
    const readyAgain = await fetch(`http://127.0.0.1:${httpPort}/ready`);
    assert.equal(readyAgain.status, 200);
    assert.equal(sub.messages.filter((m) => m.topic.startsWith('$')).length, 0);
  } finally {
    await sub.close();
    await bridge.stop();
  }
});

test('butler-mqtt outbox: dead lists, retry moves back to the end of the outbox and a running bridge delivers it, drop deletes; bad ids are clear errors', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, 'test/cli/#', { testTopics: ['test/cli/#'] });
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { delivery: { outboxFile: 'cli/outbox.sqlite' } } }), 'cli.yaml');
  const bridge = await startInProcess(file);
  const db = new Database(path.join(tmp.dir, 'cli/outbox.sqlite'));
  db.pragma('busy_timeout = 5000');
  try {
    await bridge.app.connection!.waitConnected(10_000);
    // Dead letters as the Publisher leaves them (written by another connection, as an older run would have).
    const insert = db.prepare('INSERT INTO dead_letter (id, topic, payload, qos, retain, kind, bytes, created_at, reason, moved_at, attempts) VALUES (?, ?, ?, 1, 0, ?, ?, ?, ?, ?, 3)');
    insert.run(9001, 'test/cli/one', 'first dead letter', 'rest', 29, 1_700_000_000_000, 'the broker closed the connection each time it was sent (3 times in a row)', 1_700_000_001_000);
    insert.run(9002, 'test/cli/two', 'second dead letter', 'rest', 30, 1_700_000_000_000, 'the broker closed the connection each time it was sent (3 times in a row)', 1_700_000_002_000);
    insert.run(9003, 'test/cli/three', 'third dead letter', 'user_event', 32, 1_700_000_000_000, 'the broker closed the connection each time it was sent (3 times in a row)', 1_700_000_003_000);

    const listed = await cli(file, ['dead', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as { id: number; topic: string; payload: string; attempts: number; movedAt: string }[];
    assert.deepEqual(rows.map((r) => [r.id, r.topic, r.payload, r.attempts, r.movedAt]), [
      [9003, 'test/cli/three', 'third dead letter', 3, '2023-11-14T22:13:23.000Z'],
      [9002, 'test/cli/two', 'second dead letter', 3, '2023-11-14T22:13:22.000Z'],
      [9001, 'test/cli/one', 'first dead letter', 3, '2023-11-14T22:13:21.000Z'],
    ]);
    await waitFor(() => bridge.app.readiness().reasons.includes('3 messages in the dead-letter table (butler-mqtt outbox dead)'), 5000, 'the readiness reason');

    const retried = await cli(file, ['retry', '9002']);
    assert.equal(retried.code, 0, retried.stderr);
    await sub.waitForCount(1, 10_000);
    assert.deepEqual(sub.messages.map((m) => [m.topic, m.text]), [['test/cli/two', 'second dead letter']]);
    await waitFor(() => bridge.app.outbox!.depth === 0, 10_000, 'the outbox to be empty again');

    const missing = await cli(file, ['drop', '9001', '4242']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, '1 dead letter(s) dropped: 9001\n');
    assert.equal(missing.stderr, 'butler-mqtt outbox: no dead letter with id 4242\n');
    const bad = await cli(file, ['retry', 'x7']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'butler-mqtt outbox: not a row id: "x7" (a positive integer, or "all")\n');

    const left = await cli(file, ['dead']);
    assert.equal(left.code, 0);
    assert.match(left.stdout, /^9003\t2023-11-14T22:13:23\.000Z\tuser_event\tattempts 3\t"test\/cli\/three"\tthird dead letter\n\treason: the broker closed/);
    const list = await cli(file, ['list']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^0 message\(s\) waiting in /);
    assert.equal((await cli(file, ['drop', 'all'])).stdout, '1 dead letter(s) dropped: 9003\n');
    await waitFor(() => bridge.app.readiness().ready, 5000, 'ready again');
    await sleep(300);
    assert.equal(sub.messages.length, 1, 'nothing but the retried message was published');
  } finally {
    db.close();
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('embedded broker: a topic of 101 levels (the broker allows 100) is dead-lettered while the message after it arrives; with deadLetterAfterDisconnects: 1 it moves at the first counted disconnect', async () => {
  const brokerPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(brokerPort), {
      mqttConfig: { brokerHost: '', embeddedBroker: { enable: true, host: '127.0.0.1', port: brokerPort }, delivery: { outboxFile: 'deep/outbox.sqlite', deadLetterAfterDisconnects: 1 } },
    }),
    'deep.yaml',
  );
  const bridge = await startInProcess(file);
  const sub = await collect(`mqtt://127.0.0.1:${brokerPort}`, 'test/deep/#', { testTopics: ['test/deep/#'] });
  try {
    const { app } = bridge;
    await app.connection!.waitConnected(10_000);
    const deep = `test/deep/${Array.from({ length: 99 }, (_, i) => `l${i}`).join('/')}`;
    assert.equal(deep.split('/').length, 101);
    await app.outbox!.enqueue([{ topic: deep, payload: 'too deep', kind: 'rest' }, { topic: 'test/deep/ok', payload: 'fine', kind: 'rest' }]);
    await sub.waitForCount(1, 20_000, 'test/deep/ok');
    await waitFor(() => app.outbox!.depth === 0, 10_000, 'the outbox to be empty');
    const dead = app.outbox!.deadLetters.latest(5);
    assert.deepEqual(dead.map((r) => [r.topic, String(r.payload), r.attempts]), [[deep, 'too deep', 1]]);
    assert.deepEqual(sub.messages.map((m) => m.topic), ['test/deep/ok']);
  } finally {
    await sub.close();
    await bridge.stop();
  }
});
