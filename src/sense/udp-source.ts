// A thin source: one UDP port of Sense log-appender datagrams turned into pipeline input. The socket
// is read by a worker thread that does nothing else (udp-receiver-worker.js), so intake never waits for
// enrichment, storage or publishing; here, on the main thread, each datagram passes the cheap checks
// (allow-list, size, rate limit) and goes to its lane, which parses and accepts it durably.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import type { ButlerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Lane } from '../pipeline/lane.ts';
import { readRmemMax, readUdpDrops } from './udp-drops.ts';

export interface UdpSourceOptions {
  /** Human name for log lines, e.g. "task events". */
  name: string;
  host: string;
  port: number;
  maxMessageSize: number;
  /** SO_RCVBUF asked for; the OS may grant less. */
  receiveBufferBytes: number;
  /** null = accept datagrams from anywhere. Entries are IPv4/IPv6 literals or host names (resolved at start). */
  allowedSources: string[] | null;
  /** Datagrams per fixed one-minute window; null = no limit. */
  maxMessagesPerMinute: number | null;
  /** Datagrams read but not yet taken by the pipeline, at most; more are refused as intake_full. */
  maxQueued?: number;
}

/** The settings every UDP port shares, from Butler.udpServerConfig. */
export function sharedUdpOptions(u: ButlerConfig['udpServerConfig']): Omit<UdpSourceOptions, 'name' | 'port'> {
  return {
    host: u.serverHost,
    maxMessageSize: u.maxMessageSize,
    receiveBufferBytes: u.receiveBufferBytes,
    allowedSources: u.enableSourceValidation ? u.allowedSources : null,
    maxMessagesPerMinute: u.rateLimit.enable ? u.rateLimit.maxMessagesPerMinute : null,
  };
}

export interface UdpSourceHooks {
  /** The socket listens. */
  onListening?: (address: { address: string; port: number }) => Promise<void> | void;
  /** The socket reported an error (also a failed bind, before start rejects). */
  onSocketError?: (err: Error) => Promise<void> | void;
}

const WINDOW_MS = 60_000;
const DEFAULT_MAX_QUEUED = 200_000;
const WORKER_URL = new URL('./udp-receiver-worker.js', import.meta.url);

/** Strips the IPv4-mapped IPv6 prefix so allow-list entries can be plain IPv4. */
function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address.toLowerCase();
}

type WorkerMessage =
  | { type: 'listening'; address: string; port: number; requested: number | null; granted: number | null }
  | { type: 'batch'; buffer: ArrayBuffer; count: number; overflow: number; outstanding: number }
  | { type: 'error'; message: string; code: string | null }
  | { type: 'warning'; message: string }
  | { type: 'closed' };

export class UdpSource {
  private worker: Worker | null = null;
  private allowed: Set<string> | null = null;
  private boundAddress: { address: string; port: number } | null = null;
  private windowStart = 0;
  private windowCount = 0;
  private rateLimitWarned = false;
  private queued = 0;

  constructor(
    private readonly options: UdpSourceOptions,
    private readonly lane: Pick<Lane<unknown>, 'submit' | 'reject' | 'source'>,
    private readonly hooks: UdpSourceHooks,
    private readonly deps: { logger: Logger; metrics: Metrics },
  ) {}

  /** Where the socket listens (after start). */
  get address(): { address: string; port: number } | null {
    return this.boundAddress;
  }

  /** Datagrams the kernel dropped on this socket (Linux), null where not readable or not listening. */
  kernelDrops(): number | null {
    return this.boundAddress ? readUdpDrops(this.boundAddress.port) : null;
  }

  async start(): Promise<void> {
    const { logger } = this.deps;
    const name = `UDP ${this.options.name}`;
    this.allowed = this.options.allowedSources === null ? null : await this.resolveAllowList(this.options.allowedSources);
    const worker = new Worker(WORKER_URL, {
      workerData: {
        host: this.options.host,
        port: this.options.port,
        type: net.isIPv6(this.options.host) ? 'udp6' : 'udp4',
        receiveBufferBytes: this.options.receiveBufferBytes,
        maxQueued: this.options.maxQueued ?? DEFAULT_MAX_QUEUED,
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
      logger.error({ err: err.message, host: this.options.host, port: this.options.port }, `${name}: cannot listen on ${this.options.host}:${this.options.port}: ${err.message}`);
      await this.callQuietly(() => this.hooks.onSocketError?.(err), 'socket error handler');
      throw err;
    });
    worker.on('message', (m: WorkerMessage) => this.fromWorker(m));
    worker.on('error', (err) => logger.error({ err: err.message }, `${name}: receive thread failed: ${err.message}`));
    worker.unref();
    this.boundAddress = { address: listening.address, port: listening.port };
    this.logReceiveBuffer(listening.requested, listening.granted);
    const port = String(listening.port);
    this.deps.metrics.udpKernelDrops.set({ port }, 0);
    this.deps.metrics.dropReaders.add(this.sampleDrops);
    logger.info(
      { host: listening.address, port: listening.port, allowList: this.allowed ? [...this.allowed] : 'any', rateLimitPerMinute: this.options.maxMessagesPerMinute ?? 'off' },
      `${name}: listening on ${listening.address}:${listening.port}`,
    );
    await this.callQuietly(() => this.hooks.onListening?.({ ...this.boundAddress! }), 'listening handler');
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    this.sampleDrops();
    this.deps.metrics.dropReaders.delete(this.sampleDrops);
    // The receive thread flushes what it read, closes the socket and says so; what it handed over is
    // taken below before stop() returns.
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
    this.deps.logger.info(`UDP ${this.options.name}: stopped`);
  }

  /** Sets the drops figure of the metrics (at scrape time, and once more at stop). */
  private readonly sampleDrops = (): void => {
    const drops = this.kernelDrops();
    if (drops !== null && this.boundAddress) this.deps.metrics.udpKernelDrops.set({ port: String(this.boundAddress.port) }, drops);
  };

  // ---------------------------------------------------------------------------------------------

  private fromWorker(m: WorkerMessage): void {
    const name = `UDP ${this.options.name}`;
    switch (m.type) {
      case 'batch':
        this.takeBatch(m.buffer, m.count, m.overflow);
        this.worker?.postMessage({ type: 'ack', count: m.count });
        return;
      case 'error':
        this.deps.logger.error({ err: m.message }, `${name}: socket error: ${m.message}`);
        void this.callQuietly(() => this.hooks.onSocketError?.(Object.assign(new Error(m.message), { code: m.code })), 'socket error handler');
        return;
      case 'warning':
        this.deps.logger.warn(`${name}: ${m.message}`);
        return;
      default:
        return;
    }
  }

  private takeBatch(buffer: ArrayBuffer, count: number, overflow: number): void {
    const buf = Buffer.from(buffer);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const addressLength = buf.readUInt8(at);
      at += 1;
      const address = buf.toString('latin1', at, at + addressLength);
      at += addressLength;
      const length = buf.readUInt32LE(at);
      at += 4;
      this.receive(buf.subarray(at, at + length), normaliseAddress(address));
      at += length;
    }
    for (let i = 0; i < overflow; i++) {
      this.deps.metrics.eventsReceived.inc({ source: this.lane.source });
      this.lane.reject('intake_full', `more than ${this.options.maxQueued ?? DEFAULT_MAX_QUEUED} datagrams read and not yet accepted`, '');
    }
  }

