// Starting Sense tasks from MQTT against a real broker and the QRS simulator: which payloads start a
// task (the simulator's request log is the proof), the start filter resolved through QRS, the result
// topic's exact JSON, redeliveries started once, the REST endpoint as a way in, and no QRS configured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient, type IPublishPacket } from 'mqtt';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator, guidFor } from '../support/qrs-simulator.ts';

const START_TOPIC = 'qliksense/start_task';
const RESULT_TOPIC = 'qliksense/start_task_result';

// Allowed by id (startTaskFilter.allowTask.taskId).
const T_PLAIN = guidFor('mqtt-start:plain');
const T_JSON = guidFor('mqtt-start:json');
const T_DUP = guidFor('mqtt-start:dup');
const T_PACKET = guidFor('mqtt-start:packet');
const T_REST = guidFor('mqtt-start:rest');
const T_EXTRA = guidFor('mqtt-start:extra');
const NIL = '00000000-0000-0000-0000-000000000000';
// Allowed through QRS: by tag, by custom property.
const T_TAG = guidFor('mqtt-start:tag');
const T_CP = guidFor('mqtt-start:cp');
// Denied: other tag and value; and a task where name and value match only on two different properties.
const T_DENIED = guidFor('mqtt-start:denied');
const T_CROSS = guidFor('mqtt-start:cross');
const T_NOQRS = guidFor('mqtt-start:noqrs');

const tmp = tempDir();
let pki: TestPki;
let sim: QrsSimulator;
let broker: TestBroker;
let bridge: InProcessBridge;
let restUrl: string;
let pub: MqttClient;
let results: Collector;

function qrsConfig(): Record<string, unknown> {
  return senseConnection(sim.port, pki, { retries: 0, timeoutMs: 3000 });
}

/** Start requests the simulator received for exactly this path segment (case kept). */
function starts(id: string): number {
  return sim.requests.filter((r) => r.method === 'POST' && r.path === `/qrs/task/${id}/start`).length;
}

function anyStartFor(text: string): boolean {
  return sim.requests.some((r) => r.method === 'POST' && decodeURIComponent(r.path).includes(text));
}

async function command(payload: string | Buffer, topic = START_TOPIC, opts: { dup?: boolean } = {}): Promise<void> {
  await pub.publishAsync(topic, payload, { qos: 1, ...opts });
}

/** Waits for the n-th result message about a task id (null: results without a task id). */
async function resultsFor(taskId: string | null, n = 1, timeoutMs = 10_000): Promise<string[]> {
  const mine = () => results.texts(RESULT_TOPIC).filter((t) => (JSON.parse(t) as { taskId: string | null }).taskId === taskId);
  await waitFor(() => mine().length >= n, timeoutMs, `${n} result(s) for ${taskId}`);
  return mine();
}

const rejected = (reason: string) => bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'mqtt_command', reason });
const received = () => bridge.app.metrics.total('butler_mqtt_events_received_total', { source: 'mqtt_command' });

before(async () => {
  pki = await createTestPki();
  sim = await QrsSimulator.start({ pki, empty: true });
  for (const id of [T_PLAIN, T_JSON, T_DUP, T_PACKET, T_REST, T_EXTRA]) sim.addReloadTask({ id, name: `Task ${id.slice(0, 8)}`, tags: ['Nightly'], customProperties: [] });
  sim.addReloadTask({ id: T_TAG, name: 'Tagged for MQTT', tags: ['Nightly', 'StartViaMqtt'], customProperties: [] });
  sim.addReloadTask({ id: T_CP, name: 'Finance group', tags: [], customProperties: [{ name: 'StartGroup', value: 'Finance' }] });
  sim.addReloadTask({ id: T_DENIED, name: 'Not allowed', tags: ['Other'], customProperties: [{ name: 'StartGroup', value: 'Sales' }] });
  sim.addReloadTask({ id: T_CROSS, name: 'Crossed properties', tags: [], customProperties: [{ name: 'StartGroup', value: 'Sales' }, { name: 'Region', value: 'Finance' }] });

  broker = await startBroker();
  const httpPort = await freePort();
  restUrl = `http://127.0.0.1:${httpPort}`;
  const butler = deepMerge(deepMerge(baseButler(broker.port), qrsConfig()), {
    mqttConfig: { taskStartResultTopic: RESULT_TOPIC, delivery: { outboxFile: `${tmp.dir}/main/outbox.sqlite` } },
    startTaskFilter: {
      enable: true,
      allowTask: {
        taskId: [T_PLAIN, T_JSON, T_DUP, T_PACKET, T_REST, T_EXTRA, NIL],
        tag: ['StartViaMqtt'],
        customProperty: [{ name: 'StartGroup', value: 'Finance' }],
      },
    },
    restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    restServerEndpointsEnable: { mqttPublishMessage: true },
  });
  bridge = await startInProcess(writeConfig(tmp.dir, butler, 'main.yaml'));
  await bridge.app.connection!.waitConnected(5000);
  results = await collect(broker.url, RESULT_TOPIC);
  pub = await mqtt.connectAsync(broker.url, { clientId: `cmd-${Math.random().toString(16).slice(2, 10)}` });
  // The bridge subscribes right after connecting; wait until it answers a command.
  await waitFor(async () => {
    await command('subscription-probe');
    await sleep(100);
    return results.texts(RESULT_TOPIC).length > 0;
  }, 10_000, 'the bridge to answer a command');
});

