// Reload task alerts whose QRS answers are all cached: handled on the receive path and stored
// without an inbox row. Real UDP, the HTTPS QRS simulator, a real broker and the bridge's own
// SQLite file; whether an event went through the inbox is read from the file (the inbox's
// AUTOINCREMENT counter), not from the code under test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector, type Received } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram } from '../support/udp.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { readStore } from '../support/store-file.ts';

type Json = Record<string, unknown>;

const FAILED = 'qliksense/task_failure';
const FAILED_FULL = 'qliksense/task_failure_full';

const tmp = tempDir('bm-task-cached-');
let pki: TestPki;
let sim: QrsSimulator;

before(async () => {
  pki = await createTestPki();
  sim = await QrsSimulator.start({ pki });
});

after(async () => {
  await sim?.stop();
  await pki?.cleanup();
  tmp.cleanup();
});

async function bridgeOn(name: string, brokerPort: number, over: Json = {}): Promise<{ bridge: InProcessBridge; port: number; file: string }> {
  const port = await freeUdpPort();
  const file = path.join(tmp.dir, name, 'outbox.sqlite');
  const config = writeConfig(
    tmp.dir,
    deepMerge(
      deepMerge(baseButler(brokerPort), {
        mqttConfig: { delivery: { outboxFile: file } },
        udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: port },
        ...senseConnection(sim.port, pki, { timeoutMs: 5000, retries: 0, cacheTtlSeconds: 600 }),
      }),
      over,
    ),
    `${name}.yaml`,
  );
  return { bridge: await startInProcess(config), port, file };
}

/** Inbox rows ever created in this file, read with a connection of our own. */
function inboxRowsEver(file: string): number {
  return readStore(file, (db) => (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").get() as { seq: number } | undefined)?.seq ?? 0);
}

function failure(executionId: string, taskName = 'Cached reload'): string {
  return schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, taskName });
}

const byExecution = (messages: Received[], executionId: string) => messages.filter((m) => m.text === 'Cached reload' || m.text.includes(`"executionId":"${executionId}"`));

