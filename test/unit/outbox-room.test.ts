// Outbox notifications: waitForRoom() resolves at the first deletion that makes room, a move to the
// dead-letter table frees room too, rows committed by another process are noticed, and peek() never
// answers short while committed rows follow a row kept out of memory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-outbox-room-');
after(() => tmp.cleanup());

function setup(name: string, maxMessages = 100) {
  const file = path.join(tmp.dir, `${name}.sqlite`);
  const store = new Store({ file });
  const outbox = new Outbox(store, { maxMessages, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  return { file, store, outbox };
}

const settled = async (p: Promise<void>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  return done;
};

test('waitForRoom resolves at once when there is room, and at the first removal that makes room when full', async () => {
  const { store, outbox } = setup('room', 3);
  try {
    assert.equal(await settled(outbox.waitForRoom()), true);
    const ids = await outbox.enqueue([{ topic: 'r/1', payload: 'a' }, { topic: 'r/2', payload: 'b' }, { topic: 'r/3', payload: 'c' }]);
    const one = outbox.waitForRoom();
    const two = outbox.waitForRoom(2);
    assert.equal(await settled(one), false);
    await outbox.remove([ids[0]!]);
    assert.equal(await settled(one), true);
    assert.equal(await settled(two), false, 'room for one is not room for two');
    await outbox.moveToDeadLetter(ids[1]!, 'test', 3);
    assert.equal(await settled(two), true, 'a move to the dead-letter table makes room too');
    assert.equal(outbox.depth, 1);
    assert.equal(outbox.deadLetters.count, 1);
    assert.deepEqual(outbox.deadLetters.latest(5).map((r) => [r.id, r.topic, String(r.payload), r.attempts, r.reason]), [[ids[1], 'r/2', 'b', 3, 'test']]);
  } finally {
    store.close();
  }
});

test('rows another process commits (a retry from the command line) are noticed and counted', async () => {
  const { file, store, outbox } = setup('elsewhere');
  const other = new Database(file);
  try {
    await outbox.enqueue([{ topic: 'e/1', payload: 'mine' }]);
    assert.equal(outbox.changedElsewhere(), false, 'own commits do not count');
    other.prepare('INSERT INTO outbox (topic, payload, qos, retain, kind, bytes, created_at) VALUES (?, ?, 1, 0, ?, ?, ?)').run('e/2', 'theirs', 'rest', 9, Date.now());
    assert.equal(outbox.changedElsewhere(), true);
    assert.equal(outbox.changedElsewhere(), false, 'once per change');
    assert.equal(outbox.depth, 2);
    assert.deepEqual(outbox.peek(0, 10).map((r) => r.topic), ['e/1', 'e/2']);
  } finally {
    other.close();
    store.close();
  }
});

test('peek does not stop at a row kept out of memory (a Buffer payload) when more rows follow it', async () => {
  const { store, outbox } = setup('gap');
  try {
    await outbox.enqueue([{ topic: 'g/1', payload: 'one' }, { topic: 'g/2', payload: 'two' }]);
    await outbox.enqueue([{ topic: 'g/3', payload: Buffer.from('three') }]);
    await outbox.enqueue([{ topic: 'g/4', payload: 'four' }]);
    assert.deepEqual(outbox.peek(0, 100).map((r) => r.topic), ['g/1', 'g/2', 'g/3', 'g/4']);
  } finally {
    store.close();
  }
});