after(async () => {
  await bridge.stop();
  await pub.endAsync(true);
  await results.close();
  await broker.stop();
  await sim.stop();
  await pki.cleanup();
  tmp.cleanup();
});

test('a valid v4 UUID starts the task and the result says so', async () => {
  await command(T_PLAIN);
  const [r] = await resultsFor(T_PLAIN);
  assert.equal(r, `{"taskId":"${T_PLAIN}","correlationId":null,"status":"started","detail":"task ${T_PLAIN} started (task id is in startTaskFilter.allowTask.taskId)"}`);
  assert.equal(starts(T_PLAIN), 1);
  const req = sim.requests.find((x) => x.method === 'POST' && x.path === `/qrs/task/${T_PLAIN}/start`);
  assert.equal(req?.body, '{}');
});

test('an upper-case UUID starts the task, sent to QRS in upper case (allowed by tag, resolved through QRS)', async () => {
  const upper = T_TAG.toUpperCase();
  await command(upper);
  const [r] = await resultsFor(upper);
  assert.equal(r, `{"taskId":"${upper}","correlationId":null,"status":"started","detail":"task ${upper} started (task has the allowed tag \\"StartViaMqtt\\")"}`);
  assert.equal(starts(upper), 1);
  assert.deepEqual(sim.startedTasks.filter((t) => t.toLowerCase() === T_TAG), [upper]);
  // The filter was asked in Butler's syntax, narrowed to this task.
  const lookup = sim.requests.find((x) => x.path === '/qrs/task/full' && x.query['filter']?.startsWith(`(id eq ${upper})`));
  assert.equal(
    lookup?.query['filter'],
    `(id eq ${upper}) and ((tags.name eq 'StartViaMqtt') or ((customProperties.definition.name eq 'StartGroup') and (customProperties.value eq 'Finance')))`,
  );
});

test('a UUID with a trailing newline starts the task (trimmed; allowed by custom property)', async () => {
  await command(`${T_CP}\n`);
  const [r] = await resultsFor(T_CP);
  assert.equal(r, `{"taskId":"${T_CP}","correlationId":null,"status":"started","detail":"task ${T_CP} started (task has the allowed custom property StartGroup=Finance)"}`);
  assert.equal(starts(T_CP), 1);
});

test('"not-a-uuid" is refused: not started, logged once with the reason, counted, answered "invalid"', async () => {
  const rejectedBefore = await rejected('invalid_uuid');
  await command('not-a-uuid');
  const [r] = await resultsFor('not-a-uuid');
  assert.equal(r, '{"taskId":"not-a-uuid","correlationId":null,"status":"invalid","detail":"task id \\"not-a-uuid\\" is not a valid UUID"}');
  assert.equal(anyStartFor('not-a-uuid'), false);
  assert.equal(await rejected('invalid_uuid'), rejectedBefore + 1);
  const lines = bridge.logs.filter((l) => l.includes('not-a-uuid'));
  assert.equal(lines.length, 1);
  assert.match(lines[0] as string, /"level":"warn"/);
  assert.match(lines[0] as string, /invalid_uuid/);
});

