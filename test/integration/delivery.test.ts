// Durable delivery against a real broker: outages of the broker, a killed bridge, a full outbox.
// Every message is counted end to end; "nothing lost" is an equality.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, spawnBridge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { OutboxFullError } from '../../src/store/types.ts';
import path from 'node:path';

const tmp = tempDir();
after(() => tmp.cleanup());

/** A subscriber whose session survives broker restarts (persistent session, QoS 1). */
async function persistentSubscriber(broker: TestBroker, filter: string): Promise<Collector> {
  const clientId = `sub-${Math.random().toString(16).slice(2, 10)}`;
  const sub = await collect(broker.url, filter, { clean: false, clientId, reconnectPeriod: 100, testTopics: [filter] });
  // The subscription must be in Mosquitto's persistence file before a kill.
  await broker.sessionSaved(clientId, [filter]);
  return sub;
}

function seqPayloads(messages: { text: string }[]): number[] {
  return messages.map((m) => Number(m.text.split('-')[1]));
}

test('1,000 messages enqueued while the broker is down are all delivered, in order, once it is up', async () => {
  const broker = await startBroker({ persistence: true });
  const sub = await persistentSubscriber(broker, 'test/down/#');
  await broker.stop();
  const dir = path.join(tmp.dir, 'down');
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { delivery: { outboxFile: `${dir}/outbox.sqlite` } } }), 'down.yaml');
  const bridge = await startInProcess(file);
  try {
    const outbox = bridge.app.outbox!;
    for (let i = 0; i < 1000; i += 100) {
      await outbox.enqueue(Array.from({ length: 100 }, (_, j) => ({ topic: 'test/down/seq', payload: `m-${i + j}`, kind: 'test' })));
    }
    assert.equal(outbox.depth, 1000);
    await broker.restart();
    await sub.waitForCount(1000, 30_000, 'test/down/seq');
    await waitFor(() => outbox.depth === 0, 5000, 'outbox to drain');
    const seq = seqPayloads(sub.on('test/down/seq'));
    assert.deepEqual(seq, Array.from({ length: 1000 }, (_, i) => i));
    assert.equal(await bridge.app.metrics.total('butler_mqtt_messages_delivered_total', { kind: 'test' }), 1000);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('the broker killed and restarted mid-stream: every message arrives (duplicates allowed, none lost)', async (t) => {
  const broker = await startBroker({ persistence: true });
  const sub = await persistentSubscriber(broker, 'test/kill/#');
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { delivery: { outboxFile: `${tmp.dir}/kill/outbox.sqlite` } } }), 'kill.yaml');
  const bridge = await startInProcess(file);
  try {
    await bridge.app.connection!.waitConnected(5000);
    const total = 2000;
    for (let i = 0; i < total; i += 20) {
      await bridge.app.outbox!.enqueue(Array.from({ length: 20 }, (_, j) => ({ topic: 'test/kill/seq', payload: `m-${i + j}`, kind: 'test' })));
      if (i === 600) await broker.kill();
      if (i === 1200) await broker.restart();
      await sleep(5);
    }
    const missing = () => {
      const seen = new Set(seqPayloads(sub.on('test/kill/seq')));
      return Array.from({ length: total }, (_, i) => i).filter((i) => !seen.has(i));
    };
    await waitFor(() => missing().length === 0, 30_000, 'every message').catch((err: Error) => {
      throw new Error(`${err.message}; missing: ${missing().slice(0, 50).join(',')}`);
    });
    const seq = seqPayloads(sub.on('test/kill/seq'));
    const distinct = new Set(seq);
    assert.equal(distinct.size, total);
    for (let i = 0; i < total; i++) assert.ok(distinct.has(i), `message ${i} arrived`);
    const duplicates = seq.length - distinct.size;
    // Reported, not asserted away: at-least-once may repeat what was in flight at the kill.
    t.diagnostic(`duplicates after broker kill: ${duplicates}`);
    await waitFor(() => bridge.app.outbox!.depth === 0, 5000, 'outbox to drain');
    assert.equal(bridge.app.outbox!.deadLetters.count, 0, 'a broker kill dead-letters nothing');
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('the broker stopped and back at once, three times in a row, with a full in-flight window: nothing dead-lettered, every message arrives', async (t) => {
  const broker = await startBroker({ persistence: true });
  const sub = await persistentSubscriber(broker, 'test/bounce/#');
  const file = writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { delivery: { outboxFile: `${tmp.dir}/bounce/outbox.sqlite` } } }), 'bounce.yaml');
  const bridge = await startInProcess(file);
  try {
    const { app } = bridge;
    await app.connection!.waitConnected(5000);
    const total = 1500;
    let next = 0;
    const enqueue = async (n: number) => {
      await app.outbox!.enqueue(Array.from({ length: n }, (_, j) => ({ topic: 'test/bounce/seq', payload: `m-${next + j}`, kind: 'test' })));
      next += n;
    };
    const inFlightAtKill: number[] = [];
    for (let round = 0; round < 3; round++) {
      // Stopped while the window is full (messages sent, not yet acknowledged); restarted at once, so
      // the bridge's next attempt is accepted. Stopped, not killed: a SIGKILLed Mosquitto loses what it
      // acknowledged since its last save (once a second), which is the broker's loss, not the bridge's.
      await enqueue(400);
      await waitFor(() => app.publisher!.inFlightCount > 0, 5000, 'messages in flight');
      inFlightAtKill.push(app.publisher!.inFlightCount);
      await broker.stop();
      await broker.restart();
      await app.connection!.waitConnected(10_000);
    }
    await enqueue(total - next);
    const missing = () => {
      const seen = new Set(seqPayloads(sub.on('test/bounce/seq')));
      return Array.from({ length: total }, (_, i) => i).filter((i) => !seen.has(i));
    };
    await waitFor(() => missing().length === 0, 30_000, 'every message').catch((err: Error) => {
      throw new Error(`${err.message}; missing ${missing().length}: ${missing().slice(0, 20).join(',')}`);
    });
    await waitFor(() => app.outbox!.depth === 0, 10_000, 'outbox to drain');
    assert.equal(app.outbox!.deadLetters.count, 0, 'nothing dead-lettered');
    assert.equal(await app.metrics.total('butler_mqtt_dead_letters_total'), 0);
    t.diagnostic(`three quick broker restarts: in flight at the kills ${inFlightAtKill.join(', ')}; duplicates ${sub.on('test/bounce/seq').length - total}`);
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('the bridge killed with SIGKILL keeps its outbox and delivers it after a restart', async () => {
  const port = await freePort(); // nothing listens here yet: the bridge cannot deliver
  const dbFile = `${tmp.dir}/sigkill/outbox.sqlite`;
  const file = writeConfig(tmp.dir, deepMerge(baseButler(port), { mqttConfig: { delivery: { outboxFile: dbFile } } }), 'sigkill.yaml');
  const first = await spawnBridge(file);
  // Another process writes into the running bridge's outbox (as `butler-mqtt outbox retry` does).
  const store = new Store({ file: dbFile });
  const outbox = new Outbox(store, { maxMessages: 100000, maxBytes: 1 << 30, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  await outbox.enqueue(Array.from({ length: 300 }, (_, i) => ({ topic: 'test/sigkill/seq', payload: `m-${i}`, kind: 'test' })));
  store.close();
  await first.kill('SIGKILL');
  assert.equal(first.child.signalCode, 'SIGKILL');

  const portBroker = await startBroker({ port });
  const sub = await collect(portBroker.url, 'test/sigkill/#', { testTopics: ['test/sigkill/#'] });
  const second = await spawnBridge(file);
  try {
    await sub.waitForCount(300, 20_000, 'test/sigkill/seq');
    assert.deepEqual(seqPayloads(sub.on('test/sigkill/seq')), Array.from({ length: 300 }, (_, i) => i));
  } finally {
    await second.kill('SIGTERM');
    await sub.close();
    await portBroker.stop();
  }
});

test('a full outbox refuses new messages with OutboxFullError and loses nothing it accepted', async () => {
  const port = await freePort(); // no broker yet: nothing can be delivered
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(port), { mqttConfig: { delivery: { outboxFile: `${tmp.dir}/full/outbox.sqlite`, maxMessages: 50 } } }),
    'full.yaml',
  );
  const first = await startInProcess(file);
  try {
    const outbox = first.app.outbox!;
    await outbox.enqueue(Array.from({ length: 50 }, (_, i) => ({ topic: 'test/full/seq', payload: `m-${i}`, kind: 'test' })));
    await assert.rejects(outbox.enqueue([{ topic: 'test/full/seq', payload: 'm-50', kind: 'test' }]), (err: unknown) => {
      assert.ok(err instanceof OutboxFullError);
      assert.equal(err.message, 'outbox full: messages limit 50 reached (currently 50); message refused, nothing stored');
      return true;
    });
    assert.equal(await first.app.metrics.total('butler_mqtt_messages_refused_total', { kind: 'test', reason: 'outbox_full' }), 1);
    assert.equal(outbox.depth, 50);
  } finally {
    await first.stop();
  }
  // A clean restart with a broker and a subscriber in place: exactly the 50 accepted messages arrive.
  const broker = await startBroker({ port });
  const sub = await collect(broker.url, 'test/full/#', { testTopics: ['test/full/#'] });
  const second = await startInProcess(file);
  try {
    await sub.waitForCount(50, 20_000, 'test/full/seq');
    await sleep(300);
    assert.deepEqual(seqPayloads(sub.on('test/full/seq')), Array.from({ length: 50 }, (_, i) => i));
  } finally {
    await second.stop();
    await sub.close();
    await broker.stop();
  }
});