test('with the QRS answers cached, an event skips the inbox; its messages are the bytes the inbox path produces', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, ['qliksense/task_failure', 'qliksense/task_failure_full']);
  const { bridge, port, file } = await bridgeOn('fast', broker.port);
  try {
    await bridge.app.connection!.waitConnected(5000);
    // First event: nothing cached yet, three QRS calls, through the inbox.
    sim.clearRequests();
    const cold = randomUUID();
    await sendDatagram(port, failure(cold));
    await waitFor(() => sub.on(FAILED_FULL).length === 1, 10_000, 'the first alert');
    assert.equal(sim.requests.length, 3);
    assert.equal(inboxRowsEver(file), 1);

    // Second event of the same task: every answer cached, no inbox row, no QRS call.
    const warm = randomUUID();
    await sendDatagram(port, failure(warm));
    await waitFor(() => sub.on(FAILED_FULL).length === 2, 10_000, 'the second alert');
    assert.equal(sim.requests.length, 3, 'no QRS call for the cached event');
    assert.equal(inboxRowsEver(file), 1, 'no inbox row for the cached event');

    const full = sub.on(FAILED_FULL);
    assert.equal(full[0]!.text.replace(cold, 'X'), full[1]!.text.replace(warm, 'X'), 'same full payload apart from the executionId');
    assert.deepEqual(sub.on(FAILED).map((m) => m.text), ['Cached reload', 'Cached reload']);

    // Its executionId is burned like any other: a resend is a duplicate.
    await sendDatagram(port, failure(warm));
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'udp_task', reason: 'duplicate' })) === 1, 5000, 'the duplicate');
    await sleep(300);
    assert.equal(sub.on(FAILED_FULL).length, 2);
    assert.equal(await bridge.app.metrics.total('butler_mqtt_events_accepted_total', { source: 'udp_task' }), 2);
    assert.equal(await bridge.app.metrics.total('butler_mqtt_messages_delivered_total', { kind: 'task_failure_full' }), 2);
    assert.equal(byExecution(sub.on(FAILED_FULL), warm).length, 1);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('an executionId burned by a cached event is still a duplicate after a restart', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, 'qliksense/task_failure_full');
  let { bridge, port } = await bridgeOn('restart', broker.port);
  try {
    await bridge.app.connection!.waitConnected(5000);
    await sendDatagram(port, failure(randomUUID()));
    await waitFor(() => sub.messages.length === 1, 10_000, 'the warm-up alert');
    const warm = randomUUID();
    await sendDatagram(port, failure(warm));
    await waitFor(() => sub.messages.length === 2, 10_000, 'the cached alert');
    await bridge.stop();
    ({ bridge, port } = await bridgeOn('restart', broker.port));
    await bridge.app.connection!.waitConnected(5000);
    await sendDatagram(port, failure(warm));
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'udp_task', reason: 'duplicate' })) === 1, 5000, 'the duplicate');
    await sleep(300);
    assert.equal(sub.messages.length, 2);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('a cached event that finds the outbox full waits in the inbox and is delivered once there is room', async () => {
  // No broker yet: messages stay in the outbox. The start-up status message and the first event's
  // two messages fill it (maxMessages 3).
  const brokerPort = await freePort();
  const { bridge, port, file } = await bridgeOn('full', brokerPort, { mqttConfig: { delivery: { maxMessages: 3 } } });
  let broker: TestBroker | undefined;
  let sub: Collector | undefined;
  try {
    await waitFor(() => bridge.app.outbox!.depth === 1, 5000, 'the UDP status message');
    const first = randomUUID();
    await sendDatagram(port, failure(first));
    await waitFor(() => bridge.app.outbox!.depth === 3, 10_000, 'the first event in the outbox');
    const second = randomUUID();
    await sendDatagram(port, failure(second));
    await waitFor(() => bridge.app.inbox!.depth === 1, 5000, 'the cached event to wait in the inbox');
    // The inbox counts an event when it reserves its row; the event is accepted (and counted) once the
    // commit of that row is synced to the file.
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_events_accepted_total', { source: 'udp_task' })) === 2, 5000, 'the cached event to be accepted');
    assert.equal(inboxRowsEver(file), 2, 'the cached event took the inbox path');

    // The bridge keeps trying to connect; it is held back until the subscriber is in place, or it
    // could deliver both alerts before anyone listened.
    await bridge.app.connection!.stop();
    broker = await startBroker({ port: brokerPort });
    sub = await collect(broker.url, 'qliksense/task_failure_full');
    bridge.app.connection!.start();
    await waitFor(() => sub!.messages.length === 2, 30_000, 'both alerts');
    await waitFor(() => bridge.app.inbox!.depth === 0 && bridge.app.outbox!.depth === 0, 10_000, 'inbox and outbox to drain');
    await sleep(300);
    assert.deepEqual(
      sub.messages.map((m) => (JSON.parse(m.text) as { executionId: string }).executionId),
      [first, second],
    );
  } finally {
    await bridge.stop();
    await sub?.close();
    await broker?.stop();
  }
});

test('maxConcurrent 1: a cached event does not overtake one still waiting for QRS', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, 'qliksense/task_failure_full');
  const { bridge, port, file } = await bridgeOn('order', broker.port, { udpServerConfig: { messageQueue: { maxConcurrent: 1 } } });
  const slowApp = sim.addApp({ id: 'a1000000-0000-4000-8000-000000000001', name: 'Slow app' });
  const slowTask = sim.addReloadTask({ id: '71000000-0000-4000-8000-000000000001', name: 'Slow task', app: slowApp });
  try {
    await bridge.app.connection!.waitConnected(5000);
    await sendDatagram(port, failure(randomUUID()));
    await waitFor(() => sub.messages.length === 1, 10_000, 'the warm-up alert');
    const before = inboxRowsEver(file);

    sim.setLatency(400);
    const slow = randomUUID();
    await sendDatagram(port, schedulerDatagram({ taskId: slowTask.id, appId: slowApp.id, executionId: slow, taskName: 'Slow task' }));
    await sleep(50);
    const cached = randomUUID();
    await sendDatagram(port, failure(cached));
    await waitFor(() => sub.messages.length === 3, 15_000, 'both alerts');
    assert.deepEqual(
      sub.messages.slice(1).map((m) => (JSON.parse(m.text) as { executionId: string }).executionId),
      [slow, cached],
    );
    assert.equal(inboxRowsEver(file), before + 2, 'both went through the inbox');
  } finally {
    sim.setLatency(0);
    sim.removeTask(slowTask.id);
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});
