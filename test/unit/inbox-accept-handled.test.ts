// Inbox.acceptHandled on a real SQLite file: an input handled at once stores its messages and burns
// its dedup key in one transaction, with no inbox row; a duplicate, a full outbox and refused
// messages leave the file as it was. What is stored is read back with a second connection.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { MessageRejectedError, OutboxFullError } from '../../src/store/types.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-inbox-handled-');
after(() => tmp.cleanup());

function setup(name: string, maxMessages = 100, maxPacketBytes = 0) {
  const file = path.join(tmp.dir, `${name}.sqlite`);
  const store = new Store({ file });
  const metrics = new Metrics({ processMetrics: false });
  const outbox = new Outbox(store, { maxMessages, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes }, metrics);
  const inbox = new Inbox(store, outbox, { maxEvents: 100, dedupTtlMs: 60_000 }, metrics);
  const reader = new Database(file, { readonly: true });
  const file_ = {
    outbox: () => reader.prepare('SELECT topic, CAST(payload AS TEXT) AS payload, kind FROM outbox ORDER BY id').all() as { topic: string; payload: string; kind: string }[],
    inboxRows: () => (reader.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n,
    inboxEver: () => (reader.prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0) AS n").get() as { n: number }).n,
    keys: () => (reader.prepare('SELECT key FROM dedup_log ORDER BY rowid').all() as { key: string }[]).map((r) => r.key),
  };
  return { store, outbox, inbox, metrics, file: file_, close: () => (reader.close(), store.close()) };
}

test('messages and the burned key are stored together, without an inbox row; the key is then a duplicate', async () => {
  const s = setup('stored');
  const pending = s.inbox.acceptHandled('exec-1', [{ topic: 't/basic', payload: 'Task', kind: 'task_failure' }, { topic: 't/full', payload: '{"a":1}', kind: 'task_failure_full' }]);
  assert.equal(s.inbox.isDuplicate('exec-1'), true, 'reserved while the commit is pending');
  const outcome = await pending;
  assert.equal(outcome.status, 'accepted');
  assert.equal(outcome.status === 'accepted' && outcome.ids.length, 2);
  assert.deepEqual(s.file.outbox(), [
    { topic: 't/basic', payload: 'Task', kind: 'task_failure' },
    { topic: 't/full', payload: '{"a":1}', kind: 'task_failure_full' },
  ]);
  assert.deepEqual(s.file.keys(), ['exec-1']);
  assert.equal(s.file.inboxEver(), 0, 'no inbox row was ever written');
  assert.equal(s.inbox.depth, 0);
  assert.equal(await s.metrics.total('butler_mqtt_messages_enqueued_total'), 2);

  assert.deepEqual(await s.inbox.acceptHandled('exec-1', [{ topic: 't/basic', payload: 'again' }]), { status: 'duplicate' });
  assert.equal(s.file.outbox().length, 2);
  // The inbox path sees the same key as taken.
  assert.deepEqual(await s.inbox.accept('udp_task', Buffer.from('x'), 'exec-1'), { status: 'duplicate' });
  s.close();
});

test('no dedup key and no messages: nothing but the commit', async () => {
  const s = setup('empty');
  assert.deepEqual(await s.inbox.acceptHandled(null, []), { status: 'accepted', ids: [] });
  assert.deepEqual(s.file.outbox(), []);
  assert.deepEqual(s.file.keys(), []);
  s.close();
});

test('a full outbox: nothing stored, the key stays free, nothing counted as refused (the event is kept; the pipeline counts its wait)', async () => {
  const s = setup('full', 2);
  await s.outbox.enqueue([{ topic: 'x/1', payload: 'one' }]);
  await assert.rejects(s.inbox.acceptHandled('exec-2', [{ topic: 't/basic', payload: 'a' }, { topic: 't/full', payload: 'b' }]), OutboxFullError);
  assert.deepEqual(s.file.outbox().map((r) => r.topic), ['x/1']);
  assert.deepEqual(s.file.keys(), []);
  assert.equal(s.inbox.isDuplicate('exec-2'), false, 'the key is free again');
  assert.equal(await s.metrics.total('butler_mqtt_messages_refused_total'), 0);
  // The inbox path takes it; completing fails the same way and the event stays in the inbox. No
  // message was lost, so none is counted as refused.
  const accepted = await s.inbox.accept('udp_task', Buffer.from('x'), 'exec-2');
  assert.equal(accepted.status, 'accepted');
  await assert.rejects(s.inbox.complete({ id: accepted.status === 'accepted' ? accepted.id : 0, dedupKey: 'exec-2' }, [{ topic: 't/basic', payload: 'a' }, { topic: 't/full', payload: 'b' }]), OutboxFullError);
  assert.equal(await s.metrics.total('butler_mqtt_messages_refused_total'), 0);
  assert.equal(s.file.inboxRows(), 1);
  s.close();
});

test('refused messages (larger than the broker takes): rejected, nothing stored, the key stays free', async () => {
  const s = setup('refused', 100, 64);
  await assert.rejects(s.inbox.acceptHandled('exec-3', [{ topic: 't/ok', payload: 'a' }, { topic: 't/big', payload: 'x'.repeat(100) }]), MessageRejectedError);
  assert.deepEqual(s.file.outbox(), []);
  assert.deepEqual(s.file.keys(), []);
  assert.equal(s.inbox.isDuplicate('exec-3'), false);
  s.close();
});

test('a step commits with the messages and can add its own', async () => {
  const s = setup('step');
  let applied = 0;
  const outcome = await s.inbox.acceptHandled('exec-4', [{ topic: 't/a', payload: 'a' }], (db) => {
    db.prepare("INSERT INTO kv (key, value) VALUES ('state', 'moved')").run();
    return { messages: [{ topic: 't/b', payload: 'b' }], applied: () => applied++ };
  });
  assert.equal(outcome.status === 'accepted' && outcome.ids.length, 2);
  assert.deepEqual(s.file.outbox().map((r) => r.topic), ['t/a', 't/b']);
  assert.equal(applied, 1);
  assert.equal((s.store.db.prepare("SELECT value FROM kv WHERE key = 'state'").get() as { value: string }).value, 'moved');
  s.close();
});
