// The pipeline's policies, for every source: each source's real parser and input format, a real store
// (SQLite inbox and outbox), and a handler that can be told to fail. Full outbox (wait, keep order, drop
// nothing, count the wait), transient handler errors (retried, published once), an event that always
// fails (quarantined: kept, counted, listed; released with the operator's command it is handled), and a
// process that dies with events accepted (a new process on the same file handles each once).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { tempDir } from '../support/bridge.ts';
import { waitFor } from '../support/wait.ts';
import { schedulerDatagram } from '../support/udp.ts';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { InboxAdmin } from '../../src/store/inbox-admin.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Pipeline } from '../../src/pipeline/pipeline.ts';
import type { Lane, ParseResult } from '../../src/pipeline/lane.ts';
import { parseSchedulerDatagram } from '../../src/alerts/task-alerts.ts';
import { userEventDatagramParser } from '../../src/alerts/user-events.ts';
import { parseCommandInput } from '../../src/alerts/task-commands.ts';
import { parseForwardedCloudEvent } from '../../src/alerts/cloud-reload-alerts.ts';
import type { OutgoingMessage } from '../../src/store/types.ts';

const tmp = tempDir('bm-pipeline-');
after(() => tmp.cleanup());

const TENANT = 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh';
const CLOUD_TOPIC = 'qscloud/app/reload';

/** A source as the pipeline sees it: its lane name, parser, and the n-th input (bytes, meta, a key naming it). */
interface SourceCase {
  source: string;
  parse: (payload: Buffer, meta: string | null) => ParseResult<unknown>;
  input: (n: number) => { payload: Buffer; meta: string | null; key: string };
  /** The key of a parsed event (the same as the input's). */
  keyOf: (event: unknown) => string;
}

const SOURCES: SourceCase[] = [
  {
    source: 'udp_task',
    parse: parseSchedulerDatagram,
    input: (n) => {
      const key = `exec-${n}-${randomUUID()}`;
      return { payload: Buffer.from(schedulerDatagram({ executionId: key, taskId: randomUUID(), appId: randomUUID() })), meta: '{"from":"127.0.0.1"}', key };
    },
    keyOf: (e) => (e as { executionId: string }).executionId,
  },
  {
    source: 'udp_session',
    parse: userEventDatagramParser([]),
    input: (n) => ({ payload: Buffer.from(`sense-proxy-1;Start session;POLICY;user-${n}`), meta: null, key: `user-${n}` }),
    keyOf: (e) => (e as { userId: string }).userId,
  },
  {
    source: 'mqtt_command',
    parse: (payload) => parseCommandInput(payload),
    input: (n) => {
      const key = `corr-${n}-${randomUUID().slice(0, 8)}`;
      return { payload: Buffer.from(JSON.stringify({ taskId: randomUUID(), correlationId: key })), meta: '{"topic":"qliksense/start_task"}', key };
    },
    keyOf: (e) => (e as { correlationId: string }).correlationId,
  },
  {
    source: 'cloud_event',
    parse: parseForwardedCloudEvent({ appReloadTopic: CLOUD_TOPIC, tenantId: TENANT }),
    input: (n) => {
      const key = `evt-${n}-${randomUUID()}`;
      const event = {
        cloudEventsVersion: '0.1',
        eventId: key,
        eventTime: '2026-11-20T06:01:09Z',
        eventType: 'com.qlik.v1.app.reload.finished',
        extensions: { ownerId: 'u', tenantId: TENANT, userId: 'u', topLevelResourceId: randomUUID() },
        data: { status: 'error', name: 'Sales', reloadId: randomUUID(), duration: 'PT1S', errors: [] },
      };
      return { payload: Buffer.from(JSON.stringify(event)), meta: CLOUD_TOPIC, key };
    },
    keyOf: (e) => (e as { eventId: string }).eventId,
  },
];

/** A test handler: one message per event (payload = the event's key); fails as told. */
class ScriptedHandler {
  /** key → failures still to throw (Infinity: always). */
  readonly failures = new Map<string, number>();
  readonly calls = new Map<string, number>();
  /** While set, every call waits for it (a handler that is slow to answer). */
  gate: Promise<void> | null = null;

  constructor(
    private readonly c: SourceCase,
    private readonly topic: string,
  ) {}

