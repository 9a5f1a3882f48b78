// Subscriptions through the broker connection, against a real broker: routing by MQTT wildcards and
// by the inner filter of a shared subscription, subscribed again after the broker restarted (a
// clean session: the broker forgot them), a refusal logged once, unsubscribe, a stop before the broker
// answered the CONNECT.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { startBroker } from '../support/broker.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { BrokerConnection, type BrokerConnectionOptions } from '../../src/mqtt/connection.ts';
import { createLogger } from '../../src/observability/logger.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function connection(port: number, logs: string[]): BrokerConnection {
  const options: BrokerConnectionOptions = {
    name: 'main',
    protocol: 'mqtt',
    host: '127.0.0.1',
    port,
    clientId: `sub-test-${Math.random().toString(16).slice(2, 10)}`,
    rejectUnauthorized: true,
    protocolVersion: 4,
    keepaliveSeconds: 30,
    clean: true,
    minDelayMs: 50,
    maxDelayMs: 300,
  };
  const logger = createLogger({ level: 'debug', pretty: false, destination: { write: (l: string) => logs.push(l) } });
  const c = new BrokerConnection(options, { logger });
  cleanups.push(() => c.stop(true));
  return c;
}

const messages = (logs: string[], text: string) => logs.filter((l) => (JSON.parse(l) as { msg: string }).msg === text).length;

test('messages are routed to the handlers whose filter matches (+, #, $share/<group>/); subscribed again after a broker restart; unsubscribe stops a handler', async () => {
  const broker = await startBroker();
  cleanups.push(() => broker.stop());
  const logs: string[] = [];
  const conn = connection(broker.port, logs);
  const got: Record<string, string[]> = { plus: [], hash: [], shared: [], exact: [] };
  const plus = conn.subscribe('test/sub/+/x', { qos: 1 }, (topic, payload) => got.plus!.push(`${topic} ${payload.toString()}`));
  conn.subscribe('test/sub/#', { qos: 1, purpose: 'for the whole tree' }, (topic) => got.hash!.push(topic));
  conn.subscribe('test/exact', { qos: 0 }, (topic) => got.exact!.push(topic));
  // Aedes has no shared subscriptions; Mosquitto does.
  const shared = broker.kind === 'mosquitto' ? conn.subscribe('$share/bridge/test/shared/#', { qos: 1 }, (topic) => got.shared!.push(topic)) : null;
  conn.start();
  await conn.waitConnected(10_000);
  assert.equal(conn.state, 'connected');
  assert.equal(await plus.whenGranted(5000), 1);
  if (shared) assert.equal(await shared.whenGranted(5000), 1);

  const sender = await mqtt.connectAsync(broker.url, { reconnectPeriod: 100 });
  cleanups.push(() => sender.endAsync(true));
  const sendAll = async (tag: string) => {
    for (const t of ['test/sub/a/x', 'test/sub/b', 'test/sub/a/y/x', 'test/exact', 'test/shared/1', 'other/topic']) await sender.publishAsync(t, tag, { qos: 1 });
  };
  await sendAll('first');
  await waitFor(() => got.hash!.length === 3 && got.exact!.length === 1 && (!shared || got.shared!.length === 1), 10_000, 'the first round');
  await sleep(200);
  assert.deepEqual(got.plus, ['test/sub/a/x first']);
  assert.deepEqual(got.hash, ['test/sub/a/x', 'test/sub/b', 'test/sub/a/y/x']);
  assert.deepEqual(got.exact, ['test/exact']);
  if (shared) assert.deepEqual(got.shared, ['test/shared/1']);
  assert.equal(messages(logs, 'subscribed to test/sub/# for the whole tree'), 1);

  // A broker without persistence forgets every subscription when it restarts.
  await broker.kill();
  await waitFor(() => conn.state === 'reconnect-wait' || conn.state === 'connecting', 5000, 'the connection to notice');
  await broker.restart();
  await conn.waitConnected(10_000);
  await waitFor(() => messages(logs, 'subscribed again to test/sub/# for the whole tree') === 1, 5000, 'the subscription made again');
  await waitFor(() => sender.connected, 5000, 'the sender to reconnect');
  conn.unsubscribe(plus);
  await sleep(200);
  await sendAll('second');
  await waitFor(() => got.hash!.length === 6 && got.exact!.length === 2 && (!shared || got.shared!.length === 2), 10_000, 'the second round');
  await sleep(200);
  assert.deepEqual(got.plus, ['test/sub/a/x first'], 'unsubscribed: nothing more');
  assert.deepEqual(got.hash!.slice(3), ['test/sub/a/x', 'test/sub/b', 'test/sub/a/y/x']);
  assert.equal(messages(logs, 'subscribed to test/sub/# for the whole tree'), 1, 'the first grant is logged at info once');
});

