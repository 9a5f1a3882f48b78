// The ring between a UDP receive thread and the main thread, both sides, single-threaded: whatever the
// interleaving of writes and takes, every datagram written is taken once, in order, byte for byte;
// a write is refused only when the ring has no room; a record that does not fit before the end goes
// to the front behind a skip mark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpRing } from '../../src/sense/udp-ring.ts';
import { ringWriter } from '../../src/sense/udp-ring-writer.js';

/** A datagram that names its sequence number in its first four bytes, `length` bytes long. */
function datagram(seq: number, length: number): Buffer {
  const b = Buffer.alloc(length, seq & 0xff);
  b.writeUInt32LE(seq, 0);
  return b;
}

/** A small deterministic random source (xorshift), so a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`random writes and takes (seed ${seed}): every datagram taken once, in order, intact; refused only when full`, () => {
    const ring = new UdpRing(4096);
    const writer = ringWriter(ring.ring, ring.control);
    const rnd = random(seed);
    const sent = new Map<number, Buffer>();
    let seq = 0;
    let next = 0;
    let refused = 0;
    let backlogBytes = 0;
    for (let step = 0; step < 50_000; step++) {
      if (rnd() < 0.5) {
        const length = 4 + Math.floor(rnd() * 400);
        const d = datagram(seq, length);
        const address = rnd() < 0.5 ? '127.0.0.1' : '::ffff:10.1.2.3';
        if (writer.put(d, address)) {
          sent.set(seq, d);
          backlogBytes += 1 + address.length + 4 + length;
          seq += 1;
        } else {
          refused += 1;
          // Refused only when the record does not fit: what waits, the record, the one byte kept free
          // and at most one skipped tail at the end of the ring (shorter than the longest record).
          assert.ok(backlogBytes + 1 + address.length + 4 + length + 1 + 420 > 4096, `refused with only ${backlogBytes} bytes waiting`);
        }
      } else {
        ring.take(1 + Math.floor(rnd() * 6), (got, address) => {
          const n = got.readUInt32LE(0);
          assert.equal(n, next, 'taken in order, none skipped');
          assert.deepEqual(got, sent.get(n), `datagram ${n} intact`);
          assert.ok(address === '127.0.0.1' || address === '::ffff:10.1.2.3');
          backlogBytes -= 1 + address.length + 4 + got.length;
          sent.delete(n);
          next += 1;
        });
      }
      assert.equal(ring.backlog(), seq - next);
    }
    while (ring.take(100, (got) => assert.equal(got.readUInt32LE(0), next++)) > 0);
    assert.equal(next, seq, 'everything written was taken');
    assert.ok(refused > 0 && seq > 10_000, `the ring was exercised: ${seq} written, ${refused} refused`);
  });
}

test('a record that does not fit before the end of the ring goes to the front, behind a skip mark', () => {
  const ring = new UdpRing(1024);
  const writer = ringWriter(ring.ring, ring.control);
  const bytes = Buffer.from(ring.ring);
  const taken: number[] = [];
  const take = () => ring.take(100, (d) => taken.push(d.readUInt32LE(0)));
  // Three 300-byte records (1 + 9 + 4 + 286) move the positions to 900.
  for (let i = 0; i < 3; i++) assert.ok(writer.put(datagram(i, 286), '127.0.0.1'));
  take();
  // 124 bytes are left before the end: a 300-byte record goes to the front, with a skip mark at 900.
  assert.ok(writer.put(datagram(3, 286), '127.0.0.1'));
  assert.equal(bytes[900], 255, 'the skip mark');
  assert.equal(bytes[0], 9, 'the record at the front');
  // Until the reader passes the mark, the front up to the read position (900) holds one more: a third
  // record would end on the read position, which would read as "empty".
  assert.ok(writer.put(datagram(4, 286), '127.0.0.1'));
  assert.equal(writer.put(datagram(5, 286), '127.0.0.1'), false, 'no room: it would reach the read position');
  take();
  assert.deepEqual(taken, [0, 1, 2, 3, 4]);
});
