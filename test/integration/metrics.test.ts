// GET /metrics over real HTTP: valid Prometheus text, and exact counter movements while a scripted
// run sends reload-failure datagrams (enriched through the QRS simulator), bad and duplicate
// datagrams, and REST publish calls (accepted, invalid, unauthorized) — every message delivered.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { request } from 'undici';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki } from '../support/certs.ts';
import { QrsSimulator } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-metrics-');
after(() => tmp.cleanup());

const TOKEN = 'metrics-test-token-4711';

/** One sample line: name, labels, value (and an optional timestamp), as the text format 0.0.4 defines it. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*,?)?\})? (-?(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)|NaN|\+Inf|-Inf)(?: -?\d+)?$/;
const HELP = /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;
const TYPE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;

type Samples = Map<string, number>;

/** Parses the exposition; fails the test on any line that is not valid. Keys: name{a="x",b="y"} with labels sorted. */
function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  const typed = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    if (line.startsWith('#')) {
      const t = TYPE.exec(line);
      if (t) typed.set(t[1]!, t[2]!);
      else assert.match(line, HELP, `line ${i + 1} is a valid comment: ${line}`);
      return;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `line ${i + 1} is a valid sample: ${line}`);
    const name = m[1]!;
    const family = [...typed.keys()].find((f) => name === f || (/_(bucket|count|sum)$/.test(name) && name.replace(/_(bucket|count|sum)$/, '') === f));
    assert.ok(family, `sample ${name} follows its # TYPE line`);
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}="${x[2]}"`).sort() : [];
    samples.set(`${name}{${labels.join(',')}}`, Number(m[3]));
  });
  return samples;
}

async function scrape(base: string): Promise<{ samples: Samples; contentType: string }> {
  const res = await request(`${base}/metrics`);
  assert.equal(res.statusCode, 200);
  const text = await res.body.text();
  return { samples: parseExposition(text), contentType: String(res.headers['content-type']) };
}

const delta = (before: Samples, afterwards: Samples, key: string) => (afterwards.get(key) ?? 0) - (before.get(key) ?? 0);

test('/metrics is valid Prometheus text and its counters move exactly with datagrams and REST calls', async () => {
  const pki = await createTestPki();
  const sim = await QrsSimulator.start({ pki });
  const broker = await startBroker();
  const sub = await collect(broker.url, ['qliksense/#', 'metrics/#']);
  const udpPort = await freeUdpPort();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort, apiToken: TOKEN },
      restServerEndpointsEnable: { mqttPublishMessage: true },
      ...senseConnection(sim.port, pki, { cacheTtlSeconds: 0 }),
    }),
  );
  const bridge = await startInProcess(file);
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await bridge.app.connection!.waitConnected(5000);
    await sub.waitForCount(1, 5000, 'qliksense/butler/task_failure_server');
    await waitFor(() => bridge.app.outbox!.depth === 0, 5000, 'the start-up messages to be delivered');

    const first = await scrape(base);
    assert.equal(first.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    const before = first.samples;
    assert.equal(before.get('butler_mqtt_broker_connected{broker="main"}'), 1);
    assert.ok(before.has('butler_mqtt_process_resident_memory_bytes{}'), 'process metrics are exposed');

    // Three reload failures of three tasks (so no QRS answer is shared), one repeat, two datagrams that do not parse.
    const tasks = [1, 2, 3].map((n) => {
      const app = sim.addApp({ id: `a0000000-0000-4000-8000-00000000000${n}`, name: `App ${n}` });
      return sim.addReloadTask({ id: `70000000-0000-4000-8000-00000000000${n}`, name: `Task ${n}`, app });
    });
    const failed = (n: number) => {
      const task = tasks[n - 1]!;
      return schedulerDatagram({ taskId: task.id, appId: task.app!.id, taskName: task.name, executionId: `e0000001-0000-4000-8000-00000000000${n}` });
    };
    for (const n of [1, 2, 3]) await sendDatagram(udpPort, failed(n));
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_events_accepted_total', { source: 'udp_task' })) === 3, 5000, '3 accepted datagrams');
    await sendDatagram(udpPort, failed(2));
    await sendDatagram(udpPort, '/scheduler-something-else/;a;b;c;d;e;f;g;h;i;j');
    await sendDatagram(udpPort, '/scheduler-reload-failed/;only;four;fields');

    // REST: two accepted, one invalid topic, one without the token.
    const put = (body: unknown, token: string | null) =>
      request(`${base}/v4/mqttpublishmessage`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      }).then(async (r) => (await r.body.text(), r.statusCode));
    assert.equal(await put({ topic: 'metrics/one', message: '1' }, TOKEN), 201);
    assert.equal(await put({ topic: 'metrics/two', message: '2' }, TOKEN), 201);
    assert.equal(await put({ topic: 'metrics/#', message: 'x' }, TOKEN), 400);
    assert.equal(await put({ topic: 'metrics/three', message: '3' }, null), 401);

    await sub.waitForCount(3, 10_000, 'qliksense/task_failure');
    await sub.waitForCount(3, 10_000, 'qliksense/task_failure_full');
    await sub.waitForCount(2, 10_000);
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_events_rejected_total', { source: 'udp_task' })) === 3, 5000, '3 rejected datagrams');
    await waitFor(() => bridge.app.outbox!.depth === 0 && bridge.app.inbox!.depth === 0, 5000, 'outbox and inbox to drain');
    // Delivered is counted when the broker acknowledges, which can trail the subscriber by a moment.
    const deliveredBefore = [...before].filter(([k]) => k.startsWith('butler_mqtt_messages_delivered_total{')).reduce((sum, [, v]) => sum + v, 0);
    await waitFor(async () => (await bridge.app.metrics.total('butler_mqtt_messages_delivered_total')) >= deliveredBefore + 8, 5000, 'deliveries counted');

    const afterwards = (await scrape(base)).samples;
    const d = (key: string) => delta(before, afterwards, key);
    assert.equal(d('butler_mqtt_events_received_total{source="udp_task"}'), 6);
    assert.equal(d('butler_mqtt_events_accepted_total{source="udp_task"}'), 3);
    assert.equal(d('butler_mqtt_events_rejected_total{reason="duplicate",source="udp_task"}'), 1);
    assert.equal(d('butler_mqtt_events_rejected_total{reason="unknown_type",source="udp_task"}'), 1);
    assert.equal(d('butler_mqtt_events_rejected_total{reason="field_count",source="udp_task"}'), 1);
    assert.equal(d('butler_mqtt_events_received_total{source="rest"}'), 3);
    assert.equal(d('butler_mqtt_events_accepted_total{source="rest"}'), 2);
    assert.equal(d('butler_mqtt_events_rejected_total{reason="invalid_topic",source="rest"}'), 1);
    assert.equal(d('butler_mqtt_events_rejected_total{reason="unauthorized",source="rest"}'), 1);
    for (const kind of ['task_failure', 'task_failure_full']) {
      assert.equal(d(`butler_mqtt_messages_enqueued_total{kind="${kind}"}`), 3, `enqueued ${kind}`);
      assert.equal(d(`butler_mqtt_messages_delivered_total{kind="${kind}"}`), 3, `delivered ${kind}`);
    }
    assert.equal(d('butler_mqtt_messages_enqueued_total{kind="rest"}'), 2);
    assert.equal(d('butler_mqtt_messages_delivered_total{kind="rest"}'), 2);
    assert.equal(d('butler_mqtt_rest_requests_total{route="/v4/mqttpublishmessage",status="201"}'), 2);
    assert.equal(d('butler_mqtt_rest_requests_total{route="/v4/mqttpublishmessage",status="400"}'), 1);
    assert.equal(d('butler_mqtt_rest_requests_total{route="/v4/mqttpublishmessage",status="401"}'), 1);
    // Each handled failure asks QRS three questions (cache off): task, task/full, app/full.
    for (const endpoint of ['task', 'task/full', 'app/full']) {
      assert.equal(d(`butler_mqtt_upstream_request_duration_seconds_count{endpoint="${endpoint}",service="qrs"}`), 3, `QRS ${endpoint} latency observations`);
    }
    assert.equal(afterwards.get('butler_mqtt_outbox_messages{}'), 0);
    assert.equal(afterwards.get('butler_mqtt_inbox_events{}'), 0);
    assert.equal(afterwards.get('butler_mqtt_outbox_oldest_age_seconds{}'), 0);
    assert.equal(afterwards.get('butler_mqtt_broker_connected{broker="main"}'), 1);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
    await sim.stop();
    await pki.cleanup();
  }
});

test('the age of the oldest outbox row is read at scrape time', async () => {
  // No broker listening: messages stay in the outbox and age.
  const deadPort = await freePort();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(deadPort), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'age', 'outbox.sqlite') } },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    }),
    'age.yaml',
  );
  const bridge = await startInProcess(file);
  try {
    await bridge.app.outbox!.enqueue([{ topic: 'metrics/age', payload: 'x', kind: 'test' }]);
    await new Promise((r) => setTimeout(r, 1200));
    const { samples } = await scrape(`http://127.0.0.1:${httpPort}`);
    assert.equal(samples.get('butler_mqtt_outbox_messages{}'), 1);
    const age = samples.get('butler_mqtt_outbox_oldest_age_seconds{}') ?? 0;
    assert.ok(age >= 1.2 && age < 60, `oldest age ${age} s`);
    assert.equal(samples.get('butler_mqtt_broker_connected{broker="main"}') ?? 0, 0);
  } finally {
    await bridge.stop();
  }
});
