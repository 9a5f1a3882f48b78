// The UDP receive loop, in a worker thread of its own: it reads the socket and copies each datagram
// into a ring buffer shared with the main thread, and does nothing else, so the kernel's receive buffer
// is drained even while the main thread enriches, stores or publishes. Nothing is allocated per
// datagram beyond what Node.js itself allocates, and the main thread is woken with one message per
// round of taking, not one per datagram. Plain JavaScript, so it runs the same from the sources and
// from the build without a loader.
//
// The ring layout is described in udp-ring.ts (the main thread's side); the two must agree.
import dgram from 'node:dgram';
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

const { host, port, type, receiveBufferBytes, maxQueued, ring, control } = workerData;
// Control slots (Int32): keep in step with udp-ring.ts.
const WRITE = 0;
const READ = 1;
const WRITTEN = 2;
const TAKEN = 3;
const WAKE = 4;
const OVERFLOW = 5;
const WRAP = 255;

const data = Buffer.from(ring);
const size = data.length;
const ctl = new Int32Array(control);
const socket = dgram.createSocket({ type });

let wakeScheduled = false;

function wakeNow() {
  wakeScheduled = false;
  if (Atomics.compareExchange(ctl, WAKE, 0, 1) === 0) parentPort.postMessage({ type: 'data' });
}

/** Wakes the main thread once this turn's datagrams are in: at most one message per turn of this loop. */
function wake() {
  if (wakeScheduled) return;
  wakeScheduled = true;
  setImmediate(wakeNow);
}

/** Copies one datagram into the ring; false when the ring has no room for it. */
function put(msg, address) {
  const need = 1 + address.length + 4 + msg.length;
  const w = Atomics.load(ctl, WRITE);
  const r = Atomics.load(ctl, READ);
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

socket.on('message', (msg, rinfo) => {
  const queued = (Atomics.load(ctl, WRITTEN) - Atomics.load(ctl, TAKEN)) | 0;
  if (queued >= maxQueued || rinfo.address.length >= WRAP || !put(msg, rinfo.address)) Atomics.add(ctl, OVERFLOW, 1);
  wake();
});

socket.on('error', (err) => {
  parentPort.postMessage({ type: 'error', message: err.message, code: err.code ?? null });
});

socket.once('listening', () => {
  let requested = null;
  let granted = null;
  try {
    socket.setRecvBufferSize(receiveBufferBytes);
    requested = receiveBufferBytes;
  } catch (err) {
    parentPort.postMessage({ type: 'warning', message: `could not set the receive buffer to ${receiveBufferBytes} bytes: ${err.message}` });
  }
  try {
    granted = socket.getRecvBufferSize();
  } catch {
    granted = null;
  }
  const a = socket.address();
  // Linux: this thread's id (/proc/thread-self names the calling thread), so the main thread can lower
  // every thread's priority but this one.
  let threadId = null;
  try {
    threadId = Number(readlinkSync('/proc/thread-self').split('/').pop()) || null;
  } catch {
    threadId = null;
  }
  parentPort.postMessage({ type: 'listening', address: a.address, port: a.port, requested, granted, threadId });
});

parentPort.on('message', (m) => {
  if (m.type === 'close') {
    socket.close(() => {
      parentPort.postMessage({ type: 'closed' });
      parentPort.close();
    });
  }
});

socket.bind(port, host);
