// Fault injection on the whole alert path (UDP → inbox → QRS → outbox → broker → subscriber): the
// broker killed, the bridge killed, QRS gone, QRS slow, the outbox full. Every message is counted end to
// end and "nothing lost" is an equality on the set of execution ids; duplicates are reported.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, spawnBridge, startInProcess, tempDir, writeConfig, type ChildBridge, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagrams } from '../support/udp.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { readStore } from '../support/store-file.ts';

type Json = Record<string, unknown>;

const FAILED = 'qliksense/task_failure';
const FAILED_FULL = 'qliksense/task_failure_full';

const tmp = tempDir('bm-faults-');
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

function config(name: string, brokerPort: number, udpPort: number, over: Json = {}, qrs: Json = {}): string {
  const butler = deepMerge(
    deepMerge(deepMerge(baseButler(brokerPort), senseConnection(sim.port, pki, { timeoutMs: 5000, retries: 0, ...qrs })), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, name, 'outbox.sqlite') } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort },
    }),
    over,
  );
  return writeConfig(tmp.dir, butler, `${name}.yaml`);
}

interface FaultEvent {
  executionId: string;
  taskName: string;
  datagram: string;
}

/** Distinct task names, so each basic message (the task name) can be counted too. */
function events(prefix: string, n: number): FaultEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const executionId = randomUUID();
    const taskName = `${prefix} ${i}`;
    return { executionId, taskName, datagram: schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId, taskName }) };
  });
}

/** Sends one datagram every 1000/perSecond ms from one socket; `sent[i]` is when event i left. */
async function stream(port: number, list: FaultEvent[], perSecond: number, sent: number[] = []): Promise<number[]> {
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => undefined); // a port nobody listens on answers with ICMP; the stream goes on
  const start = performance.now();
  try {
    for (let i = 0; i < list.length; i++) {
      const wait = start + (i * 1000) / perSecond - performance.now();
      if (wait > 0) await sleep(wait);
      sent[i] = Date.now();
      await new Promise<void>((resolve) => socket.send(Buffer.from(list[i]!.datagram, 'utf8'), port, '127.0.0.1', () => resolve()));
    }
  } finally {
    socket.close();
  }
  return sent;
}

/** What a subscriber got for the events: counts per execution id (full) and per task name (basic). */
function tally(sub: Collector, list: FaultEvent[]) {
  const full = new Map<string, number>();
  for (const m of sub.on(FAILED_FULL)) {
    const id = (JSON.parse(m.text) as { executionId: string }).executionId;
    full.set(id, (full.get(id) ?? 0) + 1);
  }
  const basic = new Map<string, number>();
  for (const text of sub.texts(FAILED)) basic.set(text, (basic.get(text) ?? 0) + 1);
  const fullMissing = list.filter((e) => !full.has(e.executionId));
  const basicMissing = list.filter((e) => !basic.has(e.taskName));
  const duplicates = [...full.values(), ...basic.values()].reduce((s, n) => s + n - 1, 0);
  return { full, basic, fullMissing, basicMissing, duplicates };
}

async function metric(bridge: InProcessBridge, name: string, labels: Record<string, string> = {}): Promise<number> {
  return bridge.app.metrics.total(`butler_mqtt_${name}`, labels);
}

/** A subscriber whose session and queue survive a broker kill (saved by Mosquitto once a second). */
async function persistentSubscriber(broker: TestBroker): Promise<Collector> {
  const clientId = `faults-sub-${randomUUID().slice(0, 8)}`;
  const sub = await collect(broker.url, [FAILED, FAILED_FULL], { clean: false, clientId, reconnectPeriod: 100 });
  await broker.sessionSaved(clientId, [FAILED, FAILED_FULL]);
  return sub;
}