test('an empty payload is refused: not started, counted, answered "invalid"', async () => {
  const startsBefore = sim.requests.filter((x) => x.method === 'POST').length;
  const emptyBefore = await rejected('empty');
  const nullResults = results.texts(RESULT_TOPIC).filter((t) => t.startsWith('{"taskId":null')).length;
  await command('');
  const all = await resultsFor(null, nullResults + 1);
  assert.equal(all[all.length - 1], '{"taskId":null,"correlationId":null,"status":"invalid","detail":"payload is empty; expected a task id"}');
  assert.equal(await rejected('empty'), emptyBefore + 1);
  assert.equal(sim.requests.filter((x) => x.method === 'POST').length, startsBefore);
});

test('JSON with a correlationId starts the task; the result carries the correlationId', async () => {
  await command(`{"taskId":"${T_JSON}","correlationId":"reload-2026-11-20/7"}`);
  const [r] = await resultsFor(T_JSON);
  assert.equal(r, `{"taskId":"${T_JSON}","correlationId":"reload-2026-11-20/7","status":"started","detail":"task ${T_JSON} started (task id is in startTaskFilter.allowTask.taskId)"}`);
  assert.equal(starts(T_JSON), 1);
});

test('a message on …/start_task/extra is not a command: ignored, not counted, not started', async () => {
  const receivedBefore = await received();
  await command(T_EXTRA, `${START_TOPIC}/extra`);
  // A marker on the real topic, answered synchronously; the broker keeps the order of one publisher.
  await command('marker-after-extra');
  await resultsFor('marker-after-extra');
  assert.equal(await received(), receivedBefore + 1);
  await sleep(300);
  assert.equal(starts(T_EXTRA), 0);
  assert.equal(results.texts(RESULT_TOPIC).filter((t) => t.includes(T_EXTRA)).length, 0);
});

test('a task outside the filter is denied: not started, result "denied"', async () => {
  await command(T_DENIED);
  const [r] = await resultsFor(T_DENIED);
  assert.equal(
    r,
    `{"taskId":"${T_DENIED}","correlationId":null,"status":"denied","detail":"task ${T_DENIED} is not allowed by startTaskFilter (not a listed task id, and no allowed tag or custom property value)"}`,
  );
  assert.equal(starts(T_DENIED), 0);
  assert.equal(sim.startedTasks.includes(T_DENIED), false);
});

test('name and value matching only on two different custom properties do not pass the filter', async () => {
  await command(T_CROSS);
  const [r] = await resultsFor(T_CROSS);
  assert.match(r as string, /"status":"denied"/);
  // QRS's own filter matched the task (it compares name and value per property separately) …
  assert.ok(sim.requests.some((x) => x.path === '/qrs/task/full' && x.query['filter']?.startsWith(`(id eq ${T_CROSS})`)));
  // … and the pair check on the returned object refused it.
  assert.equal(starts(T_CROSS), 0);
});

test('the same command sent again (same correlationId, DUP flag) starts the task once', async () => {
  const dupBefore = await rejected('duplicate');
  const payload = `{"taskId":"${T_DUP}","correlationId":"c-dup-1"}`;
  await command(payload);
  await command(payload, START_TOPIC, { dup: true });
  await command('marker-after-dup');
  await resultsFor('marker-after-dup');
  await resultsFor(T_DUP);
  await sleep(300);
  assert.equal(starts(T_DUP), 1);
  assert.deepEqual(results.texts(RESULT_TOPIC).filter((t) => t.includes(T_DUP)), [
    `{"taskId":"${T_DUP}","correlationId":"c-dup-1","status":"started","detail":"task ${T_DUP} started (task id is in startTaskFilter.allowTask.taskId)"}`,
  ]);
  assert.equal(await rejected('duplicate'), dupBefore + 1);
});

test('a broker redelivery of the same packet (DUP flag, same message id) starts the task once', async () => {
  // The main connection uses a clean session, so a broker never redelivers to it over the network;
  // the packets a redelivering broker would send are handed to the client as it would receive them.
  const connection = bridge.app.connection!;
  const packet = (dup: boolean): IPublishPacket => ({ cmd: 'publish', topic: START_TOPIC, payload: Buffer.from(T_PACKET), qos: 1, dup, retain: false, messageId: 4242 });
  connection.route(START_TOPIC, Buffer.from(T_PACKET), packet(false));
  connection.route(START_TOPIC, Buffer.from(T_PACKET), packet(true));
  await resultsFor(T_PACKET);
  await command('marker-after-packet');
  await resultsFor('marker-after-packet');
  await sleep(300);
  assert.equal(starts(T_PACKET), 1);
  assert.equal(results.texts(RESULT_TOPIC).filter((t) => t.includes(T_PACKET)).length, 1);
});

