// The active-user state on its own and with a real store: sessions counted per user (letter case
// ignored), idle users ended by the sweep with a retained update, the state written to the kv table
// in the transaction that completes an event, and read back (minus excluded users) at the next start.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ActiveUsers, activeUserKey } from '../../src/alerts/active-users.ts';
import { UserEventHandler, userEventDatagramParser, type UserEventOptions } from '../../src/alerts/user-events.ts';
import { activeUserCountPayload, activeUsersPayload, userEventJsonPayload } from '../../src/alerts/payloads.ts';
import { parseUserEvent, type UserEvent } from '../../src/sense/user-event.ts';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { KeyValueTable } from '../../src/store/kv.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../support/bridge.ts';

const MINUTE = 60_000;

function event(text: string): UserEvent {
  const r = parseUserEvent(text);
  if (!r.ok) throw new Error(`${r.error.reason}: ${r.error.detail}`);
  return r.value;
}

describe('ActiveUsers', () => {
  it('counts a user while at least one session is open; letter case does not make a second user', () => {
    const a = new ActiveUsers(10 * MINUTE);
    const apply = (command: UserEvent['command'], dir: string, id: string, now: number) => {
      const c = a.plan(command, dir, id, now);
      if (c) a.apply(c);
      return c;
    };
    assert.equal(apply('Start session', 'CORP', 'anna', 0)?.setChanged, true);
    assert.equal(apply('Start session', 'corp', 'ANNA', 1)?.setChanged, false);
    assert.equal(apply('Start session', 'EXT', 'bo', 2)?.setChanged, true);
    assert.deepEqual(a.names(), ['CORP/anna', 'EXT/bo']);
    assert.equal(apply('Stop session', 'CORP', 'anna', 3)?.setChanged, false);
    assert.equal(a.count, 2);
    assert.equal(apply('Stop session', 'Corp', 'Anna', 4)?.setChanged, true);
    assert.deepEqual(a.names(), ['EXT/bo']);
    assert.equal(apply('Stop session', 'CORP', 'anna', 5), null, 'a stop for a user who is not active changes nothing');
    assert.equal(apply('Open connection', 'CORP', 'anna', 6), null, 'a connection does not make a user active');
  });

  it('plans without applying: namesAfter shows the result, the state stays', () => {
    const a = new ActiveUsers(MINUTE);
    const c = a.plan('Start session', 'b', 'x', 0)!;
    assert.deepEqual(a.namesAfter(c), ['b/x']);
    assert.deepEqual(a.names(), []);
    a.apply(c);
    const first = a.plan('Start session', 'A', 'y', 0)!;
    assert.deepEqual(a.namesAfter(first), ['A/y', 'b/x'], 'sorted ignoring letter case');
    assert.deepEqual(a.namesAfter(a.plan('Stop session', 'b', 'x', 0)!), []);
  });

  it('a user with no event for the idle time is planned to end; any event of theirs restarts the clock', () => {
    const a = new ActiveUsers(10 * MINUTE);
    for (const [id, t] of [['anna', 0], ['bo', 0]] as const) a.apply(a.plan('Start session', 'CORP', id, t)!);
    a.apply(a.plan('Close connection', 'CORP', 'bo', 5 * MINUTE)!);
    assert.deepEqual(a.planExpiry(10 * MINUTE - 1), []);
    const ended = a.planExpiry(10 * MINUTE);
    assert.deepEqual(ended, [{ key: activeUserKey('CORP', 'anna'), after: null, setChanged: true }]);
    assert.deepEqual(a.namesAfterAll(ended), ['CORP/bo']);
    assert.deepEqual(a.planExpiry(15 * MINUTE).map((c) => c.key), [activeUserKey('CORP', 'anna'), activeUserKey('CORP', 'bo')]);
  });
});

