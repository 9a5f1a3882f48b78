// The durable outbox: every outgoing MQTT message is stored here before anyone is told it was
// accepted, and removed only once the broker acknowledged it. Bounded by count and bytes; a full
// outbox refuses new messages with OutboxFullError and never evicts what it holds.
import type { Db, Store } from './sqlite.ts';
import { OutboxFullError, MessageRejectedError, type MessageSink, type OutgoingMessage, type QoS } from './types.ts';
import type { Metrics } from '../observability/metrics.ts';
import { DeadLetters } from './dead-letters.ts';

export interface OutboxRow {
  id: number;
  topic: string;
  /** As given to the outbox: text is stored as SQLite TEXT and handed to MQTT.js as a string (no copies). */
  payload: Buffer | string;
  qos: QoS;
  retain: boolean;
  kind: string;
  createdAt: number;
}

export interface OutboxOptions {
  maxMessages: number;
  maxBytes: number;
  /** QoS used when a message does not say. */
  defaultQos: QoS;
  /** Highest QoS the broker accepts (1 for Azure Event Grid). */
  maxQos: QoS;
  /** Largest PUBLISH packet the broker accepts, bytes (512 KiB for Azure Event Grid); 0 = no limit. */
  maxPacketBytes: number;
  /** Extra check of a topic at enqueue (Event Grid's topic limits); returns a reason or null. */
  checkTopic?: (topic: string) => string | null;
}

/**
 * At most this many committed rows wait in memory for the Publisher (more are read from the file): the
 * messages of 4,000 alerts with their full messages, a few MB at most. With 2,000, a storm's backlog
 * (bench/storm.ts keeps 2,000 alerts, 4,000 messages, between sent and delivered) was read back from the
 * file half of the time, which cost about 9% of its throughput.
 */
const FRESH_MAX = 8000;

export class Outbox implements MessageSink {
  private count = 0;
  private bytes = 0;
  /** Rows committed by this process and not read yet, in id order (see peek()). */
  private readonly fresh = new Map<number, OutboxRow>();
  private readonly insertStmt;
  private readonly peekStmt;
  private readonly deleteStmt;
  private readonly oldestStmt;
  private readonly moveStmt;
  private readonly removeMovedStmt;
  /** Waiting for room below the bounds (see waitForRoom()). */
  private roomWaiters: { messages: number; bytes: number; resolve: () => void }[] = [];
  /** Highest row id known committed and durable (own inserts, rows found in the file). */
  private lastDurableId: number;
  /** PRAGMA data_version at the last look (see changedElsewhere()). */
  private dataVersion: number;
  /** Messages moved out of the outbox because the broker kept refusing them. */
  readonly deadLetters: DeadLetters;
  /** When this process opened the outbox (ms since the epoch): rows created before it are an earlier run's. */
  readonly openedAt = Date.now();

