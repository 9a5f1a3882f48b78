// The UDP listener with real sockets: every rejection reason moves its counter by exactly
// what was sent, the in-memory queue spills into the durable inbox and is read back, the receive
// buffer is sized and reported, a 2,000-datagram burst from one sender is alerted in full, and one
// listener implementation serves two ports with two parsers; each kind of receive thread (native and
// JavaScript) writes a ring buffer that wraps around intact, and when full refuses and counts
// (intake_full) instead of losing unseen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../support/qrs-simulator.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram, sendDatagrams } from '../support/udp.ts';
import { waitFor } from '../support/wait.ts';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { UdpSource } from '../../src/sense/udp-source.ts';
import type { ReceiveThreadChoice } from '../../src/sense/udp-receive-thread.ts';
import { Pipeline } from '../../src/pipeline/pipeline.ts';
import type { ParseResult } from '../../src/pipeline/lane.ts';
import { parseSchedulerDatagram } from '../../src/alerts/task-alerts.ts';
import { parseUserEvent, type UserEvent } from '../../src/sense/user-event.ts';

type Json = Record<string, unknown>;

const FAILED = 'qliksense/task_failure';
const FAILED_FULL = 'qliksense/task_failure_full';

const tmp = tempDir('bm-udp-listener-');
let pki: TestPki;
let sim: QrsSimulator;
let broker: TestBroker;
let sub: Collector;

function config(port: number, name: string, over: Json = {}): string {
  const client = pki.client('butler-mqtt');
  const butler = deepMerge(
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, name, 'outbox.sqlite') } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: port },
      configQRS: {
        host: 'localhost',
        port: sim.port,
        headers: { static: [{ name: 'X-Qlik-User', value: 'UserDirectory=Internal; UserId=sa_api' }] },
        rejectUnauthorized: true,
        timeoutMs: 2000,
        retries: 1,
      },
      cert: { clientCert: client.cert, clientCertKey: client.key, clientCertCA: pki.caCert },
    }),
    over,
  );
  return writeConfig(tmp.dir, butler, `${name}.yaml`);
}

async function bridgeOn(name: string, over: Json = {}): Promise<{ bridge: InProcessBridge; port: number }> {
  const port = await freeUdpPort();
  const bridge = await startInProcess(config(port, name, over));
  return { bridge, port };
}

/** Counter values of the udp_task source: received, accepted, and rejected per reason. */
async function counts(b: InProcessBridge): Promise<{ received: number; accepted: number; rejected: Record<string, number> }> {
  const m = b.app.metrics;
  const rejectedMetric = await m.eventsRejected.get();
  const rejected: Record<string, number> = {};
  for (const v of rejectedMetric.values) if (v.labels.source === 'udp_task') rejected[String(v.labels.reason)] = v.value;
  return {
    received: await m.total('butler_mqtt_events_received_total', { source: 'udp_task' }),
    accepted: await m.total('butler_mqtt_events_accepted_total', { source: 'udp_task' }),
    rejected,
  };
}

/** Waits until `n` datagrams are received and each is accepted or rejected. */
async function accounted(b: InProcessBridge, n: number, timeoutMs = 10_000): Promise<Awaited<ReturnType<typeof counts>>> {
  let last = await counts(b);
  await waitFor(
    async () => {
      last = await counts(b);
      const rejected = Object.values(last.rejected).reduce((s, v) => s + v, 0);
      return last.received >= n && last.accepted + rejected === last.received;
    },
    timeoutMs,
    `${n} datagrams accounted for`,
  );
  return last;
}

function failure(over: Parameters<typeof schedulerDatagram>[0] = {}): string {
  return schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: randomUUID(), ...over });
}

before(async () => {
  pki = await createTestPki();
  sim = await QrsSimulator.start({ pki });
  broker = await startBroker();
  sub = await collect(broker.url, ['qliksense/task_failure', 'qliksense/task_failure_full']);
});

after(async () => {
  await sub?.close();
  await broker?.stop();
  await sim?.stop();
  await pki?.cleanup();
  tmp.cleanup();
});

