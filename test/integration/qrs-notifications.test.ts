// Task outcomes from QRS change notifications end to end: the QRS simulator over HTTPS with client
// certificates registers the bridge's subscription and calls its callback endpoint when an execution
// changes; the bridge fetches each result, publishes on a real broker. Expected payloads are written
// out by hand from the simulator's fixture objects.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector, type Received } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID, buildTask, guidFor, type QrsExecutionResultFull } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';

const FAILED = 'qliksense/task_failure';
const FAILED_FULL = 'qliksense/task_failure_full';
const ABORTED = 'qliksense/task_aborted';
const ABORTED_FULL = 'qliksense/task_aborted_full';
const ROOT = 'qliksense/task';

const tmp = tempDir('bm-qrs-notify-');
let pki: TestPki;
let sim: QrsSimulator;
let broker: TestBroker;
let sub: Collector;
let bridge: InProcessBridge | null = null;
let httpPort: number;
let udpPort: number;
let configFile: string;

const EXTERNAL_ID = guidFor('task:external');
const USERSYNC_ID = guidFor('task:usersync');

function callbackUrl(): string {
  return `http://127.0.0.1:${httpPort}/v4/qrs/notification`;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  return bridge!.app.metrics.total(`butler_mqtt_${name}`, labels);
}

/** Messages on a topic that name this execution id. */
function withExecution(topic: string, executionId: string): Received[] {
  return sub.on(topic).filter((m) => m.text.includes(`"executionId":"${executionId}"`));
}

async function startBridge(waitForSubscription = true): Promise<void> {
  bridge = await startInProcess(configFile);
  await bridge.app.connection!.waitConnected(5000);
  if (waitForSubscription) await waitFor(() => [...sim.notifications.values()].some((n) => n.url === callbackUrl()), 10_000, 'the bridge to register its subscription');
}

/** Waits for the state message of an execution: the last of the messages an execution publishes. */
async function allPublished(taskId: string, executionId: string): Promise<void> {
  await waitFor(() => withExecution(`${ROOT}/${taskId}/state`, executionId).length >= 1, 10_000, `the state message of execution ${executionId}`);
}

/** Waits until the bridge's QRS lane has nothing left (accepted inputs all handled). */
async function drained(): Promise<void> {
  await waitFor(() => bridge!.app.inbox!.depth === 0, 15_000, 'the inbox to drain');
}

before(async () => {
  pki = await createTestPki();
  sim = await QrsSimulator.start({ pki });
  sim.addTask(buildTask({ id: EXTERNAL_ID, name: 'Copy files to archive', taskType: 1, app: null, tags: ['Ops'], customProperties: [] }));
  sim.addTask(buildTask({ id: USERSYNC_ID, name: 'Sync CORP directory', taskType: 2, app: null, tags: [], customProperties: [] }));
  broker = await startBroker();
  sub = await collect(broker.url, 'qliksense/#');
  httpPort = await freePort();
  udpPort = await freeUdpPort();
  const butler = deepMerge(baseButler(broker.port), {
    mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') } },
    udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort },
    restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    qrsChangeNotifications: { enable: true, callbackUrl: `http://127.0.0.1:${httpPort}/v4/qrs/notification`, catchUpIntervalSeconds: 5, lookbackMinutes: 60 },
    ...senseConnection(sim.port, pki, { timeoutMs: 2000, retries: 1, cacheTtlSeconds: 0 }),
  });
  configFile = writeConfig(tmp.dir, butler);
  await startBridge();
});

after(async () => {
  await bridge?.stop();
  await sub?.close();
  await broker?.stop();
  await sim?.stop();
  await pki?.cleanup();
  tmp.cleanup();
});

