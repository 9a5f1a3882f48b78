// Reload task alerts end to end: real datagrams over a real UDP socket into the bridge, enrichment
// from the QRS simulator over HTTPS with client certificates, messages counted on a real broker.
// Expected payloads are written out by hand from the simulator's fixture objects.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector, type Received } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID, buildTask, guidFor, type QrsAppFull, type QrsTaskFull } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram, sendDatagrams } from '../support/udp.ts';
import { sleep, waitFor } from '../support/wait.ts';

type Json = Record<string, unknown>;

const STATUS = 'qliksense/butler/task_failure_server';
const FAILED = 'qliksense/task_failure';
const FAILED_FULL = 'qliksense/task_failure_full';
const ABORTED = 'qliksense/task_aborted';
const ABORTED_FULL = 'qliksense/task_aborted_full';
const SUCCESS = 'qliksense/task_success';
const SUCCESS_FULL = 'qliksense/task_success_full';

const tmp = tempDir('bm-task-alerts-');
let pki: TestPki;
let sim: QrsSimulator;
let broker: TestBroker;
let sub: Collector;
let bridge: InProcessBridge;
let udpPort: number;
let task: QrsTaskFull;
let app: QrsAppFull;

/** Bridge config: MQTT on the test broker, UDP on `port`, QRS = the simulator (unless overridden). */
function alertConfig(brokerPort: number, port: number, name: string, over: Json = {}): string {
  const butler = deepMerge(
    deepMerge(baseButler(brokerPort), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, name, 'outbox.sqlite') } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: port },
      ...senseConnection(sim.port, pki, { timeoutMs: 2000, retries: 2, cacheTtlSeconds: 0 }),
    }),
    over,
  );
  return writeConfig(tmp.dir, butler, `${name}.yaml`);
}

async function counter(b: InProcessBridge, name: string, labels: Record<string, string>): Promise<number> {
  return b.app.metrics.total(`butler_mqtt_${name}`, labels);
}

/** Waits until every datagram sent so far was accepted or rejected and every accepted one handled. */
async function settled(b: InProcessBridge, received: number): Promise<void> {
  await waitFor(
    async () => {
      const r = await counter(b, 'events_received_total', { source: 'udp_task' });
      const a = await counter(b, 'events_accepted_total', { source: 'udp_task' });
      const x = await counter(b, 'events_rejected_total', { source: 'udp_task' });
      return r >= received && a + x === r && b.app.inbox!.depth === 0;
    },
    15_000,
    `${received} datagrams to be received and handled`,
  );
}

async function received(b: InProcessBridge): Promise<number> {
  return counter(b, 'events_received_total', { source: 'udp_task' });
}

const ALERT_TOPICS = new Set([FAILED, FAILED_FULL, ABORTED, ABORTED_FULL, SUCCESS, SUCCESS_FULL]);

/** Alert messages that arrived after index `start` (status and availability topics left out). */
function after_(start: number): Received[] {
  return sub.messages.slice(start).filter((m) => ALERT_TOPICS.has(m.topic));
}

function withExecutionId(messages: Received[], executionId: string): Received[] {
  return messages.filter((m) => m.text.includes(`"executionId":"${executionId}"`));
}

/** Sends a failure datagram for the sample task and waits for its two messages: proof that everything queued before it arrived. */
async function marker(): Promise<void> {
  const executionId = randomUUID();
  const start = sub.messages.length;
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, taskName: 'marker' }));
  await waitFor(() => after_(start).some((m) => m.topic === FAILED_FULL && m.text.includes(executionId)), 10_000, 'the marker alert');
}

before(async () => {
  pki = await createTestPki();
  sim = await QrsSimulator.start({ pki });
  task = sim.tasks.get(SAMPLE_TASK_ID)!;
  app = sim.apps.get(SAMPLE_APP_ID)!;
  broker = await startBroker();
  sub = await collect(broker.url, 'qliksense/#');
  udpPort = await freeUdpPort();
  bridge = await startInProcess(
    alertConfig(broker.port, udpPort, 'main', { mqttConfig: { taskSuccessTopic: SUCCESS, taskSuccessFullTopic: SUCCESS_FULL } }),
  );
  await bridge.app.connection!.waitConnected(5000);
});

