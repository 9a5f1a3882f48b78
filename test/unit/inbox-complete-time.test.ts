// Inbox.complete on a real SQLite file: the created time of an event's messages in the outbox. An
// event this process accepted gives messages created when they are committed (the outbox's oldest age
// is the messages' own); an event an earlier run accepted gives its arrival time (a restarted standby
// compares it with the active's start). Times are read back with a second connection.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { tempDir } from '../support/bridge.ts';
import { waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-inbox-time-');
after(() => tmp.cleanup());

function open(file: string) {
  const store = new Store({ file });
  const metrics = new Metrics({ processMetrics: false });
  const outbox = new Outbox(store, { maxMessages: 100, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 }, metrics);
  const inbox = new Inbox(store, outbox, { maxEvents: 100, dedupTtlMs: 60_000 }, metrics);
  return { store, outbox, inbox };
}

function readTimes(file: string): { received: number[]; created: number[] } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      received: (db.prepare('SELECT received_at AS t FROM inbox ORDER BY id').all() as { t: number }[]).map((r) => r.t),
      created: (db.prepare('SELECT created_at AS t FROM outbox ORDER BY id').all() as { t: number }[]).map((r) => r.t),
    };
  } finally {
    db.close();
  }
}

/** Waits until the clock has moved past `t` by `ms`, so two times taken on either side differ. */
const clockPast = (t: number, ms: number) => waitFor(() => Date.now() >= t + ms, 1000, `the clock to pass ${t} + ${ms} ms`);

test('an event accepted in this run: its messages are created when they are committed, not when the event arrived', async () => {
  const file = path.join(tmp.dir, 'this-run.sqlite');
  const s = open(file);
  await s.inbox.accept('udp_task', Buffer.from('event'), 'exec-1');
  const [received] = readTimes(file).received;
  assert.ok(received !== undefined);
  await clockPast(received, 20);
  const row = s.inbox.pending('udp_task')[0]!;
  assert.equal(row.receivedAt, received);
  const before = Date.now();
  await s.inbox.complete(row, [{ topic: 't/basic', payload: 'Task', kind: 'task_failure' }]);
  const { created } = readTimes(file);
  assert.equal(created.length, 1);
  assert.ok(created[0]! >= before, `created at ${created[0]}, before the commit began (${before}); the event arrived at ${received}`);
  s.store.close();
});

test('an event an earlier run accepted: its messages keep the event\'s arrival time', async () => {
  const file = path.join(tmp.dir, 'earlier-run.sqlite');
  const first = open(file);
  await first.inbox.accept('udp_task', Buffer.from('event'), 'exec-2');
  first.store.close();
  const [received] = readTimes(file).received;
  assert.ok(received !== undefined);
  await clockPast(received, 20);

  const second = open(file);
  const row = second.inbox.pending('udp_task')[0]!;
  await second.inbox.complete(row, [{ topic: 't/basic', payload: 'Task', kind: 'task_failure' }]);
  assert.deepEqual(readTimes(file).created, [received]);
  second.store.close();
});
