// One source's way through the pipeline. A source hands over raw input; the lane parses it (pure),
// accepts it durably (an inbox row, or — when the handler can answer at once from what is cached —
// its messages and dedup key in one transaction), then runs the handler with bounded concurrency and
// commits the handler's messages to the outbox in the transaction that completes the event.
//
// The policies, the same for every source:
// - order: events start in the order they were accepted; at most `concurrency` are in the handler;
// - a handler that throws is retried with exponential backoff and jitter; after `maxAttempts` the
//   event is quarantined: kept in the inbox, out of the queue, counted, listed and retriable;
// - a full outbox: the event waits (durable in the inbox) and no later event starts meanwhile, so
//   order is kept; it resumes as soon as the outbox has room; nothing is dropped; each wait counted;
// - activity for the status page and the metrics are recorded here, once.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ActivityLog } from '../observability/activity.ts';
import { InboxFullError, type CompletionStep, type Inbox, type InboxRow } from '../store/inbox.ts';
import { MessageRejectedError, OutboxFullError, type OutgoingMessage } from '../store/types.ts';
import { RejectionLog } from './rejections.ts';

/** What a parser says about one input: a typed event (and its dedup key), or why not. */
export type ParseResult<E> = { ok: true; event: E; dedupKey: string | null } | { ok: false; reason: string; detail: string };

/** The messages of one event, plus work that must commit with them (see CompletionStep). */
export interface HandledEvent {
  messages: OutgoingMessage[];
  step?: CompletionStep;
}
export type Handled = OutgoingMessage[] | HandledEvent;

export interface EventInfo {
  /** Inbox row id. */
  id: number;
  /** What the source stored with the input (e.g. the sender's address, the MQTT topic). */
  meta: string | null;
}

export interface LaneHandlers<E> {
  /**
   * Bytes (and the source's meta) → event. Runs on accept and again when a stored event is read back
   * after a restart, so it must be pure and cheap.
   */
  parse: (payload: Buffer, meta: string | null) => ParseResult<E>;
  /**
   * One accepted event → the messages to publish (possibly none). Expected failures belong in the
   * messages (e.g. an alert marked with enrichmentError); a throw is a transient failure: retried with
   * backoff, then quarantined. Called again for the same event after a failed commit, so it must not
   * change state itself; state that moves with the event belongs in a HandledEvent's `step`.
   */
  handle: (event: E, info: EventInfo) => Promise<Handled>;
  /**
   * Optional fast path: the same answer as `handle`, at once, when everything it needs is at hand
   * (QRS answers in the cache); null when it would have to wait. A throw sends the event down the
   * inbox path.
   */
  handleNow?: (event: E) => Handled | null;
  /** One line for the status page. */
  describe?: (event: E) => string;
  /**
   * How a refused input is logged. Default: the first refusal of a reason in a minute at warn, the
   * rest of that minute at debug (a flood of bad datagrams cannot flood the log).
   */
  logRejection?: (reason: string, detail: string, from: string) => { level: 'debug' | 'info' | 'warn' | 'error'; msg: string };
}

export interface LaneOptions {
  /** Inbox source, e.g. "udp_task"; also the metric and status-page label unless `label` is set. */
  source: string;
  label?: string;
  /** For log lines, e.g. "UDP task events". */
  name: string;
  /** What one input is called on the status page, e.g. "datagram" (default "input"). */
  inputName?: string;
  /** Events in the handler at once. */
  concurrency: number;
  /** Events waiting in memory; more wait only in the inbox and are read back in order. */
  queueSize: number;
  /** Warn when the in-memory queue is this % full. */
  backpressurePercent?: number;
  /** Attempts before an event is quarantined (default 5). */
  maxAttempts?: number;
  /** First retry wait; doubles per attempt up to retryMaxMs (defaults 200 ms, 30 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Use the parser's dedup keys (default true; false: every input is new). */
  deduplicate?: boolean;
  /** How long a dedup key is remembered after its event completed (default: the inbox's TTL). */
  dedupTtlMs?: number;
  /** On stop, how long events in progress may take before they are left in the inbox (default 5 s). */
  drainTimeoutMs?: number;
  /** How often an idle lane looks for events released from quarantine by another process (default 5 s). */
  rescanIntervalMs?: number;
}

export type SubmitOutcome =
  | { status: 'accepted'; id: number | null }
  | { status: 'duplicate' }
  | { status: 'invalid'; reason: string; detail: string }
  /** Not accepted: inbox_full, store_error or stopped. The source must tell its sender (or count it). */
  | { status: 'refused'; reason: string; detail: string };