test('the subscription: ExecutionResult updates, the callback URL as a JSON string body', async () => {
  const posts = sim.requestsTo('/qrs/notification', 'POST');
  assert.equal(posts.length, 1);
  assert.equal(posts[0]!.query['name'], 'ExecutionResult');
  assert.equal(posts[0]!.query['changetype'], 'Update');
  assert.equal(posts[0]!.body, JSON.stringify(callbackUrl()));
  // Only changes into a final status are called back: Aborted, FinishedSuccess, FinishedFail, Skipped, Error, Reset.
  assert.equal(posts[0]!.query['filter'], 'status eq 6 or status eq 7 or status eq 8 or status eq 9 or status eq 11 or status eq 12');
  assert.equal(posts[0]!.clientCertCN, 'butler-mqtt');
});

test('a reload task fails (callback path): Butler\'s failure messages, the execution and the retained state', async (t) => {
  const t0 = Date.now();
  const result = await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail', { message: 'Task finished with state FinishedFail' });
  const changedAt = Date.parse(result.stopTime);
  await waitFor(() => withExecution(FAILED_FULL, result.executionID).length === 1, 10_000, 'the full failure message', 2);
  const latency = Date.now() - changedAt;
  await waitFor(() => withExecution(`${ROOT}/${SAMPLE_TASK_ID}/state`, result.executionID).length === 1, 10_000, 'the state');
  t.diagnostic(`callback path: status change → MQTT failure message in ${latency} ms (run started ${changedAt - t0} ms before the final change)`);

  const failures = sub.texts(FAILED);
  assert.equal(failures.at(-1), 'Nightly finance reload');
  const full = JSON.parse(withExecution(FAILED_FULL, result.executionID)[0]!.text) as Record<string, unknown>;
  const task = sim.tasks.get(SAMPLE_TASK_ID)!;
  const app = sim.apps.get(SAMPLE_APP_ID)!;
  const stop = result.stopTime; // e.g. 2026-12-06T20:01:02.345Z → 2026-12-06 20:01:02,345
  assert.deepEqual(Object.keys(full), [
    'hostName', 'user', 'taskName', 'taskId', 'appName', 'appId', 'logTimeStamp', 'logLevel', 'executionId', 'logMessage',
    'qs_appTags', 'qs_appCustomProperties', 'qs_taskTags', 'qs_taskCustomProperties', 'qs_taskMetadata',
  ]);
  assert.equal(full['hostName'], 'sense-sched-1.corp.example');
  assert.equal(full['user'], 'INTERNAL\\sa_scheduler');
  assert.equal(full['taskName'], 'Nightly finance reload');
  assert.equal(full['taskId'], SAMPLE_TASK_ID);
  assert.equal(full['appName'], 'Finance dashboard');
  assert.equal(full['appId'], SAMPLE_APP_ID);
  assert.equal(full['logTimeStamp'], `${stop.slice(0, 10)} ${stop.slice(11, 19)},${stop.slice(20, 23)}`);
  assert.equal(full['logLevel'], 'ERROR');
  assert.equal(full['logMessage'], 'Task finished with state FinishedFail');
  assert.deepEqual(full['qs_appTags'], ['Finance']);
  assert.deepEqual(full['qs_appCustomProperties'], [{ name: 'ServiceLevel', value: 'Gold' }]);
  assert.deepEqual(full['qs_taskTags'], ['Nightly', 'Finance']);
  assert.deepEqual(full['qs_taskCustomProperties'], [{ name: 'CostCenter', value: 'Finance' }]);
  assert.equal((full['qs_taskMetadata'] as Record<string, unknown>)['id'], task.id);
  assert.equal(app.name, 'Finance dashboard');

  const execution = JSON.parse(sub.on(`${ROOT}/${SAMPLE_TASK_ID}/execution`).find((m) => m.text.includes(result.executionID))!.text) as Record<string, unknown>;
  assert.equal(execution['status'], 'FinishedFail');
  assert.equal(execution['statusCode'], 8);
  assert.equal(execution['taskType'], 'ReloadTask');
  assert.equal(execution['executionResultId'], result.id);
  assert.equal(execution['appId'], SAMPLE_APP_ID);
  assert.equal(execution['duration'], result.duration);

  const stateMsg = withExecution(`${ROOT}/${SAMPLE_TASK_ID}/state`, result.executionID)[0]!;
  assert.deepEqual(JSON.parse(stateMsg.text), {
    taskId: SAMPLE_TASK_ID,
    taskName: 'Nightly finance reload',
    taskType: 'ReloadTask',
    status: 'FinishedFail',
    executionId: result.executionID,
    startTime: result.startTime,
    stopTime: result.stopTime,
    duration: result.duration,
    executingNodeName: 'sense-sched-1.corp.example',
    consecutiveFailures: 1,
    lastSuccessTime: null,
  });
  // QRS calls for this execution: one GET per callback (Triggered, Started, FinishedFail) + task + app.
  const calls = sim.requests.filter((r) => r.at >= t0 && r.path.startsWith('/qrs/') && !r.path.startsWith('/qrs/executionresult/full'));
  t.diagnostic(`QRS calls for one failed reload (callback path): ${calls.length} (${calls.map((c) => c.path.replace(/[0-9a-f-]{36}/, '{id}')).join(', ')})`);
});

