// Outbox.remove deletes runs of consecutive ids with one statement each; whatever the order,
// repeats and gaps of the ids, exactly those rows go and the in-memory totals match the file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-outbox-remove-');
after(() => tmp.cleanup());

test('remove: unordered ids with gaps, repeats and unknown ids', async () => {
  const store = new Store({ file: path.join(tmp.dir, 'o.sqlite') });
  const outbox = new Outbox(store, { maxMessages: 1000, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const ids = await outbox.enqueue(Array.from({ length: 12 }, (_, i) => ({ topic: `t/${i}`, payload: 'x'.repeat(10 + i) })));
  assert.equal(ids.length, 12);
  const at = (i: number) => ids[i] as number;
  await outbox.remove([at(3), at(1), at(2), at(7), at(9), at(10), at(9), at(11) + 1000]);
  const left = store.db.prepare('SELECT id, topic FROM outbox ORDER BY id').all() as { id: number; topic: string }[];
  assert.deepEqual(left.map((r) => r.topic), ['t/0', 't/4', 't/5', 't/6', 't/8', 't/11']);
  const totals = store.db.prepare('SELECT count(*) AS n, sum(bytes) AS b FROM outbox').get() as { n: number; b: number };
  assert.equal(outbox.depth, totals.n);
  assert.equal(outbox.byteSize, totals.b);
  await outbox.remove([at(0), at(4), at(5), at(6), at(8), at(11)]);
  assert.equal(outbox.depth, 0);
  assert.equal(outbox.byteSize, 0);
  store.close();
});

test('oldest age: 0 when empty, otherwise the age of the first row queued (outbox) or accepted (inbox)', async () => {
  const store = new Store({ file: path.join(tmp.dir, 'age.sqlite') });
  const outbox = new Outbox(store, { maxMessages: 1000, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const inbox = new Inbox(store, outbox, { maxEvents: 100, dedupTtlMs: 60_000 });
  assert.equal(outbox.oldestAgeSeconds(), 0);
  assert.equal(inbox.oldestAgeSeconds(), 0);
  const [first] = await outbox.enqueue([{ topic: 't/first', payload: 'a' }]);
  const accepted = await inbox.accept('test', Buffer.from('x'));
  // Backdate the first rows by a minute, as if they had waited that long.
  store.db.prepare('UPDATE outbox SET created_at = created_at - 60000 WHERE id = ?').run(first);
  store.db.prepare('UPDATE inbox SET received_at = received_at - 60000').run();
  await outbox.enqueue([{ topic: 't/second', payload: 'b' }]);
  const outboxAge = outbox.oldestAgeSeconds();
  const inboxAge = inbox.oldestAgeSeconds();
  assert.ok(outboxAge >= 60 && outboxAge < 70, `outbox ${outboxAge}`);
  assert.ok(inboxAge >= 60 && inboxAge < 70, `inbox ${inboxAge}`);
  await outbox.remove([first as number]);
  assert.ok(outbox.oldestAgeSeconds() < 10, 'the next row is new');
  if (accepted.status === 'accepted') await inbox.discard({ id: accepted.id, dedupKey: null });
  assert.equal(inbox.oldestAgeSeconds(), 0);
  store.close();
});