export interface LaneDeps {
  inbox: Inbox;
  /** Room in the outbox (a full outbox makes events wait). */
  room: { hasRoom(): boolean; waitForRoom(): Promise<void> };
  logger: Logger;
  metrics: Metrics;
  activity?: ActivityLog;
}

interface QueueItem<E> {
  id: number;
  dedupKey: string | null;
  meta: string | null;
  event: E;
  attempts: number;
  /** Read back from the inbox: when it was accepted (an earlier run's event gives its messages that time, see Inbox.complete()). */
  receivedAt?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Wraps a completion step so the topics of the messages it adds can be read after the commit. */
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

const asHandled = (h: Handled): HandledEvent => (Array.isArray(h) ? { messages: h } : h);

export class Lane<E> {
  private readonly rejections: RejectionLog;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;

  // Work queue: `waiting` holds at most queueSize events; beyond that accepted events stay only in
  // the inbox (`spilled`) and are read back in id order as room appears.
  private readonly waiting: QueueItem<E>[] = [];
  private readonly queued = new Set<number>();
  private lastQueuedId = 0;
  private spilled = true; // at start the inbox may hold events from before a restart
  private active = 0;
  /** Inputs whose inbox row is being committed (they will queue ahead of anything newer). */
  private accepting = 0;
  /** Events handled and waiting for their commit; the handler slot is free meanwhile. */
  private committing = 0;
  /** Events waiting for room in the outbox; no new event starts meanwhile (order). */
  private outboxWaits = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private running = false;
  private backpressureWarned = false;
  private spillWarned = false;
  private rescanTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly options: LaneOptions,
    private readonly handlers: LaneHandlers<E>,
    private readonly deps: LaneDeps,
  ) {
    this.rejections = new RejectionLog(deps.logger, options.name, this.label);
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.retryBaseMs = options.retryBaseMs ?? 200;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
  }

  /** The metric label. */
  get source(): string {
    return this.label;
  }

  private get label(): string {
    return this.options.label ?? this.options.source;
  }

  /** Events waiting in memory and in the handler. */
  get queueDepth(): { waiting: number; active: number; spilled: boolean } {
    return { waiting: this.waiting.length, active: this.active, spilled: this.spilled };
  }

  start(): void {
    this.running = true;
    this.spilled = true;
    this.lastQueuedId = 0;
    const leftover = this.deps.inbox.pending(this.options.source, 0, 1).length;
    if (leftover > 0) this.deps.logger.info(`${this.options.name}: resuming events accepted before the last stop`);
    // Events released from quarantine by `butler-mqtt inbox retry` (another process) are found here.
    this.rescanTimer = setInterval(() => this.rescan(), this.options.rescanIntervalMs ?? 5000);
    this.rescanTimer.unref();
    this.pump();
  }

  /** Stops taking work; events in progress get drainTimeoutMs to finish, the rest stay in the inbox. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.rescanTimer = null;
    for (const item of this.waiting) this.queued.delete(item.id);
    this.waiting.length = 0;
    if (this.inFlight.size === 0) return;
    const drainMs = this.options.drainTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.allSettled([...this.inFlight]).then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), drainMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) this.deps.logger.warn(`${this.options.name}: ${this.inFlight.size} events still in progress after ${drainMs} ms; they stay in the inbox and are handled after the next start`);
  }

  // ---------------------------------------------------------------------------------------------
  // Intake: parse, dedup, durable accept. Nothing here waits for Sense.

  /**
   * Takes one input. Resolves once it is durably accepted (or refused, or found a duplicate or
   * invalid — each counted and logged here). Never rejects.
   */
  submit(payload: Buffer, meta: string | null, from = ''): Promise<SubmitOutcome> {
    this.deps.metrics.eventsReceived.inc({ source: this.label });
    const parsed = this.handlers.parse(payload, meta);
    if (!parsed.ok) {
      this.reject(parsed.reason, parsed.detail, from);
      return Promise.resolve({ status: 'invalid', reason: parsed.reason, detail: parsed.detail });
    }
    if (!this.running) {
      this.reject('stopped', `${this.options.name} is stopping`, from);
      return Promise.resolve({ status: 'refused', reason: 'stopped', detail: `${this.options.name} is stopping` });
    }
    const event = parsed.event;
    const dedupKey = this.options.deduplicate === false ? null : parsed.dedupKey;
    if (dedupKey !== null && this.deps.inbox.isDuplicate(dedupKey)) return Promise.resolve(this.duplicate(dedupKey, from));
    if (this.handlers.handleNow && this.canHandleNow()) {
      const now = this.handleNow(payload, meta, event, dedupKey, from);
      if (now) return now;
    }
    return this.acceptIntoInbox(payload, meta, event, dedupKey, from);
  }