test('a task id published through the REST endpoint onto taskStartTopic starts the task; the filter applies', async () => {
  const put = (message: string) =>
    fetch(`${restUrl}/v4/mqttpublishmessage`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: START_TOPIC, message }) });
  assert.equal((await put(T_REST)).status, 201);
  const [ok] = await resultsFor(T_REST);
  assert.match(ok as string, /"status":"started"/);
  assert.equal(starts(T_REST), 1);

  const deniedBefore = results.texts(RESULT_TOPIC).filter((t) => t.includes(T_DENIED)).length;
  assert.equal((await put(T_DENIED)).status, 201);
  const denied = await resultsFor(T_DENIED, deniedBefore + 1);
  assert.match(denied[denied.length - 1] as string, /"status":"denied"/);
  assert.equal(starts(T_DENIED), 0);
});

test('the bridge subscribes to taskStartTopic alone: its own alerts and other topics under qliksense/# never reach it; with subscribeWholeRoot they do, and are ignored', async () => {
  // Every message the broker hands the connection goes through route(): record the topics.
  const seen = (b: InProcessBridge) => {
    const topics: string[] = [];
    const connection = b.app.connection!;
    const route = connection.route.bind(connection);
    connection.route = (topic, payload, packet) => {
      topics.push(topic);
      route(topic, payload, packet);
    };
    return topics;
  };
  const mainTopics = seen(bridge);
  // An alert topic and another topic under the root, then a command. One publisher, QoS 1: a broker
  // delivers one subscription's messages in the order they were published, so had the bridge been
  // subscribed to qliksense/#, the first two would have reached it before the command's answer.
  await pub.publishAsync('qliksense/task_failure', 'an alert as the bridge publishes it', { qos: 1 });
  await pub.publishAsync('qliksense/elsewhere', 'x', { qos: 1 });
  await command('marker-narrow');
  await resultsFor('marker-narrow');
  assert.deepEqual([...new Set(mainTopics)], [START_TOPIC]);

  const wide = await startInProcess(
    writeConfig(
      tmp.dir,
      deepMerge(deepMerge(baseButler(broker.port), qrsConfig()), {
        mqttConfig: { subscribeWholeRoot: true, taskStartResultTopic: 'wide/result', delivery: { outboxFile: `${tmp.dir}/wide/outbox.sqlite` } },
        startTaskFilter: { enable: true, allowTask: { taskId: [NIL], tag: [], customProperty: [] } },
      }),
      'wide.yaml',
    ),
  );
  const wideResults = await collect(broker.url, 'wide/result');
  try {
    await wide.app.connection!.waitConnected(5000);
    const wideTopics = seen(wide);
    await waitFor(async () => {
      await pub.publishAsync('qliksense/task_failure', 'an alert as the bridge publishes it', { qos: 1 });
      await sleep(100);
      return wideTopics.includes('qliksense/task_failure');
    }, 10_000, 'an alert topic delivered under the whole root');
    // Received, not taken as a command: nothing counted by the command source for it.
    const before = await wide.app.metrics.total('butler_mqtt_events_received_total', { source: 'mqtt_command' });
    await pub.publishAsync('qliksense/task_failure', 'again', { qos: 1 });
    await pub.publishAsync(START_TOPIC, 'marker-wide', { qos: 1 });
    await waitFor(() => wideResults.texts('wide/result').some((t) => t.includes('marker-wide')), 10_000, 'the answer to the marker');
    assert.equal(await wide.app.metrics.total('butler_mqtt_events_received_total', { source: 'mqtt_command' }), before + 1);
  } finally {
    await wideResults.close();
    await wide.stop();
  }
});

test('QRS refusing the start (unknown task) is answered "failed" with QRS\'s status', async () => {
  await command(NIL);
  const [r] = await resultsFor(NIL);
  assert.equal(r, `{"taskId":"${NIL}","correlationId":null,"status":"failed","detail":"task ${NIL} could not be started: QRS POST task/start answered HTTP 404"}`);
  assert.equal(starts(NIL), 1);
});