test('every parse rejection, size, duplicate: each counter moves by exactly what was sent; received = accepted + rejected', async () => {
  // Allow-list by host name, resolved at start: localhost is 127.0.0.1, where the test sends from.
  const { bridge, port } = await bridgeOn('reasons', { udpServerConfig: { maxMessageSize: 700, enableSourceValidation: true, allowedSources: ['localhost', '10.9.8.7'] } });
  try {
    const dupId = randomUUID();
    const datagrams: (string | Buffer)[] = [
      failure({ message: 'y'.repeat(701) }), // too_large (> 700 bytes)
      failure({ message: 'y'.repeat(702) }), // too_large
      Buffer.from([0x2f, 0xff, 0xfe, 0x3b, 0x41]), // not_utf8
      ' \r\n', // empty (nothing but whitespace and controls)
      Buffer.alloc(0), // empty (zero bytes)
      failure({ type: '/scheduler-reload-exploded/' }), // unknown_type
      'hello', // unknown_type
      failure().split(';').slice(0, 10).join(';'), // field_count: 10 fields
      '/scheduler-task-aborted/;host;task', // field_count
      failure({ taskId: '12345' }), // invalid_task_id
      failure({ appId: '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2' }), // invalid_app_id (one digit short)
      failure({ executionId: dupId }), // accepted
      failure({ executionId: dupId }), // duplicate
      failure({ executionId: dupId, type: '/scheduler-task-failed/' }), // duplicate (key shared across types)
      failure(), // accepted
    ];
    const before = await counts(bridge);
    assert.equal(before.received, 0);
    await sendDatagrams(port, datagrams);
    const c = await accounted(bridge, datagrams.length);
    assert.equal(c.received, 15);
    assert.equal(c.accepted, 2);
    assert.deepEqual(c.rejected, { too_large: 2, not_utf8: 1, empty: 2, unknown_type: 2, field_count: 2, invalid_task_id: 1, invalid_app_id: 1, duplicate: 2 });
    await sub.waitForCount(2, 10_000, FAILED_FULL);
  } finally {
    await bridge.stop();
  }
});

test('source allow-list: datagrams from an address not on it are dropped first (before the size check), counted source_not_allowed', async () => {
  const { bridge, port } = await bridgeOn('allowlist', { udpServerConfig: { maxMessageSize: 300, enableSourceValidation: true, allowedSources: ['10.9.8.7', '192.0.2.44'] } });
  try {
    await sendDatagrams(port, [failure(), failure({ message: 'z'.repeat(400) }), 'garbage']);
    const c = await accounted(bridge, 3);
    assert.equal(c.accepted, 0);
    assert.deepEqual(c.rejected, { source_not_allowed: 3 });
    assert.equal(bridge.app.inbox!.depth, 0);
  } finally {
    await bridge.stop();
  }
});

test('rate limit (fixed one-minute window): beyond maxMessagesPerMinute datagrams are dropped as rate_limited', async () => {
  const { bridge, port } = await bridgeOn('ratelimit', { udpServerConfig: { rateLimit: { enable: true, maxMessagesPerMinute: 3 } } });
  try {
    const ids = Array.from({ length: 5 }, () => randomUUID());
    await sendDatagrams(port, ids.map((executionId) => failure({ executionId })));
    const c = await accounted(bridge, 5);
    assert.equal(c.accepted, 3);
    assert.deepEqual(c.rejected, { rate_limited: 2 });
    // Still inside the minute: a size violation is counted as such (size comes before the rate limit).
    const big = await bridgeOn('ratelimit-size', { udpServerConfig: { maxMessageSize: 100, rateLimit: { enable: true, maxMessagesPerMinute: 1 } } });
    try {
      await sendDatagrams(big.port, [failure(), 'short', 'short too']);
      const d = await accounted(big.bridge, 3);
      assert.deepEqual(d.rejected, { too_large: 1, rate_limited: 1, unknown_type: 1 });
    } finally {
      await big.bridge.stop();
    }
  } finally {
    await bridge.stop();
  }
});

