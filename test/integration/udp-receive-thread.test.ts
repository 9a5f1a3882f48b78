// The two kinds of UDP receive thread on real sockets, side by side: the native one (a C thread built
// at install on Linux) and the JavaScript worker thread. Both must bind the same way, fail the same
// way, report the same sender addresses and leave the same records in the ring; the native one is
// what `auto` chooses on Linux, so the install must have built it here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../support/bridge.ts';
import { sendDatagram } from '../support/udp.ts';
import { waitFor } from '../support/wait.ts';
import { UdpRing } from '../../src/sense/udp-ring.ts';
import { loadNativeModule, makeReceiveThread, nativeReceiver, type ReceiveThread, type ReceiveThreadChoice } from '../../src/sense/udp-receive-thread.ts';

const KINDS = ['native', 'javascript'] as const;
const tmp = tempDir('bm-receive-thread-');

interface Harness {
  thread: ReceiveThread;
  ring: UdpRing;
  wakes: () => number;
  errors: Error[];
  /** Everything in the ring now, taken. */
  take: () => { datagram: string; address: string }[];
}

function harness(kind: ReceiveThreadChoice, host: string, port: number, queueBytes = 1 << 16): Harness {
  const ring = new UdpRing(queueBytes);
  let wakes = 0;
  const errors: Error[] = [];
  const thread = makeReceiveThread(kind, { host, port, receiveBufferBytes: 1 << 20, maxQueued: 1000 }, ring, {
    data: () => {
      wakes += 1;
    },
    error: (err) => errors.push(err),
    warning: () => {},
  });
  const take = () => {
    const out: { datagram: string; address: string }[] = [];
    ring.take(10_000, (d, address) => out.push({ datagram: d.toString('utf8'), address }));
    return out;
  };
  return { thread, ring, wakes: () => wakes, errors, take };
}

test('on Linux the install built the native receive thread and auto chooses it (elsewhere auto falls back to the worker); javascript asks for the worker thread', () => {
  const n = nativeReceiver();
  if (process.platform === 'linux') {
    assert.ok('module' in n, `native receive thread not available: ${'reason' in n ? n.reason : ''}`);
    assert.equal(harness('native', '127.0.0.1', 0).thread.kind, 'native');
  } else {
    assert.ok('reason' in n && n.reason.includes('Linux'), JSON.stringify(n));
    assert.throws(() => harness('native', '127.0.0.1', 0), /receiveThread is "native", but the native receive thread cannot be used/);
  }
  assert.equal(harness('auto', '127.0.0.1', 0).thread.kind, process.platform === 'linux' ? 'native' : 'javascript');
  assert.equal(harness('javascript', '127.0.0.1', 0).thread.kind, 'javascript');
});

test('the native module: missing and unloadable files give a reason that says what to do, not a crash', () => {
  const missing = loadNativeModule([path.join(tmp.dir, 'nowhere', 'udp-reader.node')]);
  assert.ok('reason' in missing && /missing.*npm run build:native/.test(missing.reason), JSON.stringify(missing));
  const junk = path.join(tmp.dir, 'junk.node');
  writeFileSync(junk, 'not a shared library');
  const bad = loadNativeModule([junk]);
  assert.ok('reason' in bad && bad.reason.startsWith(`${junk} cannot be loaded:`), JSON.stringify(bad));
});

test('the native module refuses wrong calls with a clear TypeError instead of crashing the process', () => {
  const n = nativeReceiver();
  assert.ok('module' in n, `native receive thread not available: ${'reason' in n ? n.reason : ''}`);
  const m = n.module;
  assert.throws(() => m.close({}), { name: 'TypeError', message: 'not a receiver handle' });
  assert.throws(() => (m.open as (...a: unknown[]) => unknown)('127.0.0.1'), { name: 'TypeError', message: 'open(address, port, ipv6, receiveBufferBytes)' });
  assert.throws(() => m.open('not an address', 0, false, 0), { name: 'TypeError', message: 'address is not an IPv4 address' });
  const opened = m.open('127.0.0.1', 0, false, 0);
  const ring = new UdpRing(1 << 16);
  assert.throws(() => m.start(opened.handle, new Uint8Array(8), new Int32Array(ring.control), 10, () => {}), { name: 'TypeError', message: 'ring must be a Uint8Array' });
  m.close(opened.handle);
  assert.throws(() => m.start(opened.handle, new Uint8Array(ring.ring), new Int32Array(ring.control), 10, () => {}), { name: 'TypeError', message: 'receiver already started or closed' });
});

