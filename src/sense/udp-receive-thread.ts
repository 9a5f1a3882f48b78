// The thread that reads one UDP socket and copies each datagram into the ring shared with the main
// thread (layout: udp-ring.ts). Two kinds, the same contract:
// - native: a C thread without a JavaScript engine (native/udp-reader.c, built at install on Linux) that
//   reads up to 32 datagrams per system call (recvmmsg). It needs a fraction of the CPU per datagram of
//   the JavaScript thread and no memory for a second JavaScript engine.
// - javascript: a worker thread (udp-receiver-worker.js), on every platform.
// `udpServerConfig.receiveThread` chooses: auto (native where built), native, javascript.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { UdpRing } from './udp-ring.ts';

export type ReceiveThreadChoice = 'auto' | 'native' | 'javascript';

export interface ReceiveThreadOptions {
  host: string;
  port: number;
  receiveBufferBytes: number;
  maxQueued: number;
}

export interface Listening {
  address: string;
  port: number;
  /** SO_RCVBUF asked for (null: the request failed), and what the OS reports (Linux: twice the usable size). */
  requested: number | null;
  granted: number | null;
  /** The receive thread's Linux thread id, null where unknown. */
  threadId: number | null;
}

export interface ReceiveThreadEvents {
  /** Datagrams are waiting in the ring (sent once until the ring is re-armed). */
  data(): void;
  error(err: Error & { code?: string | null }): void;
  warning(message: string): void;
}

export interface ReceiveThread {
  readonly kind: 'native' | 'javascript';
  /** Binds the socket and starts reading; rejects with the bind error. */
  start(): Promise<Listening>;
  /** Stops reading and closes the socket; what was written to the ring stays there. */
  stop(): Promise<void>;
}

interface NativeModule {
  open(address: string, port: number, ipv6: boolean, receiveBufferBytes: number): { handle: unknown; address: string; port: number; requested: number | null; granted: number | null };
  start(handle: unknown, ring: Uint8Array, control: Int32Array, maxQueued: number, onEvent: (kind: number, message?: string, code?: string) => void): number;
  close(handle: unknown): void;
}

let native: { module: NativeModule } | { reason: string } | undefined;

/** The native receive thread's module, or why it cannot be used here. Loaded once. */
export function nativeReceiver(): { module: NativeModule } | { reason: string } {
  if (native) return native;
  if (process.platform !== 'linux') return (native = { reason: `it is for Linux, this is ${process.platform}` });
  // From the sources (src/sense/) and from the build (dist/): the package's native/build folder.
  return (native = loadNativeModule(['../../native/build/udp-reader.node', '../native/build/udp-reader.node'].map((p) => fileURLToPath(new URL(p, import.meta.url)))));
}

/** The first of `files` that exists, loaded; or why none could be. */
export function loadNativeModule(files: string[]): { module: NativeModule } | { reason: string } {
  const file = files.find((p) => existsSync(p));
  if (!file) return { reason: 'not built: native/build/udp-reader.node is missing (npm run build:native builds it; it needs a C compiler and the Node.js headers)' };
  try {
    const module = createRequire(import.meta.url)(file) as NativeModule;
    if (typeof module.open !== 'function' || typeof module.start !== 'function' || typeof module.close !== 'function') return { reason: `${file} is not the UDP receive thread (no open, start, close)` };
    return { module };
  } catch (err) {
    return { reason: `${file} cannot be loaded: ${(err as Error).message}` };
  }
}

/** The receive thread the choice asks for; throws when `native` is asked for and cannot be used. */
export function makeReceiveThread(choice: ReceiveThreadChoice, options: ReceiveThreadOptions, ring: UdpRing, events: ReceiveThreadEvents): ReceiveThread {
  if (choice === 'javascript') return new WorkerReceiveThread(options, ring, events);
  const n = nativeReceiver();
  if ('module' in n) return new NativeReceiveThread(n.module, options, ring, events);
  if (choice === 'native') throw new Error(`udpServerConfig.receiveThread is "native", but the native receive thread cannot be used: ${n.reason}`);
  return new WorkerReceiveThread(options, ring, events);
}

