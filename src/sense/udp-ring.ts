// The main thread's side of the ring buffer the UDP receive thread fills (udp-receiver-worker.js).
//
// Layout: `ring` is a SharedArrayBuffer of datagram records, each
//   u8 address length (255 = skip to the start of the ring), the address (latin1),
//   u32 LE datagram length, the datagram.
// As traffic goes by, the write position goes all around the ring: after the ring's size in datagrams
// all of its memory is resident, which is why it is 8 MiB and not more.
// `control` holds six Int32 slots: the write and read offsets (the receive thread moves the first, the
// main thread the second), datagrams written and datagrams taken (both wrap around; their difference
// is the backlog), a wake flag (set by the receive thread when it posts a wake-up message, cleared by
// the main thread before it looks for more), and datagrams refused because the ring or the backlog
// was full (added by the receive thread, taken by the main thread).
const WRITE = 0;
const READ = 1;
const WRITTEN = 2;
const TAKEN = 3;
const WAKE = 4;
const OVERFLOW = 5;
const WRAP = 255;

export class UdpRing {
  readonly ring: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  private readonly data: Buffer;
  private readonly ctl: Int32Array;

  constructor(bytes: number) {
    this.ring = new SharedArrayBuffer(bytes);
    this.control = new SharedArrayBuffer(6 * Int32Array.BYTES_PER_ELEMENT);
    this.data = Buffer.from(this.ring);
    this.ctl = new Int32Array(this.control);
  }

  /** Datagrams written and not yet taken. */
  backlog(): number {
    return (Atomics.load(this.ctl, WRITTEN) - Atomics.load(this.ctl, TAKEN)) | 0;
  }

  /** Datagrams written in all (wraps around at 2^31). */
  written(): number {
    return Atomics.load(this.ctl, WRITTEN);
  }

  /** Datagrams the receive thread refused and not yet taken by takeOverflow. */
  pendingOverflow(): number {
    return Atomics.load(this.ctl, OVERFLOW);
  }

  /** Datagrams the receive thread refused since the last call (ring or backlog full). */
  takeOverflow(): number {
    return Atomics.exchange(this.ctl, OVERFLOW, 0);
  }

  /** Before looking for more: a datagram written from now on wakes the main thread again. */
  rearm(): void {
    Atomics.store(this.ctl, WAKE, 0);
  }

  /**
   * Hands up to `max` datagrams to `take`, oldest first, each copied out of the ring (the ring's
   * memory is reused at once). Returns how many it handed over.
   */
  take(max: number, take: (datagram: Buffer, address: string) => void): number {
    const data = this.data;
    const end = Atomics.load(this.ctl, WRITE);
    let r = Atomics.load(this.ctl, READ);
    let n = 0;
    while (r !== end && n < max) {
      const addressLength = data[r]!;
      if (addressLength === WRAP) {
        r = 0;
        continue;
      }
      const address = data.toString('latin1', r + 1, r + 1 + addressLength);
      const length = data.readUInt32LE(r + 1 + addressLength);
      const start = r + 5 + addressLength;
      const datagram = Buffer.from(data.subarray(start, start + length));
      r = (start + length) % data.length;
      Atomics.store(this.ctl, READ, r);
      Atomics.add(this.ctl, TAKEN, 1);
      n += 1;
      take(datagram, address);
    }
    return n;
  }
}