  /** Counts and logs input the source refused before the lane saw it (allow-list, size, rate limit). */
  reject(reason: string, detail: string, from: string): void {
    this.deps.metrics.eventsRejected.inc({ source: this.label, reason });
    const custom = this.handlers.logRejection?.(reason, detail, from);
    if (custom) this.deps.logger[custom.level]({ source: this.label, reason, ...(from ? { from } : {}) }, custom.msg);
    else this.rejections.note(reason, detail, from);
    const noun = this.options.inputName ?? 'input';
    this.deps.activity?.event({ source: this.label, summary: from ? `${noun} from ${from}` : noun, rejected: `${reason}: ${detail}` });
  }

  private duplicate(dedupKey: string | null, from: string): SubmitOutcome {
    this.reject('duplicate', `dedup key ${JSON.stringify(dedupKey)} was seen within the TTL`, from);
    return { status: 'duplicate' };
  }

  private async acceptIntoInbox(payload: Buffer, meta: string | null, event: E, dedupKey: string | null, from: string): Promise<SubmitOutcome> {
    const source = this.options.source;
    this.accepting += 1;
    try {
      const outcome = await this.deps.inbox.accept(source, payload, dedupKey, meta).finally(() => (this.accepting -= 1));
      if (outcome.status === 'duplicate') return this.duplicate(dedupKey, from);
      this.deps.metrics.eventsAccepted.inc({ source: this.label });
      this.enqueue({ id: outcome.id, dedupKey, meta, event, attempts: 0 });
      return { status: 'accepted', id: outcome.id };
    } catch (err) {
      const reason = err instanceof InboxFullError ? 'inbox_full' : 'store_error';
      const detail = (err as Error).message;
      this.reject(reason, detail, from);
      return { status: 'refused', reason, detail };
    }
  }

  /**
   * The fast path runs only when the event would get a handler slot at once on the inbox path too:
   * nothing waits, and the events being accepted or handled leave a slot free. So it never overtakes
   * an older event (with concurrency 1: only when the lane is idle).
   */
  private canHandleNow(): boolean {
    return (
      this.running &&
      !this.spilled &&
      this.waiting.length === 0 &&
      this.outboxWaits === 0 &&
      this.active + this.accepting < this.options.concurrency &&
      this.committing < this.options.queueSize
    );
  }

