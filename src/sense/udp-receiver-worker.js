// The UDP receive loop, in a worker thread of its own: it reads the socket and copies each datagram
// into a ring buffer shared with the main thread, and does nothing else, so the kernel's receive buffer
// is drained even while the main thread enriches, stores or publishes. Nothing is allocated per
// datagram beyond what Node.js itself allocates, and the main thread is woken with one message per
// round of taking, not one per datagram. Plain JavaScript, so it runs the same from the sources and
// from the build without a loader.
//
// The ring layout is described in udp-ring.ts (the main thread's side); udp-ring-writer.js writes it.
import dgram from 'node:dgram';
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ringWriter } from './udp-ring-writer.js';

const { host, port, type, receiveBufferBytes, maxQueued, ring, control } = workerData;
// Control slots (Int32): keep in step with udp-ring.ts.
const WRITTEN = 2;
const TAKEN = 3;
const WAKE = 4;
const OVERFLOW = 5;
/** An address this long or longer cannot be written (255 is the ring's skip mark). */
const MAX_ADDRESS = 255;

const ctl = new Int32Array(control);
const { put } = ringWriter(ring, control);
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

socket.on('message', (msg, rinfo) => {
  const queued = (Atomics.load(ctl, WRITTEN) - Atomics.load(ctl, TAKEN)) | 0;
  if (queued >= maxQueued || rinfo.address.length >= MAX_ADDRESS || !put(msg, rinfo.address)) Atomics.add(ctl, OVERFLOW, 1);
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