after(async () => {
  await bridge?.stop();
  await sub?.close();
  await broker?.stop();
  await sim?.stop();
  await pki?.cleanup();
  tmp.cleanup();
});

test('P3: the status topic gets "start" once the UDP socket listens', async () => {
  await sub.waitForCount(1, 10_000, STATUS);
  assert.deepEqual(sub.texts(STATUS), ['start']);
});

test('a failed reload: basic payload = task name; full payload = exactly the expected JSON (sanitised, user backslashes collapsed)', async () => {
  const executionId = randomUUID();
  const start = sub.messages.length;
  await sendDatagram(
    udpPort,
    schedulerDatagram({
      taskName: 'Nightly\u0007 finance reload',
      user: 'CORP\\\\anna',
      taskId: SAMPLE_TASK_ID,
      appId: SAMPLE_APP_ID,
      executionId,
      message: 'Max retries reached\r\n' + 'x'.repeat(600),
    }),
  );
  await waitFor(() => after_(start).length >= 2, 10_000, 'two messages');
  await sleep(200);
  const got = after_(start);
  assert.deepEqual(got.map((m) => m.topic), [FAILED, FAILED_FULL]);
  assert.equal(got[0]!.text, 'Nightly finance reload');
  const expected =
    '{"hostName":"sense-sched-1","user":"CORP\\\\anna","taskName":"Nightly finance reload",' +
    `"taskId":"${SAMPLE_TASK_ID}","appName":"Finance dashboard","appId":"${SAMPLE_APP_ID}",` +
    '"logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"ERROR",' +
    `"executionId":"${executionId}","logMessage":"Max retries reached${'x'.repeat(481)}",` +
    '"qs_appTags":["Finance"],"qs_appCustomProperties":[{"name":"ServiceLevel","value":"Gold"}],' +
    '"qs_taskTags":["Nightly","Finance"],"qs_taskCustomProperties":[{"name":"CostCenter","value":"Finance"}],' +
    `"qs_taskMetadata":${JSON.stringify(task)}}`;
  assert.equal(got[1]!.text, expected);
  assert.equal(got[1]!.payload.equals(Buffer.from(expected, 'utf8')), true);
});

test('an aborted reload: basic payload = task name; full payload has qs_appMetadata before qs_taskMetadata, byte for byte', async () => {
  const executionId = randomUUID();
  const start = sub.messages.length;
  await sendDatagram(
    udpPort,
    schedulerDatagram({
      type: '/scheduler-reload-aborted/',
      host: 'sense-sched-2',
      user: 'INTERNAL\\\\sa_scheduler',
      taskId: SAMPLE_TASK_ID,
      appId: SAMPLE_APP_ID,
      logLevel: 'INFO',
      executionId,
      message: 'Execution State Change to Aborting; requested by CORP\\anna',
    }),
  );
  await waitFor(() => after_(start).length >= 2, 10_000, 'two messages');
  await sleep(200);
  const got = after_(start);
  assert.deepEqual(got.map((m) => m.topic), [ABORTED, ABORTED_FULL]);
  assert.equal(got[0]!.text, 'Nightly finance reload');
  const expected =
    '{"hostName":"sense-sched-2","user":"INTERNAL\\\\sa_scheduler","taskName":"Nightly finance reload",' +
    `"taskId":"${SAMPLE_TASK_ID}","appName":"Finance dashboard","appId":"${SAMPLE_APP_ID}",` +
    '"logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"INFO",' +
    `"executionId":"${executionId}","logMessage":"Execution State Change to Aborting; requested by CORP\\\\anna",` +
    '"qs_appTags":["Finance"],"qs_appCustomProperties":[{"name":"ServiceLevel","value":"Gold"}],' +
    '"qs_taskTags":["Nightly","Finance"],"qs_taskCustomProperties":[{"name":"CostCenter","value":"Finance"}],' +
    `"qs_appMetadata":${JSON.stringify(app)},"qs_taskMetadata":${JSON.stringify(task)}}`;
  assert.equal(got[1]!.text, expected);
});

