// Accepted means kept: the bridge (a real child process) is killed with SIGKILL while accepted
// datagrams wait in its inbox behind a slow QRS; after a restart every one of them is alerted,
// oldest first and before anything that arrives later, and none twice. On the way: the bridge's main
// threads run at the lower priority udpServerConfig.processingNice asks for, all but the UDP receive thread.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, spawnBridge, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram, sendDatagrams } from '../support/udp.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { countRows } from '../support/store-file.ts';

const FAILED = 'qliksense/task_failure';
const FAILED_FULL = 'qliksense/task_failure_full';

const tmp = tempDir('bm-task-crash-');
after(() => tmp.cleanup());

function inboxRows(file: string): number {
  return countRows(file, "SELECT count(*) AS n FROM inbox WHERE source = 'udp_task'");
}

/** A thread's nice value (field 19 of /proc/<pid>/task/<tid>/stat, counted after the command name). */
function threadNice(pid: number, tid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).filter((tid) => Number(tid) !== pid).map((tid) => threadNice(pid, Number(tid)));
}

test('SIGKILL right after 250 datagrams were accepted: after a restart all 250 are alerted, in order, before a newer one', async (t) => {
  const pki = await createTestPki();
  const sim = await QrsSimulator.start({ pki });
  const broker = await startBroker();
  const sub = await collect(broker.url, [FAILED, FAILED_FULL]);
  const udpPort = await freeUdpPort();
  const dbFile = path.join(tmp.dir, 'crash', 'outbox.sqlite');
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: dbFile } },
      // One worker makes the order of handling observable.
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort, messageQueue: { maxConcurrent: 1 } },
      ...senseConnection(sim.port, pki, { timeoutMs: 30_000, retries: 0 }),
    }),
    'crash.yaml',
  );
  let second: Awaited<ReturnType<typeof spawnBridge>> | null = null;
  try {
    // QRS answers only after 8 s: the first event is in progress, the rest wait (the kill comes well before).
    sim.setLatency(8_000);
    const first = await spawnBridge(file);
    // Once its UDP port listens, the bridge's threads run 10 nice steps below where they started (this
    // process's nice, which the child inherited): all but one, the UDP receive thread.
    const ownNice = os.getPriority();
    const lowered = Math.min(19, ownNice + 10);
    assert.equal(threadNice(first.child.pid!, first.child.pid!), lowered, 'the main thread');
    assert.ok(first.lines.some((l) => l.includes(`processing thread nice ${ownNice} → ${lowered}`)));
    const others = threadNices(first.child.pid!);
    assert.deepEqual(others.filter((n) => n !== lowered), [ownNice], `one thread (the receive thread) keeps nice ${ownNice}: ${others.join(', ')}`);
    const ids = Array.from({ length: 250 }, () => randomUUID());
    await sendDatagrams(udpPort, ids.map((executionId) => schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, taskName: 'crash test' })));
    await waitFor(() => inboxRows(dbFile) === 250, 10_000, '250 accepted datagrams in the inbox');
    await waitFor(() => sim.requests.length >= 1, 5000, 'the first event to be asking QRS');
    assert.equal(sub.messages.length, 0, 'nothing alerted before the kill');
    await first.kill('SIGKILL');
    assert.equal(first.child.signalCode, 'SIGKILL');
    assert.equal(inboxRows(dbFile), 250);

    sim.setLatency(0);
    second = await spawnBridge(file);
    const newer = randomUUID();
    await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: newer, taskName: 'after restart' }));
    await sub.waitForCount(251, 30_000, FAILED_FULL);
    await sleep(300);
    const full = sub.on(FAILED_FULL).map((m) => (JSON.parse(m.text) as { executionId: string }).executionId);
    assert.deepEqual(full, [...ids, newer]);
    const basic = sub.texts(FAILED);
    assert.equal(basic.length, 251);
    assert.deepEqual(basic, [...Array(250).fill('crash test'), 'after restart']);
    await waitFor(() => inboxRows(dbFile) === 0, 5000, 'the inbox to empty');
    t.diagnostic(`alerted after restart: ${basic.length} basic, ${new Set(full).size} distinct full`);
  } finally {
    await second?.kill('SIGTERM');
    await sub.close();
    await broker.stop();
    await sim.stop();
    await pki.cleanup();
  }
});