describe('payloads of the active-user topics and the JSON event', () => {
  it('count is a decimal number, the list a compact JSON array', () => {
    assert.equal(activeUserCountPayload(0), '0');
    assert.equal(activeUserCountPayload(1234), '1234');
    assert.equal(activeUsersPayload([]), '[]');
    assert.equal(activeUsersPayload(['CORP/anna', 'EXT/"bo"']), '["CORP/anna","EXT/\\"bo\\""]');
  });

  it('user_full is empty when the directory or the id is empty (as Butler SOS)', () => {
    assert.equal(
      userEventJsonPayload(event('h;Start session;;anna')),
      '{"messageType":"qseow-proxy-session","host":"h","command":"Start session","user_directory":"","user_id":"anna","origin":"","context":"","message":"","user_full":""}',
    );
  });
});

describe('userEventDatagramParser', () => {
  it('refuses excluded users (directory and id, ignoring case) and passes parse errors through', () => {
    const parse = userEventDatagramParser([{ directory: 'INTERNAL', userId: 'sa_repository' }]);
    assert.deepEqual(parse(Buffer.from('h;Start session;internal;SA_REPOSITORY')), {
      ok: false,
      reason: 'excluded_user',
      detail: 'internal/SA_REPOSITORY is in sessionConnectionEvents.excludeUsers',
    });
    assert.equal(parse(Buffer.from('h;Start session;INTERNAL;sa_scheduler')).ok, true, 'another user of that directory');
    assert.equal(parse(Buffer.from('h;Start session;EXT;sa_repository')).ok, true, 'the same id in another directory');
    const bad = parse(Buffer.from('h;Start session'));
    assert.equal(bad.ok, false);
    assert.equal(!bad.ok && bad.reason, 'field_count');
  });
});