test('a successful reload with success topics set: task name, and a full JSON with the failure key set', async () => {
  const executionId = randomUUID();
  const start = sub.messages.length;
  await sendDatagram(
    udpPort,
    schedulerDatagram({ type: '/scheduler-task-success//', taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, logLevel: 'INFO', executionId, message: 'Execution State Change to FinishedSuccess' }),
  );
  await waitFor(() => after_(start).length >= 2, 10_000, 'two messages');
  await sleep(200);
  const got = after_(start);
  assert.deepEqual(got.map((m) => m.topic), [SUCCESS, SUCCESS_FULL]);
  assert.equal(got[0]!.text, 'Nightly finance reload');
  const expected =
    '{"hostName":"sense-sched-1","user":"CORP\\\\anna","taskName":"Nightly finance reload",' +
    `"taskId":"${SAMPLE_TASK_ID}","appName":"Finance dashboard","appId":"${SAMPLE_APP_ID}",` +
    '"logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"INFO",' +
    `"executionId":"${executionId}","logMessage":"Execution State Change to FinishedSuccess",` +
    '"qs_appTags":["Finance"],"qs_appCustomProperties":[{"name":"ServiceLevel","value":"Gold"}],' +
    '"qs_taskTags":["Nightly","Finance"],"qs_taskCustomProperties":[{"name":"CostCenter","value":"Finance"}],' +
    `"qs_taskMetadata":${JSON.stringify(task)}}`;
  assert.equal(got[1]!.text, expected);
});

test('the same executionId within the TTL gives one set of messages; every resend counts as duplicate', async () => {
  const executionId = randomUUID();
  const before = await received(bridge);
  const dup0 = await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'duplicate' });
  const start = sub.messages.length;
  const datagram = schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId });
  // Two at once (the second arrives while the first is in progress), one after it was handled.
  await sendDatagrams(udpPort, [datagram, datagram]);
  await settled(bridge, before + 2);
  await sendDatagram(udpPort, datagram);
  await settled(bridge, before + 3);
  // A failed datagram of another type but the same executionId: the key is shared across types.
  await sendDatagram(udpPort, schedulerDatagram({ type: '/scheduler-reload-aborted/', taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId }));
  await settled(bridge, before + 4);
  await marker();
  const mine = withExecutionId(after_(start), executionId);
  assert.deepEqual(mine.map((m) => m.topic), [FAILED_FULL]);
  assert.equal(after_(start).filter((m) => m.topic === FAILED && m.text === 'Nightly finance reload').length, 1);
  assert.equal((await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'duplicate' })) - dup0, 3);
});

test('a transient QRS failure (503 twice, then answers) still yields the fully enriched alert, once', async () => {
  const executionId = randomUUID();
  const start = sub.messages.length;
  sim.failNext(2, 503, '/qrs/task');
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId }));
  await waitFor(() => withExecutionId(after_(start), executionId).length >= 1, 15_000, 'the full alert');
  await marker();
  const full = withExecutionId(after_(start), executionId);
  assert.equal(full.length, 1);
  const parsed = JSON.parse(full[0]!.text) as Json;
  assert.equal('enrichmentError' in parsed, false);
  assert.deepEqual(parsed['qs_taskMetadata'], task);
  // The resend within the TTL is a duplicate: the key was burned when the alert was stored.
  const dup0 = await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'duplicate' });
  const before = await received(bridge);
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId }));
  await settled(bridge, before + 1);
  assert.equal((await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'duplicate' })) - dup0, 1);
});