test('without configQRS.host: logged once at start, each command answered "failed", nothing started', async () => {
  const b2 = await startInProcess(
    writeConfig(
      tmp.dir,
      deepMerge(baseButler(broker.port), {
        mqttConfig: { taskStartTopic: 'noqrs/start_task', subscriptionRootTopic: 'noqrs/#', taskStartResultTopic: 'noqrs/result', delivery: { outboxFile: `${tmp.dir}/noqrs/outbox.sqlite` } },
      }),
      'noqrs.yaml',
    ),
  );
  const res = await collect(broker.url, 'noqrs/result');
  try {
    await b2.app.connection!.waitConnected(5000);
    const posts = sim.requests.filter((x) => x.method === 'POST').length;
    await waitFor(async () => {
      await pub.publishAsync('noqrs/start_task', T_NOQRS, { qos: 1 });
      await sleep(200);
      return res.texts('noqrs/result').length > 0;
    }, 10_000, 'an answer on noqrs/result');
    const expected = `{"taskId":"${T_NOQRS}","correlationId":null,"status":"failed","detail":"task start is unavailable: Butler.configQRS.host is empty, so there is no connection to the Qlik Sense repository"}`;
    assert.equal(res.texts('noqrs/result')[0], expected);
    await pub.publishAsync('noqrs/start_task', T_NOQRS, { qos: 1 });
    await waitFor(() => res.texts('noqrs/result').length >= 2, 5000, 'a second answer');
    assert.ok(res.texts('noqrs/result').every((t) => t === expected));
    assert.equal(b2.logs.filter((l) => l.includes('task start commands on noqrs/start_task are answered with status \\"failed\\"')).length, 1);
    assert.equal(sim.requests.filter((x) => x.method === 'POST').length, posts);
  } finally {
    await res.close();
    await b2.stop();
  }
});

test('a command kept retained by the broker is not started again when the bridge restarts (ignored, counted); a correlationId is remembered across the restart; an oversized one is refused', async () => {
  const T = T_EXTRA;
  const before = starts(T);
  // Published with the retain flag: a live subscriber gets it as an ordinary message (the broker
  // clears the flag), so it starts the task once; the broker keeps a copy for later subscribers.
  await pub.publishAsync(START_TOPIC, T, { qos: 1, retain: true });
  try {
    await waitFor(() => starts(T) === before + 1, 10_000, 'the live command started');
    await command(JSON.stringify({ taskId: T, correlationId: 'durable-1' }));
    const mine = () => results.texts(RESULT_TOPIC).filter((t) => t.includes('"correlationId":"durable-1"'));
    await waitFor(() => mine().length === 1, 10_000, 'the command answered');
    assert.equal(starts(T), before + 2);
    assert.equal(await rejected('retained'), 0);

    // A restart on the same store file: the broker sends the retained command to the new subscription.
    const file = bridge.app.config.file;
    await bridge.stop();
    bridge = await startInProcess(file);
    await bridge.app.connection!.waitConnected(5000);
    await waitFor(async () => (await rejected('retained')) === 1, 5000, 'the retained command ignored again after the restart');
    await command(JSON.stringify({ taskId: T, correlationId: 'durable-1' }));
    await waitFor(async () => (await rejected('duplicate')) === 1, 5000, 'the repeated correlationId counted as duplicate');
    assert.equal(starts(T), before + 2, 'neither the retained copy nor the same correlationId starts anything after the restart');

    const huge = 'x'.repeat(1_000_000);
    await command(JSON.stringify({ taskId: T, correlationId: huge }));
    await waitFor(async () => (await rejected('correlation_id_too_long')) === 1, 5000, 'the oversized correlationId refused');
    const answered = () => results.texts(RESULT_TOPIC).find((t) => t.includes('has 1000000 characters'));
    await waitFor(() => answered() !== undefined, 5000, 'the answer');
    const answer = answered();
    assert.equal(answer, '{"taskId":null,"correlationId":null,"status":"invalid","detail":"\\"correlationId\\" has 1000000 characters; at most 200 are accepted"}');
    assert.equal(starts(T), before + 2);
  } finally {
    await pub.publishAsync(START_TOPIC, '', { qos: 1, retain: true });
  }
});
