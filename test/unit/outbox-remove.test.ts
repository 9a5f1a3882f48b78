// Outbox.remove deletes runs of consecutive ids with one statement each; whatever the order,
// repeats and gaps of the ids, exactly those rows go and the in-memory totals match the file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
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
