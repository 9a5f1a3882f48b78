// The recent-activity recorder behind the status page: events, the rows they produced, deliveries in
// either order, messages no event claimed, and the bound on how much it keeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActivityLog, type ActivityEntry } from '../../src/observability/activity.ts';

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('an event with two messages is queued until both are acknowledged, then delivered', () => {
  const c = clock();
  const log = new ActivityLog({ now: c.now });
  const id = log.event({ source: 'udp_task', summary: 'reload failed: "Sales"' });
  assert.equal(log.recent()[0]?.state, 'received');
  log.messages(id, [7, 8], ['qliksense/task_failure', 'qliksense/task_failure_full']);
  assert.equal(log.recent()[0]?.state, 'queued');
  c.advance(5);
  log.delivered({ id: 7, topic: 'qliksense/task_failure', kind: 'task_failure' });
  assert.equal(log.recent()[0]?.state, 'queued');
  c.advance(5);
  log.delivered({ id: 8, topic: 'qliksense/task_failure_full', kind: 'task_failure_full' });
  assert.deepEqual(log.recent(), [
    {
      id: 1,
      type: 'event',
      at: 1000,
      source: 'udp_task',
      summary: 'reload failed: "Sales"',
      state: 'delivered',
      reason: null,
      messages: [
        { id: 7, topic: 'qliksense/task_failure', deliveredAt: 1005 },
        { id: 8, topic: 'qliksense/task_failure_full', deliveredAt: 1010 },
      ],
    },
  ]);
});

test('a delivery that arrives before the event claims its row is moved into the event', () => {
  const log = new ActivityLog({ now: () => 50 });
  const removed: number[] = [];
  log.on('remove', (id) => removed.push(id));
  const id = log.event({ source: 'rest', summary: 'PUT a/b' });
  log.delivered({ id: 3, topic: 'a/b', kind: 'rest' });
  assert.equal(log.recent().length, 2, 'shown on its own meanwhile');
  log.messages(id, [3], ['a/b']);
  const list = log.recent();
  assert.equal(list.length, 1);
  assert.equal(list[0]?.state, 'delivered');
  assert.deepEqual(list[0]?.messages, [{ id: 3, topic: 'a/b', deliveredAt: 50 }]);
  assert.deepEqual(removed, [2]);
});

test('a delivered row no event claims shows as a message entry of its kind', () => {
  const log = new ActivityLog({ now: () => 9 });
  log.delivered({ id: 1, topic: 'qliksense/butler/task_failure_server', kind: 'udp_status' });
  assert.deepEqual(log.recent(), [
    {
      id: 1,
      type: 'message',
      at: 9,
      source: 'udp_status',
      summary: 'qliksense/butler/task_failure_server',
      state: 'delivered',
      reason: null,
      messages: [{ id: 1, topic: 'qliksense/butler/task_failure_server', deliveredAt: 9 }],
    },
  ]);
});

test('rejected, failed and nothing-to-publish events keep their reason', () => {
  const log = new ActivityLog();
  log.event({ source: 'udp_task', summary: 'garbage', rejected: 'unknown_type' });
  const b = log.event({ source: 'udp_task', summary: 'reload failed: "X"' });
  log.failed(b, 'handler threw 3 times');
  const c = log.event({ source: 'udp_task', summary: 'distribute' });
  log.messages(c, [], []);
  const byId = new Map(log.recent().map((e) => [e.id, e]));
  assert.deepEqual([byId.get(1)?.state, byId.get(1)?.reason], ['rejected', 'unknown_type']);
  assert.deepEqual([byId.get(2)?.state, byId.get(2)?.reason], ['failed', 'handler threw 3 times']);
  assert.deepEqual([byId.get(3)?.state, byId.get(3)?.reason], ['no messages', null]);
});

test('keeps the newest entries up to its capacity, newest first', () => {
  const log = new ActivityLog({ capacity: 3 });
  for (let i = 1; i <= 5; i++) log.event({ source: 's', summary: `e${i}` });
  assert.deepEqual(
    log.recent().map((e) => e.summary),
    ['e5', 'e4', 'e3'],
  );
  // A late report for an entry that fell out is ignored, not resurrected.
  log.messages(1, [10], ['t']);
  log.failed(2, 'x');
  assert.equal(log.recent().length, 3);
});

test('an event that fell out of the window before its messages were delivered: the deliveries add no entries', () => {
  const log = new ActivityLog({ capacity: 2 });
  const first = log.event({ source: 'udp_task', summary: 'reload failed: "A"' });
  log.messages(first, [1, 2], ['qliksense/task_failure', 'qliksense/task_failure_full']);
  for (const s of ['B', 'C']) log.messages(log.event({ source: 'udp_task', summary: s }), [], []);
  assert.deepEqual(log.recent().map((e) => e.summary), ['C', 'B']);
  log.delivered({ id: 1, topic: 'qliksense/task_failure', kind: 'task_failure' });
  log.delivered({ id: 2, topic: 'qliksense/task_failure_full', kind: 'task_failure_full' });
  assert.deepEqual(log.recent().map((e) => e.summary), ['C', 'B']);
  // A row no event ever claimed still shows.
  log.delivered({ id: 3, topic: 'qliksense/butler/task_failure_server', kind: 'udp_status' });
  assert.deepEqual(log.recent().map((e) => e.summary), ['qliksense/butler/task_failure_server', 'C']);
});

test('summaries from network input lose control characters and are bounded', () => {
  const log = new ActivityLog();
  log.event({ source: 'udp_task', summary: `a\u0000b\nc\u001bd${'x'.repeat(500)}` });
  const s = log.recent()[0]?.summary ?? '';
  assert.ok(s.startsWith('a b c d'), s.slice(0, 20));
  assert.equal(s.length, 200);
});

test('listeners get a copy of every change', () => {
  const log = new ActivityLog({ now: () => 1 });
  const seen: ActivityEntry[] = [];
  log.on('change', (e) => seen.push(e));
  const id = log.event({ source: 'rest', summary: 'x' });
  log.messages(id, [4], ['t']);
  log.delivered({ id: 4, topic: 't', kind: 'rest' });
  assert.deepEqual(
    seen.map((e) => e.state),
    ['received', 'queued', 'delivered'],
  );
  seen[0]!.summary = 'changed';
  assert.equal(log.recent()[0]?.summary, 'x');
});