test('inbox bound: with QRS hanging, events spill from the in-memory queue into the inbox; past inboxMaxEvents they are refused (inbox_full); all accepted ones are alerted later', async () => {
  const { bridge, port } = await bridgeOn('inboxfull', {
    udpServerConfig: { inboxMaxEvents: 100, messageQueue: { maxConcurrent: 1, maxSize: 4, backpressureThreshold: 50 } },
    configQRS: { timeoutMs: 20_000, retries: 0 },
  });
  sim.setHang(true);
  try {
    const mine = () => sub.on(FAILED).filter((m) => m.text === 'inbox bound');
    const ids = Array.from({ length: 105 }, () => randomUUID());
    await sendDatagrams(port, ids.map((executionId) => failure({ executionId, taskName: 'inbox bound' })));
    const c = await accounted(bridge, 105);
    assert.equal(c.accepted, 100);
    assert.deepEqual(c.rejected, { inbox_full: 5 });
    assert.equal(bridge.app.inbox!.depth, 100);
    const logs = bridge.logs.join('\n');
    assert.match(logs, /queue is 50% full \(backpressure threshold 50%\)/);
    assert.match(logs, /4 events wait in memory \(messageQueue.maxSize\); further events wait in the durable inbox/);
    sim.setHang(false);
    // An event's full alert is published after its basic one: once 100 full alerts are here, so are the basic ones.
    const fullAlerted = () => {
      const alerted = new Set(sub.on(FAILED_FULL).map((m) => (JSON.parse(m.text) as { executionId: string }).executionId));
      return ids.filter((id) => alerted.has(id)).length;
    };
    await waitFor(() => fullAlerted() >= 100, 30_000, '100 full alerts');
    await waitFor(() => bridge.app.inbox!.depth === 0, 5000, 'the inbox to empty');
    assert.equal(fullAlerted(), 100);
    assert.equal(mine().length, 100);
  } finally {
    sim.setHang(false);
    await bridge.stop();
  }
});

test('the receive buffer is requested from the OS and both values are logged', async (t) => {
  const { bridge } = await bridgeOn('rcvbuf');
  try {
    const line = bridge.logs.map((l) => JSON.parse(l) as Json).find((l) => typeof l['msg'] === 'string' && /receive buffer/.test(l['msg'] as string));
    assert.ok(line, 'a receive-buffer log line');
    assert.equal(line['requestedBytes'], 8388608);
    assert.equal(typeof line['grantedBytes'], 'number');
    assert.ok((line['grantedBytes'] as number) > 0);
    t.diagnostic(`SO_RCVBUF requested ${line['requestedBytes']}, granted ${line['grantedBytes']}, net.core.rmem_max ${line['rmemMax'] ?? 'n/a'}`);
  } finally {
    await bridge.stop();
  }
});

