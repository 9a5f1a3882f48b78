// Graceful shutdown of the real process: a signal arrives while a reload failure is being enriched
// through a slow QRS. The event is finished, its messages delivered, then "offline" is published and
// the process exits 0 with nothing left in the outbox or the inbox. SIGINT is what Ctrl-C sends (also
// on Windows, where Node turns the console's Ctrl-C into SIGINT); SIGTERM is what service managers send.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, spawnBridge, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram } from '../support/udp.ts';
import { waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-shutdown-');
after(() => tmp.cleanup());

const AVAILABILITY = 'qliksense/butler/mqtt/availability';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} during enrichment: the event finishes, its messages are delivered, then "offline", exit 0`, async () => {
    const pki = await createTestPki();
    const qrs = await QrsSimulator.start({ pki });
    const broker = await startBroker();
    const sub = await collect(broker.url, 'qliksense/#');
    const udpPort = await freeUdpPort();
    const outboxFile = path.join(tmp.dir, signal, 'outbox.sqlite');
    const file = writeConfig(
      tmp.dir,
      deepMerge(baseButler(broker.port), {
        mqttConfig: { delivery: { outboxFile, shutdownFlushSeconds: 5 } },
        udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort },
        ...senseConnection(qrs.port, pki, { cacheTtlSeconds: 0 }),
      }),
      `${signal}.yaml`,
    );
    const bridge = await spawnBridge(file);
    let code: number | null = null;
    try {
      await sub.waitForCount(1, 10_000, 'qliksense/butler/task_failure_server');
      await waitFor(() => sub.texts(AVAILABILITY).includes('online'), 5000, '"online"');
      // Each of the three QRS calls takes 700 ms: the signal lands in the middle of the work.
      qrs.setLatency(700);
      await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: '5d000000-0000-4000-8000-000000000001' }));
      await waitFor(() => qrs.requestsTo('/qrs/task').length >= 1, 5000, 'the first QRS call');
      assert.equal(sub.texts('qliksense/task_failure').length, 0, 'not yet published when the signal is sent');
      code = await bridge.kill(signal);
    } finally {
      await bridge.kill('SIGKILL');
    }
    try {
      assert.equal(code, 0);
      await waitFor(() => sub.texts(AVAILABILITY).includes('offline'), 5000, '"offline"');
      const topics = sub.messages.map((m) => `${m.topic} ${m.topic === AVAILABILITY ? m.text : ''}`.trim());
      const failure = topics.indexOf('qliksense/task_failure');
      const full = topics.indexOf('qliksense/task_failure_full');
      const offline = topics.indexOf(`${AVAILABILITY} offline`);
      assert.ok(failure >= 0 && full >= 0, `the in-flight event's messages were delivered: ${topics.join(' | ')}`);
      assert.ok(offline > failure && offline > full, `"offline" after them: ${topics.join(' | ')}`);
      assert.deepEqual(sub.texts('qliksense/task_failure'), ['Nightly finance reload']);
      assert.ok(bridge.lines.some((l) => l.includes(`${signal} received: stopping`)));
      const db = new Database(outboxFile, { readonly: true });
      try {
        assert.deepEqual(db.prepare('SELECT (SELECT count(*) FROM outbox) AS outbox, (SELECT count(*) FROM inbox) AS inbox').get(), { outbox: 0, inbox: 0 });
      } finally {
        db.close();
      }
    } finally {
      await sub.close();
      await broker.stop();
      await qrs.stop();
      await pki.cleanup();
    }
  });
}
