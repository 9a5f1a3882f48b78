// Group commit and durability of the store on a real SQLite file: a write resolves only once the
// WAL has been synced after its commit; transactions committed while a sync runs wait for the next
// one; a failed sync rejects the writes it covered. The sync call is handed in by the test so it
// decides when a sync finishes; everything else (SQLite, the WAL file, the descriptor) is real.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, statSync } from 'node:fs';
import path from 'node:path';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-store-sync-');
after(() => tmp.cleanup());

type Done = (err: NodeJS.ErrnoException | null) => void;

function controlledStore(name: string) {
  const syncs: { fd: number; done: Done }[] = [];
  const store = new Store({ file: path.join(tmp.dir, `${name}.sqlite`), syncFile: (fd, done) => syncs.push({ fd, done }) });
  store.db.exec('CREATE TABLE t (v TEXT NOT NULL)');
  const insert = store.db.prepare('INSERT INTO t (v) VALUES (?)');
  const put = (v: string) => store.writeStatements(() => insert.run(v));
  const rows = () => (store.db.prepare('SELECT v FROM t ORDER BY rowid').all() as { v: string }[]).map((r) => r.v);
  return { store, syncs, put, rows };
}

/** Lets setImmediate callbacks (the group commit) run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

function state(p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  return Promise.race([p.then(() => 'resolved' as const, () => 'rejected' as const), turn().then(() => 'pending' as const)]);
}

test('a committed write resolves only after the WAL sync that follows its commit', async () => {
  const { store, syncs, put, rows } = controlledStore('order');
  let committedCalls = 0;
  store.onCommitted(() => committedCalls++);
  const a = put('a');
  const b = put('b');
  await turn();
  assert.deepEqual(rows(), ['a', 'b'], 'both are committed in one transaction');
  assert.equal(syncs.length, 1, 'one sync started for the batch');
  // The descriptor is the WAL file of this database.
  assert.equal(fstatSync(syncs[0]!.fd).ino, statSync(path.join(tmp.dir, 'order.sqlite-wal')).ino);
  assert.equal(await state(a), 'pending');
  assert.equal(committedCalls, 0, 'listeners wait for the sync too');

  // Queued while the first sync runs: committed together once it has ended, then synced.
  const c = put('c');
  await turn();
  const d = put('d');
  await turn();
  assert.deepEqual(rows(), ['a', 'b'], 'nothing is committed while a sync runs');
  assert.equal(syncs.length, 1, 'only one sync at a time');

  syncs[0]!.done(null);
  assert.equal(await state(a), 'resolved');
  assert.equal(await state(b), 'resolved');
  assert.equal(await state(c), 'pending', 'queued after the first sync began');
  assert.deepEqual(rows(), ['a', 'b', 'c', 'd'], 'committed when the sync ended');
  assert.equal(committedCalls, 1);
  assert.equal(syncs.length, 2, 'the next sync starts with that commit');

  syncs[1]!.done(null);
  assert.equal(await state(c), 'resolved');
  assert.equal(await state(d), 'resolved');
  assert.equal(committedCalls, 2);
  assert.equal(syncs.length, 2, 'no sync without a commit');
  store.close();
});

test('a failed sync rejects the writes it covered and tells the failure listeners', async () => {
  const { store, syncs, put } = controlledStore('failing');
  let failures = 0;
  store.onCommitFailed(() => failures++);
  const a = put('a');
  await turn();
  const ioError = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  syncs[0]!.done(ioError);
  await assert.rejects(a, /EIO/);
  assert.equal(failures, 1);
  // The store keeps working.
  const b = put('b');
  await turn();
  syncs[1]!.done(null);
  assert.equal(await state(b), 'resolved');
  store.close();
});

test('close() syncs and settles what is committed or queued, then closes', async () => {
  const { store, syncs, put } = controlledStore('closing');
  const a = put('a');
  await turn();
  const b = put('b'); // queued, not yet committed
  assert.equal(syncs.length, 1);
  store.close(); // the sync still running never has to finish
  assert.equal(await state(a), 'resolved');
  assert.equal(await state(b), 'resolved');
  const reopened = new Store({ file: path.join(tmp.dir, 'closing.sqlite') });
  assert.deepEqual((reopened.db.prepare('SELECT v FROM t ORDER BY rowid').all() as { v: string }[]).map((r) => r.v), ['a', 'b']);
  reopened.close();
});

test('the real sync: writes resolve and are in the file after reopening', async () => {
  const file = path.join(tmp.dir, 'real.sqlite');
  const store = new Store({ file });
  store.db.exec('CREATE TABLE t (v TEXT NOT NULL)');
  const insert = store.db.prepare('INSERT INTO t (v) VALUES (?)');
  await Promise.all(Array.from({ length: 50 }, (_, i) => store.writeStatements(() => insert.run(`v${i}`))));
  store.close();
  const reopened = new Store({ file });
  assert.equal((reopened.db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 50);
  reopened.close();
});

test('the depth gauges match the stores while a sync is still running', async () => {
  // A gauge set only once a write resolved showed the old depth to a scrape made between the commit
  // and the end of its sync (seen as a flaky /metrics test).
  const syncs: Done[] = [];
  const store = new Store({ file: path.join(tmp.dir, 'gauges.sqlite'), syncFile: (_fd, done) => syncs.push(done) });
  const metrics = new Metrics({ processMetrics: false });
  const outbox = new Outbox(store, { maxMessages: 100, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 }, metrics);
  const inbox = new Inbox(store, outbox, { maxEvents: 100, dedupTtlMs: 60_000 }, metrics);
  const finishSyncs = async () => {
    while (syncs.length > 0) {
      syncs.shift()!(null);
      await turn();
    }
  };
  const gauge = async (name: string) => (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value;
  const enqueued = outbox.enqueue([{ topic: 'g/1', payload: 'abc' }, { topic: 'g/2', payload: 'de' }]);
  const accepted = inbox.accept('test', Buffer.from('x'));
  await turn();
  assert.equal(syncs.length, 1, 'committed, sync outstanding');
  assert.equal(await gauge('butler_mqtt_outbox_messages'), 2);
  assert.equal(await gauge('butler_mqtt_outbox_bytes'), outbox.byteSize);
  assert.ok(outbox.byteSize > 0);
  assert.equal(await gauge('butler_mqtt_inbox_events'), 1);
  await finishSyncs();
  const ids = await enqueued;
  await accepted;

  const removed = outbox.remove(ids);
  await turn();
  assert.equal(await state(removed), 'pending', 'the delete waits for its sync');
  assert.equal(outbox.depth, 0);
  assert.equal(await gauge('butler_mqtt_outbox_messages'), 0);
  assert.equal(await gauge('butler_mqtt_outbox_bytes'), 0);
  await finishSyncs();
  await removed;
  store.close();
});