test('latency over 20 executions, callback path: status change in QRS → failure alert on the broker', async (t) => {
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    const result = await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail', { steps: false });
    await waitFor(() => withExecution(FAILED_FULL, result.executionID).length === 1, 10_000, `alert ${i}`, 1);
    latencies.push(Date.now() - Date.parse(result.stopTime));
  }
  latencies.sort((a, b) => a - b);
  t.diagnostic(`callback path latency over 20: min ${latencies[0]} ms, median ${latencies[10]} ms, max ${latencies[19]} ms`);
  assert.equal(latencies.length, 20);
});

test('external program and user sync outcomes appear on the execution and state topics; no reload alert', async () => {
  const failuresBefore = sub.on(FAILED).length;
  const ext = await sim.runExecution(EXTERNAL_ID, 'FinishedSuccess');
  const sync = await sim.runExecution(USERSYNC_ID, 'FinishedFail');
  await waitFor(() => withExecution(`${ROOT}/${EXTERNAL_ID}/state`, ext.executionID).length === 1 && withExecution(`${ROOT}/${USERSYNC_ID}/state`, sync.executionID).length === 1, 10_000, 'both states');
  const extExec = JSON.parse(withExecution(`${ROOT}/${EXTERNAL_ID}/execution`, ext.executionID)[0]!.text) as Record<string, unknown>;
  assert.equal(extExec['taskType'], 'ExternalProgramTask');
  assert.equal(extExec['status'], 'FinishedSuccess');
  assert.equal(extExec['appId'], null);
  assert.equal(extExec['taskName'], 'Copy files to archive');
  const extState = JSON.parse(withExecution(`${ROOT}/${EXTERNAL_ID}/state`, ext.executionID)[0]!.text) as Record<string, unknown>;
  assert.equal(extState['consecutiveFailures'], 0);
  assert.equal(extState['lastSuccessTime'], ext.stopTime);
  const syncState = JSON.parse(withExecution(`${ROOT}/${USERSYNC_ID}/state`, sync.executionID)[0]!.text) as Record<string, unknown>;
  assert.equal(syncState['taskType'], 'UserSyncTask');
  assert.equal(syncState['status'], 'FinishedFail');
  assert.equal(syncState['consecutiveFailures'], 1);
  assert.equal(sub.on(FAILED).length, failuresBefore, 'Butler\'s reload alerts are for reload tasks only');
});