  private receive(msg: Buffer, address: string): void {
    if (this.allowed && !this.allowed.has(address)) return this.refuse('source_not_allowed', `${address} is not in allowedSources`, address);
    if (msg.length > this.options.maxMessageSize) return this.refuse('too_large', `${msg.length} bytes, more than maxMessageSize ${this.options.maxMessageSize}`, address);
    if (this.options.maxMessagesPerMinute !== null && !this.withinRateLimit()) return this.refuse('rate_limited', `more than ${this.options.maxMessagesPerMinute} datagrams this minute`, address);
    // The datagram shares the batch's memory; the lane keeps it only as long as it needs it.
    void this.lane.submit(msg, `{"from":${JSON.stringify(address)}}`, address);
  }

  private refuse(reason: string, detail: string, from: string): void {
    this.deps.metrics.eventsReceived.inc({ source: this.lane.source });
    this.lane.reject(reason, detail, from);
  }

  private withinRateLimit(): boolean {
    const now = Date.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.windowStart = now;
      this.windowCount = 0;
      this.rateLimitWarned = false;
    }
    this.windowCount += 1;
    if (this.windowCount <= (this.options.maxMessagesPerMinute ?? Infinity)) return true;
    if (!this.rateLimitWarned) {
      this.rateLimitWarned = true;
      this.deps.logger.warn(`UDP ${this.options.name}: rate limit of ${this.options.maxMessagesPerMinute} datagrams per minute reached; refusing until the minute is over`);
    }
    return false;
  }

  private async resolveAllowList(entries: string[]): Promise<Set<string>> {
    const allowed = new Set<string>();
    for (const raw of entries) {
      const entry = raw.trim();
      if (entry === '') continue;
      if (net.isIP(entry)) {
        allowed.add(normaliseAddress(entry));
        continue;
      }
      try {
        const addresses = await lookup(entry, { all: true });
        for (const a of addresses) allowed.add(normaliseAddress(a.address));
        this.deps.logger.info(`UDP ${this.options.name}: allowed source ${entry} resolves to ${addresses.map((a) => a.address).join(', ')}`);
      } catch (err) {
        // Failing closed: datagrams from that host are refused until the next start.
        this.deps.logger.error(`UDP ${this.options.name}: allowed source "${entry}" cannot be resolved (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); datagrams from it will be refused`);
      }
    }
    return allowed;
  }

  /**
   * Linux reports twice the size it accepted (half is for its bookkeeping) and caps the request at
   * net.core.rmem_max: the usable size is half the reported one, and a warning says how to raise it.
   */
  private logReceiveBuffer(requested: number | null, reported: number | null): void {
    const name = `UDP ${this.options.name}`;
    const asked = this.options.receiveBufferBytes;
    const rmemMax = readRmemMax();
    const granted = reported === null ? null : process.platform === 'linux' ? Math.floor(reported / 2) : reported;
    const fields = { requestedBytes: asked, grantedBytes: granted, ...(rmemMax !== null ? { rmemMax } : {}) };
    if (requested !== null && granted !== null && granted < asked) {
      this.deps.logger.warn(
        fields,
        `${name}: receive buffer ${granted} bytes granted, ${asked} requested` +
          (rmemMax !== null ? ` (the kernel caps it at net.core.rmem_max = ${rmemMax}; raise it with: sysctl -w net.core.rmem_max=${asked})` : ''),
      );
    } else {
      this.deps.logger.info(fields, `${name}: receive buffer ${granted ?? 'unknown'} bytes granted, ${asked} requested`);
    }
  }

  private async callQuietly(fn: () => Promise<void> | void | undefined, what: string): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, `UDP ${this.options.name}: ${what} failed: ${(err as Error).message}`);
    }
  }
}