  handle = async (event: unknown): Promise<OutgoingMessage[]> => {
    const key = this.c.keyOf(event);
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
    if (this.gate) await this.gate;
    const left = this.failures.get(key) ?? 0;
    if (left > 0) {
      this.failures.set(key, left - 1);
      throw new Error(`scripted failure for ${key}`);
    }
    return [{ topic: this.topic, payload: key, kind: 'test' }];
  };
}

function rig(name: string, c: SourceCase, options: { maxMessages?: number; maxAttempts?: number; concurrency?: number } = {}) {
  const file = path.join(tmp.dir, `${name}-${c.source}`, 'store.sqlite');
  const open = () => {
    const store = new Store({ file });
    const outbox = new Outbox(store, { maxMessages: options.maxMessages ?? 10_000, maxBytes: 1 << 24, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
    const metrics = new Metrics({ processMetrics: false });
    const inbox = new Inbox(store, outbox, { maxEvents: 10_000, dedupTtlMs: 60_000 }, metrics);
    const pipeline = new Pipeline({ inbox, outbox, logger: silentLogger(), metrics });
    const handler = new ScriptedHandler(c, `test/${c.source}`);
    const lane: Lane<unknown> = pipeline.lane(
      // The idle lane's look for released events every 200 ms instead of 5 s: the released event is found the
      // same way, sooner (test/integration/quarantine.test.ts releases one in a bridge with the default).
      { source: c.source, name: c.source, concurrency: options.concurrency ?? 2, queueSize: 50, maxAttempts: options.maxAttempts ?? 5, retryBaseMs: 10, retryMaxMs: 50, rescanIntervalMs: 200 },
      { parse: c.parse, handle: handler.handle },
    );
    lane.start();
    const published = () => outbox.peek(0, 10_000).map((r) => String(r.payload));
    return { store, outbox, inbox, metrics, handler, lane, published };
  };
  return { open, file };
}

for (const c of SOURCES) {
  test(`${c.source}: a full outbox — events wait in the inbox in order, resume when a message leaves, none dropped; the wait is counted, no refusal`, async () => {
    const r = rig('full', c, { maxMessages: 2 }).open();
    try {
      const inputs = Array.from({ length: 6 }, (_, i) => c.input(i));
      for (const x of inputs) assert.equal((await r.lane.submit(x.payload, x.meta)).status, 'accepted');
      await waitFor(() => r.outbox.depth === 2, 5000, 'the outbox full');
      await waitFor(async () => (await r.metrics.total('butler_mqtt_outbox_full_waits_total', { source: c.source })) >= 1, 5000, 'the wait counted');
      assert.equal(r.inbox.depth, 4, 'four events wait in the inbox');
      // The Publisher's acknowledgements, one at a time: each removal lets the next event in.
      const delivered: string[] = [];
      while (delivered.length < 6) {
        // peek(), not depth: depth counts a row at insert, peek() hands it out once its commit is durable.
        await waitFor(() => r.outbox.peek(0, 1).length > 0, 5000, 'a message to deliver');
        const [row] = r.outbox.peek(0, 1);
        delivered.push(String(row!.payload));
        await r.outbox.remove([row!.id]);
      }
      assert.deepEqual(delivered, inputs.map((x) => x.key), 'every event, in the order accepted');
      assert.equal(r.inbox.depth, 0);
      assert.equal(await r.metrics.total('butler_mqtt_messages_refused_total'), 0);
      assert.equal(await r.metrics.total('butler_mqtt_events_rejected_total'), 0);
    } finally {
      await r.lane.stop();
      r.store.close();
    }
  });

  test(`${c.source}: a transient handler error is retried with backoff; the event is published once`, async () => {
    const r = rig('transient', c).open();
    try {
      const [a, b] = [c.input(1), c.input(2)];
      r.handler.failures.set(a.key, 2);
      await r.lane.submit(a.payload, a.meta);
      await r.lane.submit(b.payload, b.meta);
      await waitFor(() => r.published().length === 2 && r.inbox.depth === 0, 5000, 'both events published');
      assert.deepEqual(r.published().sort(), [a.key, b.key].sort());
      assert.equal(r.handler.calls.get(a.key), 3, 'two failures, then the success');
      assert.equal(await r.metrics.total('butler_mqtt_handler_retries_total', { source: c.source }), 2);
      assert.equal(r.inbox.quarantined, 0);
    } finally {
      await r.lane.stop();
      r.store.close();
    }
  });

  test(`${c.source}: an event that always fails is quarantined (kept, counted, listed) while the others go on; released, it is handled`, async () => {
    const r = rig('poison', c, { maxAttempts: 3 }).open();
    try {
      const [poison, good] = [c.input(1), c.input(2)];
      r.handler.failures.set(poison.key, Infinity);
      await r.lane.submit(poison.payload, poison.meta);
      await r.lane.submit(good.payload, good.meta);
      await waitFor(() => r.inbox.quarantined === 1, 5000, 'the event quarantined');
      await waitFor(() => r.published().includes(good.key), 5000, 'the other event published');
      assert.equal(r.handler.calls.get(poison.key), 3);
      assert.equal(await r.metrics.total('butler_mqtt_events_quarantined_total', { source: c.source, reason: 'handler_error' }), 1);
      const gauge = await r.metrics.registry.getSingleMetric('butler_mqtt_inbox_quarantined_events')!.get();
      assert.equal(gauge.values[0]?.value, 1);
      const admin = new InboxAdmin(r.store);
      const listed = admin.list();
      assert.equal(listed.length, 1);
      assert.equal(listed[0]!.source, c.source);
      assert.equal(listed[0]!.attempts, 3);
      assert.equal(listed[0]!.lastError, `handler failed: scripted failure for ${poison.key}`);
      assert.equal(listed[0]!.payload, poison.payload.toString('utf8'));
      // Fixed, then released by the operator: the idle lane finds it and handles it.
      r.handler.failures.set(poison.key, 0);
      assert.equal(admin.release('all'), 1);
      await waitFor(() => r.published().includes(poison.key), 15_000, 'the released event published');
      assert.deepEqual(r.published().sort(), [good.key, poison.key].sort());
    } finally {
      await r.lane.stop();
      r.store.close();
    }
  });

  test(`${c.source}: the process dies with events accepted and in progress; the next one on the same file handles each once`, async () => {
    const x = rig('crash', c);
    const first = x.open();
    let release!: () => void;
    first.handler.gate = new Promise<void>((r) => (release = r));
    const inputs = Array.from({ length: 5 }, (_, i) => c.input(i));
    for (const i of inputs) assert.equal((await first.lane.submit(i.payload, i.meta)).status, 'accepted');
    await waitFor(() => first.handler.calls.size >= 2, 5000, 'two events in the handler');
    // Dies here: no stop, nothing completes (what the first process did is only what is on disk).
    first.store.close();
    release();
    const second = x.open();
    try {
      await waitFor(() => second.published().length === 5 && second.inbox.depth === 0, 5000, 'every event after the restart');
      assert.deepEqual(second.published().sort(), inputs.map((i) => i.key).sort());
      // A resend of an event with a dedup key is still recognised (udp_session has none).
      const again = inputs[0]!;
      const outcome = await second.lane.submit(again.payload, again.meta);
      assert.equal(outcome.status, c.source === 'udp_session' ? 'accepted' : 'duplicate');
    } finally {
      await second.lane.stop();
      second.store.close();
    }
  });
}

test('timer sources (monitors): a full outbox is waited out in order, a refusal is counted once', async () => {
  const store = new Store({ file: path.join(tmp.dir, 'timer', 'store.sqlite') });
  const outbox = new Outbox(store, { maxMessages: 1, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const metrics = new Metrics({ processMetrics: false });
  const inbox = new Inbox(store, outbox, { maxEvents: 100, dedupTtlMs: 60_000 }, metrics);
  const pipeline = new Pipeline({ inbox, outbox, logger: silentLogger(), metrics });
  const sink = pipeline.timerSink('license_monitor', () => 'check');
  try {
    const first = sink.enqueue([{ topic: 't/1', payload: 'one', kind: 'license_status' }]);
    const second = sink.enqueue([{ topic: 't/2', payload: 'two', kind: 'license_status' }]);
    await first;
    await waitFor(async () => (await metrics.total('butler_mqtt_outbox_full_waits_total', { source: 'license_monitor' })) === 1, 5000, 'the second to wait');
    const [row] = outbox.peek(0, 1);
    await outbox.remove([row!.id]);
    await second;
    assert.deepEqual(outbox.peek(0, 10).map((r) => r.topic), ['t/2']);
    assert.equal(await metrics.total('butler_mqtt_messages_refused_total'), 0);
    // A message the broker would never take (a wildcard in the topic): refused, counted once.
    await assert.rejects(sink.enqueue([{ topic: 't/+', payload: 'x', kind: 'license_status' }]));
    assert.equal(await metrics.total('butler_mqtt_messages_refused_total', { kind: 'license_status' }), 1);
  } finally {
    store.close();
  }
});