test('QRS simulator stopped: every failure datagram still yields its basic alert and a full alert with enrichmentError', async () => {
  await sim.stop();
  try {
    const ids = Array.from({ length: 5 }, () => randomUUID());
    const start = sub.messages.length;
    await sendDatagrams(udpPort, ids.map((executionId) => schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, taskName: 'Nightly finance reload' })));
    await waitFor(() => after_(start).filter((m) => m.topic === FAILED_FULL).length >= 5, 30_000, '5 full alerts');
    await sleep(200);
    const got = after_(start);
    assert.equal(got.filter((m) => m.topic === FAILED).length, 5);
    assert.deepEqual(got.filter((m) => m.topic === FAILED).map((m) => m.text), Array(5).fill('Nightly finance reload'));
    for (const executionId of ids) {
      const full = withExecutionId(got, executionId);
      assert.equal(full.length, 1, `one full alert for ${executionId}`);
      const expected =
        '{"hostName":"sense-sched-1","user":"CORP\\\\anna","taskName":"Nightly finance reload",' +
        `"taskId":"${SAMPLE_TASK_ID}","appName":"Finance dashboard","appId":"${SAMPLE_APP_ID}",` +
        '"logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"ERROR",' +
        `"executionId":"${executionId}","logMessage":"Max retries reached",` +
        '"qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],' +
        '"qs_taskMetadata":{},"enrichmentError":"QRS unreachable"}';
      assert.equal(full[0]!.text, expected);
    }
  } finally {
    await sim.start();
  }
});

test('QRS answering 500 for the app lookup: an aborted alert still goes out, QRS fields empty, enrichmentError names the status', async () => {
  const executionId = randomUUID();
  const start = sub.messages.length;
  sim.failNext(3, 500, '/qrs/app');
  await sendDatagram(udpPort, schedulerDatagram({ type: '/scheduler-task-aborted/', taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, logLevel: 'INFO' }));
  await waitFor(() => withExecutionId(after_(start), executionId).length >= 1, 15_000, 'the full alert');
  const full = withExecutionId(after_(start), executionId)[0]!;
  assert.equal(full.topic, ABORTED_FULL);
  assert.equal(
    full.text,
    '{"hostName":"sense-sched-1","user":"CORP\\\\anna","taskName":"Nightly finance reload",' +
      `"taskId":"${SAMPLE_TASK_ID}","appName":"Finance dashboard","appId":"${SAMPLE_APP_ID}",` +
      '"logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"INFO",' +
      `"executionId":"${executionId}","logMessage":"Max retries reached",` +
      '"qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],' +
      '"qs_appMetadata":{},"qs_taskMetadata":{},"enrichmentError":"QRS answered HTTP 500"}',
  );
  assert.ok(after_(start).some((m) => m.topic === ABORTED && m.text === 'Nightly finance reload'));
});

test('QRS not answering within configQRS.timeoutMs: the alert goes out with "enrichmentError":"QRS timeout"', async () => {
  const port = await freeUdpPort();
  const b = await startInProcess(alertConfig(broker.port, port, 'timeout', { configQRS: { timeoutMs: 300, retries: 0 } }));
  sim.setHang(true);
  try {
    await b.app.connection!.waitConnected(5000);
    const executionId = randomUUID();
    const start = sub.messages.length;
    await sendDatagram(port, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, taskName: 'slow QRS' }));
    await waitFor(() => withExecutionId(after_(start), executionId).length === 1, 10_000, 'the full alert');
    const full = JSON.parse(withExecutionId(after_(start), executionId)[0]!.text) as Json;
    assert.equal(full['enrichmentError'], 'QRS timeout');
    assert.deepEqual(full['qs_taskMetadata'], {});
    assert.ok(after_(start).some((m) => m.topic === FAILED && m.text === 'slow QRS'));
  } finally {
    sim.setHang(false);
    await b.stop();
  }
});

