// The two Sense tooling commands run as the real CLI: `appender-xml` prints a LocalLogConfig.xml
// aimed at the given host and port, `send-test-event` sends a datagram the task parser accepts,
// with a new executionId each time unless one is given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/bridge.ts';
import { parseDatagram } from '../../src/sense/datagram.ts';

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), ...args], { cwd: REPO_ROOT });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A UDP socket on a free loopback port that keeps what it receives. */
async function receiver(): Promise<{ port: number; got: string[]; close(): Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString('utf8')));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { port: socket.address().port, got, close: () => new Promise<void>((r) => socket.close(() => r())) };
}

test('appender-xml prints a scheduler LocalLogConfig.xml with UDP appenders aimed at --host/--port', async () => {
  const r = await cli(['appender-xml', '--host', 'butler.corp.example', '--port', '9998']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n'));
  assert.equal(r.stdout.match(/type="log4net.Appender.UdpAppender"/g)?.length, 3);
  assert.equal(r.stdout.match(/<param name="remoteAddress" value="butler.corp.example" \/>/g)?.length, 3);
  assert.equal(r.stdout.match(/<param name="remotePort" value="9998" \/>/g)?.length, 3);
  for (const type of ['/scheduler-reload-failed/', '/scheduler-reload-aborted/', '/scheduler-reloadtask-success/']) assert.ok(r.stdout.includes(`value="${type};`), type);
  assert.match(r.stdout, /<logger name="System.Scheduler.Scheduler.Master.Task.TaskSession">/);
  assert.ok(r.stdout.trimEnd().endsWith('</configuration>'));
});

test('appender-xml: the port defaults to 9998; a bad port or host exits 2 with the reason', async () => {
  const ok = await cli(['appender-xml', '--host', '10.0.0.5']);
  assert.equal(ok.code, 0);
  assert.equal(ok.stdout.match(/<param name="remotePort" value="9998" \/>/g)?.length, 3);
  const badPort = await cli(['appender-xml', '--host', '10.0.0.5', '--port', '99999']);
  assert.equal(badPort.code, 2);
  assert.equal(badPort.stdout, '');
  assert.match(badPort.stderr, /port must be an integer 1-65535, got "99999"/);
  const badHost = await cli(['appender-xml', '--host', '<FQDN or IP>']);
  assert.equal(badHost.code, 2);
  assert.match(badHost.stderr, /must not contain whitespace/);
});

test('send-test-event failed/aborted/success sends datagrams the task parser accepts; a new executionId each time unless given', async () => {
  const rx = await receiver();
  try {
    const taskId = '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f';
    const appId = '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f';
    const given = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const port = String(rx.port);
    for (const args of [
      ['failed', '--task-id', taskId, '--app-id', appId, '--port', port],
      ['failed', '--task-id', taskId, '--app-id', appId, '--port', port],
      ['aborted', '--port', port, '--execution-id', given, '--task-name', 'Nightly finance reload'],
      ['success', '--port', port, '--host', '127.0.0.1'],
    ]) {
      const r = await cli(['send-test-event', ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rx.got.length, 4);
    const events = rx.got.map((text) => {
      const p = parseDatagram(text);
      if (!p.ok) assert.fail(`${p.error.reason}: ${p.error.detail} in ${text}`);
      return p.value;
    });
    assert.deepEqual(events.map((e) => e.type), ['failed', 'failed', 'aborted', 'success']);
    assert.equal(events[0]!.taskId, taskId);
    assert.equal(events[0]!.appId, appId);
    assert.notEqual(events[0]!.executionId, events[1]!.executionId);
    assert.equal(events[2]!.executionId, given);
    assert.equal(events[2]!.taskName, 'Nightly finance reload');
    assert.equal(events[0]!.user, 'INTERNAL\\\\sa_scheduler');
    assert.match(events[0]!.logTimeStamp, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}$/);
    assert.equal(events[0]!.logMessage, 'Max retries reached');
  } finally {
    await rx.close();
  }
});

test('send-test-event refuses an unknown kind and a malformed GUID with exit 2', async () => {
  const kind = await cli(['send-test-event', 'exploded']);
  assert.equal(kind.code, 2);
  assert.match(kind.stderr, /kind must be failed, aborted or success, or session-start, session-stop, connection-open or connection-close; got "exploded"/);
  const guid = await cli(['send-test-event', 'failed', '--task-id', '12345']);
  assert.equal(guid.code, 2);
  assert.match(guid.stderr, /--task-id must be a GUID/);
});
