// Dedup keys on disk: an outbox file made before the dedup log existed (migration 1's key table) is
// migrated with its keys; keys burned again keep the latest expiry across a restart; expired keys
// are dropped. Real SQLite files, reopened as a restart does.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-dedup-');
after(() => tmp.cleanup());

function open(file: string, dedupTtlMs = 60_000) {
  const store = new Store({ file });
  const outbox = new Outbox(store, { maxMessages: 1000, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
  const inbox = new Inbox(store, outbox, { maxEvents: 1000, dedupTtlMs });
  return { store, inbox };
}

test('a file from before the dedup log keeps its keys after the migration', () => {
  const file = path.join(tmp.dir, 'old.sqlite');
  const old = new Database(file);
  // The schema of the first version, as it was created then.
  old.exec(`CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, kind TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, payload BLOB NOT NULL, dedup_key TEXT, meta TEXT, received_at INTEGER NOT NULL);
    CREATE TABLE dedup (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    PRAGMA user_version = 1;`);
  const now = Date.now();
  old.prepare('INSERT INTO dedup (key, expires_at) VALUES (?, ?)').run('exec-live', now + 600_000);
  old.prepare('INSERT INTO dedup (key, expires_at) VALUES (?, ?)').run('exec-expired', now - 1);
  old.close();

  const { store, inbox } = open(file);
  assert.equal(inbox.isDuplicate('exec-live'), true);
  assert.equal(inbox.isDuplicate('exec-expired'), false);
  assert.equal(inbox.isDuplicate('exec-never-seen'), false);
  const tables = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  assert.ok(tables.includes('dedup_log') && !tables.includes('dedup'), tables.join(', '));
  store.close();
});

test('a key completed twice keeps its latest expiry across a restart; expired ones are gone', async () => {
  const file = path.join(tmp.dir, 'burn.sqlite');
  {
    const { store, inbox } = open(file, 200);
    for (const key of ['k-short', 'k-twice']) {
      const accepted = await inbox.accept('test', Buffer.from(key), key);
      assert.equal(accepted.status, 'accepted');
      if (accepted.status === 'accepted') await inbox.complete({ id: accepted.id, dedupKey: key }, []);
    }
    store.close();
  }
  {
    // A longer TTL now: k-twice is handled again (a resend after its short TTL ran out).
    await new Promise((r) => setTimeout(r, 250));
    const { store, inbox } = open(file, 600_000);
    assert.equal(inbox.isDuplicate('k-twice'), false, 'the short expiry has passed');
    const again = await inbox.accept('test', Buffer.from('k-twice'), 'k-twice');
    assert.equal(again.status, 'accepted');
    if (again.status === 'accepted') await inbox.complete({ id: again.id, dedupKey: 'k-twice' }, []);
    store.close();
  }
  {
    const { store, inbox } = open(file, 600_000);
    assert.equal(inbox.isDuplicate('k-twice'), true, 'the later, longer expiry wins over the first row');
    assert.equal(inbox.isDuplicate('k-short'), false);
    // Opening purged the expired row of k-short and the first row of k-twice.
    assert.deepEqual(store.db.prepare('SELECT key FROM dedup_log').all(), [{ key: 'k-twice' }]);
    store.close();
  }
});

test('a key burned without an event (done by another instance) counts at once and after a restart; accepting it is a duplicate', async () => {
  const file = path.join(tmp.dir, 'burn-key.sqlite');
  const first = open(file);
  await first.inbox.burnKey('cmd:task|c1', 60_000);
  assert.equal(first.inbox.isDuplicate('cmd:task|c1'), true);
  assert.deepEqual(await first.inbox.accept('mqtt_command', Buffer.from('{}'), 'cmd:task|c1'), { status: 'duplicate' });
  first.store.close();
  const again = open(file);
  assert.equal(again.inbox.isDuplicate('cmd:task|c1'), true);
  assert.equal(again.inbox.isDuplicate('cmd:task|c2'), false);
  again.store.close();
});
