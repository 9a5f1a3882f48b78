// The only code that publishes (through BrokerConnection.publishRaw). Drains the outbox in id order
// with a bounded in-flight window while connected, deletes a row once the broker acknowledged it
// (PUBACK/PUBCOMP; QoS 0 when written), publishes the connect status (P1) and the availability topic
// on every connect, and moves a message the broker keeps answering with a disconnect to the
// dead-letter table so it cannot block the rest. In an active/standby pair (src/mqtt/high-availability.ts)
// a standby's Publisher holds alert rows instead of sending them, drops those the active is seen
// publishing, and sends the rest when the instance becomes active.
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { BrokerConnection, CloseInfo } from './connection.ts';
import type { Outbox, OutboxRow } from '../store/outbox.ts';
import type { Store } from '../store/sqlite.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { QoS } from '../store/types.ts';

export interface PublisherOptions {
  inFlightWindow: number;
  /**
   * After a reconnect the MQTT client re-sends what was in flight; a row still unacknowledged this
   * long after the reconnect is sent again by us (at least once beats waiting forever). Default 3 s.
   */
  resendAfterMs?: number;
  /** Published directly on every connect (P1), before the backlog. */
  connectStatus?: { topic: string; payload: string; qos: QoS; retain: boolean };
  availability?: { topic: string; online: string; offline: string; retain: boolean; qos: QoS };
  /**
   * A message is moved to the dead-letter table after the broker answered it with a disconnect this
   * many times in a row (see onClosed()); 0 = never. Default 3.
   */
  deadLetterAfterDisconnects?: number;
  /** How often rows written by another process (`butler-mqtt outbox retry`) are looked for, ms. Default 2000. */
  externalCheckMs?: number;
  /**
   * Active/standby pair (docs/high-availability.md). Present: the Publisher starts holding; held
   * rows are not published until release() (this instance became active).
   */
  standby?: StandbyOptions;
}

export interface StandbyOptions {
  /** Kinds of message this instance publishes whatever its role (its own: REST, task start results, test messages). */
  ownKinds: readonly string[];
  /** A held row nobody was seen publishing is dropped after this long, ms. */
  heldMaxAgeMs: number;
  /** How long a message seen published by the active is remembered for a held copy still to come, ms. */
  seenTtlMs: number;
  /** At most this many seen messages are remembered (the oldest are forgotten first). */
  seenMax: number;
}

/** The key a held message is matched by: topic and a hash of the payload. */
export function messageKey(topic: string, payload: string | Buffer): string {
  return `${topic}\n${createHash('sha1').update(payload).digest('base64')}`;
}

/**
 * A close counts against the message being sent again only if it came this soon after the broker
 * accepted the connection: a broker that refuses a message drops the connection within milliseconds.
 */
export const STRIKE_WINDOW_MS = 2000;

export interface DeadLetterEvent {
  id: number;
  topic: string;
  kind: string;
  attempts: number;
  reason: string;
}

export interface DeliveryEvent {
  id: number;
  topic: string;
  kind: string;
}