describe('UserEventHandler with a real store', () => {
  const TOPICS: UserEventOptions['topics'] = {
    sessionStart: 's/start',
    sessionStop: 's/stop',
    connectionOpen: null,
    connectionClose: null,
    event: null,
    activeUserCount: 'u/count',
    activeUsers: 'u/list',
  };

  function open(file: string) {
    const store = new Store({ file });
    const outbox = new Outbox(store, { maxMessages: 1000, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
    const inbox = new Inbox(store, outbox, { maxEvents: 1000, dedupTtlMs: MINUTE });
    const rows = () => outbox.peek(0, 1000).map((r) => [r.topic, r.payload.toString('utf8'), r.retain]);
    return { store, outbox, inbox, rows };
  }

  /** What the UDP listener does with an event: accept it, ask the handler, complete it with the step. */
  async function feed(s: ReturnType<typeof open>, handler: UserEventHandler, text: string): Promise<void> {
    const accepted = await s.inbox.accept('udp_session', Buffer.from(text));
    assert.equal(accepted.status, 'accepted');
    const handled = await handler.handle(event(text));
    await s.inbox.complete({ id: accepted.status === 'accepted' ? accepted.id : 0, dedupKey: null }, handled.messages, handled.step);
  }

  it('stores the state with each event, ends idle users in a sweep, and resumes at the next start without excluded users', async () => {
    const tmp = tempDir('bm-active-users-');
    const file = path.join(tmp.dir, 'store.sqlite');
    let now = 1_000_000;
    const options = (over: Partial<UserEventOptions> = {}): UserEventOptions => ({ topics: TOPICS, sessionIdleMinutes: 10, retainActiveUsers: true, now: () => now, ...over });
    try {
      let s = open(file);
      let handler = new UserEventHandler(options(), { store: s.store, outbox: s.outbox, logger: silentLogger() });
      await handler.start();
      await feed(s, handler, 'h;Start session;CORP;anna');
      now += 6 * MINUTE;
      await feed(s, handler, 'h;Start session;CORP;bo');
      await feed(s, handler, 'h;Start session;INTERNAL;sa_api');
      assert.deepEqual(s.rows(), [
        ['u/count', '0', true],
        ['u/list', '[]', true],
        ['s/start', 'h: CORP/anna', false],
        ['u/count', '1', true],
        ['u/list', '["CORP/anna"]', true],
        ['s/start', 'h: CORP/bo', false],
        ['u/count', '2', true],
        ['u/list', '["CORP/anna","CORP/bo"]', true],
        ['s/start', 'h: INTERNAL/sa_api', false],
        ['u/count', '3', true],
        ['u/list', '["CORP/anna","CORP/bo","INTERNAL/sa_api"]', true],
      ]);
      const kv = new KeyValueTable(s.store.db);
      assert.deepEqual(
        kv.entries('active-user:').map((e) => [e.key, JSON.parse(e.value)]),
        [
          ['active-user:["corp","anna"]', { directory: 'CORP', userId: 'anna', sessions: 1, lastSeen: 1_000_000 }],
          ['active-user:["corp","bo"]', { directory: 'CORP', userId: 'bo', sessions: 1, lastSeen: 1_000_000 + 6 * MINUTE }],
          ['active-user:["internal","sa_api"]', { directory: 'INTERNAL', userId: 'sa_api', sessions: 1, lastSeen: 1_000_000 + 6 * MINUTE }],
        ],
      );

      // anna's last event is 10 minutes old: the sweep ends her activity and publishes.
      now += 4 * MINUTE;
      const before = s.rows().length;
      await handler.sweep();
      assert.deepEqual(s.rows().slice(before), [
        ['u/count', '2', true],
        ['u/list', '["CORP/bo","INTERNAL/sa_api"]', true],
      ]);
      await handler.sweep();
      assert.equal(s.rows().length, before + 2, 'nothing more to end');
      assert.equal(kv.get('active-user:["corp","anna"]'), undefined);
      handler.stop();
      s.store.close();

      // Next start: the stored users come back; one was added to the exclude list meanwhile.
      now += MINUTE;
      s = open(file);
      handler = new UserEventHandler(options({ excludeUsers: [{ directory: 'internal', userId: 'SA_API' }] }), { store: s.store, outbox: s.outbox, logger: silentLogger() });
      const start = s.rows().length;
      await handler.start();
      assert.deepEqual(s.rows().slice(start), [
        ['u/count', '1', true],
        ['u/list', '["CORP/bo"]', true],
      ]);
      assert.deepEqual(handler.activeUserNames(), ['CORP/bo']);
      handler.stop();
      s.store.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('a completion the outbox refuses leaves the state as it was, and a retry applies it once', async () => {
    const tmp = tempDir('bm-active-users-');
    try {
      const store = new Store({ file: path.join(tmp.dir, 'store.sqlite') });
      const outbox = new Outbox(store, { maxMessages: 4, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 });
      const inbox = new Inbox(store, outbox, { maxEvents: 1000, dedupTtlMs: MINUTE });
      const handler = new UserEventHandler({ topics: TOPICS, sessionIdleMinutes: 10, retainActiveUsers: true }, { store, outbox, logger: silentLogger() });
      await handler.start(); // 2 messages: room for 2 more, an event needs 3
      const accepted = await inbox.accept('udp_session', Buffer.from('h;Start session;CORP;anna'));
      assert.equal(accepted.status, 'accepted');
      const row = { id: accepted.status === 'accepted' ? accepted.id : 0, dedupKey: null };
      const first = await handler.handle(event('h;Start session;CORP;anna'));
      await assert.rejects(inbox.complete(row, first.messages, first.step), { name: 'OutboxFullError' });
      assert.deepEqual(handler.activeUserNames(), []);
      assert.deepEqual(new KeyValueTable(store.db).entries('active-user:'), []);
      await outbox.remove(outbox.peek(0, 10).map((r) => r.id));
      const again = await handler.handle(event('h;Start session;CORP;anna'));
      await inbox.complete(row, again.messages, again.step);
      assert.deepEqual(handler.activeUserNames(), ['CORP/anna']);
      assert.deepEqual(outbox.peek(0, 10).map((r) => r.payload.toString('utf8')), ['h: CORP/anna', '1', '["CORP/anna"]']);
      handler.stop();
      store.close();
    } finally {
      tmp.cleanup();
    }
  });
});
