// A quarantined event as an operator meets it: shown on the status page, in /metrics, listed by
// `butler-mqtt inbox list`, and handled once `butler-mqtt inbox retry` releases it — while the bridge
// runs, through the real command line on the same store file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { freeUdpPort, schedulerDatagram } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';

function cli(args: string[]): string {
  return execFileSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
}

test('a quarantined event: on the status page and in /metrics, listed by the CLI, handled after "inbox retry"', async () => {
  const tmp = tempDir('bm-quarantine-');
  const broker = await startBroker();
  const sub = await collect(broker.url, 'qliksense/task_failure');
  const outboxFile = path.join(tmp.dir, 'outbox.sqlite');
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: await freeUdpPort() },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    }),
  );
  // An event an earlier run set aside after its handling failed five times.
  const executionId = randomUUID();
  const seed = new Store({ file: outboxFile });
  const inbox = new Inbox(seed, new Outbox(seed, { maxMessages: 100, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 }), { maxEvents: 100, dedupTtlMs: 60_000 });
  const accepted = await inbox.accept('udp_task', Buffer.from(schedulerDatagram({ executionId, taskName: 'Quarantined reload' })), executionId, '{"from":"127.0.0.1"}');
  assert.equal(accepted.status, 'accepted');
  await inbox.quarantine({ id: accepted.status === 'accepted' ? accepted.id : 0 }, 5, 'handler failed: QRS answer not understood');
  seed.close();

  const bridge = await startInProcess(file);
  try {
    const base = `http://127.0.0.1:${httpPort}`;
    const { status } = (await (await fetch(`${base}/status/api`)).json()) as { status: { inbox: { quarantined: number; depth: number } } };
    assert.deepEqual({ quarantined: status.inbox.quarantined, depth: status.inbox.depth }, { quarantined: 1, depth: 0 });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^butler_mqtt_inbox_quarantined_events 1$/m);

    const listed = cli(['inbox', 'list', '--config', file]);
    assert.match(listed, new RegExp(`^${accepted.status === 'accepted' ? accepted.id : 0}  udp_task  5 attempts  quarantined `, 'm'));
    assert.match(listed, /error: handler failed: QRS answer not understood/);
    assert.equal(sub.texts('qliksense/task_failure').length, 0, 'nothing published while quarantined');

    assert.equal(cli(['inbox', 'retry', 'all', '--config', file]), '1 event(s) released for another attempt\n');
    await waitFor(() => sub.texts('qliksense/task_failure').length === 1, 15_000, 'the released event alerted');
    assert.deepEqual(sub.texts('qliksense/task_failure'), ['Quarantined reload']);
    await waitFor(() => bridge.app.inbox!.depth === 0 && bridge.app.inbox!.quarantined === 0, 5000, 'the inbox empty');
    assert.equal(cli(['inbox', 'list', '--config', file]), 'no quarantined events\n');
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
    tmp.cleanup();
  }
});