export class Publisher extends EventEmitter {
  /** Highest outbox id handed to send(); rows above it have not been sent yet. */
  private cursor = 0;
  /** Rows read ahead from the outbox (ids above `cursor`), so a PUBACK that frees one slot costs no query. */
  private readAhead: OutboxRow[] = [];
  private readCursor = 0;
  /** The outbox may hold rows above `readCursor` (set by commits and the poll; cleared by a short read). */
  private unread = true;
  private readonly inFlight = new Map<number, { row: OutboxRow; token: number }>();
  private nextToken = 1;
  /** Rows that were in flight when the connection dropped. */
  private readonly interrupted = new Set<number>();
  private resendTimer: NodeJS.Timeout | null = null;
  /** Rows whose publish failed (client closing); sent again before newer rows. */
  private readonly retry: OutboxRow[] = [];
  private pendingRemovals: number[] = [];
  private removalScheduled = false;
  private running = false;
  private pumping = false;
  private readonly waiters = new Map<number, (() => void)[]>();
  /** Disconnects in a row counted against a row (cleared when it is acknowledged). */
  private readonly strikes = new Map<number, number>();
  /** A close that counts against this row if the next connection attempt is accepted. */
  private pendingStrike: number | null = null;
  /** A packet MQTT.js was sending again at a close that no in-flight row owns (see onClosed()). */
  private pendingOrphan: { topic: string; payload: string | Buffer } | null = null;
  private externalCheck: NodeJS.Timeout | null = null;
  /** Standby: rows not published because another instance is active (id → row, in id order). */
  private holding: boolean;
  private readonly held = new Map<number, { row: OutboxRow; key: string; since: number }>();
  private readonly heldByKey = new Map<string, number[]>();
  /** Standby: messages seen published by the active with no held copy yet (key → count, expiry). */
  private readonly seen = new Map<string, { count: number; expires: number }>();
  private heldSweep: NodeJS.Timeout | null = null;
  private readonly ownKinds: Set<string>;
  /**
   * Standby: rows of inputs an earlier run of this instance accepted, created before this time (ms
   * since the epoch), are published, not held: the active cannot have them (see publishInherited()).
   */
  private inheritedCutoff = 0;
  /** Inherited rows already counted ('inherited' event), so a row sent again is not counted twice. */
  private readonly inheritedSent = new Set<number>();

  constructor(
    private readonly connection: BrokerConnection,
    private readonly outbox: Outbox,
    store: Store,
    private readonly options: PublisherOptions,
    private readonly deps: { logger: Logger; metrics?: Metrics },
  ) {
    super();
    this.holding = options.standby !== undefined;
    this.ownKinds = new Set(options.standby?.ownKinds ?? []);
    store.onCommitted(() => {
      this.unread = true;
      this.pump();
    });
    connection.on('connect', () => this.onConnect());
    connection.on('disconnect', () => {
      for (const id of this.inFlight.keys()) this.interrupted.add(id);
    });
    connection.on('closed', (info) => this.onClosed(info));
    connection.on('accepted', () => this.onAccepted());
  }

  start(): void {
    this.running = true;
    // Rows this process commits wake the Publisher (store.onCommitted); rows another process commits
    // (`butler-mqtt outbox retry`) are noticed by the store's change counter, read now and then (an
    // in-memory read, no query of the table).
    this.externalCheck = setInterval(() => {
      if (!this.outbox.changedElsewhere()) return;
      this.unread = true;
      this.pump();
    }, this.options.externalCheckMs ?? 2000);
    this.externalCheck.unref();
    if (this.options.standby) {
      this.heldSweep = setInterval(() => this.sweepHeld(), Math.min(60_000, this.options.standby.heldMaxAgeMs));
      this.heldSweep.unref();
    }
    if (this.connection.connected) this.onConnect();
  }

  /**
   * Dead-letter rule. After a reconnect MQTT.js sends again what was unacknowledged one message at a
   * time, each waiting for its acknowledgement, before the session counts as connected; a broker that
   * refuses a message by closing the connection does so right then, so the culprit is known: the
   * message being sent again. Such a close counts against it when it came less than
   * STRIKE_WINDOW_MS after the broker accepted the connection, and only if the next connection
   * attempt is accepted too (the broker is up and reachable). A broker that is stopped, killed or
   * restarted fails the next attempt (no count) or takes the message once it is back (an
   * acknowledgement clears the count). Closes while messages are pipelined (connected) are not
   * counted: any of them may be the cause. After `deadLetterAfterDisconnects` counts in a row the
   * message is moved to the dead-letter table before MQTT.js can send it again.
   */
  private onClosed(info: CloseInfo): void {
    this.pendingStrike = null;
    this.pendingOrphan = null;
    if (!this.running || info.acceptedAt === null || info.resending === null || (this.options.deadLetterAfterDisconnects ?? 3) <= 0) return;
    if (info.closedAt - info.acceptedAt > STRIKE_WINDOW_MS) return;
    const { topic, payload } = info.resending;
    for (const { row } of this.inFlight.values()) {
      if (row.topic === topic && samePayload(row.payload, payload)) {
        this.pendingStrike = row.id;
        return;
      }
    }
    // No row owns it: a second copy of a row acknowledged, dead-lettered or queued to be sent again
    // by us, or a status message (published again on every connect). Dropping it loses nothing.
    this.pendingOrphan = info.resending;
  }