  constructor(
    private readonly store: Store,
    private readonly options: OutboxOptions,
    private readonly metrics?: Metrics,
  ) {
    const db = store.db;
    const totals = db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.count = totals.n;
    this.bytes = totals.b;
    this.insertStmt = db.prepare('INSERT INTO outbox (topic, payload, qos, retain, kind, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.peekStmt = db.prepare('SELECT id, topic, payload, qos, retain, kind, created_at AS createdAt FROM outbox WHERE id > ? ORDER BY id LIMIT ?');
    // Plucked: the sizes of the deleted rows as one array of numbers, not an object per row.
    this.deleteStmt = db.prepare('DELETE FROM outbox WHERE id BETWEEN ? AND ? RETURNING bytes').pluck();
    // The first row queued (lowest id) rather than min(created_at): that would read every row, payloads
    // included, on each scrape; this is one B-tree lookup however large the backlog.
    this.oldestStmt = db.prepare('SELECT created_at AS t FROM outbox ORDER BY id LIMIT 1');
    this.moveStmt = db.prepare('INSERT INTO dead_letter (id, topic, payload, qos, retain, kind, bytes, created_at, reason, moved_at, attempts) SELECT id, topic, payload, qos, retain, kind, bytes, created_at, ?, ?, ? FROM outbox WHERE id = ?');
    this.removeMovedStmt = db.prepare('DELETE FROM outbox WHERE id = ? RETURNING bytes').pluck();
    this.deadLetters = new DeadLetters(db);
    this.lastDurableId = (db.prepare('SELECT coalesce(max(id), 0) FROM outbox').pluck().get() as number) ?? 0;
    this.dataVersion = db.pragma('data_version', { simple: true }) as number;
    store.onCommitFailed(() => this.recount());
    metrics?.sampleOnCollect('outboxDepth', () => this.count);
    metrics?.sampleOnCollect('outboxBytes', () => this.bytes);
    metrics?.sampleOnCollect('deadLetters', () => this.deadLetters.count);
  }

  get depth(): number {
    return this.count;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get limits(): { maxMessages: number; maxBytes: number } {
    return { maxMessages: this.options.maxMessages, maxBytes: this.options.maxBytes };
  }

  /** Stores the messages durably (one group-committed transaction) and resolves with their row ids. */
  async enqueue(messages: OutgoingMessage[]): Promise<number[]> {
    if (messages.length === 0) return [];
    try {
      this.validate(messages);
      const ids = await this.store.write((db) => this.insertInTransaction(db, messages));
      return ids;
    } catch (err) {
      const reason = err instanceof OutboxFullError ? 'outbox_full' : err instanceof MessageRejectedError ? err.reason : 'store_error';
      for (const m of messages) this.metrics?.messagesRefused.inc({ kind: m.kind ?? 'other', reason });
      throw err;
    }
  }

  /** Checks that can be made before touching the store; throws MessageRejectedError. */
  validate(messages: OutgoingMessage[]): void {
    for (const m of messages) {
      // What no broker takes in a PUBLISH: a message stored with such a topic could never be delivered.
      if (m.topic === '' || /[+#\u0000]/.test(m.topic) || m.topic.startsWith('$')) {
        throw new MessageRejectedError('bad_topic', `topic ${JSON.stringify(m.topic.slice(0, 100))} cannot be published (empty, a wildcard, a NUL character, or a broker-reserved $ topic)`);
      }
      if (this.options.maxPacketBytes > 0) {
        const size = publishPacketBytes(Buffer.byteLength(m.topic), typeof m.payload === 'string' ? Buffer.byteLength(m.payload) : m.payload.length);
        if (size > this.options.maxPacketBytes) {
          throw new MessageRejectedError('too_large', `message to ${JSON.stringify(m.topic)} is ${size} bytes as an MQTT packet; the broker accepts at most ${this.options.maxPacketBytes}`);
        }
      }
      const topicProblem = this.options.checkTopic?.(m.topic);
      if (topicProblem) throw new MessageRejectedError('bad_topic', topicProblem);
    }
  }

  /**
   * Inserts inside a transaction the caller already holds (the inbox uses this so that an event's
   * messages and the removal of the event are one commit). Throws OutboxFullError when a bound is hit.
   * `createdAt`: default now; for an event an earlier run accepted, its arrival time (the inbox passes
   * it), so a restarted standby can tell whether the active can have received it.
   */
  insertInTransaction(_db: Db, messages: OutgoingMessage[], createdAt = Date.now()): number[] {
    const prepared = messages.map((m) => {
      // Text stays text: SQLite stores it as TEXT (UTF-8) and MQTT.js encodes it as it writes the packet,
      // so a payload is not copied into a Buffer here and again by MQTT.js (which deep-clones every
      // QoS 1/2 packet it stores, Buffers included).
      const payload = m.payload;
      const qos = Math.min(m.qos ?? this.options.defaultQos, this.options.maxQos) as QoS;
      return { m, payload, qos, bytes: (typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length) + Buffer.byteLength(m.topic) };
    });
    const addBytes = prepared.reduce((s, p) => s + p.bytes, 0);
    if (this.count + prepared.length > this.options.maxMessages) throw new OutboxFullError('messages', this.count, this.options.maxMessages);
    if (this.bytes + addBytes > this.options.maxBytes) throw new OutboxFullError('bytes', this.bytes, this.options.maxBytes);
    const ids = prepared.map((p) => Number(this.insertStmt.run(p.m.topic, p.payload, p.qos, p.m.retain ? 1 : 0, p.m.kind ?? 'other', p.bytes, createdAt).lastInsertRowid));
    this.store.onDurable(() => {
      this.lastDurableId = Math.max(this.lastDurableId, ids[ids.length - 1] as number);
      prepared.forEach((p, i) => {
        // A caller's Buffer could still be changed by the caller; such rows are read from the file.
        if (this.fresh.size >= FRESH_MAX || typeof p.m.payload !== 'string') return;
        const id = ids[i] as number;
        this.fresh.set(id, { id, topic: p.m.topic, payload: p.payload, qos: p.qos, retain: Boolean(p.m.retain), kind: p.m.kind ?? 'other', createdAt });
      });
    });
    // Nothing after this point can throw, so the counters only move for rows that will commit
    // (a failed commit of the whole batch triggers recount()).
    this.count += prepared.length;
    this.bytes += addBytes;
    for (const p of prepared) this.metrics?.messagesEnqueued.inc({ kind: p.m.kind ?? 'other' });
    return ids;
  }

  /**
   * Rows after `afterId`, oldest first. Reads committed data only. Rows this process committed and
   * nobody has read yet are handed over from memory as long as their ids follow `afterId` without a
   * gap (a gap: a row written by another process, one left out of memory, or one already removed);
   * otherwise from the file. Reading back what was just written was about 7% of the bridge's time in a
   * storm (bench/storm.ts). Either way the caller gets the same rows.
   */
  peek(afterId: number, limit: number): OutboxRow[] {
    if (this.fresh.has(afterId + 1)) {
      const out: OutboxRow[] = [];
      for (let id = afterId + 1; out.length < limit; id++) {
        const row = this.fresh.get(id);
        if (row === undefined) break;
        this.fresh.delete(id);
        out.push(row);
      }
      // The run ended at a row kept out of memory (or written by another process) with more behind
      // it: the rest comes from the file, so a short answer always means "nothing more committed".
      const last = (out[out.length - 1] as OutboxRow).id;
      if (out.length < limit && last < this.lastDurableId) out.push(...this.readFile(last, limit - out.length));
      return out;
    }
    return this.readFile(afterId, limit);
  }

  private readFile(afterId: number, limit: number): OutboxRow[] {
    const rows = (this.peekStmt.all(afterId, limit) as (Omit<OutboxRow, 'retain'> & { retain: number })[]).map((r) => ({ ...r, retain: r.retain === 1 }));
    if (rows.length > 0) this.lastDurableId = Math.max(this.lastDurableId, (rows[rows.length - 1] as OutboxRow).id);
    if (this.fresh.size > 0) {
      for (const r of rows) this.fresh.delete(r.id);
      // Rows at or before what was asked for have been read (or removed) some other way.
      for (const id of this.fresh.keys()) {
        if (id > afterId) break;
        this.fresh.delete(id);
      }
    }
    return rows;
  }

  /** Removes acknowledged rows (group-committed with other writes). */
  async remove(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    for (const id of ids) this.fresh.delete(id);
    // Acknowledgements come mostly in id order: one statement per run of consecutive ids.
    const sorted = ids.length > 1 ? [...ids].sort((a, b) => a - b) : ids;
    await this.store.writeStatements(() => {
      let i = 0;
      while (i < sorted.length) {
        const first = sorted[i] as number;
        let last = first;
        while (i + 1 < sorted.length && (sorted[i + 1] as number) <= last + 1) last = sorted[++i] as number;
        i++;
        const sizes = this.deleteStmt.all(first, last) as number[];
        this.count -= sizes.length;
        for (const size of sizes) this.bytes -= size;
      }
    });
    this.notifyRoom();
  }

  /**
   * Resolves as soon as `messages` more messages of `bytes` more bytes fit below both bounds (at once
   * when they fit now): a producer waiting out a full outbox resumes at the first deletion that makes
   * room, without polling.
   */
  waitForRoom(messages = 1, bytes = 0): Promise<void> {
    if (this.hasRoom(messages, bytes)) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push({ messages, bytes, resolve }));
  }

  private hasRoom(messages: number, bytes: number): boolean {
    return this.count + messages <= this.options.maxMessages && this.bytes + bytes <= this.options.maxBytes;
  }

  private notifyRoom(): void {
    if (this.roomWaiters.length === 0) return;
    const waiting = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiting) {
      if (this.hasRoom(w.messages, w.bytes)) w.resolve();
      else this.roomWaiters.push(w);
    }
  }

  /**
   * Moves a row to the dead-letter table (one transaction), keeping its id. The Publisher calls this
   * for a message the broker keeps answering with a disconnect.
   */
  async moveToDeadLetter(id: number, reason: string, attempts: number): Promise<void> {
    this.fresh.delete(id);
    await this.store.write(() => {
      this.moveStmt.run(reason, Date.now(), attempts, id);
      const size = this.removeMovedStmt.get(id) as number | undefined;
      if (size !== undefined) {
        this.count -= 1;
        this.bytes -= size;
      }
    });
    this.notifyRoom();
  }

  /**
   * Whether another process committed to the file since the last call (e.g. `butler-mqtt outbox
   * retry` moved rows back); if so the totals are read again. SQLite's data_version comes from the
   * WAL index in shared memory: no table is read when nothing changed.
   */
  changedElsewhere(): boolean {
    const v = this.store.db.pragma('data_version', { simple: true }) as number;
    if (v === this.dataVersion) return false;
    this.dataVersion = v;
    this.recount();
    return true;
  }

  /** After a rolled-back transaction the in-memory totals may be off; this re-reads them. */
  recount(): void {
    this.fresh.clear();
    const totals = this.store.db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.count = totals.n;
    this.bytes = totals.b;
    this.notifyRoom();
  }

  oldestAgeSeconds(): number {
    const r = this.oldestStmt.get() as { t: number } | undefined;
    return r === undefined ? 0 : Math.max(0, (Date.now() - r.t) / 1000);
  }
}

/**
 * Size of a PUBLISH packet on the wire, counted for the worst case of what we send (QoS 1 packet id,
 * an MQTT 5 property length byte): a broker's maximum packet size covers the headers, not just topic
 * and payload, so a message that fits only without them would be refused by the broker again and again.
 */
export function publishPacketBytes(topicBytes: number, payloadBytes: number): number {
  const remaining = 2 + topicBytes + 2 + 1 + payloadBytes;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + remaining;
}
