// The UDP receive loop, in a worker thread of its own: it reads the socket and hands the datagrams to
// the main thread in batches, and does nothing else, so the kernel's receive buffer is drained even
// while the main thread enriches, stores or publishes. Plain JavaScript, so it runs the same from the
// sources and from the build without a loader.
//
// Batch layout (one transferred ArrayBuffer): per datagram, u8 address length, the address (latin1),
// u32 datagram length, the datagram.
import dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';

const { host, port, type, receiveBufferBytes, maxQueued } = workerData;
const socket = dgram.createSocket({ type });

let batch = [];
let batchBytes = 0;
let flushScheduled = false;
/** Datagrams handed over and not yet acknowledged by the main thread. */
let outstanding = 0;
/** Datagrams read but refused because the main thread is `maxQueued` behind (reported, never silent). */
let overflow = 0;

function flush() {
  flushScheduled = false;
  if (batch.length === 0 && overflow === 0) return;
  const out = Buffer.from(new ArrayBuffer(batchBytes));
  let at = 0;
  for (const [msg, address] of batch) {
    at = out.writeUInt8(address.length, at);
    at += out.write(address, at, 'latin1');
    at = out.writeUInt32LE(msg.length, at);
    at += msg.copy(out, at);
  }
  const count = batch.length;
  outstanding += count;
  parentPort.postMessage({ type: 'batch', buffer: out.buffer, count, overflow, outstanding }, [out.buffer]);
  batch = [];
  batchBytes = 0;
  overflow = 0;
}

socket.on('message', (msg, rinfo) => {
  if (outstanding + batch.length >= maxQueued) {
    overflow += 1;
  } else {
    batch.push([msg, rinfo.address]);
    batchBytes += 1 + rinfo.address.length + 4 + msg.length;
  }
  if (batch.length >= 256) flush();
  else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
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
  parentPort.postMessage({ type: 'listening', address: a.address, port: a.port, requested, granted });
});

parentPort.on('message', (m) => {
  if (m.type === 'ack') {
    outstanding -= m.count;
  } else if (m.type === 'close') {
    flush();
    socket.close(() => {
      parentPort.postMessage({ type: 'closed' });
      parentPort.close();
    });
  }
});

socket.bind(port, host);