test('broker SIGKILLed for 10 s during a 50 events/s stream of 1,000 events: all 2,000 messages arrive, none lost', async (t) => {
  const broker = await startBroker({ persistence: true });
  const sub = await persistentSubscriber(broker);
  const udpPort = await freeUdpPort();
  const bridge = await startInProcess(config('broker-kill', broker.port, udpPort));
  try {
    await bridge.app.connection!.waitConnected(5000);
    const list = events('broker kill', 1000);
    const outage = (async () => {
      await sleep(5000);
      await broker.kill();
      await sleep(10_000);
      await broker.restart();
    })();
    await stream(udpPort, list, 50);
    await outage;
    await waitFor(() => tally(sub, list).fullMissing.length === 0 && tally(sub, list).basicMissing.length === 0, 30_000, 'every message after the broker came back').catch((err: Error) => {
      const c = tally(sub, list);
      throw new Error(`${err.message}; missing ${c.fullMissing.length} full, ${c.basicMissing.length} basic`);
    });
    await sleep(300);
    const c = tally(sub, list);
    assert.equal(c.full.size, 1000);
    assert.equal(c.basic.size, 1000);
    assert.deepEqual(c.fullMissing, []);
    assert.deepEqual(c.basicMissing, []);
    // Every datagram was taken in while the broker was away: the bridge itself never stopped.
    assert.equal(await metric(bridge, 'events_received_total', { source: 'udp_task' }), 1000);
    assert.equal(await metric(bridge, 'events_accepted_total', { source: 'udp_task' }), 1000);
    await waitFor(() => bridge.app.outbox!.depth === 0, 10_000, 'the outbox to drain');
    assert.equal(bridge.app.outbox!.deadLetters.count, 0, 'a broker outage dead-letters nothing');
    t.diagnostic(`broker kill: ${sub.on(FAILED).length + sub.on(FAILED_FULL).length} messages received for 2,000 sent, ${c.duplicates} duplicates (at least once: what was in flight at the kill is sent again)`);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

function storedIds(file: string): { inbox: string[]; outbox: string[] } {
  return readStore(file, (db) => {
    const inbox = (db.prepare("SELECT payload FROM inbox WHERE source = 'udp_task'").all() as { payload: Buffer }[]).map((r) => r.payload.toString('utf8').split(';')[9] ?? '');
    const outbox = (db.prepare("SELECT payload FROM outbox WHERE kind = 'task_failure_full'").all() as { payload: Buffer }[]).map(
      (r) => (JSON.parse(r.payload.toString('utf8')) as { executionId: string }).executionId,
    );
    return { inbox, outbox };
  });
}

test('bridge SIGKILLed mid-stream and restarted: every event it had accepted is alerted, and every event sent after the restart', async (t) => {
  const broker = await startBroker();
  const sub = await collect(broker.url, [FAILED, FAILED_FULL]);
  const udpPort = await freeUdpPort();
  const dbFile = path.join(tmp.dir, 'bridge-kill', 'outbox.sqlite');
  // Slow QRS without a cache and two workers: the bridge falls behind, so the kill finds a backlog.
  const file = config('bridge-kill', broker.port, udpPort, { udpServerConfig: { messageQueue: { maxConcurrent: 2 } } }, { cacheTtlSeconds: 0 });
  sim.setLatency(40);
  let second: ChildBridge | null = null;
  try {
    const first = await spawnBridge(file);
    const list = events('bridge kill', 600);
    const sent: number[] = [];
    const streaming = stream(udpPort, list, 100, sent);
    await sleep(2500);
    await first.kill('SIGKILL');
    assert.equal(first.child.signalCode, 'SIGKILL');
    const killedAt = Date.now();
    await sleep(500); // messages the broker took before the kill still reach the subscriber
    const atKill = storedIds(dbFile);
    const deliveredBefore = new Set(sub.on(FAILED_FULL).map((m) => (JSON.parse(m.text) as { executionId: string }).executionId));
    const acceptedByFirst = new Set([...atKill.inbox, ...atKill.outbox, ...deliveredBefore]);
    sim.setLatency(0);
    second = await spawnBridge(file);
    const restartedAt = Date.now();
    await streaming;
    const afterRestart = list.filter((_, i) => (sent[i] ?? 0) > restartedAt).map((e) => e.executionId);
    const lostWhileDown = list.filter((e, i) => (sent[i] ?? 0) > killedAt && (sent[i] ?? 0) <= restartedAt && !acceptedByFirst.has(e.executionId)).length;
    const mustArrive = [...acceptedByFirst, ...afterRestart];
    const alerted = () => new Set(sub.on(FAILED_FULL).map((m) => (JSON.parse(m.text) as { executionId: string }).executionId));
    await waitFor(() => mustArrive.every((id) => alerted().has(id)), 30_000, 'every accepted event to be alerted').catch((err: Error) => {
      throw new Error(`${err.message}; missing ${mustArrive.filter((id) => !alerted().has(id)).length} of ${mustArrive.length}`);
    });
    await sleep(500);
    assert.ok(atKill.inbox.length > 0, 'the kill found accepted events waiting in the inbox');
    const sentIds = new Set(list.map((e) => e.executionId));
    const got = alerted();
    for (const id of mustArrive) assert.ok(got.has(id), `event ${id} was accepted and must be alerted`);
    for (const id of got) assert.ok(sentIds.has(id), `alert for an event that was never sent: ${id}`);
    await second.kill('SIGTERM');
    second = null;
    assert.deepEqual(storedIds(dbFile).inbox, [], 'nothing left in the inbox');
    const full = sub.on(FAILED_FULL).length;
    t.diagnostic(
      `bridge kill: accepted before the kill ${acceptedByFirst.size} (in the inbox ${atKill.inbox.length}, in the outbox ${atKill.outbox.length}); ` +
        `sent after the restart ${afterRestart.length}; sent while no bridge listened and not accepted ${lostWhileDown}; ` +
        `alerted ${got.size} distinct, ${full - got.size} duplicate full messages`,
    );
  } finally {
    sim.setLatency(0);
    await second?.kill('SIGTERM');
    await sub.close();
    await broker.stop();
  }
});

test('QRS gone for the middle third of a stream: every event gets exactly one basic and one full message, enriched or with enrichmentError', async (t) => {
  const broker = await startBroker();
  const sub = await collect(broker.url, [FAILED, FAILED_FULL]);
  const udpPort = await freeUdpPort();
  const bridge = await startInProcess(config('qrs-down', broker.port, udpPort, {}, { cacheTtlSeconds: 0, timeoutMs: 1000 }));
  try {
    await bridge.app.connection!.waitConnected(5000);
    const list = events('qrs down', 300);
    const outage = (async () => {
      await sleep(1000);
      await sim.stop();
      await sleep(1000);
      await sim.start();
    })();
    await stream(udpPort, list, 100);
    await outage;
    await waitFor(() => tally(sub, list).fullMissing.length === 0 && tally(sub, list).basicMissing.length === 0, 20_000, 'an alert for every event');
    await waitFor(() => bridge.app.inbox!.depth === 0 && bridge.app.outbox!.depth === 0, 10_000, 'the bridge to be idle');
    await sleep(300);
    const c = tally(sub, list);
    assert.deepEqual([...c.full.values()].filter((n) => n !== 1), [], 'exactly one full message per execution id');
    assert.deepEqual([...c.basic.values()].filter((n) => n !== 1), [], 'exactly one basic message per event');
    assert.equal(c.full.size, 300);
    let enriched = 0;
    let degraded = 0;
    for (const m of sub.on(FAILED_FULL)) {
      const p = JSON.parse(m.text) as { enrichmentError?: unknown; qs_taskMetadata: { id?: string } };
      if (p.enrichmentError === undefined) {
        assert.equal(p.qs_taskMetadata.id, SAMPLE_TASK_ID);
        enriched++;
      } else {
        assert.equal(typeof p.enrichmentError, 'string');
        assert.deepEqual(p.qs_taskMetadata, {});
        degraded++;
      }
    }
    assert.ok(enriched > 0 && degraded > 0, `both kinds expected: ${enriched} enriched, ${degraded} with enrichmentError`);
    t.diagnostic(`QRS outage: ${enriched} enriched, ${degraded} with enrichmentError, of 300`);
  } finally {
    await sim.start();
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('slow QRS (2 s per call): no datagram lost; beyond messageQueue.maxSize accepted events wait in the durable inbox', async (t) => {
  const broker = await startBroker();
  const sub = await collect(broker.url, [FAILED, FAILED_FULL]);
  const udpPort = await freeUdpPort();
  const bridge = await startInProcess(
    config('qrs-slow', broker.port, udpPort, { udpServerConfig: { messageQueue: { maxConcurrent: 2, maxSize: 10, backpressureThreshold: 80 } } }, { timeoutMs: 10_000 }),
  );
  sim.setLatency(2000);
  let maxInbox = 0;
  const gauge = bridge.app.metrics.registry.getSingleMetric('butler_mqtt_inbox_events')!;
  const watch = setInterval(() => {
    void gauge.get().then((d) => (maxInbox = Math.max(maxInbox, d.values[0]?.value ?? 0)));
  }, 50);
  try {
    await bridge.app.connection!.waitConnected(5000);
    const list = events('qrs slow', 200);
    await sendDatagrams(udpPort, list.map((e) => e.datagram));
    await waitFor(() => tally(sub, list).fullMissing.length === 0 && tally(sub, list).basicMissing.length === 0, 40_000, 'an alert for every event');
    await sleep(300);
    clearInterval(watch);
    assert.equal(await metric(bridge, 'events_received_total', { source: 'udp_task' }), 200);
    assert.equal(await metric(bridge, 'events_accepted_total', { source: 'udp_task' }), 200);
    assert.equal(await metric(bridge, 'events_rejected_total', { source: 'udp_task' }), 0);
    const c = tally(sub, list);
    assert.equal(c.full.size, 200);
    assert.equal(c.duplicates, 0);
    assert.ok(maxInbox > 10, `the inbox gauge should pass maxSize (10); highest seen ${maxInbox}`);
    assert.match(bridge.logs.join('\n'), /10 events wait in memory \(messageQueue.maxSize\); further events wait in the durable inbox/);
    t.diagnostic(`slow QRS: highest inbox depth seen ${maxInbox} (maxSize 10), 200 of 200 alerted`);
  } finally {
    clearInterval(watch);
    sim.setLatency(0);
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('outbox limit reached while the broker is away: events wait in the inbox (each wait counted, nothing counted as refused), all are alerted once the outbox drains', async (t) => {
  const broker = await startBroker({ persistence: true });
  const sub = await persistentSubscriber(broker);
  await broker.kill();
  const udpPort = await freeUdpPort();
  // 41 = the UDP status message ("start") plus 20 events of two messages each.
  const bridge = await startInProcess(config('outbox-full', broker.port, udpPort, { mqttConfig: { delivery: { maxMessages: 41 } } }));
  try {
    const list = events('outbox full', 60);
    await sendDatagrams(udpPort, list.map((e) => e.datagram));
    await waitFor(async () => (await metric(bridge, 'events_accepted_total', { source: 'udp_task' })) === 60, 10_000, '60 accepted events');
    await waitFor(() => bridge.app.outbox!.depth === 41 && bridge.app.inbox!.depth === 40, 10_000, 'a full outbox and 40 events waiting in the inbox');
    await waitFor(async () => (await metric(bridge, 'outbox_full_waits_total', { source: 'udp_task' })) > 0, 5000, 'the wait to be counted');
    // Nothing was lost, so nothing is counted as refused: the waiting events are kept in the inbox.
    assert.equal(await metric(bridge, 'messages_refused_total', { reason: 'outbox_full' }), 0);
    assert.equal(await metric(bridge, 'events_rejected_total', { source: 'udp_task' }), 0, 'nothing accepted is dropped');
    await broker.restart();
    const back = Date.now();
    await waitFor(() => tally(sub, list).fullMissing.length === 0 && tally(sub, list).basicMissing.length === 0, 45_000, 'an alert for every event').catch((err: Error) => {
      const c = tally(sub, list);
      throw new Error(`${err.message}; missing ${c.fullMissing.length} full, ${c.basicMissing.length} basic; inbox ${bridge.app.inbox!.depth}, outbox ${bridge.app.outbox!.depth}`);
    });
    await waitFor(() => bridge.app.inbox!.depth === 0 && bridge.app.outbox!.depth === 0, 10_000, 'inbox and outbox to empty');
    const drainedMs = Date.now() - back;
    await sleep(300);
    const c = tally(sub, list);
    assert.equal(c.full.size, 60);
    assert.equal(c.basic.size, 60);
    assert.equal(await metric(bridge, 'events_rejected_total', { source: 'udp_task' }), 0);
    assert.equal(await metric(bridge, 'messages_refused_total', { reason: 'outbox_full' }), 0);
    t.diagnostic(`outbox full: ${await metric(bridge, 'outbox_full_waits_total', { source: 'udp_task' })} waits counted, 0 refusals; 60 of 60 alerted, drained ${drainedMs} ms after the broker was back, ${c.duplicates} duplicates`);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});