test('a forged callback naming an unknown or a successful execution causes lookups, never a failure alert', async () => {
  const ok = await sim.runExecution(SAMPLE_TASK_ID, 'FinishedSuccess');
  await allPublished(SAMPLE_TASK_ID, ok.executionID);
  await drained();
  const failuresBefore = sub.on(FAILED).length;
  const messagesBefore = sub.messages.length;
  const unknownBefore = await metric('events_rejected_total', { source: 'qrs_notification', reason: 'unknown_execution_result' });
  const forgedUnknown = await sim.callback(callbackUrl(), JSON.stringify([{ objectType: 'ExecutionResult', objectID: randomUUID(), changeType: 2, status: 8, taskID: SAMPLE_TASK_ID }]));
  const forgedSuccess = await sim.callback(callbackUrl(), JSON.stringify([{ objectType: 'ExecutionResult', objectID: ok.id, changeType: 2, status: 8 }]));
  const notJson = await sim.callback(callbackUrl(), 'status=FinishedFail');
  // Any content type is read as JSON text (QRS's is not documented).
  const plain = await fetch(callbackUrl(), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify([{ objectType: 'ExecutionResult', objectID: ok.id }]) });
  assert.equal(plain.status, 204);
  const plainGarbage = await fetch(callbackUrl(), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
  assert.equal(plainGarbage.status, 400);
  assert.equal(forgedUnknown.status, 204);
  assert.equal(forgedSuccess.status, 204);
  assert.equal(notJson.status, 400);
  await waitFor(async () => (await metric('events_rejected_total', { source: 'qrs_notification', reason: 'unknown_execution_result' })) === unknownBefore + 1, 10_000, 'the unknown id to be looked up');
  await drained();
  // A marker execution after the forged callbacks were handled: its messages are committed after anything
  // they could have caused and leave on the same connection after it, so once its state is here, so is that.
  const marker = await sim.runExecution(EXTERNAL_ID, 'FinishedSuccess');
  await allPublished(EXTERNAL_ID, marker.executionID);
  assert.equal(sub.on(FAILED).length, failuresBefore);
  const since = sub.messages.slice(messagesBefore).filter((m) => m.topic.startsWith('qliksense/task') && !m.text.includes(`"executionId":"${marker.executionID}"`));
  assert.deepEqual(since, [], 'nothing published for either forged callback');
  assert.ok(sim.requestsTo(`/qrs/executionresult/${ok.id}`).length >= 2, 'the successful execution was looked up again');
});

test('both sources on: one alert per execution, whichever source comes first', async () => {
  // The log appender's datagram first, then QRS.
  const first = randomUUID();
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: first }));
  await waitFor(() => withExecution(FAILED_FULL, first).length === 1, 10_000, 'the UDP alert');
  await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail', { executionId: first });
  await waitFor(() => withExecution(`${ROOT}/${SAMPLE_TASK_ID}/execution`, first).length === 1, 10_000, 'the QRS execution message');
  // QRS first, then the datagram.
  const second = randomUUID();
  await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail', { executionId: second });
  await waitFor(() => withExecution(FAILED_FULL, second).length === 1, 10_000, 'the QRS alert');
  const dupBefore = await metric('events_rejected_total', { source: 'udp_task', reason: 'duplicate' });
  await sendDatagram(udpPort, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: second }));
  await waitFor(async () => (await metric('events_rejected_total', { source: 'udp_task', reason: 'duplicate' })) === dupBefore + 1, 10_000, 'the datagram to be a duplicate');
  // And a catch-up read that finds both again changes nothing.
  await drained();
  await allPublished(SAMPLE_TASK_ID, first);
  await allPublished(SAMPLE_TASK_ID, second);
  for (const id of [first, second]) {
    assert.equal(withExecution(FAILED_FULL, id).length, 1, `one full alert for ${id}`);
    assert.equal(sub.on(FAILED).length, sub.on(FAILED_FULL).length, 'basic and full alerts pair up');
    assert.equal(withExecution(`${ROOT}/${SAMPLE_TASK_ID}/execution`, id).length, 1, `one execution message for ${id}`);
  }
});

