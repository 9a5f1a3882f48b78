// User session and connection events end to end: real proxy datagrams over a real UDP
// socket into the bridge, messages counted on a real broker. Expected payloads are written out by
// hand; the active-user topics are read back as retained values by subscribers that join late.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startBroker, type TestBroker } from '../support/broker.ts';
import { collect, type Collector, type Received } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, spawnBridge, startInProcess, tempDir, writeConfig, type InProcessBridge } from '../support/bridge.ts';
import { freeUdpPort, sendDatagram, sendDatagrams } from '../support/udp.ts';
import { sleep, waitFor } from '../support/wait.ts';
import { readStore } from '../support/store-file.ts';

type Json = Record<string, unknown>;

const SESSION_START = 'qliksense/session/start';
const SESSION_STOP = 'qliksense/session/stop';
const CONNECTION_OPEN = 'qliksense/connection/open';
const CONNECTION_CLOSE = 'qliksense/connection/close';
const EVENT = 'qliksense/users/event';
const COUNT = 'qliksense/users/active/count';
const USERS = 'qliksense/users/active/usernames';
const APP_ID = '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f';

const tmp = tempDir('bm-user-events-');
let broker: TestBroker;
let sub: Collector;
let bridge: InProcessBridge;
let sessionPort: number;
let taskPort: number;
let configFile: string;

/** Bridge config: MQTT on the test broker, both UDP ports, session events on, default topics. */
async function sessionConfig(name: string, over: Json = {}): Promise<{ file: string; sessionPort: number; taskPort: number }> {
  const ports = { sessionPort: await freeUdpPort(), taskPort: await freeUdpPort() };
  const butler = deepMerge(
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, name, 'outbox.sqlite') } },
      udpServerConfig: {
        enable: true,
        serverHost: '127.0.0.1',
        portTaskFailure: ports.taskPort,
        portSessionConnectionEvents: ports.sessionPort,
        maxMessageSize: 1000,
        sessionConnectionEvents: { enable: true, excludeUsers: [{ directory: 'INTERNAL', userId: 'sa_repository' }] },
      },
    }),
    over,
  );
  return { file: writeConfig(tmp.dir, butler, `${name}.yaml`), ...ports };
}

function counter(b: InProcessBridge, name: string, labels: Record<string, string>): Promise<number> {
  return b.app.metrics.total(`butler_mqtt_${name}`, labels);
}

/** The session port's counters, for exact deltas. */
type Counts = { received: number; accepted: number; rejected: number } & Record<string, number>;

async function counts(b: InProcessBridge, reasons: string[] = []): Promise<Counts> {
  const out: Counts = {
    received: await counter(b, 'events_received_total', { source: 'udp_session' }),
    accepted: await counter(b, 'events_accepted_total', { source: 'udp_session' }),
    rejected: await counter(b, 'events_rejected_total', { source: 'udp_session' }),
  };
  for (const r of reasons) out[r] = await counter(b, 'events_rejected_total', { source: 'udp_session', reason: r });
  return out;
}

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
}

/** Waits until every datagram the session port received was accepted or rejected, and every accepted one handled. */
async function settled(b: InProcessBridge, timeoutMs = 15_000): Promise<void> {
  await waitFor(
    async () => {
      const c = await counts(b);
      return c.accepted + c.rejected === c.received && b.app.inbox!.depth === 0 && b.app.outbox!.depth === 0;
    },
    timeoutMs,
    'session datagrams to be handled and delivered',
  );
}

const SESSION_TOPICS = new Set([SESSION_START, SESSION_STOP, CONNECTION_OPEN, CONNECTION_CLOSE, EVENT, COUNT, USERS]);

function since(start: number): [string, string][] {
  return sub.messages
    .slice(start)
    .filter((m) => SESSION_TOPICS.has(m.topic))
    .map((m) => [m.topic, m.text]);
}

/** Retained values of the active-user topics, as a subscriber joining now sees them. */
async function retained(): Promise<{ count: Received; users: Received }> {
  const late = await collect(broker.url, [COUNT, USERS]);
  try {
    await late.waitForCount(2, 5000);
    await sleep(100);
    assert.equal(late.messages.length, 2, 'one retained message per topic');
    return { count: late.on(COUNT)[0]!, users: late.on(USERS)[0]! };
  } finally {
    await late.close();
  }
}

