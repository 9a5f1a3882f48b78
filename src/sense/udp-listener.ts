// One UDP port of Sense log-appender datagrams turned into durable, deduplicated work: allow-list,
// size, rate limit and parsing on the receive path, a group-committed inbox row, then a bounded pool
// of workers. Parser and handler are plugged in, so the same listener serves every datagram family.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { ButlerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ActivityLog } from '../observability/activity.ts';
import { InboxFullError, type CompletionStep, type Inbox, type InboxRow } from '../store/inbox.ts';
import { MessageRejectedError, OutboxFullError, type OutgoingMessage } from '../store/types.ts';

/** What a parser says about one datagram: a typed event (and its dedup key), or why not. */
export type DatagramParse<E> = { ok: true; event: E; dedupKey: string | null } | { ok: false; reason: string; detail: string };

export interface UdpListenerOptions {
  /** Human name for log lines, e.g. "task events". */
  name: string;
  /** Metric label and inbox source, e.g. "udp_task". */
  source: string;
  host: string;
  port: number;
  maxMessageSize: number;
  /** SO_RCVBUF asked for; the OS may grant less. */
  receiveBufferBytes: number;
  /** null = accept datagrams from anywhere. Entries are IPv4/IPv6 literals or host names (resolved at start). */
  allowedSources: string[] | null;
  /** Datagrams per fixed one-minute window; null = no limit. */
  maxMessagesPerMinute: number | null;
  /** Use the parser's dedup key (false: every datagram is new). */
  deduplicate: boolean;
  queue: { maxConcurrent: number; maxSize: number; backpressureThreshold: number };
  /** On stop, how long events in progress may take to finish before they are left in the inbox. */
  drainTimeoutMs?: number;
}

/** The settings every UDP port shares, from Butler.udpServerConfig (allow-list, size, rate limit, queue). */
export function sharedUdpOptions(u: ButlerConfig['udpServerConfig']): Omit<UdpListenerOptions, 'name' | 'source' | 'port' | 'deduplicate'> {
  return {
    host: u.serverHost,
    maxMessageSize: u.maxMessageSize,
    receiveBufferBytes: u.receiveBufferBytes,
    allowedSources: u.enableSourceValidation ? u.allowedSources : null,
    maxMessagesPerMinute: u.rateLimit.enable ? u.rateLimit.maxMessagesPerMinute : null,
    queue: { maxConcurrent: u.messageQueue.maxConcurrent, maxSize: u.messageQueue.maxSize, backpressureThreshold: u.messageQueue.backpressureThreshold },
  };
}

export interface AcceptedEventInfo {
  /** Inbox row id. */
  id: number;
  /** Address the datagram came from ("" when recovered from an older inbox row without it). */
  from: string;
}

/** What a handler may return instead of a plain list: the messages plus work that commits with them. */
export interface HandledEvent {
  messages: OutgoingMessage[];
  /** Runs inside the transaction that completes the event (see Inbox.complete). */
  step?: CompletionStep;
}

export interface UdpListenerHandlers<E> {
  /** Turns bytes into an event; runs on the receive path, so it must be pure and cheap. Default: the bytes themselves. */
  parse?: (datagram: Buffer) => DatagramParse<E>;
  /**
   * Handles one accepted event and returns what to publish (possibly nothing). The listener stores the
   * messages and removes the event from the inbox in one transaction. Expected failures belong in the
   * returned messages; a throw is treated as a bug: retried twice, then the event is dropped.
   * Called again for the same event when completing it failed, so it must not change state itself;
   * state that moves with the event belongs in a HandledEvent's `step`.
   */
  onAccepted: (event: E, info: AcceptedEventInfo) => Promise<OutgoingMessage[] | HandledEvent>;
  /**
   * Optional fast path: handles the event at once, on the receive path, when everything it needs is
   * at hand (QRS answers in the cache), or returns null when it would have to wait. Handled events
   * skip the inbox row: their messages are stored and their dedup key burned in one transaction
   * (Inbox.acceptHandled). Otherwise the same contract as onAccepted; a throw sends the event down
   * the inbox path, where onAccepted handles it with its retries.
   */
  handleNow?: (event: E, info: { from: string }) => OutgoingMessage[] | HandledEvent | null;
  /** One line for the status page's activity list (default: "datagram <inbox id>"). */
  describe?: (event: E) => string;
  /** The socket listens. */
  onListening?: (address: { address: string; port: number }) => Promise<void> | void;
  /** The socket reported an error (also a failed bind, before start rejects). */
  onSocketError?: (err: Error) => Promise<void> | void;
}

