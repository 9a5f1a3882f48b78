// Outbox.peek hands rows this process just committed over from memory; whatever mix of own rows,
// rows written by another connection (`butler-mqtt outbox retry` is another process), removed rows and
// re-reads, it returns exactly what the file holds after `afterId`, in id order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox, type OutboxRow } from '../../src/store/outbox.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-outbox-peek-');
after(() => tmp.cleanup());

function setup(name: string) {
  const file = path.join(tmp.dir, `${name}.sqlite`);
  const store = new Store({ file });
  const outbox = new Outbox(store, { maxMessages: 10_000, maxBytes: 1 << 26, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const other = new Database(file);
  other.pragma('busy_timeout = 5000');
  const foreign = other.prepare('INSERT INTO outbox (topic, payload, qos, retain, kind, bytes, created_at) VALUES (?, ?, 1, 0, ?, ?, ?)');
  const fileRows = (afterId: number, limit: number) =>
    (store.db.prepare('SELECT id, topic, payload, qos, retain, kind, created_at AS createdAt FROM outbox WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as (Omit<OutboxRow, 'retain'> & { retain: number })[]).map((r) => ({ ...r, retain: r.retain === 1 }));
  return { store, outbox, other, foreign, fileRows };
}

const plain = (rows: OutboxRow[]) => rows.map((r) => ({ ...r, payload: r.payload.toString('utf8') }));

test('own rows, a row from another connection in between, removals: peek equals the file', async () => {
  const { store, outbox, other, foreign, fileRows } = setup('mixed');
  const a = await outbox.enqueue([{ topic: 'a/1', payload: 'one', kind: 'k' }, { topic: 'a/2', payload: 'two', retain: true, qos: 0 }]);
  foreign.run('b/1', Buffer.from('from another process'), 'rest', 30, Date.now());
  const c = await outbox.enqueue([{ topic: 'c/1', payload: 'three' }, { topic: 'c/2', payload: Buffer.from('a caller buffer') }, { topic: 'c/3', payload: 'four' }]);
  assert.equal(a.length + c.length, 5);

  // A reader walking the outbox in small steps, as the Publisher does.
  const seen: OutboxRow[] = [];
  let cursor = 0;
  for (;;) {
    const expected = plain(fileRows(cursor, 2));
    const got = outbox.peek(cursor, 2);
    assert.deepEqual(plain(got), expected, `after ${cursor}`);
    if (got.length === 0) break;
    seen.push(...got);
    cursor = got[got.length - 1]!.id;
  }
  assert.deepEqual(seen.map((r) => r.topic), ['a/1', 'a/2', 'b/1', 'c/1', 'c/2', 'c/3']);
  assert.equal(seen[1]!.retain, true);
  assert.equal(seen[1]!.qos, 0);

  // Read again from the start (a restart of the reader): the file's rows, nothing missing.
  assert.deepEqual(plain(outbox.peek(0, 100)), plain(fileRows(0, 100)));

  // Removed rows are not handed out again; rows after them are.
  const d = await outbox.enqueue([{ topic: 'd/1', payload: 'five' }, { topic: 'd/2', payload: 'six' }]);
  await outbox.remove([d[0]!]);
  assert.deepEqual(plain(outbox.peek(cursor, 10)), plain(fileRows(cursor, 10)));
  assert.deepEqual(outbox.peek(cursor, 10).map((r) => r.topic), ['d/2']);
  other.close();
  store.close();
});

test('a write that fails after inserting (savepoint rolled back) leaves nothing to hand out', async () => {
  const { store, outbox, other, fileRows } = setup('rollback');
  const failed = store.write((db) => {
    outbox.insertInTransaction(db, [{ topic: 'x/1', payload: 'rolled back' }]);
    throw new Error('a later step failed');
  });
  const kept = outbox.enqueue([{ topic: 'y/1', payload: 'kept' }]);
  await assert.rejects(failed, /a later step failed/);
  await kept;
  assert.deepEqual(outbox.peek(0, 10).map((r) => r.topic), ['y/1']);
  assert.deepEqual(plain(outbox.peek(0, 10)), plain(fileRows(0, 10)));
  other.close();
  store.close();
});

test('onDurable callbacks run before the write resolves, only for writes that succeeded', async () => {
  const { store, other } = setup('hooks');
  const order: string[] = [];
  const ok = store.write(() => store.onDurable(() => order.push('hook ok'))).then(() => order.push('resolved ok'));
  const bad = store.write(() => {
    store.onDurable(() => order.push('hook of a failed write'));
    throw new Error('no');
  });
  await ok;
  await assert.rejects(bad);
  assert.deepEqual(order, ['hook ok', 'resolved ok']);
  assert.throws(() => store.onDurable(() => undefined), /only valid inside a write/);
  other.close();
  store.close();
});
