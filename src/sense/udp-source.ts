// A thin source: one UDP port of Sense log-appender datagrams turned into pipeline input. The socket
// is read by a thread that does nothing else (udp-receive-thread.ts: a C thread where it is built, else
// a worker thread) and copies each datagram into a ring buffer shared with this thread (udp-ring.ts), so
// intake never waits for enrichment, storage or publishing; here, on the main thread, each datagram
// passes the cheap checks (allow-list, size, rate limit) and goes to its lane, which parses and accepts
// it durably.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { ButlerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Lane } from '../pipeline/lane.ts';
import { readRmemMax, readUdpDrops } from './udp-drops.ts';
import { UdpRing } from './udp-ring.ts';
import { registerReceiveThread } from './thread-priority.ts';
import { makeReceiveThread, type Listening, type ReceiveThread, type ReceiveThreadChoice } from './udp-receive-thread.ts';

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
  /** Bytes of datagrams read but not yet taken, at most (the ring's size); more are refused as intake_full. */
  queueBytes?: number;
  /** Which receive thread reads the socket (default auto: the native one where it is built). */
  receiveThread?: ReceiveThreadChoice;
}

/** The settings every UDP port shares, from Butler.udpServerConfig. */
export function sharedUdpOptions(u: ButlerConfig['udpServerConfig']): Omit<UdpSourceOptions, 'name' | 'port'> {
  return {
    host: u.serverHost,
    maxMessageSize: u.maxMessageSize,
    receiveBufferBytes: u.receiveBufferBytes,
    queueBytes: u.receiveQueueBytes,
    receiveThread: u.receiveThread,
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
/**
 * 8 MiB: about 10,000 reload-failure datagrams of 800 bytes waiting at once. The write position goes
 * all around the ring as traffic goes by, so in time all of it is resident memory.
 */
export const DEFAULT_QUEUE_BYTES = 8 * 1024 * 1024;
/** Datagrams taken per turn of the event loop, so a backlog never holds up timers and sockets. */
const TAKE_PER_TURN = 256;

/** Strips the IPv4-mapped IPv6 prefix so allow-list entries can be plain IPv4. */
function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address.toLowerCase();
}

export class UdpSource {
  private thread: ReceiveThread | null = null;
  private allowed: Set<string> | null = null;
  private boundAddress: { address: string; port: number } | null = null;
  private windowStart = 0;
  private windowCount = 0;
  private rateLimitWarned = false;
  private ring: UdpRing | null = null;
  private taking = false;
  /** Per sender address as read (a handful of Sense nodes): its normalised form and meta text, built once. */
  private readonly senders = new Map<string, { address: string; meta: string }>();

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

  /** Which receive thread reads the socket (after start). */
  get receiveThreadKind(): 'native' | 'javascript' | null {
    return this.thread?.kind ?? null;
  }

  /** Datagrams the kernel dropped on this socket (Linux), null where not readable or not listening. */
  kernelDrops(): number | null {
    return this.boundAddress ? readUdpDrops(this.boundAddress.port) : null;
  }

  async start(): Promise<void> {
    const { logger } = this.deps;
    const name = `UDP ${this.options.name}`;
    this.allowed = this.options.allowedSources === null ? null : await this.resolveAllowList(this.options.allowedSources);
    const ring = new UdpRing(this.options.queueBytes ?? DEFAULT_QUEUE_BYTES);
    this.ring = ring;
    const maxQueued = this.options.maxQueued ?? DEFAULT_MAX_QUEUED;
    let thread: ReceiveThread;
    let listening: Listening;
    try {
      thread = makeReceiveThread(this.options.receiveThread ?? 'auto', { host: this.options.host, port: this.options.port, receiveBufferBytes: this.options.receiveBufferBytes, maxQueued }, ring, {
        data: () => {
          if (!this.taking) {
            this.taking = true;
            this.takeTurn();
          }
        },
        error: (err) => {
          logger.error({ err: err.message }, `${name}: socket error: ${err.message}`);
          void this.callQuietly(() => this.hooks.onSocketError?.(err), 'socket error handler');
        },
        warning: (message) => logger.warn(`${name}: ${message}`),
      });
      this.thread = thread;
      listening = await thread.start();
    } catch (err) {
      this.thread = null;
      const e = err as Error;
      logger.error({ err: e.message, host: this.options.host, port: this.options.port }, `${name}: cannot listen on ${this.options.host}:${this.options.port}: ${e.message}`);
      await this.callQuietly(() => this.hooks.onSocketError?.(e), 'socket error handler');
      throw err;
    }
    if (this.thread !== thread) {
      // stop() came while the socket was being bound.
      await thread.stop();
      return;
    }
    this.boundAddress = { address: listening.address, port: listening.port };
    this.logReceiveBuffer(listening.requested, listening.granted);
    if (listening.threadId !== null) registerReceiveThread(listening.threadId);
    const port = String(listening.port);
    this.deps.metrics.udpKernelDrops.set({ port }, 0);
    this.deps.metrics.dropReaders.add(this.sampleDrops);
    logger.info(
      { host: listening.address, port: listening.port, receiveThread: thread.kind, allowList: this.allowed ? [...this.allowed] : 'any', rateLimitPerMinute: this.options.maxMessagesPerMinute ?? 'off' },
      `${name}: listening on ${listening.address}:${listening.port} (${thread.kind} receive thread)`,
    );
    await this.callQuietly(() => this.hooks.onListening?.({ ...this.boundAddress! }), 'listening handler');
  }

  async stop(): Promise<void> {
    const thread = this.thread;
    this.thread = null;
    if (!thread) return;
    this.sampleDrops();
    this.deps.metrics.dropReaders.delete(this.sampleDrops);
    // The receive thread closes the socket; what it put in the ring is taken below before stop()
    // returns.
    await thread.stop();
    while (this.takeSome() > 0);
    this.deps.logger.info(`UDP ${this.options.name}: stopped`);
  }

  /** Sets the drops figure of the metrics (at scrape time, and once more at stop). */
  private readonly sampleDrops = (): void => {
    const drops = this.kernelDrops();
    if (drops !== null && this.boundAddress) this.deps.metrics.udpKernelDrops.set({ port: String(this.boundAddress.port) }, drops);
  };

  // ---------------------------------------------------------------------------------------------

  /**
   * Takes a turn's worth from the ring; while more is waiting, the next turn follows after the event
   * loop has run once. When the ring is empty the receive thread is re-armed to wake this thread, and
   * the ring is looked at once more (a datagram written in between would otherwise wait unseen).
   */
  private readonly takeTurn = (): void => {
    const ring = this.ring;
    if (!ring) {
      this.taking = false;
      return;
    }
    if (this.takeSome() === TAKE_PER_TURN) {
      setImmediate(this.takeTurn);
      return;
    }
    ring.rearm();
    if (this.takeSome() > 0) {
      setImmediate(this.takeTurn);
      return;
    }
    this.taking = false;
  };

  /** Up to one turn's worth of datagrams to the lane, and the refusals the receive thread counted. */
  private takeSome(): number {
    const ring = this.ring;
    if (!ring) return 0;
    const overflow = ring.takeOverflow();
    for (let i = 0; i < overflow; i++) {
      this.deps.metrics.eventsReceived.inc({ source: this.lane.source });
      this.lane.reject('intake_full', `more than ${this.options.maxQueued ?? DEFAULT_MAX_QUEUED} datagrams or ${this.options.queueBytes ?? DEFAULT_QUEUE_BYTES} bytes read and not yet accepted`, '');
    }
    return ring.take(TAKE_PER_TURN, this.receive);
  }

  /**
   * What the receive thread did, read from shared memory without waiting for this thread's event
   * loop: datagrams written into the ring since start, those not yet taken, and those refused and not
   * yet counted.
   */
  intakeCounts(): { written: number; backlog: number; refused: number } | null {
    return this.ring ? { written: this.ring.written(), backlog: this.ring.backlog(), refused: this.ring.pendingOverflow() } : null;
  }

  private readonly receive = (msg: Buffer, rawAddress: string): void => {
    let sender = this.senders.get(rawAddress);
    if (sender === undefined) {
      const normalised = normaliseAddress(rawAddress);
      sender = { address: normalised, meta: `{"from":${JSON.stringify(normalised)}}` };
      if (this.senders.size < 1024) this.senders.set(rawAddress, sender);
    }
    const address = sender.address;
    if (this.allowed && !this.allowed.has(address)) return this.refuse('source_not_allowed', `${address} is not in allowedSources`, address);
    if (msg.length > this.options.maxMessageSize) return this.refuse('too_large', `${msg.length} bytes, more than maxMessageSize ${this.options.maxMessageSize}`, address);
    if (this.options.maxMessagesPerMinute !== null && !this.withinRateLimit()) return this.refuse('rate_limited', `more than ${this.options.maxMessagesPerMinute} datagrams this minute`, address);
    void this.lane.submit(msg, sender.meta, address);
  };

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