test('as Butler, nothing is published for an unknown task, a non-reload task, an empty app id or an unknown app; each event is handled and its key burned', async () => {
  const external = sim.addTask(buildTask({ name: 'Export to share', taskType: 1, app: null }));
  const noApp = guidFor('app:does-not-exist');
  const cases = [
    { name: 'unknown task', taskId: guidFor('task:does-not-exist'), appId: SAMPLE_APP_ID, log: /not found in QRS/ },
    { name: 'external program task', taskId: external.id, appId: SAMPLE_APP_ID, log: /is not a reload task \(taskType 1\)/ },
    { name: 'empty app id', taskId: SAMPLE_TASK_ID, appId: '', log: /has no app id/ },
    { name: 'unknown app', taskId: SAMPLE_TASK_ID, appId: noApp, log: /app [0-9a-f-]+ not found in QRS/ },
  ];
  const start = sub.messages.length;
  const enqueued0 = await counter(bridge, 'messages_enqueued_total', {});
  const dup0 = await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'duplicate' });
  const logs0 = bridge.logs.length;
  const datagrams = cases.map((c) => schedulerDatagram({ taskId: c.taskId, appId: c.appId, executionId: randomUUID(), taskName: c.name }));
  const before = await received(bridge);
  await sendDatagrams(udpPort, datagrams);
  await settled(bridge, before + cases.length);
  assert.equal((await counter(bridge, 'messages_enqueued_total', {})) - enqueued0, 0);
  const warnings = bridge.logs
    .slice(logs0)
    .map((l) => JSON.parse(l) as { level: string; msg: string })
    .filter((l) => l.level === 'warn')
    .map((l) => l.msg);
  for (const c of cases) assert.ok(warnings.some((w) => w.includes(`"${c.name}"`) && c.log.test(w)), `a warning for the ${c.name}: ${warnings.join(' | ')}`);
  // Handled means burned: the same datagrams again are duplicates.
  await sendDatagrams(udpPort, datagrams);
  await settled(bridge, before + 2 * cases.length);
  assert.equal((await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'duplicate' })) - dup0, cases.length);
  await marker();
  assert.deepEqual(after_(start).filter((m) => !m.text.includes('marker')).map((m) => m.topic), []);
});

test('/scheduler-distribute/ and /engine-reload-failed/ are accepted and logged, nothing published', async () => {
  const start = sub.messages.length;
  const accepted0 = await counter(bridge, 'events_accepted_total', { source: 'udp_task' });
  const enqueued0 = await counter(bridge, 'messages_enqueued_total', {});
  const logs0 = bridge.logs.length;
  const before = await received(bridge);
  await sendDatagrams(udpPort, [
    schedulerDatagram({ type: '/scheduler-distribute/', taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: randomUUID(), message: 'Distribution finished; 3 apps' }),
    `/engine-reload-failed/;sense-engine-1;${SAMPLE_APP_ID};${randomUUID()};CORP;anna;2026-11-20 02:03:12,345;ERROR;Reload failed`,
  ]);
  await settled(bridge, before + 2);
  assert.equal((await counter(bridge, 'events_accepted_total', { source: 'udp_task' })) - accepted0, 2);
  assert.equal((await counter(bridge, 'messages_enqueued_total', {})) - enqueued0, 0);
  const lines = bridge.logs.slice(logs0).join('\n');
  assert.match(lines, /\/scheduler-distribute\/ event received from sense-sched-1/);
  assert.match(lines, /\/engine-reload-failed\/ event received from sense-engine-1/);
  await marker();
  assert.deepEqual(after_(start).filter((m) => !m.text.includes('marker')).map((m) => m.topic), []);
});

test('a datagram refused for its app id does not take the executionId: the corrected resend is alerted', async () => {
  const executionId = randomUUID();
  const bad0 = await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'invalid_app_id' });
  const start = sub.messages.length;
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: 'not-a-guid', executionId }));
  await waitFor(async () => (await counter(bridge, 'events_rejected_total', { source: 'udp_task', reason: 'invalid_app_id' })) === bad0 + 1, 5000, 'the rejection');
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId }));
  await waitFor(() => withExecutionId(after_(start), executionId).length === 1, 10_000, 'the corrected alert');
});