test('QRS down during catch-up: retried, nothing lost (callbacks lost too)', async (t) => {
  sim.callbacksOn = false;
  const results: QrsExecutionResultFull[] = [];
  for (let i = 0; i < 3; i++) results.push(await sim.runExecution(SAMPLE_TASK_ID, i === 2 ? 'Aborted' : 'FinishedFail'));
  const finalAt = Date.parse(results.at(-1)!.stopTime);
  sim.setFailing(503);
  const failuresBefore = await metric('qrs_catchup_failures_total', {});
  await waitFor(async () => (await metric('qrs_catchup_failures_total', {})) > failuresBefore, 15_000, 'a failed catch-up');
  assert.equal(results.filter((r) => withExecution(`${ROOT}/${SAMPLE_TASK_ID}/execution`, r.executionID).length > 0).length, 0);
  const downFor = Date.now();
  sim.setFailing(null);
  sim.callbacksOn = true;
  await waitFor(() => results.every((r) => withExecution(`${ROOT}/${SAMPLE_TASK_ID}/execution`, r.executionID).length === 1), 20_000, 'every execution after QRS is back');
  t.diagnostic(`catch-up path: status change → MQTT in ${Date.now() - finalAt} ms, of which QRS was down ${downFor - finalAt} ms (catch-up interval 5 s, backoff after failures)`);
  await drained();
  assert.equal(withExecution(FAILED_FULL, results[0]!.executionID).length, 1);
  assert.equal(withExecution(FAILED_FULL, results[1]!.executionID).length, 1);
  assert.equal(withExecution(ABORTED_FULL, results[2]!.executionID).length, 1);
  assert.equal(sub.texts(ABORTED).at(-1), 'Nightly finance reload');
});

test('10 executions finish while the bridge is stopped: after the restart each is alerted once, the states are right', async () => {
  const taskA = sim.addTask(buildTask({ name: 'Sales reload A', app: sim.apps.get(SAMPLE_APP_ID)! }));
  const taskB = sim.addTask(buildTask({ name: 'Sales reload B', app: sim.apps.get(SAMPLE_APP_ID)! }));
  await bridge!.stop();
  bridge = null;
  assert.equal(sim.notifications.size, 0, 'a clean stop deletes the subscription');
  const handlesBefore = sim.requestsTo('/qrs/notification', 'POST').length;
  const results: { r: QrsExecutionResultFull; aborted: boolean }[] = [];
  for (let i = 0; i < 7; i++) results.push({ r: await sim.runExecution(taskA.id, 'FinishedFail'), aborted: false });
  for (let i = 0; i < 3; i++) results.push({ r: await sim.runExecution(taskB.id, i === 1 ? 'Aborted' : 'FinishedFail'), aborted: i === 1 });
  const startCount = sub.messages.length;
  await startBridge();
  assert.equal(sim.requestsTo('/qrs/notification', 'POST').length, handlesBefore + 1);
  await waitFor(() => results.every(({ r, aborted }) => withExecution(aborted ? ABORTED_FULL : FAILED_FULL, r.executionID).length === 1), 20_000, 'all 10 alerts');
  await drained();
  for (const { r, aborted } of results) assert.equal(withExecution(aborted ? ABORTED_FULL : FAILED_FULL, r.executionID).length, 1);
  const newAlerts = sub.messages.slice(startCount).filter((m) => m.topic === FAILED || m.topic === ABORTED);
  assert.deepEqual(newAlerts.map((m) => m.text).sort(), [...Array(7).fill('Sales reload A'), ...Array(3).fill('Sales reload B')]);

  // A consumer that subscribes now sees the current state of every task at once (retained).
  const late = await collect(broker.url, `${ROOT}/+/state`);
  try {
    await waitFor(() => late.on(`${ROOT}/${taskA.id}/state`).length > 0 && late.on(`${ROOT}/${taskB.id}/state`).length > 0, 10_000, 'retained states');
    const a = JSON.parse(late.on(`${ROOT}/${taskA.id}/state`).at(-1)!.text) as Record<string, unknown>;
    const b = JSON.parse(late.on(`${ROOT}/${taskB.id}/state`).at(-1)!.text) as Record<string, unknown>;
    assert.equal(a['consecutiveFailures'], 7);
    assert.equal(a['executionId'], results[6]!.r.executionID);
    assert.equal(a['status'], 'FinishedFail');
    assert.equal(b['consecutiveFailures'], 3);
    assert.equal(b['executionId'], results[9]!.r.executionID);
    assert.equal(b['lastSuccessTime'], null);
    assert.ok(late.on(`${ROOT}/${SAMPLE_TASK_ID}/state`).length > 0, 'the sample task state is retained too');
  } finally {
    await late.close();
  }

  // A success resets the count, durably.
  const ok = await sim.runExecution(taskA.id, 'FinishedSuccess');
  await waitFor(() => withExecution(`${ROOT}/${taskA.id}/state`, ok.executionID).length === 1, 10_000, 'the success state');
  const state = JSON.parse(withExecution(`${ROOT}/${taskA.id}/state`, ok.executionID)[0]!.text) as Record<string, unknown>;
  assert.equal(state['consecutiveFailures'], 0);
  assert.equal(state['lastSuccessTime'], ok.stopTime);
});