test('a burst of 2,000 distinct failure datagrams from one sender, default config: exactly 2,000 alerts', async (t) => {
  const { bridge, port } = await bridgeOn('burst', { configQRS: { retries: 2 } });
  try {
    await bridge.app.connection!.waitConnected(5000);
    const mine = () => sub.on(FAILED).filter((m) => m.text === 'burst');
    const ids = Array.from({ length: 2000 }, () => randomUUID());
    const file = path.join(tmp.dir, 'burst.txt');
    writeFileSync(file, ids.map((executionId) => failure({ executionId, taskName: 'burst' })).join('\n'));
    // A separate process sends as fast as it can while the bridge reads.
    const sender = spawn(
      process.execPath,
      [
        '-e',
        `const dgram = require('node:dgram'); const fs = require('node:fs');
         const [port, file] = process.argv.slice(1);
         const lines = fs.readFileSync(file, 'utf8').split('\\n');
         const s = dgram.createSocket('udp4'); let left = lines.length;
         for (const l of lines) s.send(Buffer.from(l, 'utf8'), Number(port), '127.0.0.1', (err) => { if (err) { console.error(err.message); process.exitCode = 1; } if (--left === 0) s.close(); });`,
        String(port),
        file,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const code = await new Promise<number | null>((r) => sender.once('exit', (c) => r(c)));
    assert.equal(code, 0);
    const c = await accounted(bridge, 2000, 20_000).catch(async (err: Error) => {
      // Datagrams the kernel dropped never reach the listener; the receive buffer is the usual cause.
      const buffer = bridge.logs.find((l) => l.includes('receive buffer')) ?? '';
      throw new Error(`${err.message}; counters: ${JSON.stringify(await counts(bridge))}; ${buffer}`);
    });
    t.diagnostic(`burst: received ${c.received}, accepted ${c.accepted}, rejected ${JSON.stringify(c.rejected)}`);
    assert.equal(c.received, 2000);
    assert.equal(c.accepted, 2000);
    const full = () => sub.on(FAILED_FULL).filter((m) => m.text.includes('"taskName":"burst"'));
    await waitFor(() => mine().length >= 2000 && full().length >= 2000, 30_000, '2,000 basic and 2,000 full alerts').catch((err: Error) => {
      throw new Error(`${err.message}; have ${mine().length} basic, ${full().length} full`);
    });
    await waitFor(() => bridge.app.outbox!.depth === 0, 10_000, 'outbox to drain');
    const basic = mine();
    assert.equal(basic.length, 2000);
    const alerted = new Set(full().map((m) => (JSON.parse(m.text) as { executionId: string }).executionId));
    assert.equal(alerted.size, 2000);
    assert.ok(ids.every((id) => alerted.has(id)));
    t.diagnostic(`burst: alerted ${basic.length} basic, ${alerted.size} distinct full`);
  } finally {
    await bridge.stop();
  }
});

test('one source and one pipeline implementation, two ports, two parsers: scheduler events and proxy session events side by side', async () => {
  const store = new Store({ file: path.join(tmp.dir, 'two-ports', 'store.sqlite') });
  const outbox = new Outbox(store, { maxMessages: 1000, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const inbox = new Inbox(store, outbox, { maxEvents: 1000, dedupTtlMs: 60_000 });
  const metrics = new Metrics({ processMetrics: false });
  const logger = silentLogger();
  const pipeline = new Pipeline({ inbox, outbox, logger, metrics });
  const common = { host: '127.0.0.1', port: 0, maxMessageSize: 65507, receiveBufferBytes: 1 << 20, allowedSources: null, maxMessagesPerMinute: null };
  const lane = { concurrency: 2, queueSize: 10 };
  const parseSession = (buf: Buffer): ParseResult<UserEvent> => {
    const r = parseUserEvent(buf);
    return r.ok ? { ok: true, event: r.value, dedupKey: null } : { ok: false, reason: r.error.reason, detail: r.error.detail };
  };
  const taskLane = pipeline.lane({ ...lane, source: 'udp_task', name: 'task events' }, {
    parse: parseSchedulerDatagram,
    handle: async (e) => [{ topic: 'test/task', payload: `${e.type}:${e.taskName}`, kind: 'test' }],
  });
  const sessionLane = pipeline.lane({ ...lane, source: 'udp_session', name: 'session events' }, {
    parse: parseSession,
    handle: async (e) => [{ topic: 'test/session', payload: `${e.command}:${e.userDirectory}\\${e.userId}`, kind: 'test' }],
  });
  const tasks = new UdpSource({ ...common, name: 'task events' }, taskLane, {}, { logger, metrics });
  const sessions = new UdpSource({ ...common, name: 'session events' }, sessionLane, {}, { logger, metrics });
  taskLane.start();
  sessionLane.start();
  await tasks.start();
  await sessions.start();
  try {
    assert.notEqual(tasks.address!.port, sessions.address!.port);
    await sendDatagram(tasks.address!.port, failure({ taskName: 'Nightly finance reload' }));
    await sendDatagram(sessions.address!.port, '/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;AppAccess;/hub;Start session for user CORP\\anna');
    await sendDatagram(sessions.address!.port, failure()); // a scheduler datagram on the session port: unknown type there
    await sendDatagram(tasks.address!.port, 'sense-proxy-1;Stop session;CORP;anna'); // a legacy session datagram on the task port
    // peek(), not depth: depth counts a row at insert, peek() hands it out once its commit is durable.
    await waitFor(() => outbox.peek(0, 10).length === 2 && inbox.depth === 0, 5000, 'two messages in the outbox');
    const rows = outbox.peek(0, 10).map((r) => [r.topic, r.payload.toString('utf8')]);
    assert.deepEqual(rows.sort(), [['test/session', 'Start session:CORP\\anna'], ['test/task', 'failed:Nightly finance reload']]);
    await waitFor(async () => (await metrics.total('butler_mqtt_events_rejected_total')) === 2, 5000, 'two rejections');
    assert.equal(await metrics.total('butler_mqtt_events_rejected_total', { source: 'udp_session', reason: 'unknown_type' }), 1);
    assert.equal(await metrics.total('butler_mqtt_events_rejected_total', { source: 'udp_task', reason: 'unknown_type' }), 1);
    assert.equal(await metrics.total('butler_mqtt_events_accepted_total', { source: 'udp_session' }), 1);
    assert.equal(await metrics.total('butler_mqtt_events_accepted_total', { source: 'udp_task' }), 1);
  } finally {
    await tasks.stop();
    await sessions.stop();
    await taskLane.stop();
    await sessionLane.stop();
    store.close();
  }
});

/** A ring-buffer source on its own lane and store: the pipeline side of the receive thread. */
async function ringSource(name: string, queueBytes: number, receiveThread: ReceiveThreadChoice) {
  const store = new Store({ file: path.join(tmp.dir, name, 'store.sqlite') });
  const outbox = new Outbox(store, { maxMessages: 100_000, maxBytes: 1 << 28, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const inbox = new Inbox(store, outbox, { maxEvents: 100_000, dedupTtlMs: 60_000 });
  const metrics = new Metrics({ processMetrics: false });
  const pipeline = new Pipeline({ inbox, outbox, logger: silentLogger(), metrics });
  const lane = pipeline.lane({ concurrency: 4, queueSize: 1000, source: 'udp_task', name: 'task events' }, {
    parse: parseSchedulerDatagram,
    handle: async (e) => [{ topic: 'test/ring', payload: `${e.executionId}|${e.taskName}`, kind: 'test' }],
  });
  const source = new UdpSource(
    { name: 'task events', host: '127.0.0.1', port: 0, maxMessageSize: 65507, receiveBufferBytes: 1 << 20, allowedSources: null, maxMessagesPerMinute: null, queueBytes, receiveThread },
    lane,
    {},
    { logger: silentLogger(), metrics },
  );
  lane.start();
  await source.start();
  assert.equal(source.receiveThreadKind, receiveThread);
  // The outbox's depth counts a row as soon as it is inserted; peek() hands it out once its commit is
  // durable (after the WAL sync), so a test that saw the depth waits here for the rows themselves.
  const payloads = async (count: number): Promise<string[]> => {
    let rows: string[] = [];
    await waitFor(() => (rows = outbox.peek(0, 100_000).map((r) => r.payload.toString('utf8'))).length >= count, 10_000, `${count} durable rows in the outbox`);
    return rows;
  };
  const close = async () => {
    await source.stop();
    await lane.stop();
    store.close();
  };
  return { source, outbox, inbox, metrics, payloads, close };
}

/** Both kinds of receive thread write the same ring; each is tested on its own. */
const RECEIVE_THREADS = ['native', 'javascript'] as const;

/** executionId of datagram i: a valid GUID that names its index. */
const ringId = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

for (const kind of RECEIVE_THREADS) {
  test(`${kind} receive thread: the ring wraps around again and again without losing or mangling a datagram (64 KiB ring, 1,500 datagrams of 6 sizes)`, async () => {
    const r = await ringSource(`ring-wrap-${kind}`, 64 * 1024, kind);
    try {
      const port = r.source.address!.port;
      const expected: string[] = [];
      // Chunks of 50 (about 15 KB), each taken before the next is sent, so nothing is refused while the
      // write position passes the end of the ring about seven times (about 430 KB in all), at a
      // different offset each time.
      for (let chunk = 0; chunk < 30; chunk++) {
        const datagrams: string[] = [];
        for (let j = 0; j < 50; j++) {
          const i = chunk * 50 + j;
          const taskName = `Reload ${i} ${'x'.repeat((i % 6) * 37)}`;
          expected.push(`${ringId(i)}|${taskName}`);
          datagrams.push(schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: ringId(i), taskName }));
        }
        await sendDatagrams(port, datagrams);
        await waitFor(() => r.outbox.depth === (chunk + 1) * 50, 10_000, `chunk ${chunk} in the outbox`);
      }
      assert.deepEqual((await r.payloads(expected.length)).sort(), expected.sort());
      assert.equal(await r.metrics.total('butler_mqtt_events_rejected_total'), 0);
    } finally {
      await r.close();
    }
  });

  test(`${kind} receive thread: a full ring refuses what does not fit and counts it as intake_full; what it took is handled, and the ring is usable again`, async () => {
    const r = await ringSource(`ring-full-${kind}`, 64 * 1024, kind);
    try {
      const port = r.source.address!.port;
      const count = 400; // about 85 KB: more than the 64 KiB ring holds
      const template = schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: '@ID@', taskName: 'Flooded reload' });
      // The sender is a process of its own, and this thread does not run its event loop until the
      // receive thread has written or refused every datagram: nothing is taken from the ring meanwhile.
      const sender = spawn(
        process.execPath,
        [
          '-e',
          `const s = require('node:dgram').createSocket('udp4'); const t = process.env.T; let left = ${count};
           for (let i = 0; i < ${count}; i++) s.send(t.replace('@ID@', '00000000-0000-4000-8000-' + String(i).padStart(12, '0')), ${port}, '127.0.0.1', () => { if (--left === 0) s.close(); });`,
        ],
        { env: { ...process.env, T: template }, stdio: 'ignore' },
      );
      const senderDone = new Promise((resolve) => sender.on('exit', resolve));
      const deadline = Date.now() + 20_000;
      let seen = r.source.intakeCounts()!;
      while (seen.written + seen.refused < count && Date.now() < deadline) seen = r.source.intakeCounts()!;
      assert.equal(seen.written + seen.refused, count, 'the receive thread wrote or refused every datagram while this thread was busy');
      assert.ok(seen.refused > 0, 'a 64 KiB ring cannot hold 85 KB');
      assert.ok(seen.written > 50, 'the ring held what fitted');
      await senderDone;
      await waitFor(async () => r.outbox.depth === seen.written && (await r.metrics.total('butler_mqtt_events_rejected_total')) === seen.refused, 10_000, 'taken and refused counted');
      assert.equal(await r.metrics.total('butler_mqtt_events_rejected_total', { source: 'udp_task', reason: 'intake_full' }), seen.refused);
      assert.equal(await r.metrics.total('butler_mqtt_events_accepted_total', { source: 'udp_task' }), seen.written);
      // The first datagrams are the ones that fitted, in order.
      const taken = (await r.payloads(seen.written)).map((p) => p.split('|')[0]).sort();
      assert.deepEqual(taken, Array.from({ length: seen.written }, (_, i) => ringId(i)));
      await sendDatagram(port, schedulerDatagram({ taskId: SAMPLE_TASK_ID, appId: SAMPLE_APP_ID, executionId: ringId(count), taskName: 'After the flood' }));
      await waitFor(() => r.outbox.depth === seen.written + 1, 5000, 'the datagram after the flood');
    } finally {
      await r.close();
    }
  });
}

for (const kind of RECEIVE_THREADS) {
  test(`${kind} receive thread: a port in use fails the source's start with EADDRINUSE, tells the socket error hook, and leaves nothing to stop`, async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
    const hookErrors: Error[] = [];
    const source = new UdpSource(
      { name: 'task events', host: '127.0.0.1', port: holder.address().port, maxMessageSize: 65507, receiveBufferBytes: 1 << 20, allowedSources: null, maxMessagesPerMinute: null, receiveThread: kind },
      { source: 'udp_task', submit: async () => undefined, reject: () => undefined } as never,
      { onSocketError: (err) => void hookErrors.push(err) },
      { logger: silentLogger(), metrics: new Metrics({ processMetrics: false }) },
    );
    try {
      await assert.rejects(source.start(), { code: 'EADDRINUSE' });
      assert.deepEqual(hookErrors.map((e) => (e as NodeJS.ErrnoException).code), ['EADDRINUSE']);
      assert.equal(source.receiveThreadKind, null);
      assert.equal(source.address, null);
      await source.stop();
    } finally {
      holder.close();
    }
  });
}