for (const kind of KINDS) {
  test(`${kind}: datagrams land in the ring in order with the sender's address; one wake-up until the ring is re-armed`, async () => {
    const h = harness(kind, '127.0.0.1', 0);
    const listening = await h.thread.start();
    try {
      assert.equal(listening.address, '127.0.0.1');
      assert.ok(listening.port > 0);
      assert.ok(listening.granted !== null && listening.granted >= 1 << 16, `granted ${listening.granted}`);
      if (process.platform === 'linux') assert.ok(Number.isInteger(listening.threadId) && listening.threadId! > 0, `thread id ${listening.threadId}`);
      for (const text of ['first', 'second', 'x'.repeat(3000)]) await sendDatagram(listening.port, text);
      await waitFor(() => h.ring.written() === 3, 5000, 'three datagrams written');
      await new Promise((resolve) => setImmediate(resolve));
      // The wake flag stays set until the reader re-arms it: however the datagrams were batched, at
      // most one wake-up was sent, and at least one, since nothing was taken yet.
      await waitFor(() => h.wakes() === 1, 5000, 'the wake-up');
      assert.deepEqual(h.take(), [
        { datagram: 'first', address: '127.0.0.1' },
        { datagram: 'second', address: '127.0.0.1' },
        { datagram: 'x'.repeat(3000), address: '127.0.0.1' },
      ]);
      h.ring.rearm();
      await sendDatagram(listening.port, 'after re-arming');
      await waitFor(() => h.wakes() === 2, 5000, 'a second wake-up after re-arming');
      assert.deepEqual(h.take(), [{ datagram: 'after re-arming', address: '127.0.0.1' }]);
      assert.deepEqual(h.errors, []);
    } finally {
      await h.thread.stop();
    }
  });

  test(`${kind}: a port in use fails the start with EADDRINUSE`, async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
    try {
      const h = harness(kind, '127.0.0.1', holder.address().port);
      await assert.rejects(h.thread.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'EADDRINUSE');
        assert.match(err.message, /EADDRINUSE/);
        return true;
      });
    } finally {
      holder.close();
    }
  });

  test(`${kind}: an IPv6 socket on :: takes IPv6 and IPv4 senders (the IPv4 ones as IPv4-mapped addresses)`, async () => {
    const h = harness(kind, '::', 0);
    const listening = await h.thread.start();
    try {
      assert.equal(listening.address, '::');
      await sendDatagram(listening.port, 'from ::1', '::1');
      await sendDatagram(listening.port, 'from 127.0.0.1', '127.0.0.1');
      await waitFor(() => h.ring.written() === 2, 5000, 'two datagrams written');
      assert.deepEqual(h.take(), [
        { datagram: 'from ::1', address: '::1' },
        { datagram: 'from 127.0.0.1', address: '::ffff:127.0.0.1' },
      ]);
    } finally {
      await h.thread.stop();
    }
  });

  test(`${kind}: a host name is resolved (localhost → 127.0.0.1); stop closes the socket, keeps what was written, and twice is harmless`, async () => {
    const h = harness(kind, 'localhost', 0);
    const listening = await h.thread.start();
    assert.equal(listening.address, '127.0.0.1');
    await sendDatagram(listening.port, 'before stop');
    await waitFor(() => h.ring.written() === 1, 5000, 'the datagram written');
    await h.thread.stop();
    await h.thread.stop();
    assert.deepEqual(h.take(), [{ datagram: 'before stop', address: '127.0.0.1' }]);
    // The port is free again: the socket was closed.
    const again = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind(listening.port, '127.0.0.1', resolve);
    });
    again.close();
  });
}