test('configQRS.host empty (the shipped config): basic + full with "enrichmentError":"QRS not configured"; success alerts stay off', async () => {
  const port = await freeUdpPort();
  const b = await startInProcess(alertConfig(broker.port, port, 'noqrs', { configQRS: { host: '' } }));
  try {
    await b.app.connection!.waitConnected(5000);
    const executionId = randomUUID();
    const start = sub.messages.length;
    await sendDatagrams(port, [
      schedulerDatagram({ type: '/scheduler-reloadtask-success/', taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: randomUUID() }),
      schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId }),
    ]);
    await waitFor(() => after_(start).length >= 2, 10_000, 'two alerts');
    await sleep(300);
    const got = after_(start);
    assert.deepEqual(got.map((m) => m.topic), [FAILED, FAILED_FULL]);
    assert.equal(got[0]!.text, 'Nightly finance reload');
    assert.equal(
      got[1]!.text,
      '{"hostName":"sense-sched-1","user":"CORP\\\\anna","taskName":"Nightly finance reload",' +
        `"taskId":"${SAMPLE_TASK_ID}","appName":"Finance dashboard","appId":"${SAMPLE_APP_ID}",` +
        '"logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"ERROR",' +
        `"executionId":"${executionId}","logMessage":"Max retries reached",` +
        '"qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],' +
        '"qs_taskMetadata":{},"enrichmentError":"QRS not configured"}',
    );
    assert.equal(await counter(b, 'events_accepted_total', { source: 'udp_task' }), 2);
  } finally {
    await b.stop();
  }
});

test('taskFailureSendFull / taskAbortedSendFull false: only the basic messages', async () => {
  const port = await freeUdpPort();
  const b = await startInProcess(alertConfig(broker.port, port, 'basiconly', { mqttConfig: { taskFailureSendFull: false, taskAbortedSendFull: false } }));
  try {
    await b.app.connection!.waitConnected(5000);
    const start = sub.messages.length;
    await sendDatagrams(port, [
      schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: randomUUID(), taskName: 'basic failed' }),
      schedulerDatagram({ type: '/scheduler-reload-aborted/', taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: randomUUID(), taskName: 'basic aborted' }),
    ]);
    await settled(b, 2);
    await waitFor(() => b.app.outbox!.depth === 0, 5000, 'outbox to drain');
    await marker(); // through the main bridge: everything before it has crossed the broker
    const got = after_(start).filter((m) => !m.text.includes('marker'));
    assert.deepEqual(got.map((m) => [m.topic, m.text]).sort(), [[ABORTED, 'basic aborted'], [FAILED, 'basic failed']]);
  } finally {
    await b.stop();
  }
});

test('P3 is delivered even when the broker comes later; a port that cannot be bound stops the start-up and announces nothing', async () => {
  const late = await startBroker({ persistence: true });
  const lateSub = await collect(late.url, STATUS, { clean: false, clientId: `late-${randomUUID().slice(0, 8)}`, reconnectPeriod: 100 });
  await late.stop(); // graceful: Mosquitto saves its sessions, this subscription included, as it stops
  const port = await freeUdpPort();
  // The port is taken: the listener cannot bind and the bridge does not start. Every listener binds
  // before anything is announced, so no "error" is left in the outbox for the next start to publish
  // (that start's listener works: it says "start").
  const squatter = dgram.createSocket('udp4');
  await new Promise<void>((r) => squatter.bind(port, '127.0.0.1', () => r()));
  const file = alertConfig(late.port, port, 'late');
  await assert.rejects(startInProcess(file), /UDP task events listener/);
  await new Promise<void>((r) => squatter.close(() => r()));
  const b = await startInProcess(file);
  try {
    assert.equal(b.app.connection!.connected, false);
    await waitFor(() => b.app.outbox!.depth >= 1, 5000, '"start" in the outbox');
    await late.restart();
    await lateSub.waitForCount(1, 15_000, STATUS);
    // Watched for 1 s more: the broker delivers the whole outbox in one burst (two messages would
    // arrive within milliseconds), so a second message would be here by then.
    await sleep(1000);
    assert.deepEqual(lateSub.texts(STATUS), ['start']);
  } finally {
    await b.stop();
    await lateSub.close();
    await late.stop();
  }
});