// ---------------------------------------------------------------------------------------------

class NativeReceiveThread implements ReceiveThread {
  readonly kind = 'native';
  private handle: unknown = null;

  constructor(
    private readonly module: NativeModule,
    private readonly options: ReceiveThreadOptions,
    private readonly ring: UdpRing,
    private readonly events: ReceiveThreadEvents,
  ) {}

  async start(): Promise<Listening> {
    const ipv6 = net.isIPv6(this.options.host);
    // A host name is resolved as Node.js's dgram resolves it: one address of the socket's family.
    const address = net.isIP(this.options.host) ? this.options.host : (await lookup(this.options.host, { family: ipv6 ? 6 : 4 })).address;
    const opened = this.module.open(address, this.options.port, ipv6, this.options.receiveBufferBytes);
    this.handle = opened.handle;
    let threadId: number;
    try {
      threadId = this.module.start(opened.handle, new Uint8Array(this.ring.ring), new Int32Array(this.ring.control), this.options.maxQueued, (kind, message, code) => {
        if (kind === 0) this.events.data();
        else this.events.error(Object.assign(new Error(message ?? 'receive failed'), { code: code ?? null }));
      });
    } catch (err) {
      this.module.close(opened.handle);
      this.handle = null;
      throw err;
    }
    return { address: opened.address, port: opened.port, requested: opened.requested, granted: opened.granted, threadId };
  }

  async stop(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle !== null) this.module.close(handle);
  }
}

// ---------------------------------------------------------------------------------------------

const WORKER_URL = new URL('./udp-receiver-worker.js', import.meta.url);

type WorkerMessage =
  | { type: 'listening'; address: string; port: number; requested: number | null; granted: number | null; threadId: number | null }
  | { type: 'data' }
  | { type: 'error'; message: string; code: string | null }
  | { type: 'warning'; message: string }
  | { type: 'closed' };

class WorkerReceiveThread implements ReceiveThread {
  readonly kind = 'javascript';
  private worker: Worker | null = null;

  constructor(
    private readonly options: ReceiveThreadOptions,
    private readonly ring: UdpRing,
    private readonly events: ReceiveThreadEvents,
  ) {}

  async start(): Promise<Listening> {
    const worker = new Worker(WORKER_URL, {
      workerData: {
        host: this.options.host,
        port: this.options.port,
        type: net.isIPv6(this.options.host) ? 'udp6' : 'udp4',
        receiveBufferBytes: this.options.receiveBufferBytes,
        maxQueued: this.options.maxQueued,
        ring: this.ring.ring,
        control: this.ring.control,
      },
      // The receive loop needs little; a small heap keeps the thread's footprint small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    this.worker = worker;
    const listening = await new Promise<Extract<WorkerMessage, { type: 'listening' }>>((resolve, reject) => {
      const onMessage = (m: WorkerMessage) => {
        if (m.type === 'listening') {
          worker.off('message', onMessage);
          worker.off('error', reject);
          resolve(m);
        } else if (m.type === 'error') {
          worker.off('message', onMessage);
          reject(Object.assign(new Error(m.message), { code: m.code }));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    }).catch(async (err: Error) => {
      this.worker = null;
      await worker.terminate();
      throw err;
    });
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'data') this.events.data();
      else if (m.type === 'error') this.events.error(Object.assign(new Error(m.message), { code: m.code }));
      else if (m.type === 'warning') this.events.warning(m.message);
    });
    worker.on('error', (err) => this.events.error(Object.assign(new Error(`receive thread failed: ${err.message}`), { code: null })));
    worker.unref();
    const { address, port, requested, granted, threadId } = listening;
    return { address, port, requested, granted, threadId };
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    // The receive thread closes the socket and says so.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'closed') {
          clearTimeout(timer);
          resolve();
        }
      });
      worker.postMessage({ type: 'close' });
    });
    await worker.terminate();
  }
}