export interface UdpListenerDeps {
  inbox: Inbox;
  logger: Logger;
  metrics: Metrics;
  /** The status page's recent activity (optional). */
  activity?: ActivityLog;
}

interface QueueItem<E> {
  row: Pick<InboxRow, 'id' | 'dedupKey'>;
  event: E;
  from: string;
}

const WINDOW_MS = 60_000;
const HANDLER_ATTEMPTS = 3;
const RETRY_MAX_MS = 30_000;

/** Strips the IPv4-mapped IPv6 prefix so allow-list entries can be plain IPv4. */
function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address.toLowerCase();
}

function readRmemMax(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Wraps a completion step so that the topics of the messages it adds can be read after the commit (activity list). */
function withStepTopics(step: CompletionStep | undefined): { step: CompletionStep | undefined; topics: () => string[] } {
  if (!step) return { step: undefined, topics: () => [] };
  let topics: string[] = [];
  return {
    step: (db) => {
      const out = step(db);
      topics = out?.messages?.map((m) => m.topic) ?? [];
      return out;
    },
    topics: () => topics,
  };
}

/**
 * Logs a rejection once per reason and minute at warn with its detail, the rest at debug, so a flood
 * of bad datagrams cannot flood the log; the metric counts every one.
 */
class RejectionLog {
  private readonly seen = new Map<string, { windowStart: number; suppressed: number }>();
  constructor(private readonly logger: Logger, private readonly name: string) {}

  note(reason: string, detail: string, from: string): void {
    const now = Date.now();
    const entry = this.seen.get(reason);
    if (!entry || now - entry.windowStart >= WINDOW_MS) {
      const suppressed = entry?.suppressed ?? 0;
      this.seen.set(reason, { windowStart: now, suppressed: 0 });
      this.logger.warn(
        { reason, from, ...(suppressed > 0 ? { alsoRejectedLastWindow: suppressed } : {}) },
        `UDP ${this.name}: datagram from ${from} dropped (${reason}): ${detail}`,
      );
      return;
    }
    entry.suppressed += 1;
    this.logger.debug({ reason, from }, `UDP ${this.name}: datagram from ${from} dropped (${reason}): ${detail}`);
  }
}

export class UdpListener<E = Buffer> {
  private socket: dgram.Socket | null = null;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly inbox: Inbox;
  private readonly activity: ActivityLog | undefined;
  private readonly parse: (datagram: Buffer) => DatagramParse<E>;
  private readonly rejections: RejectionLog;
  private allowed: Set<string> | null = null;
  private boundAddress: { address: string; port: number } | null = null;

  // Work queue. `waiting` holds at most maxSize events in memory; when it is full, accepted events
  // stay only in the inbox (`spilled`) and are read back in id order as room appears.
  private readonly waiting: QueueItem<E>[] = [];
  private readonly queued = new Set<number>();
  private lastQueuedId = 0;
  private spilled = true; // at start the inbox may hold events from before a restart
  /** Events in the handler (at most maxConcurrent). */
  private active = 0;
  /** Events handled and waiting for their commit (at most maxSize): a slot is free for the next handler meanwhile. */
  private committing = 0;
  /** Events waiting for room in the outbox; no new event starts meanwhile, so they keep their order. */
  private outboxWaits = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;
  private backpressureWarned = false;
  private spillWarned = false;
  private purgeTimer: NodeJS.Timeout | null = null;

  // Fixed one-minute rate-limit window.
  private windowStart = 0;
  private windowCount = 0;
  private rateLimitWarned = false;

  constructor(
    private readonly options: UdpListenerOptions,
    private readonly handlers: UdpListenerHandlers<E>,
    deps: UdpListenerDeps,
  ) {
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.inbox = deps.inbox;
    this.activity = deps.activity;
    this.parse = handlers.parse ?? ((datagram: Buffer) => ({ ok: true, event: datagram as unknown as E, dedupKey: null }));
    this.rejections = new RejectionLog(deps.logger, options.name);
  }

  /** Where the socket listens (after start). */
  get address(): { address: string; port: number } | null {
    return this.boundAddress;
  }

  /** Events waiting in memory and in progress (the inbox holds these and any spilled ones). */
  get queueDepth(): { waiting: number; active: number; spilled: boolean } {
    return { waiting: this.waiting.length, active: this.active, spilled: this.spilled };
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.spilled = true;
    this.lastQueuedId = 0;
    this.allowed = this.options.allowedSources === null ? null : await this.resolveAllowList(this.options.allowedSources);
    const socket = dgram.createSocket({ type: net.isIPv6(this.options.host) ? 'udp6' : 'udp4' });
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        socket.off('listening', onListening);
        reject(err);
      };
      const onListening = () => {
        socket.off('error', onError);
        resolve();
      };
      socket.once('error', onError);
      socket.once('listening', onListening);
      socket.bind(this.options.port, this.options.host);
    }).catch(async (err: Error) => {
      this.socket = null;
      socket.close();
      this.logger.error({ err: err.message, host: this.options.host, port: this.options.port }, `UDP ${this.options.name}: cannot listen on ${this.options.host}:${this.options.port}: ${err.message}`);
      await this.callQuietly(() => this.handlers.onSocketError?.(err), 'socket error handler');
      throw err;
    });
    socket.on('error', (err) => {
      this.logger.error({ err: err.message }, `UDP ${this.options.name}: socket error: ${err.message}`);
      void this.callQuietly(() => this.handlers.onSocketError?.(err), 'socket error handler');
    });
    this.sizeReceiveBuffer(socket);
    const addr = socket.address();
    this.boundAddress = { address: addr.address, port: addr.port };
    this.logger.info(
      { host: addr.address, port: addr.port, queue: this.options.queue, allowList: this.allowed ? [...this.allowed] : 'any', rateLimitPerMinute: this.options.maxMessagesPerMinute ?? 'off' },
      `UDP ${this.options.name}: listening on ${addr.address}:${addr.port}`,
    );
    this.purgeTimer = setInterval(() => this.inbox.purgeExpired(), WINDOW_MS);
    this.purgeTimer.unref();
    // Events left in the inbox by an earlier run go first: they have the lowest ids.
    const leftover = this.inbox.pending(this.options.source, 0, 1).length;
    if (leftover > 0) this.logger.info(`UDP ${this.options.name}: resuming events accepted before the last stop`);
    this.pump();
    await this.callQuietly(() => this.handlers.onListening?.({ ...this.boundAddress! }), 'listening handler');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.purgeTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    // Events not started stay in the inbox for the next start.
    for (const item of this.waiting) this.queued.delete(item.row.id);
    this.waiting.length = 0;
    if (this.inFlight.size > 0) {
      const drainMs = this.options.drainTimeoutMs ?? 5000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.allSettled([...this.inFlight]).then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), drainMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) this.logger.warn(`UDP ${this.options.name}: ${this.inFlight.size} events still in progress after ${drainMs} ms; they stay in the inbox and are handled after the next start`);
    }
    this.logger.info(`UDP ${this.options.name}: stopped`);
  }

  // ---------------------------------------------------------------------------------------------
  // Receive path: cheap checks, parse, durable accept. Nothing here waits for Sense.

  private receive(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const source = this.options.source;
    this.metrics.eventsReceived.inc({ source });
    const address = normaliseAddress(rinfo.address);
    if (this.allowed && !this.allowed.has(address)) {
      return this.reject('source_not_allowed', `${address} is not in allowedSources`, address);
    }
    if (msg.length > this.options.maxMessageSize) {
      return this.reject('too_large', `${msg.length} bytes, more than maxMessageSize ${this.options.maxMessageSize}`, address);
    }
    if (this.options.maxMessagesPerMinute !== null && !this.withinRateLimit()) {
      return this.reject('rate_limited', `more than ${this.options.maxMessagesPerMinute} datagrams this minute`, address);
    }
    const parsed = this.parse(msg);
    if (!parsed.ok) return this.reject(parsed.reason, parsed.detail, address);
    const dedupKey = this.options.deduplicate ? parsed.dedupKey : null;
    if (this.handlers.handleNow && this.canHandleNow() && this.handleNow(msg, parsed.event, dedupKey, address)) return;
    this.acceptIntoInbox(msg, parsed.event, dedupKey, address);
  }

  private acceptIntoInbox(msg: Buffer, event: E, dedupKey: string | null, address: string): void {
    const source = this.options.source;
    this.inbox.accept(source, msg, dedupKey, JSON.stringify({ from: address })).then(
      (outcome) => {
        if (outcome.status === 'duplicate') return this.reject('duplicate', `dedup key ${JSON.stringify(dedupKey)} was seen within the TTL`, address);
        this.metrics.eventsAccepted.inc({ source });
        this.enqueue({ row: { id: outcome.id, dedupKey }, event, from: address });
      },
      (err: unknown) => {
        if (err instanceof InboxFullError) return this.reject('inbox_full', err.message, address);
        this.metrics.eventsRejected.inc({ source, reason: 'store_error' });
        this.logger.error({ err: (err as Error).message }, `UDP ${this.options.name}: could not record a datagram from ${address}: ${(err as Error).message}`);
      },
    );
  }

  /**
   * The fast path is taken only when no accepted event waits for a worker (it would overtake it) and a
   * worker slot is free (with maxConcurrent 1, events stay in order).
   */
  private canHandleNow(): boolean {
    const { maxConcurrent, maxSize } = this.options.queue;
    return !this.stopping && !this.spilled && this.waiting.length === 0 && this.outboxWaits === 0 && this.active < maxConcurrent && this.committing < maxSize;
  }

  /** True when the event was handled at once (or is a duplicate); false: take the inbox path. */
  private handleNow(msg: Buffer, event: E, dedupKey: string | null, from: string): boolean {
    const source = this.options.source;
    if (dedupKey !== null && this.inbox.isDuplicate(dedupKey)) {
      this.reject('duplicate', `dedup key ${JSON.stringify(dedupKey)} was seen within the TTL`, from);
      return true;
    }
    let result: OutgoingMessage[] | HandledEvent | null;
    try {
      result = this.handlers.handleNow!(event, { from });
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, `UDP ${this.options.name}: handling an event at once failed; it goes through the inbox`);
      return false;
    }
    if (result === null) return false;
    const { messages, step } = Array.isArray(result) ? { messages: result, step: undefined } : result;
    const tracked = withStepTopics(step);
    this.committing += 1;
    const run = this.inbox.acceptHandled(dedupKey, messages, tracked.step).then(
      (outcome) => {
        if (outcome.status === 'duplicate') return this.reject('duplicate', `dedup key ${JSON.stringify(dedupKey)} was seen within the TTL`, from);
        this.metrics.eventsAccepted.inc({ source });
        if (this.activity) {
          const id = this.activity.event({ source, summary: this.handlers.describe?.(event) ?? `datagram from ${from}` });
          this.activity.messages(id, outcome.ids, [...messages.map((m) => m.topic), ...tracked.topics()]);
        }
      },
      (err: unknown) => {
        if (err instanceof MessageRejectedError) {
          this.logger.error({ reason: err.reason }, `UDP ${this.options.name}: messages of a datagram from ${from} refused: ${err.message}; event dropped`);
          this.metrics.eventsRejected.inc({ source, reason: 'message_rejected' });
          this.activity?.event({ source, summary: this.handlers.describe?.(event) ?? `datagram from ${from}`, rejected: `messages refused: ${err.message}` });
          return;
        }
        // Outbox full or a store error: nothing was stored; the event takes the inbox path, where
        // it waits for room (or the error is reported) like any other.
        this.acceptIntoInbox(msg, event, dedupKey, from);
      },
    );
    // Tracked like a worker's event, so stop() waits for the commit.
    const settled = run.finally(() => {
      this.committing -= 1;
      this.inFlight.delete(settled);
      this.pump();
    });
    this.inFlight.add(settled);
    return true;
  }

  private reject(reason: string, detail: string, from: string): void {
    this.metrics.eventsRejected.inc({ source: this.options.source, reason });
    this.rejections.note(reason, detail, from);
    this.activity?.event({ source: this.options.source, summary: `datagram from ${from}`, rejected: `${reason}: ${detail}` });
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
      this.logger.warn(`UDP ${this.options.name}: rate limit of ${this.options.maxMessagesPerMinute} datagrams per minute reached; dropping until the minute is over`);
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // Work queue.

  private enqueue(item: QueueItem<E>): void {
    if (this.stopping) return;
    if (item.row.id <= this.lastQueuedId || this.queued.has(item.row.id)) return; // read back by a refill already
    if (!this.spilled && this.waiting.length < this.options.queue.maxSize) {
      this.push(item);
    } else if (!this.spilled) {
      this.spilled = true;
      this.noteSpill();
    }
    this.pump();
  }

  private noteSpill(): void {
    if (this.spillWarned) return;
    this.spillWarned = true;
    this.logger.warn({ inbox: this.inbox.depth }, `UDP ${this.options.name}: ${this.options.queue.maxSize} events wait in memory (messageQueue.maxSize); further events wait in the durable inbox`);
  }

  private push(item: QueueItem<E>): void {
    this.waiting.push(item);
    this.queued.add(item.row.id);
    this.lastQueuedId = Math.max(this.lastQueuedId, item.row.id);
    const { maxSize, backpressureThreshold } = this.options.queue;
    const level = this.waiting.length / maxSize;
    if (!this.backpressureWarned && level * 100 >= backpressureThreshold) {
      this.backpressureWarned = true;
      this.logger.warn({ waiting: this.waiting.length, maxSize, inbox: this.inbox.depth }, `UDP ${this.options.name}: queue is ${Math.round(level * 100)}% full (backpressure threshold ${backpressureThreshold}%)`);
    }
  }

  /** Reads spilled events back from the inbox, oldest first, as far as memory has room. */
  private refill(): void {
    const room = this.options.queue.maxSize - this.waiting.length;
    if (room <= 0) return;
    let rows: InboxRow[];
    try {
      rows = this.inbox.pending(this.options.source, this.lastQueuedId, room);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, `UDP ${this.options.name}: could not read the inbox`);
      return;
    }
    for (const row of rows) {
      this.lastQueuedId = Math.max(this.lastQueuedId, row.id);
      if (this.queued.has(row.id)) continue;
      const parsed = this.parse(row.payload);
      const from = this.fromMeta(row.meta);
      if (!parsed.ok) {
        // Only possible when the parser changed between runs: the row can never be handled.
        this.logger.warn({ id: row.id, reason: parsed.reason }, `UDP ${this.options.name}: stored event ${row.id} no longer parses (${parsed.detail}); removed`);
        this.metrics.eventsRejected.inc({ source: this.options.source, reason: parsed.reason });
        void this.inbox.discard(row).catch(() => undefined);
        continue;
      }
      this.push({ row: { id: row.id, dedupKey: row.dedupKey }, event: parsed.event, from });
    }
    if (rows.length < room) {
      this.spilled = false;
      this.spillWarned = false;
    } else if (this.waiting.length >= this.options.queue.maxSize) {
      this.noteSpill();
    }
  }

  private fromMeta(meta: string | null): string {
    if (!meta) return '';
    try {
      const from = (JSON.parse(meta) as { from?: unknown }).from;
      return typeof from === 'string' ? from : '';
    } catch {
      return '';
    }
  }

  private pump(): void {
    if (this.stopping) return;
    // Refill in batches (below half full), not one query per finished event.
    if (this.spilled && this.waiting.length <= Math.floor(this.options.queue.maxSize / 2)) this.refill();
    const { maxConcurrent, maxSize: maxCommitting } = this.options.queue;
    while (this.active < maxConcurrent && this.committing < maxCommitting && this.outboxWaits === 0 && this.waiting.length > 0) {
      const item = this.waiting.shift()!;
      this.active += 1;
      const run = this.work(item).finally(() => {
        this.queued.delete(item.row.id);
        this.inFlight.delete(run);
        this.pump();
      });
      this.inFlight.add(run);
    }
    const { maxSize, backpressureThreshold } = this.options.queue;
    if (this.backpressureWarned && (this.waiting.length * 100) / maxSize < backpressureThreshold / 2) {
      this.backpressureWarned = false;
      this.logger.info(`UDP ${this.options.name}: queue back to ${this.waiting.length} waiting events`);
    }
  }

  /**
   * One event: the handler runs in one of the maxConcurrent slots; once it has returned the messages,
   * the slot goes to the next event while this one waits for its commit. Waiting for the commit is
   * most of an event's time when QRS answers from the cache, and a commit carries every event that
   * is waiting, so this is what lets a group commit take more than maxConcurrent events.
   */
  private async work(item: QueueItem<E>): Promise<void> {
    let inHandler = true;
    let committing = false;
    try {
      await this.handleAndComplete(item, () => {
        if (!inHandler) return;
        inHandler = false;
        this.active -= 1;
        committing = true;
        this.committing += 1;
        this.pump();
      });
    } finally {
      if (inHandler) this.active -= 1;
      if (committing) this.committing -= 1;
    }
  }

  private async handleAndComplete(item: QueueItem<E>, handlerDone: () => void): Promise<void> {
    const activityId = this.activity?.event({ source: this.options.source, summary: this.handlers.describe?.(item.event) ?? `datagram ${item.row.id}` });
    const failed = (reason: string) => {
      if (activityId !== undefined) this.activity?.failed(activityId, reason);
    };
    let failures = 0;
    let outboxWaitMs = 500;
    // Set while the outbox is full: the same messages are offered again (handling the event again
    // would only repeat the QRS lookups, and would let a later event overtake this one).
    let pending: HandledEvent | null = null;
    for (;;) {
      if (this.stopping) return; // the event stays in the inbox
      let handled: HandledEvent;
      if (pending) {
        handled = pending;
        pending = null;
      } else {
        try {
          const result = await this.handlers.onAccepted(item.event, { id: item.row.id, from: item.from });
          handled = Array.isArray(result) ? { messages: result } : result;
        } catch (err) {
          failures += 1;
          if (failures < HANDLER_ATTEMPTS) {
            this.logger.warn({ id: item.row.id, err: (err as Error).message }, `UDP ${this.options.name}: handling event ${item.row.id} failed; retrying`);
            await sleep(200 * failures);
            continue;
          }
          this.logger.error({ id: item.row.id, err: (err as Error).stack ?? String(err) }, `UDP ${this.options.name}: handling event ${item.row.id} failed ${failures} times; event dropped`);
          this.metrics.eventsRejected.inc({ source: this.options.source, reason: 'handler_error' });
          failed(`handling failed ${failures} times; event dropped`);
          await this.inbox.discard(item.row).catch(() => undefined);
          return;
        }
      }
      const { messages, step } = handled;
      const tracked = withStepTopics(step);
      try {
        const completion = this.inbox.complete(item.row, messages, tracked.step);
        handlerDone();
        const ids = await completion;
        if (activityId !== undefined) this.activity?.messages(activityId, ids, [...messages.map((m) => m.topic), ...tracked.topics()]);
        return;
      } catch (err) {
        if (this.stopping) return;
        if (err instanceof OutboxFullError) {
          // Durable in the inbox meanwhile: wait for the outbox to drain instead of dropping.
          this.logger.warn({ id: item.row.id }, `UDP ${this.options.name}: ${err.message}; event ${item.row.id} waits in the inbox and is retried`);
          this.outboxWaits += 1;
          try {
            await sleep(outboxWaitMs);
          } finally {
            this.outboxWaits -= 1;
          }
          outboxWaitMs = Math.min(RETRY_MAX_MS, outboxWaitMs * 2);
          pending = handled;
          continue;
        }
        if (err instanceof MessageRejectedError) {
          this.logger.error({ id: item.row.id, reason: err.reason }, `UDP ${this.options.name}: messages of event ${item.row.id} refused: ${err.message}; event dropped`);
          this.metrics.eventsRejected.inc({ source: this.options.source, reason: 'message_rejected' });
          failed(`messages refused: ${err.message}`);
          await this.inbox.discard(item.row).catch(() => undefined);
          return;
        }
        failures += 1;
        this.logger.error({ id: item.row.id, err: (err as Error).message }, `UDP ${this.options.name}: could not complete event ${item.row.id}: ${(err as Error).message}`);
        if (failures >= HANDLER_ATTEMPTS) {
          failed('could not be stored; left in the inbox for the next start');
          return; // left in the inbox; handled after the next start
        }
        await sleep(500 * failures);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------

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
        this.logger.info(`UDP ${this.options.name}: allowed source ${entry} resolves to ${addresses.map((a) => a.address).join(', ')}`);
      } catch (err) {
        // Failing closed: datagrams from that host are refused until the next start.
        this.logger.error(`UDP ${this.options.name}: allowed source "${entry}" cannot be resolved (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); datagrams from it will be refused`);
      }
    }
    return allowed;
  }

  private sizeReceiveBuffer(socket: dgram.Socket): void {
    const requested = this.options.receiveBufferBytes;
    let granted: number | null = null;
    try {
      socket.setRecvBufferSize(requested);
    } catch (err) {
      this.logger.warn(`UDP ${this.options.name}: could not set the receive buffer to ${requested} bytes: ${(err as Error).message}`);
    }
    try {
      granted = socket.getRecvBufferSize();
    } catch {
      granted = null;
    }
    const rmemMax = readRmemMax();
    const fields = { requestedBytes: requested, grantedBytes: granted, ...(rmemMax !== null ? { rmemMax } : {}) };
    // Linux reports twice the accepted size (the kernel reserves half for bookkeeping), capped by net.core.rmem_max.
    if (granted !== null && granted < requested) {
      this.logger.warn(
        fields,
        `UDP ${this.options.name}: receive buffer ${granted} bytes granted, ${requested} requested` +
          (rmemMax !== null ? ` (the kernel caps it at net.core.rmem_max = ${rmemMax}; raise it with sysctl -w net.core.rmem_max=${requested})` : ''),
      );
    } else {
      this.logger.info(fields, `UDP ${this.options.name}: receive buffer ${granted ?? 'unknown'} bytes granted, ${requested} requested`);
    }
  }

  private async callQuietly(fn: () => Promise<void> | void | undefined, what: string): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, `UDP ${this.options.name}: ${what} failed: ${(err as Error).message}`);
    }
  }
}
