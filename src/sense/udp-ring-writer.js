// The writing side of the ring buffer between a UDP receive thread and the main thread (the reading
// side and the layout: udp-ring.ts). Plain JavaScript, so the receive thread loads it without a loader.
const WRITE = 0;
const READ = 1;
const WRITTEN = 2;
const WRAP = 255;

/**
 * A writer over `ring` (SharedArrayBuffer) and `control` (Int32 slots, see udp-ring.ts). One writer
 * per ring; the reader may run at the same time in another thread.
 */
export function ringWriter(ring, control) {
  const data = Buffer.from(ring);
  const size = data.length;
  const ctl = new Int32Array(control);

  /** Copies one datagram into the ring; false when the ring has no room for it. */
  function put(msg, address) {
    const need = 1 + address.length + 4 + msg.length;
    const w = Atomics.load(ctl, WRITE);
    const r = Atomics.load(ctl, READ);
    // One byte always stays free, so an equal write and read position means "empty".
    const free = size - 1 - ((w - r + size) % size);
    let at = w;
    if (w + need > size) {
      // Does not fit before the end: mark the rest as skipped and start again at 0.
      if (size - w + need > free) return false;
      data[w] = WRAP;
      at = 0;
    } else if (need > free) {
      return false;
    }
    // Plain stores and TypedArray#set: no call into the runtime per datagram.
    data[at] = address.length;
    for (let i = 0; i < address.length; i++) data[at + 1 + i] = address.charCodeAt(i);
    data.writeUInt32LE(msg.length, at + 1 + address.length);
    data.set(msg, at + 5 + address.length);
    Atomics.store(ctl, WRITE, (at + need) % size);
    Atomics.add(ctl, WRITTEN, 1);
    return true;
  }

  return { put };
}