/** Sends one datagram and waits for `n` session-topic messages caused by it. */
async function exchange(datagram: string, n: number): Promise<[string, string][]> {
  const start = sub.messages.length;
  await sendDatagram(sessionPort, datagram);
  await waitFor(() => since(start).length >= n, 10_000, `${n} messages for ${datagram}`);
  await settled(bridge);
  return since(start);
}

before(async () => {
  broker = await startBroker();
  sub = await collect(broker.url, 'qliksense/#');
  const c = await sessionConfig('main');
  ({ file: configFile, sessionPort, taskPort } = c);
  bridge = await startInProcess(configFile);
  await bridge.app.connection!.waitConnected(5000);
});

after(async () => {
  await bridge?.stop();
  await sub?.close();
  await broker?.stop();
  tmp.cleanup();
});

test('at start the active-user topics are published once, retained: 0 and []', async () => {
  await sub.waitForCount(1, 10_000, USERS);
  assert.deepEqual(sub.texts(COUNT), ['0']);
  assert.deepEqual(sub.texts(USERS), ['[]']);
  const r = await retained();
  assert.equal(r.count.text, '0');
  assert.equal(r.count.retain, true);
  assert.equal(r.users.text, '[]');
  assert.equal(r.users.retain, true);
});

test('each command in both datagram forms: exact legacy payload, exact JSON, and the active users move with sessions', async () => {
  // Start session, 8-field form, context naming an app: JSON carries appId.
  assert.deepEqual(
    await exchange(`/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;https://sense.corp.example;/app/${APP_ID};Start session for user 'CORP\\anna'`, 4),
    [
      [SESSION_START, 'sense-proxy-1: CORP/anna'],
      [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-1","command":"Start session","user_directory":"CORP","user_id":"anna","origin":"https://sense.corp.example","context":"/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","message":"Start session for user 'CORP\\anna'","user_full":"CORP\\anna","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f"}`],
      [COUNT, '1'],
      [USERS, '["CORP/anna"]'],
    ],
  );
  // Start session, the older 4-field form.
  assert.deepEqual(await exchange('sense-proxy-2;Start session;EXT;bo', 4), [
    [SESSION_START, 'sense-proxy-2: EXT/bo'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-2","command":"Start session","user_directory":"EXT","user_id":"bo","origin":"","context":"","message":"","user_full":"EXT\\bo"}`],
    [COUNT, '2'],
    [USERS, '["CORP/anna","EXT/bo"]'],
  ]);
  let r = await retained();
  assert.deepEqual([r.count.text, r.count.retain, r.users.text, r.users.retain], ['2', true, '["CORP/anna","EXT/bo"]', true]);

  // Connections: legacy topic + JSON; the set of active users does not change, so nothing on the active topics.
  assert.deepEqual(await exchange('/qseow-proxy-connection/;sense-proxy-1;Open connection;CORP;anna;AppAccess;/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f/sheet/a1;connection Opened for session', 2), [
    [CONNECTION_OPEN, 'sense-proxy-1: CORP/anna'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-connection","host":"sense-proxy-1","command":"Open connection","user_directory":"CORP","user_id":"anna","origin":"AppAccess","context":"/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f/sheet/a1","message":"connection Opened for session","user_full":"CORP\\anna","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f"}`],
  ]);
  assert.deepEqual(await exchange('sense-proxy-2;Open connection;EXT;bo', 2), [
    [CONNECTION_OPEN, 'sense-proxy-2: EXT/bo'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-connection","host":"sense-proxy-2","command":"Open connection","user_directory":"EXT","user_id":"bo","origin":"","context":"","message":"","user_full":"EXT\\bo"}`],
  ]);
  assert.deepEqual(await exchange('/qseow-proxy-connection/;sense-proxy-1;Close connection;CORP;anna;AppAccess;/hub;connection Closed for session', 2), [
    [CONNECTION_CLOSE, 'sense-proxy-1: CORP/anna'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-connection","host":"sense-proxy-1","command":"Close connection","user_directory":"CORP","user_id":"anna","origin":"AppAccess","context":"/hub","message":"connection Closed for session","user_full":"CORP\\anna"}`],
  ]);
  assert.deepEqual(await exchange('sense-proxy-2;Close connection;EXT;bo', 2), [
    [CONNECTION_CLOSE, 'sense-proxy-2: EXT/bo'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-connection","host":"sense-proxy-2","command":"Close connection","user_directory":"EXT","user_id":"bo","origin":"","context":"","message":"","user_full":"EXT\\bo"}`],
  ]);

  // A second session of anna (other letter case): counted once; her first stop leaves her active.
  assert.deepEqual(await exchange('sense-proxy-2;start SESSION;corp;ANNA', 2), [
    [SESSION_START, 'sense-proxy-2: corp/ANNA'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-2","command":"Start session","user_directory":"corp","user_id":"ANNA","origin":"","context":"","message":"","user_full":"corp\\ANNA"}`],
  ]);
  assert.deepEqual(await exchange(`/qseow-proxy-session/;sense-proxy-1;Stop session;CORP;anna;https://sense.corp.example;/hub;Stop session for user 'CORP\\anna'`, 2), [
    [SESSION_STOP, 'sense-proxy-1: CORP/anna'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-1","command":"Stop session","user_directory":"CORP","user_id":"anna","origin":"https://sense.corp.example","context":"/hub","message":"Stop session for user 'CORP\\anna'","user_full":"CORP\\anna"}`],
  ]);
  assert.deepEqual(await exchange('sense-proxy-2;Stop session;CORP;anna', 4), [
    [SESSION_STOP, 'sense-proxy-2: CORP/anna'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-2","command":"Stop session","user_directory":"CORP","user_id":"anna","origin":"","context":"","message":"","user_full":"CORP\\anna"}`],
    [COUNT, '1'],
    [USERS, '["EXT/bo"]'],
  ]);
  assert.deepEqual(await exchange('sense-proxy-2;Stop session;EXT;bo', 4), [
    [SESSION_STOP, 'sense-proxy-2: EXT/bo'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-2","command":"Stop session","user_directory":"EXT","user_id":"bo","origin":"","context":"","message":"","user_full":"EXT\\bo"}`],
    [COUNT, '0'],
    [USERS, '[]'],
  ]);
  // A stop for a user who is not active: published as an event, the active users do not move.
  assert.deepEqual(await exchange('sense-proxy-2;Stop session;EXT;bo', 2), [
    [SESSION_STOP, 'sense-proxy-2: EXT/bo'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-2","command":"Stop session","user_directory":"EXT","user_id":"bo","origin":"","context":"","message":"","user_full":"EXT\\bo"}`],
  ]);
  r = await retained();
  assert.deepEqual([r.count.text, r.users.text], ['0', '[]']);
  assert.deepEqual(sub.texts(COUNT), ['0', '1', '2', '1', '0']);
});

test('a ";" in the message is kept; unknown command, wrong field count, too large and excluded users are dropped and counted', async () => {
  const reasons = ['unknown_command', 'field_count', 'excluded_user', 'too_large', 'unknown_type'];
  const taskBefore = await counter(bridge, 'events_rejected_total', { source: 'udp_task' });
  const before_ = await counts(bridge, reasons);
  const start = sub.messages.length;
  await sendDatagrams(sessionPort, [
    '/qseow-proxy-session/;sense-proxy-1;Restart session;CORP;anna;o;/hub;m', // unknown command
    'sense-proxy-1;Reopen connection;CORP;anna', // unknown command, 4-field form
    '/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;o;/hub', // 7 fields
    'sense-proxy-1;Start session;CORP', // 3 fields
    'sense-proxy-1;Start session;CORP;anna;extra', // 5 fields
    '/qseow-proxy-session/;sense-proxy-1;Start session;internal;SA_Repository;o;/hub;m', // excluded (letter case ignored)
    'sense-proxy-1;Open connection;INTERNAL;sa_repository', // excluded, 4-field form
    `/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;o;/hub;${'x'.repeat(1000)}`, // over maxMessageSize (1000)
    '/qseow-proxy-login/;sense-proxy-1;Start session;CORP;anna;o;/hub;m', // unknown type
  ]);
  const messages = await exchange(
    "/qseow-proxy-session/;sense-proxy-1;Start session;CORP;cy;https://o;/hub;Start session for user 'CORP\\cy'; UserAgent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    4,
  );
  assert.deepEqual(messages, [
    [SESSION_START, 'sense-proxy-1: CORP/cy'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-1","command":"Start session","user_directory":"CORP","user_id":"cy","origin":"https://o","context":"/hub","message":"Start session for user 'CORP\\cy'; UserAgent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)","user_full":"CORP\\cy"}`],
    [COUNT, '1'],
    [USERS, '["CORP/cy"]'],
  ]);
  assert.deepEqual(since(start), messages, 'the dropped datagrams published nothing');
  assert.deepEqual(delta(before_, await counts(bridge, reasons)), {
    received: 10,
    accepted: 1,
    rejected: 9,
    unknown_command: 2,
    field_count: 3,
    excluded_user: 2,
    too_large: 1,
    unknown_type: 1,
  });
  assert.equal(await counter(bridge, 'events_rejected_total', { source: 'udp_task' }), taskBefore, 'the task port counts its own');
  await exchange('sense-proxy-1;Stop session;CORP;cy', 4);
});

test('send-test-event session-start / session-stop reach the bridge as proxy datagrams', async () => {
  const run = promisify(execFile);
  const cli = (kind: string) =>
    run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), 'send-test-event', kind, '--port', String(sessionPort), '--user-directory', 'CORP', '--user-id', 'fred'], { cwd: REPO_ROOT });
  const start = sub.messages.length;
  await cli('session-start');
  await waitFor(() => since(start).length >= 4, 10_000, 'the test session start');
  await cli('session-stop');
  await waitFor(() => since(start).length >= 8, 10_000, 'the test session stop');
  await settled(bridge);
  const host = os.hostname();
  assert.deepEqual(
    since(start).filter(([t]) => t !== EVENT),
    [
      [SESSION_START, `${host}: CORP/fred`],
      [COUNT, '1'],
      [USERS, '["CORP/fred"]'],
      [SESSION_STOP, `${host}: CORP/fred`],
      [COUNT, '0'],
      [USERS, '[]'],
    ],
  );
  assert.equal(
    since(start).find(([t]) => t === EVENT)?.[1],
    String.raw`{"messageType":"qseow-proxy-session","host":"` + host + String.raw`","command":"Start session","user_directory":"CORP","user_id":"fred","origin":"butler-mqtt","context":"/hub","message":"Start session for user 'CORP\\fred'","user_full":"CORP\\fred"}`,
  );
});

test('10,000 session events at 1,000/s: every one delivered, exactly once; the active-user count is right at the end', async () => {
  // 200 users start 26 sessions each (5,200 starts); then 160 of them stop all 26 and 40 stop 16
  // (4,800 stops): 40 users stay active. The set changes 200 + 160 times.
  const users = Array.from({ length: 200 }, (_, i) => `u${String(i).padStart(3, '0')}`);
  const datagrams: string[] = [];
  for (let round = 0; round < 26; round++) for (const u of users) datagrams.push(`/qseow-proxy-session/;sense-proxy-1;Start session;LOAD;${u};o;/hub;Start session for user 'LOAD\\${u}'`);
  for (let round = 0; round < 26; round++) {
    users.forEach((u, i) => {
      if (i < 160 || round < 16) datagrams.push(`sense-proxy-2;Stop session;LOAD;${u}`);
    });
  }
  assert.equal(datagrams.length, 10_000);
  const before_ = await counts(bridge);
  const start = sub.messages.length;
  const began = Date.now();
  // 10 datagrams every 10 ms.
  for (let i = 0; i < datagrams.length; i += 10) {
    await sendDatagrams(sessionPort, datagrams.slice(i, i + 10));
    const due = began + ((i + 10) / 1000) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const mine = () => sub.messages.slice(start);
  const on = (topic: string) => mine().filter((m) => m.topic === topic);
  await waitFor(() => on(EVENT).length >= 10_000 && on(USERS).length >= 360, 30_000, `10,000 events (have ${on(EVENT).length})`);
  await settled(bridge, 30_000);
  await sleep(300); // anything extra (a duplicate) would arrive now
  assert.deepEqual(delta(before_, await counts(bridge)), { received: 10_000, accepted: 10_000, rejected: 0 });
  assert.equal(on(SESSION_START).length, 5_200);
  assert.equal(on(SESSION_STOP).length, 4_800);
  assert.equal(on(EVENT).length, 10_000);
  assert.equal(on(COUNT).length, 360);
  assert.equal(on(USERS).length, 360);
  assert.equal(new Set(on(SESSION_START).map((m) => m.text)).size, 200);
  assert.equal(on(COUNT).at(-1)!.text, '40');
  const expected = JSON.stringify(users.slice(160).map((u) => `LOAD/${u}`));
  assert.equal(on(USERS).at(-1)!.text, expected);
  const r = await retained();
  assert.deepEqual([r.count.text, r.users.text], ['40', expected]);
});

test('restart: users active before it are still counted after it', async () => {
  await exchange('sense-proxy-1;Start session;CORP;dora', 4);
  let r = await retained();
  assert.equal(r.count.text, '41');
  await bridge.stop();
  const start = sub.messages.length;
  bridge = await startInProcess(configFile);
  await bridge.app.connection!.waitConnected(5000);
  // Published at start from the stored state (a fresh state would say 0 and []).
  await waitFor(() => since(start).length >= 2, 10_000, 'the resumed active users');
  const names = [...Array.from({ length: 40 }, (_, i) => `LOAD/u${160 + i}`)].concat('CORP/dora').sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
  assert.deepEqual(since(start), [
    [COUNT, '41'],
    [USERS, JSON.stringify(names)],
  ]);
  // A stop for dora only moves the count if she is known after the restart.
  assert.deepEqual(await exchange('sense-proxy-1;Stop session;CORP;dora', 4), [
    [SESSION_STOP, 'sense-proxy-1: CORP/dora'],
    [EVENT, String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-1","command":"Stop session","user_directory":"CORP","user_id":"dora","origin":"","context":"","message":"","user_full":"CORP\\dora"}`],
    [COUNT, '40'],
    [USERS, JSON.stringify(names.filter((n) => n !== 'CORP/dora'))],
  ]);
  // LOAD/u160 still has 10 sessions: 9 stops keep them active, the 10th ends it.
  const nine = sub.messages.length;
  await sendDatagrams(sessionPort, Array.from({ length: 9 }, () => 'sense-proxy-2;Stop session;LOAD;u160'));
  await waitFor(() => since(nine).length >= 18, 10_000, 'nine stops');
  await settled(bridge);
  assert.deepEqual(since(nine).filter(([t]) => t === COUNT || t === USERS), []);
  const last = await exchange('sense-proxy-2;Stop session;LOAD;u160', 4);
  assert.deepEqual(last.filter(([t]) => t === COUNT), [[COUNT, '39']]);
  r = await retained();
  assert.equal(r.count.text, '39');
});

/** Session events in the store file: still waiting in the inbox, and completed (their legacy message in the outbox, the broker being away). */
function storeCounts(file: string): { waiting: number; done: number } {
  return readStore(file, (db) => ({
    waiting: (db.prepare("SELECT count(*) AS n FROM inbox WHERE source = 'udp_session'").get() as { n: number }).n,
    done: (db.prepare("SELECT count(*) AS n FROM outbox WHERE kind = 'session_legacy'").get() as { n: number }).n,
  }));
}

test('SIGKILL with most events waiting in the inbox: after a restart each is applied once and the count is exact', async () => {
  // Broker away and a tiny outbox: the first few events complete, the rest wait in the inbox when the
  // kill comes. 300 users start; the last 100 stop; then the first 5 stop: users c005..c199 stay.
  // Lost state would drop the users completed before the kill; applying a completed event again
  // would give the first users two sessions, so their single stop would leave them counted.
  const crashBroker = await startBroker();
  await crashBroker.stop();
  const dbFile = path.join(tmp.dir, 'crash', 'outbox.sqlite');
  const ports = { sessionPort: await freeUdpPort(), taskPort: await freeUdpPort() };
  const butler = (maxMessages: number) =>
    deepMerge(baseButler(crashBroker.port), {
      mqttConfig: { delivery: { outboxFile: dbFile, maxMessages } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: ports.taskPort, portSessionConnectionEvents: ports.sessionPort, sessionConnectionEvents: { enable: true } },
    });
  const users = Array.from({ length: 300 }, (_, i) => `c${String(i).padStart(3, '0')}`);
  const datagrams = [
    ...users.map((u) => `sense-proxy-1;Start session;CRASH;${u}`),
    ...users.slice(200).map((u) => `sense-proxy-1;Stop session;CRASH;${u}`),
    ...users.slice(0, 5).map((u) => `sense-proxy-1;Stop session;CRASH;${u}`),
  ];
  let crashSub: Collector | null = null;
  let second: Awaited<ReturnType<typeof spawnBridge>> | null = null;
  try {
    const first = await spawnBridge(writeConfig(tmp.dir, butler(40), 'crash-1.yaml'));
    await sendDatagrams(ports.sessionPort, datagrams);
    // The outbox (40) stops the handling after a few events; the rest wait in the inbox. Accepting
    // and handling run apart, so both are waited for.
    await waitFor(() => {
      const c = storeCounts(dbFile);
      return c.waiting + c.done === 405 && c.done >= 5;
    }, 10_000, 'all 405 datagrams accepted and the first 5 completed');
    await first.kill('SIGKILL');
    const atKill = storeCounts(dbFile);
    assert.equal(atKill.waiting + atKill.done, 405);
    assert.ok(atKill.waiting > 300 && atKill.done >= 5, `most events still in the inbox at the kill, the first 5 or more completed (${JSON.stringify(atKill)})`);

    await crashBroker.restart();
    crashSub = await collect(crashBroker.url, 'qliksense/#');
    second = await spawnBridge(writeConfig(tmp.dir, butler(100_000), 'crash-2.yaml'));
    const on = (topic: string) => crashSub!.on(topic).filter((m) => m.text.includes('CRASH/'));
    await waitFor(() => on(SESSION_START).length >= 300 && on(SESSION_STOP).length >= 105, 20_000, 'every event after the restart');
    await sleep(500);
    assert.equal(on(SESSION_START).length, 300);
    assert.equal(on(SESSION_STOP).length, 105);
    assert.equal(new Set(on(SESSION_START).map((m) => m.text)).size, 300);
    const late = await collect(crashBroker.url, [COUNT, USERS]);
    try {
      await late.waitForCount(2, 5000);
      assert.equal(late.on(COUNT)[0]?.text, '195');
      assert.equal(late.on(USERS)[0]?.text, JSON.stringify(users.slice(5, 200).map((u) => `CRASH/${u}`)));
    } finally {
      await late.close();
    }
  } finally {
    await second?.kill('SIGTERM');
    await crashSub?.close();
    await crashBroker.stop();
  }
});

test('same allow-list and rate-limit rules as the task port, with their own counters and window', async () => {
  const c = await sessionConfig('rules', {
    udpServerConfig: { enableSourceValidation: true, allowedSources: ['127.0.0.1'], rateLimit: { enable: true, maxMessagesPerMinute: 3 } },
  });
  const b = await startInProcess(c.file);
  try {
    const before_ = await counts(b, ['rate_limited', 'source_not_allowed']);
    await sendDatagrams(c.sessionPort, Array.from({ length: 5 }, (_, i) => `sense-proxy-1;Open connection;CORP;user${i}`));
    // From another loopback address, not on the allow-list.
    const other = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.2', () => resolve()));
    await new Promise<void>((resolve, reject) => other.send('sense-proxy-1;Open connection;CORP;x', c.sessionPort, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    await new Promise<void>((resolve) => other.close(() => resolve()));
    await waitFor(async () => (await counts(b)).received - before_.received === 6, 5000, 'six datagrams on the session port');
    await settled(b);
    assert.deepEqual(delta(before_, await counts(b, ['rate_limited', 'source_not_allowed'])), { received: 6, accepted: 3, rejected: 3, rate_limited: 2, source_not_allowed: 1 });
    // The task port has a window of its own: its first datagram is not rate limited.
    await sendDatagram(c.taskPort, '/scheduler-reload-failed/;h;t;a;u;;;2026-11-20 02:03:12,345;ERROR;;m');
    await waitFor(async () => (await counter(b, 'events_received_total', { source: 'udp_task' })) === 1, 5000, 'the task datagram');
    assert.equal(await counter(b, 'events_rejected_total', { source: 'udp_task', reason: 'rate_limited' }), 0);
  } finally {
    await b.stop();
  }
});