  private onAccepted(): void {
    const id = this.pendingStrike;
    const orphan = this.pendingOrphan;
    this.pendingStrike = null;
    this.pendingOrphan = null;
    if (orphan && this.running && this.connection.forgetInFlight(orphan.topic, orphan.payload)) {
      this.deps.logger.warn({ topic: orphan.topic }, `the broker closed the connection right after a message to ${JSON.stringify(orphan.topic)} was sent again; that copy is no longer needed and is not sent again`);
    }
    if (id === null || !this.running) return;
    const entry = this.inFlight.get(id);
    if (!entry) return;
    const count = (this.strikes.get(id) ?? 0) + 1;
    this.strikes.set(id, count);
    const limit = this.options.deadLetterAfterDisconnects ?? 3;
    this.deps.logger.warn({ id, topic: entry.row.topic, count, limit }, `the broker closed the connection right after message ${id} to ${JSON.stringify(entry.row.topic)} was sent (${count} of ${limit} times in a row)`);
    if (count >= limit) this.deadLetter(entry.row, count);
  }

  private deadLetter(row: OutboxRow, attempts: number): void {
    this.inFlight.delete(row.id);
    this.interrupted.delete(row.id);
    this.strikes.delete(row.id);
    // MQTT.js would send it again as soon as the session resumes.
    this.connection.forgetInFlight(row.topic, row.payload);
    const reason = `the broker closed the connection each time it was sent (${attempts} times in a row)`;
    this.deps.logger.error({ id: row.id, topic: row.topic, kind: row.kind, attempts }, `message ${row.id} to ${JSON.stringify(row.topic)} moved to the dead-letter table: ${reason}; delivery of the other messages goes on (butler-mqtt outbox dead | retry | drop)`);
    this.deps.metrics?.deadLettered.inc({ kind: row.kind });
    this.emit('dead-letter', { id: row.id, topic: row.topic, kind: row.kind, attempts, reason } satisfies DeadLetterEvent);
    this.outbox.moveToDeadLetter(row.id, reason, attempts).catch((err: Error) => {
      // The row stays in the outbox and is sent again at the next start.
      this.deps.logger.error({ id: row.id, err: err.message }, `could not move message ${row.id} to the dead-letter table: ${err.message}`);
    });
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Resolves when every row id has been acknowledged, or rejects after timeoutMs. */
  waitForDelivery(ids: number[], timeoutMs: number): Promise<void> {
    const remaining = new Set(ids.filter((id) => this.isPending(id)));
    if (remaining.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not acknowledged by the broker within ${timeoutMs} ms`)), timeoutMs);
      for (const id of remaining) {
        const list = this.waiters.get(id) ?? [];
        list.push(() => {
          remaining.delete(id);
          if (remaining.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
        this.waiters.set(id, list);
      }
    });
  }

  private isPending(id: number): boolean {
    if (this.inFlight.has(id) || id > this.cursor || this.held.has(id)) return true;
    return this.retry.some((r) => r.id === id);
  }

  private onConnect(): void {
    if (!this.running) return;
    if (this.interrupted.size > 0 && !this.resendTimer) {
      this.resendTimer = setTimeout(() => this.resendInterrupted(), this.options.resendAfterMs ?? 3000);
      this.resendTimer.unref();
    }
    if (!this.holding) this.publishOwnStatus();
    this.pump();
  }

  /** The availability (online) and connect status: published by a single instance, or by the active of a pair. */
  private publishOwnStatus(): void {
    const { connectStatus, availability } = this.options;
    if (availability) {
      publishStatusMessage(this.connection, { topic: availability.topic, payload: availability.online, qos: availability.qos, retain: availability.retain }, (err) => {
        this.deps.logger.warn({ err: err.message }, 'could not publish the online status');
      });
    }
    if (connectStatus) {
      publishStatusMessage(this.connection, connectStatus, (err) => {
        this.deps.logger.warn({ err: err.message }, 'could not publish the connect status');
      });
    }
  }

  /** Whether alerts are held (standby) rather than published. */
  get isHolding(): boolean {
    return this.holding;
  }

  /** The keys (messageKey) of the rows held now. */
  heldKeys(): string[] {
    return [...this.held.values()].map((h) => h.key);
  }

  /** Rows held by a standby. */
  get heldCount(): number {
    return this.held.size;
  }

  /**
   * Standby: stop publishing alerts from now on (rows already handed to the client complete). What
   * was seen published before is forgotten: only the active's publications from now on match.
   */
  hold(): void {
    if (!this.options.standby || this.holding) return;
    this.holding = true;
    this.seen.clear();
  }

  /**
   * This instance became active: the availability and connect status are published, then every held
   * row, in id order, before newer rows. Returns how many held rows were released.
   */
  release(): number {
    if (!this.holding) return 0;
    this.holding = false;
    const rows = [...this.held.values()].map((h) => h.row);
    this.held.clear();
    this.heldByKey.clear();
    this.seen.clear();
    if (rows.length > 0) {
      this.retry.push(...rows);
      this.retry.sort((a, b) => a.id - b.id);
    }
    if (this.connection.connected && this.running) this.publishOwnStatus();
    this.pump();
    return rows.length;
  }

  /**
   * Standby: the active published this message. A held copy is dropped (removed from the outbox);
   * otherwise it is remembered for a copy still being processed here. Returns true when a held
   * copy was dropped.
   */
  deliveredElsewhere(topic: string, payload: string | Buffer): boolean {
    if (!this.holding) return false;
    const key = messageKey(topic, payload);
    const ids = this.heldByKey.get(key);
    if (ids && ids.length > 0) {
      const id = ids.shift() as number;
      if (ids.length === 0) this.heldByKey.delete(key);
      const entry = this.held.get(id);
      this.held.delete(id);
      if (entry) this.acknowledge(entry.row, false);
      this.emit('matched', 1);
      return true;
    }
    const standby = this.options.standby as StandbyOptions;
    const now = Date.now();
    const prev = this.seen.get(key);
    if (prev && prev.expires > now) {
      prev.count += 1;
      prev.expires = now + standby.seenTtlMs;
    } else {
      this.seen.delete(key);
      this.seen.set(key, { count: 1, expires: now + standby.seenTtlMs });
      while (this.seen.size > standby.seenMax) this.seen.delete(this.seen.keys().next().value as string);
    }
    return false;
  }

  /**
   * Standby: the active's process started taking inputs at `cutoff` (ms since the epoch, allowance
   * included). Alerts of inputs this instance accepted before its own restart (stored then, or made
   * now from events left in its inbox), created before that time, are ones the active cannot have
   * received: published now (held ones) and when read (the rest), not held. They were accepted while
   * this instance was active and the other one was down or restarting; held, they would wait for a
   * takeover that may never come. Each one sent is reported once ('inherited').
   */
  publishInherited(cutoff: number): void {
    if (!this.options.standby || cutoff <= this.inheritedCutoff) return;
    this.inheritedCutoff = cutoff;
    const rows = this.takeHeld((h) => this.isInherited(h.row));
    if (rows.length > 0) {
      this.retry.push(...rows);
      this.retry.sort((a, b) => a.id - b.id);
      this.pump();
    }
  }

  /** Created before this process opened the outbox (an earlier run's, or an event it had accepted) and before the cutoff. */
  private isInherited(row: OutboxRow): boolean {
    return row.createdAt < this.outbox.openedAt && row.createdAt < this.inheritedCutoff;
  }

  /** Whether a row read from the outbox is held rather than sent (standby, and not one of this instance's own kinds). */
  private holdRow(row: OutboxRow): boolean {
    if (!this.holding || this.ownKinds.has(row.kind)) return false;
    if (this.inheritedCutoff > 0 && this.isInherited(row)) {
      if (!this.inheritedSent.has(row.id)) {
        this.inheritedSent.add(row.id);
        this.emit('inherited', 1);
      }
      return false;
    }
    const key = messageKey(row.topic, row.payload);
    const now = Date.now();
    const seen = this.seen.get(key);
    if (seen && seen.expires > now) {
      // The active published it before this instance had processed the event.
      if (--seen.count === 0) this.seen.delete(key);
      this.emit('matched', 1);
      this.acknowledge(row, false);
      return true;
    }
    this.held.set(row.id, { row, key, since: now });
    const ids = this.heldByKey.get(key);
    if (ids) ids.push(row.id);
    else this.heldByKey.set(key, [row.id]);
    return true;
  }

  /** Takes the held rows `which` picks out of the held set (in id order). */
  private takeHeld(which: (h: { row: OutboxRow; since: number }) => boolean): OutboxRow[] {
    const rows: OutboxRow[] = [];
    for (const [id, h] of this.held) {
      if (!which(h)) continue;
      this.held.delete(id);
      const ids = this.heldByKey.get(h.key);
      if (ids) {
        ids.splice(ids.indexOf(id), 1);
        if (ids.length === 0) this.heldByKey.delete(h.key);
      }
      rows.push(h.row);
    }
    return rows;
  }

  private sweepHeld(): void {
    const standby = this.options.standby;
    if (!standby || !this.holding) return;
    const now = Date.now();
    for (const [key, v] of this.seen) if (v.expires <= now) this.seen.delete(key);
    const expired = this.takeHeld((h) => now - h.since >= standby.heldMaxAgeMs);
    if (expired.length === 0) return;
    this.deps.logger.warn({ count: expired.length, topics: [...new Set(expired.map((r) => r.topic))].slice(0, 5) }, `standby: ${expired.length} held message(s) were never seen published by the active within ${Math.round(standby.heldMaxAgeMs / 60_000)} min; dropped (Butler.highAvailability.heldMaxAgeMinutes)`);
    this.emit('held-expired', expired.length);
    for (const row of expired) this.acknowledge(row, false);
  }

  /**
   * A coordination message of an active/standby pair (announcement, heartbeat): this instance's own,
   * published directly on every connect and role change, not stored.
   */
  publishCoordination(message: { topic: string; payload: string; qos: QoS; retain: boolean }, done?: (err?: Error) => void): void {
    if (!this.connection.connected) {
      done?.(new Error('not connected'));
      return;
    }
    this.connection.publishRaw(message.topic, message.payload, { qos: message.qos, retain: message.retain }, (err) => {
      if (err) this.deps.logger.debug({ topic: message.topic, err: err.message }, `could not publish ${message.topic}`);
      done?.(err);
    });
  }

  private resendInterrupted(): void {
    this.resendTimer = null;
    const stuck: OutboxRow[] = [];
    for (const id of this.interrupted) {
      const entry = this.inFlight.get(id);
      if (entry) {
        this.inFlight.delete(id);
        stuck.push(entry.row);
      }
    }
    this.interrupted.clear();
    if (stuck.length === 0) return;
    this.deps.logger.info({ count: stuck.length }, 'sending again messages unacknowledged since the reconnect');
    this.retry.push(...stuck);
    this.retry.sort((a, b) => a.id - b.id);
    this.pump();
  }

  /** Sends rows until the window is full or the outbox is drained. Cheap when there is nothing to do. */
  pump(): void {
    if (!this.running || this.pumping || !this.connection.connected) return;
    this.pumping = true;
    try {
      while (this.inFlight.size < this.options.inFlightWindow && this.connection.connected) {
        const room = this.options.inFlightWindow - this.inFlight.size;
        let rows: OutboxRow[];
        if (this.retry.length > 0) {
          rows = this.retry.splice(0, room);
        } else {
          if (this.readAhead.length === 0) {
            // A PUBACK frees a slot; asking the outbox again is only worth it when something was written since.
            if (!this.unread) break;
            this.readAhead = this.outbox.peek(this.readCursor, this.options.inFlightWindow);
            if (this.readAhead.length < this.options.inFlightWindow) this.unread = false;
            if (this.readAhead.length === 0) break;
            this.readCursor = (this.readAhead[this.readAhead.length - 1] as OutboxRow).id;
          }
          rows = this.readAhead.splice(0, room);
          this.cursor = (rows[rows.length - 1] as OutboxRow).id;
        }
        for (const row of rows) if (!this.holdRow(row)) this.send(row);
      }
    } finally {
      this.pumping = false;
    }
  }

  private send(row: OutboxRow): void {
    const token = this.nextToken++;
    this.inFlight.set(row.id, { row, token });
    this.connection.publishRaw(row.topic, row.payload, { qos: row.qos, retain: row.retain }, (err) => {
      // A late callback for a row that was sent again since is ignored; the newer send decides.
      if (this.inFlight.get(row.id)?.token !== token) return;
      this.inFlight.delete(row.id);
      this.interrupted.delete(row.id);
      if (err) {
        if (/exceeding packets size|too large|packet size/i.test(err.message)) {
          // The broker will never take it: report loudly, count it, and remove it so it cannot block the rest.
          this.deps.logger.error({ id: row.id, topic: row.topic, bytes: typeof row.payload === 'string' ? Buffer.byteLength(row.payload) : row.payload.length }, `message refused: larger than the broker's maximum packet size; removed from the outbox`);
          this.deps.metrics?.messagesRefused.inc({ kind: row.kind, reason: 'too_large_for_broker' });
          this.acknowledge(row, false);
          return;
        }
        this.deps.logger.debug({ id: row.id, err: err.message }, 'publish interrupted; will send again');
        this.retry.push(row);
        this.retry.sort((a, b) => a.id - b.id);
      } else {
        this.acknowledge(row, true);
      }
      this.pump();
    });
  }

  private acknowledge(row: OutboxRow, delivered: boolean): void {
    this.strikes.delete(row.id);
    if (delivered) {
      this.deps.metrics?.messagesDelivered.inc({ kind: row.kind });
      this.emit('delivered', { id: row.id, topic: row.topic, kind: row.kind } satisfies DeliveryEvent);
    }
    this.pendingRemovals.push(row.id);
    const waiters = this.waiters.get(row.id);
    if (waiters) {
      this.waiters.delete(row.id);
      for (const w of waiters) w();
    }
    if (!this.removalScheduled) {
      this.removalScheduled = true;
      setImmediate(() => this.flushRemovals());
    }
  }

  private flushRemovals(): void {
    this.removalScheduled = false;
    const ids = this.pendingRemovals;
    this.pendingRemovals = [];
    this.outbox.remove(ids).catch((err: Error) => {
      // The rows stay and are sent again after a restart (at least once); nothing is lost.
      this.deps.logger.error({ err: err.message }, 'could not remove delivered messages from the outbox');
    });
  }

  /**
   * Keeps delivering for up to `flushMs` (until the outbox is empty), then publishes the offline
   * status. What is left stays in the outbox for the next start.
   */
  async stop(flushMs: number): Promise<void> {
    const deadline = Date.now() + flushMs;
    while (Date.now() < deadline && this.connection.connected && (this.outbox.depth - this.pendingRemovals.length - this.held.size > 0 || this.inFlight.size > 0)) {
      this.pump();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.running = false;
    if (this.externalCheck) clearInterval(this.externalCheck);
    if (this.resendTimer) clearTimeout(this.resendTimer);
    if (this.heldSweep) clearInterval(this.heldSweep);
    const availability = this.options.availability;
    // A standby never said "online": the active's availability is not touched.
    if (availability && this.connection.connected && !this.holding) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(500, deadline - Date.now()));
        this.connection.publishRaw(availability.topic, availability.offline, { qos: availability.qos, retain: availability.retain }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (this.removalScheduled) this.flushRemovals();
    // Let queued removals commit before the store closes.
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * A status message published directly on a connection, outside the outbox: the connect status and
 * availability of the main connection (above) and the Qlik Cloud forward broker's status message
 * (src/cloud/event-subscriber.ts). Informational and re-sent on every connect, so not stored.
 */
export function publishStatusMessage(connection: BrokerConnection, message: { topic: string; payload: string; qos: QoS; retain: boolean }, onError: (err: Error) => void): void {
  connection.publishRaw(message.topic, message.payload, { qos: message.qos, retain: message.retain }, (err) => {
    if (err) onError(err);
  });
}

function samePayload(a: string | Buffer, b: string | Buffer): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a === b;
  const ab = typeof a === 'string' ? Buffer.from(a) : a;
  const bb = typeof b === 'string' ? Buffer.from(b) : b;
  return ab.equals(bb);
}