test('catch-up path alone (callbacks lost): the outcome arrives within one catch-up interval', async (t) => {
  sim.callbacksOn = false;
  try {
    const result = await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail');
    await waitFor(() => withExecution(FAILED_FULL, result.executionID).length === 1, 10_000, 'the alert from the catch-up read', 2);
    const latency = Date.now() - Date.parse(result.stopTime);
    t.diagnostic(`catch-up path: status change → MQTT failure message in ${latency} ms (catchUpIntervalSeconds 5)`);
    assert.ok(latency < 5000 + 2000, `within one interval and a little (${latency} ms)`);
    assert.equal(withExecution(FAILED_FULL, result.executionID).length, 1);
  } finally {
    sim.callbacksOn = true;
  }
});

test('registration failures are retried with backoff and reported (readiness, metric), never a crash', async () => {
  await bridge!.stop();
  bridge = null;
  sim.failNext(3, 503, '/qrs/notification');
  await startBridge(false);
  await waitFor(() => bridge!.app.readiness().reasons.some((r) => r.startsWith('QRS change subscription not registered')), 5000, 'the readiness reason');
  await waitFor(async () => (await metric('qrs_notification_registration_failures_total', {})) >= 1, 5000, 'the failure metric');
  await waitFor(() => [...sim.notifications.values()].some((n) => n.url === callbackUrl()), 15_000, 'the subscription after the retries');
  await waitFor(() => !bridge!.app.readiness().reasons.some((r) => r.startsWith('QRS change subscription')), 5000, 'the reason to clear');
  assert.equal(sim.notifications.size, 1);
});

test('a subscription that could not be deleted at stop (QRS hanging) is deleted at the next start, then a new one registered', async () => {
  const [old] = [...sim.notifications.keys()];
  assert.ok(old);
  sim.setHang(true);
  const t0 = Date.now();
  await bridge!.stop();
  bridge = null;
  const stopMs = Date.now() - t0;
  sim.setHang(false);
  assert.ok(stopMs < 15_000, `the stop is bounded (${stopMs} ms)`);
  assert.ok(sim.notifications.has(old), 'still registered in QRS');
  // Not startBridge(): its wait for a subscription with this callback URL is met by the old one at once.
  bridge = await startInProcess(configFile);
  await waitFor(() => !sim.notifications.has(old) && sim.notifications.size === 1, 10_000, 'the old handle deleted and a new one registered');
  const deleted = sim.requestsTo('/qrs/notification', 'DELETE').find((r) => r.query['handle'] === old && r.at > t0 + stopMs);
  const registered = sim.requestsTo('/qrs/notification', 'POST').filter((r) => r.at > t0 + stopMs);
  assert.ok(deleted, 'the old handle was deleted by the new start');
  assert.equal(registered.length, 1);
  assert.ok(deleted.at <= registered[0]!.at, 'deleted before the new one was registered');
});

test('a QRS that refuses the status filter: subscribed to every update instead, outcomes still alerted once', async () => {
  await bridge!.stop();
  bridge = null;
  sim.failNext(1, 400, '/qrs/notification');
  await startBridge();
  const subscription = [...sim.notifications.values()].find((n) => n.url === callbackUrl())!;
  assert.equal(subscription.filter, null);
  const result = await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail');
  await allPublished(SAMPLE_TASK_ID, result.executionID);
  await drained();
  assert.equal(withExecution(FAILED_FULL, result.executionID).length, 1);
  assert.equal(withExecution(`${ROOT}/${SAMPLE_TASK_ID}/execution`, result.executionID).length, 1);
});