  /** The outcome when the event was handled at once (or is a duplicate); null: take the inbox path. */
  private handleNow(payload: Buffer, meta: string | null, event: E, dedupKey: string | null, from: string): Promise<SubmitOutcome> | null {
    const source = this.label;
    let result: Handled | null;
    try {
      result = this.handlers.handleNow!(event);
    } catch (err) {
      this.deps.logger.debug({ err: (err as Error).message }, `${this.options.name}: handling an event at once failed; it goes through the inbox`);
      return null;
    }
    if (result === null) return null;
    const { messages, step } = asHandled(result);
    const tracked = withStepTopics(step);
    this.committing += 1;
    const run = this.deps.inbox.acceptHandled(dedupKey, messages, tracked.step, this.options.dedupTtlMs).then(
      (outcome): SubmitOutcome | Promise<SubmitOutcome> => {
        if (outcome.status === 'duplicate') return this.duplicate(dedupKey, from);
        this.deps.metrics.eventsAccepted.inc({ source });
        const activity = this.deps.activity;
        if (activity) activity.messages(activity.event({ source, summary: this.describe(event, from) }), outcome.ids, [...messages.map((m) => m.topic), ...tracked.topics()]);
        return { status: 'accepted', id: null };
      },
      // Outbox full, a message refused, or a store error: nothing was stored. The inbox path takes
      // the event, where it waits for room or is quarantined like any other.
      () => this.acceptIntoInbox(payload, meta, event, dedupKey, from),
    );
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => {
      this.committing -= 1;
      this.inFlight.delete(settled);
      this.pump();
    });
    return run;
  }

  private describe(event: E, from: string): string {
    return this.handlers.describe?.(event) ?? (from ? `${this.options.inputName ?? 'input'} from ${from}` : this.options.name);
  }

  // ---------------------------------------------------------------------------------------------
  // Work queue.

  private enqueue(item: QueueItem<E>): void {
    if (!this.running) return;
    if (item.id <= this.lastQueuedId || this.queued.has(item.id)) return; // read back by a refill already
    if (!this.spilled && this.waiting.length < this.options.queueSize) this.push(item);
    else if (!this.spilled) {
      this.spilled = true;
      this.noteSpill();
    }
    this.pump();
  }

  private noteSpill(): void {
    if (this.spillWarned) return;
    this.spillWarned = true;
    this.deps.logger.warn({ inbox: this.deps.inbox.depth }, `${this.options.name}: ${this.options.queueSize} events wait in memory (messageQueue.maxSize); further events wait in the durable inbox`);
  }

  private push(item: QueueItem<E>): void {
    this.waiting.push(item);
    this.queued.add(item.id);
    this.lastQueuedId = Math.max(this.lastQueuedId, item.id);
    const threshold = this.options.backpressurePercent ?? 80;
    const percent = (this.waiting.length * 100) / this.options.queueSize;
    if (!this.backpressureWarned && percent >= threshold) {
      this.backpressureWarned = true;
      this.deps.logger.warn({ waiting: this.waiting.length, maxSize: this.options.queueSize, inbox: this.deps.inbox.depth }, `${this.options.name}: queue is ${Math.round(percent)}% full (backpressure threshold ${threshold}%)`);
    }
  }

  /** Reads spilled events back from the inbox, oldest first, as far as memory has room. */
  private refill(): void {
    const room = this.options.queueSize - this.waiting.length;
    if (room <= 0) return;
    let rows: InboxRow[];
    try {
      rows = this.deps.inbox.pending(this.options.source, this.lastQueuedId, room);
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, `${this.options.name}: could not read the inbox`);
      return;
    }
    for (const row of rows) {
      this.lastQueuedId = Math.max(this.lastQueuedId, row.id);
      if (this.queued.has(row.id)) continue;
      const parsed = this.handlers.parse(row.payload, row.meta);
      if (!parsed.ok) {
        // Only possible when the parser or the config changed between runs: it can never be handled.
        void this.quarantine(row, row.attempts ?? 0, `no longer parses: ${parsed.reason}: ${parsed.detail}`, parsed.reason, null);
        continue;
      }
      this.push({ id: row.id, dedupKey: row.dedupKey, meta: row.meta, event: parsed.event, attempts: row.attempts ?? 0, receivedAt: row.receivedAt });
    }
    if (rows.length < room) {
      this.spilled = false;
      this.spillWarned = false;
    } else if (this.waiting.length >= this.options.queueSize) {
      this.noteSpill();
    }
  }

  /** When idle, looks for events released from quarantine by another process (they have old ids). */
  private rescan(): void {
    if (!this.running || this.waiting.length > 0 || this.active > 0 || this.spilled) return;
    let rows: InboxRow[];
    try {
      rows = this.deps.inbox.pending(this.options.source, 0, this.options.queueSize);
    } catch {
      return;
    }
    // Not queued and not being accepted right now (those are queued when their commit lands).
    const fresh = rows.filter((r) => !this.queued.has(r.id) && this.accepting === 0);
    if (fresh.length === 0) return;
    this.deps.inbox.recount();
    this.deps.logger.info({ count: fresh.length }, `${this.options.name}: ${fresh.length} event(s) released for another attempt`);
    this.lastQueuedId = 0;
    this.spilled = true;
    this.pump();
  }

  private pump(): void {
    if (!this.running) return;
    if (this.spilled && this.waiting.length <= Math.floor(this.options.queueSize / 2)) this.refill();
    while (this.active < this.options.concurrency && this.committing < this.options.queueSize && this.outboxWaits === 0 && this.waiting.length > 0) {
      const item = this.waiting.shift()!;
      this.active += 1;
      const run = this.work(item).finally(() => {
        this.queued.delete(item.id);
        this.inFlight.delete(run);
        this.pump();
      });
      this.inFlight.add(run);
    }
    const threshold = this.options.backpressurePercent ?? 80;
    if (this.backpressureWarned && (this.waiting.length * 100) / this.options.queueSize < threshold / 2) {
      this.backpressureWarned = false;
      this.deps.logger.info(`${this.options.name}: queue back to ${this.waiting.length} waiting events`);
    }
  }

  /**
   * One event. Once the handler has returned, its slot goes to the next event while this one waits
   * for its commit: a group commit then carries more than `concurrency` events.
   */
  private async work(item: QueueItem<E>): Promise<void> {
    let inHandler = true;
    let committing = false;
    const handlerDone = () => {
      if (!inHandler) return;
      inHandler = false;
      this.active -= 1;
      committing = true;
      this.committing += 1;
      this.pump();
    };
    try {
      await this.handleAndComplete(item, handlerDone);
    } finally {
      if (inHandler) this.active -= 1;
      if (committing) this.committing -= 1;
    }
  }

  private async handleAndComplete(item: QueueItem<E>, handlerDone: () => void): Promise<void> {
    const { inbox, logger, metrics, activity } = this.deps;
    const source = this.label;
    const activityId = activity?.event({ source, summary: this.describe(item.event, '') });
    let attempts = item.attempts;
    let storeFailures = 0;
    let waited = false;
    // Set while the outbox is full: the same messages are offered again (handling the event again
    // would repeat the QRS lookups and could let a later event overtake this one).
    let pending: HandledEvent | null = null;
    for (;;) {
      if (!this.running) return; // stays in the inbox
      let handled: HandledEvent;
      if (pending) {
        handled = pending;
        pending = null;
      } else {
        try {
          handled = asHandled(await this.handlers.handle(item.event, { id: item.id, meta: item.meta }));
        } catch (err) {
          attempts += 1;
          const text = (err as Error).message ?? String(err);
          if (attempts >= this.maxAttempts) {
            await this.quarantine(item, attempts, `handler failed: ${text}`, 'handler_error', activityId);
            return;
          }
          metrics.handlerRetries.inc({ source });
          const wait = this.backoff(attempts);
          logger.warn({ id: item.id, attempt: attempts, err: text }, `${this.options.name}: handling event ${item.id} failed (attempt ${attempts} of ${this.maxAttempts}); retrying in ${wait} ms`);
          await inbox.noteFailure(item, text).catch(() => undefined);
          await sleep(wait);
          continue;
        }
      }
      const tracked = withStepTopics(handled.step);
      try {
        const completion = inbox.complete(item, handled.messages, tracked.step, this.options.dedupTtlMs);
        handlerDone();
        const ids = await completion;
        if (activityId !== undefined) activity?.messages(activityId, ids, [...handled.messages.map((m) => m.topic), ...tracked.topics()]);
        return;
      } catch (err) {
        if (!this.running) return;
        if (err instanceof OutboxFullError) {
          // Durable in the inbox meanwhile: wait for room (no new event starts), then offer the same
          // messages. Counted and logged once per event, however many removals it takes.
          if (!waited) {
            waited = true;
            metrics.outboxWaits.inc({ source });
            logger.warn({ id: item.id }, `${this.options.name}: ${err.message}; event ${item.id} waits in the inbox until the outbox has room`);
          }
          this.outboxWaits += 1;
          try {
            await this.waitForRoom();
          } finally {
            this.outboxWaits -= 1;
          }
          pending = handled;
          continue;
        }
        if (err instanceof MessageRejectedError) {
          // The broker would never take these messages (too large, a bad topic): retrying cannot help.
          await this.quarantine(item, attempts + 1, `messages refused: ${err.message}`, 'message_rejected', activityId);
          return;
        }
        storeFailures += 1;
        const wait = this.backoff(storeFailures);
        logger.error({ id: item.id, err: (err as Error).message }, `${this.options.name}: could not complete event ${item.id}: ${(err as Error).message}; retrying in ${wait} ms`);
        await sleep(wait);
      }
    }
  }

  private async waitForRoom(): Promise<void> {
    while (this.running && !this.deps.room.hasRoom()) await this.deps.room.waitForRoom();
  }

  /** Exponential backoff with full jitter above half the ceiling. */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private async quarantine(item: Pick<InboxRow, 'id'>, attempts: number, error: string, reason: string, activityId: number | null | undefined): Promise<void> {
    const { inbox, logger, metrics, activity } = this.deps;
    try {
      await inbox.quarantine(item, attempts, error);
    } catch (err) {
      logger.error({ id: item.id, err: (err as Error).message }, `${this.options.name}: could not quarantine event ${item.id}; it stays in the inbox`);
      return;
    }
    metrics.eventsQuarantined.inc({ source: this.label, reason });
    logger.error({ id: item.id, attempts, reason }, `${this.options.name}: event ${item.id} quarantined after ${attempts} attempt(s): ${error} (list with "butler-mqtt inbox list", retry with "butler-mqtt inbox retry ${item.id}")`);
    if (activityId !== undefined && activityId !== null) activity?.failed(activityId, `quarantined: ${error}`);
  }
}