test('a subscription the broker refuses (SUBACK 0x80) is logged once with its filter, across reconnects; the others work', async () => {
  // Aedes with a hook that refuses one filter (a broker ACL would do the same).
  const port = await freePort();
  const broker = await Aedes.createBroker({
    // A null subscription is answered with 0x80 (an error would close the connection instead).
    authorizeSubscribe: (_client, sub, done) => done(null, sub.topic.startsWith('forbidden/') ? null : sub),
  });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    broker.handle(s);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  });
  const logs: string[] = [];
  const conn = connection(port, logs);
  const refused = conn.subscribe('forbidden/#', { qos: 1, purpose: 'for testing' }, () => assert.fail('no message expected'));
  const fine: string[] = [];
  const allowed = conn.subscribe('allowed/#', { qos: 1 }, (topic) => fine.push(topic));
  conn.start();
  await assert.rejects(refused.whenGranted(5000), /subscription to forbidden\/# refused/);
  assert.equal(refused.status, 'refused');
  assert.equal(await allowed.whenGranted(5000), 1);
  conn.dropSocket();
  await waitFor(() => !conn.connected, 5000, 'the drop');
  await conn.waitConnected(5000);
  await sleep(300);
  const refusals = logs.filter((l) => (JSON.parse(l) as { msg: string }).msg.startsWith('could not subscribe to forbidden/# for testing: refused by the broker (reason code 0x80)'));
  assert.equal(refusals.length, 1, 'one line for the refusal, not one per connect');
  assert.equal((JSON.parse(refusals[0]!) as { topic: string }).topic, 'forbidden/#');
  const sender = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
  await sender.publishAsync('allowed/x', 'y', { qos: 1 });
  await waitFor(() => fine.length === 1, 5000, 'the allowed subscription to work');
  await sender.endAsync(true);
});

test('stopped while the broker has not answered the CONNECT: a CONNACK that comes later does not connect it, and it does not reconnect', async () => {
  // A broker that takes the CONNECT and answers only when the test says so (a slow broker).
  const sockets: net.Socket[] = [];
  let received = 0;
  let serverClosed = 0;
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('data', (d) => (received += d.length));
    s.on('error', () => undefined);
    s.on('close', () => (serverClosed += 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const conn = connection((server.address() as net.AddressInfo).port, []);
  const seen: string[] = [];
  conn.on('connect', () => seen.push('connect'));
  conn.on('closed', () => seen.push('closed'));
  conn.start();
  await waitFor(() => received > 0, 5000, 'the CONNECT to reach the broker');
  await conn.stop();
  assert.equal(conn.state, 'stopped');
  // The answer comes now: CONNACK, connection accepted. Before the fix the client still had the socket
  // open (its DISCONNECT queued behind the CONNACK), took the answer, emitted 'connect', and after
  // sending DISCONNECT reconnected on its own.
  const socket = sockets[0]!;
  if (!socket.destroyed) socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
  // Stopped before an answer, the socket is closed on both ends and nothing can arrive on it any more;
  // a 'connect' is the failure this test is about, so it ends the wait as well.
  await waitFor(() => (serverClosed === 1 && seen.includes('closed')) || seen.includes('connect'), 5000, 'the socket to close on both ends');
  assert.deepEqual(seen, ['closed'], 'no connect after stop');
  assert.equal(conn.state, 'stopped', 'stopped, not waiting to reconnect');
  assert.equal(sockets.length, 1);
});
