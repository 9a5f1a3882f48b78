// The durable inbox: an accepted input is recorded here (group-committed) before any slow work, so
// a crash never loses it. Completing an event stores its outgoing messages, removes the event and
// burns its dedup key in one transaction: an event is either still here or fully in the outbox.
// An input that needs no slow work (its QRS answers are cached) skips the row: acceptHandled()
// stores its messages and burns its key in one transaction.
import type { Db, Store } from './sqlite.ts';
import type { Outbox } from './outbox.ts';
import type { OutgoingMessage } from './types.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface InboxRow {
  id: number;
  source: string;
  payload: Buffer;
  dedupKey: string | null;
  meta: string | null;
  receivedAt: number;
  /** Failed handling attempts so far (kept across restarts). */
  attempts?: number;
}

/** An event taken out of the work queue because its handling kept failing. */
export interface QuarantinedRow extends InboxRow {
  attempts: number;
  lastError: string;
  quarantinedAt: number;
}

export class InboxFullError extends Error {
  override readonly name = 'InboxFullError';
  constructor(readonly max: number) {
    super(`inbox full: ${max} accepted events are waiting to be handled; input refused`);
  }
}

export interface InboxOptions {
  maxEvents: number;
  /** How long a dedup key is remembered after its event was handled. */
  dedupTtlMs: number;
}

export type AcceptOutcome = { status: 'accepted'; id: number } | { status: 'duplicate' };

/**
 * Work that must commit together with an event's completion, such as state kept across restarts.
 * It runs inside the completing transaction, before the messages are stored: it may write to the
 * store and add messages of its own. `applied` runs right after every message is stored, still in
 * that transaction, so in-memory state moves only with writes that hold (were the whole batch to
 * fail to commit after all, Store.onCommitFailed tells). `applied` must not throw.
 */
export type CompletionStep = (db: Db) => { messages?: OutgoingMessage[]; applied?: () => void } | void;

/**
 * The key as a string of its own. A key cut out of a datagram shares the datagram's memory in V8 (a
 * sliced string), so remembering it for the dedup TTL would keep the whole datagram alive.
 */
function ownCopy(key: string): string {
  return (' ' + key).slice(1);
}

export class Inbox {
  /** Events waiting or in progress (quarantined ones not included). */
  private count = 0;
  private quarantinedCount = 0;
  /** Accepted rows whose commit is pending. */
  private reserved = 0;
  /** Keys of events accepted but not yet completed; they count as seen. */
  private readonly inProgress = new Map<string, number>();
  /** Keys of completed events, with expiry time (ms). Mirrors the dedup log (latest expiry per key). */
  private readonly burned = new Map<string, number>();
  private readonly stmts;
  private readonly countStmt;

  constructor(
    private readonly store: Store,
    private readonly outbox: Outbox,
    private readonly options: InboxOptions,
    private readonly metrics?: Metrics,
  ) {
    const db = store.db;
    this.stmts = {
      insert: db.prepare('INSERT INTO inbox (source, payload, dedup_key, meta, received_at) VALUES (?, ?, ?, ?, ?)'),
      remove: db.prepare('DELETE FROM inbox WHERE id = ?'),
      burn: db.prepare('INSERT INTO dedup_log (key, expires_at) VALUES (?, ?)'),
      purge: db.prepare('DELETE FROM dedup_log WHERE expires_at <= ?'),
      pending: db.prepare(
        'SELECT id, source, payload, dedup_key AS dedupKey, meta, received_at AS receivedAt, attempts FROM inbox WHERE source = ? AND id > ? AND quarantined_at IS NULL ORDER BY id LIMIT ?',
      ),
      failed: db.prepare('UPDATE inbox SET attempts = attempts + 1, last_error = ? WHERE id = ?'),
      quarantine: db.prepare('UPDATE inbox SET attempts = ?, last_error = ?, quarantined_at = ? WHERE id = ?'),
      quarantined: db.prepare(
        'SELECT id, source, payload, dedup_key AS dedupKey, meta, received_at AS receivedAt, attempts, last_error AS lastError, quarantined_at AS quarantinedAt FROM inbox WHERE quarantined_at IS NOT NULL AND (? IS NULL OR source = ?) ORDER BY id LIMIT ?',
      ),
      // The first event accepted (lowest id): one B-tree lookup, where min(received_at) read every row.
      oldest: db.prepare('SELECT received_at AS t FROM inbox ORDER BY id LIMIT 1'),
    };
    this.countStmt = db.prepare('SELECT count(*) AS n, count(quarantined_at) AS q FROM inbox');
    const countRows = () => this.recount();
    countRows();
    const now = Date.now();
    this.stmts.purge.run(now);
    for (const r of db.prepare('SELECT key, expires_at AS e FROM dedup_log').all() as { key: string; e: number }[]) {
      if ((this.burned.get(r.key) ?? 0) < r.e) this.burned.set(r.key, r.e);
    }
    for (const r of db.prepare('SELECT id, dedup_key AS k FROM inbox WHERE dedup_key IS NOT NULL').all() as { id: number; k: string }[]) this.inProgress.set(r.k, r.id);
    store.onCommitFailed(countRows);
    metrics?.sampleOnCollect('inboxDepth', () => this.count);
    metrics?.sampleOnCollect('inboxQuarantined', () => this.quarantinedCount);
  }

  get depth(): number {
    return this.count;
  }

  /** Reads the counts from the file (after a failed commit, or events released by another process). */
  recount(): void {
    const r = this.countStmt.get() as { n: number; q: number };
    // Accepts whose commit is still pending are counted already but not in the file yet.
    this.count = r.n - r.q + this.reserved;
    this.quarantinedCount = r.q;
  }

  /** Events taken out of the work queue after failing too often (see quarantine()). */
  get quarantined(): number {
    return this.quarantinedCount;
  }

  /** True when the key belongs to an event in progress or handled within the TTL. */
  isDuplicate(key: string, now = Date.now()): boolean {
    if (this.inProgress.has(key)) return true;
    const exp = this.burned.get(key);
    if (exp === undefined) return false;
    if (exp > now) return true;
    this.burned.delete(key);
    return false;
  }

  /**
   * For a completion step (inside its transaction): burns `key` unless it is seen already (in
   * progress or burned within the TTL), so two sources that name the same thing with the same key
   * act on it once. Returns null for a duplicate; otherwise the note to run in the step's
   * `applied`, which makes the key count in memory once the write holds.
   */
  claimInTransaction(key: string, dedupTtlMs = this.options.dedupTtlMs): (() => void) | null {
    if (this.isDuplicate(key)) return null;
    const expires = Date.now() + dedupTtlMs;
    this.stmts.burn.run(key, expires);
    return () => {
      this.burned.set(ownCopy(key), expires);
    };
  }

  /**
   * Burns `key` for `ttlMs` without an event: something another process did (in an active/standby
   * pair, a task start the other instance answered), so that this store refuses it as a duplicate
   * too. The key counts at once; resolves once it is durable.
   */
  async burnKey(key: string, ttlMs = this.options.dedupTtlMs): Promise<void> {
    if (this.isDuplicate(key)) return;
    const expires = Date.now() + ttlMs;
    this.burned.set(ownCopy(key), expires);
    await this.store.writeStatements(() => this.stmts.burn.run(key, expires));
  }

  /**
   * Durably records an accepted input. Resolves once committed. With a dedup key, a second event
   * with the same key (in progress or handled within the TTL) is reported as duplicate.
   */
  async accept(source: string, payload: Buffer, dedupKey: string | null = null, meta: string | null = null): Promise<AcceptOutcome> {
    if (dedupKey !== null && this.isDuplicate(dedupKey)) return { status: 'duplicate' };
    if (this.count >= this.options.maxEvents) throw new InboxFullError(this.options.maxEvents);
    // Reserve before the commit so a resend arriving meanwhile is seen as a duplicate.
    this.count += 1;
    this.reserved += 1;
    if (dedupKey !== null) this.inProgress.set(dedupKey, -1);
    try {
      const id = await this.store.writeStatements(() => Number(this.stmts.insert.run(source, payload, dedupKey, meta, Date.now()).lastInsertRowid));
      this.reserved -= 1;
      if (dedupKey !== null) this.inProgress.set(dedupKey, id);
      return { status: 'accepted', id };
    } catch (err) {
      this.reserved -= 1;
      this.count -= 1;
      if (dedupKey !== null) this.inProgress.delete(dedupKey);
      throw err;
    }
  }

  /**
   * Finishes an event: its messages go to the outbox, the row leaves the inbox and its dedup key is
   * burned for the TTL (the inbox's, or `dedupTtlMs`) — all in one transaction. Rejects with
   * OutboxFullError (the event stays).
   * Resolves with the outbox row ids of the messages, those of `step` last (for the status page's
   * activity list).
   */
  async complete(row: Pick<InboxRow, 'id' | 'dedupKey'> & { receivedAt?: number }, messages: OutgoingMessage[], step?: CompletionStep, dedupTtlMs = this.options.dedupTtlMs): Promise<number[]> {
    if (messages.length > 0) this.outbox.validate(messages);
    const expires = Date.now() + dedupTtlMs;
    // An event an earlier run accepted gives its messages its arrival time (a restarted standby
    // compares it with the active's start); one this run accepted, the commit time (the outbox's age).
    const createdAt = row.receivedAt !== undefined && row.receivedAt < this.outbox.openedAt ? row.receivedAt : undefined;
    const ids = await this.finish(row.dedupKey, expires, messages, step, () => this.stmts.remove.run(row.id), createdAt);
    this.count -= 1;
    if (row.dedupKey !== null) {
      this.inProgress.delete(row.dedupKey);
      this.burned.set(ownCopy(row.dedupKey), expires);
    }
    return ids;
  }

  /**
   * Records an input that was handled at once (everything it needed was at hand): its messages go to
   * the outbox and its dedup key is burned in one transaction, with no inbox row in between. Either
   * outcome is as durable as accept() followed by complete(): nothing of the input is stored before
   * the commit, everything after it. Rejects with OutboxFullError (nothing stored; the caller takes
   * the inbox path instead) or MessageRejectedError.
   */
  async acceptHandled(dedupKey: string | null, messages: OutgoingMessage[], step?: CompletionStep, dedupTtlMs = this.options.dedupTtlMs): Promise<{ status: 'accepted'; ids: number[] } | { status: 'duplicate' }> {
    if (dedupKey !== null && this.isDuplicate(dedupKey)) return { status: 'duplicate' };
    if (messages.length > 0) this.outbox.validate(messages);
    // Reserved while the commit is pending, so a resend arriving meanwhile is seen as a duplicate.
    if (dedupKey !== null) this.inProgress.set(dedupKey, -1);
    const expires = Date.now() + dedupTtlMs;
    try {
      const ids = await this.finish(dedupKey, expires, messages, step, null);
      if (dedupKey !== null) this.burned.set(ownCopy(dedupKey), expires);
      return { status: 'accepted', ids };
    } finally {
      if (dedupKey !== null) this.inProgress.delete(dedupKey);
    }
  }

  /**
   * The transaction shared by complete() and acceptHandled(). A full outbox rejects it with
   * OutboxFullError and is not counted as a refusal: the event is kept and waits (the pipeline counts
   * the wait), nothing is lost.
   */
  private finish(dedupKey: string | null, expires: number, messages: OutgoingMessage[], step: CompletionStep | undefined, removeRow: (() => void) | null, createdAt?: number): Promise<number[]> {
    return this.store.write((db) => {
      removeRow?.();
      if (dedupKey !== null) this.stmts.burn.run(dedupKey, expires);
      const extra = step?.(db) ?? undefined;
      const all = extra?.messages?.length ? [...messages, ...extra.messages] : messages;
      if (extra?.messages?.length) this.outbox.validate(extra.messages);
      // Last: the outbox bounds may throw, and a throw rolls back the whole savepoint.
      const stored = all.length > 0 ? this.outbox.insertInTransaction(db, all, createdAt) : [];
      extra?.applied?.();
      return stored;
    });
  }

  /**
   * Removes an event that turned out to be invalid, without burning its dedup key (a corrected
   * resend must be processed).
   */
  async discard(row: Pick<InboxRow, 'id' | 'dedupKey'>): Promise<void> {
    await this.store.writeStatements(() => this.stmts.remove.run(row.id));
    this.count -= 1;
    if (row.dedupKey !== null) this.inProgress.delete(row.dedupKey);
  }

  /** Records one failed attempt durably, so a crash loop still ends in quarantine. */
  async noteFailure(row: Pick<InboxRow, 'id'>, error: string): Promise<void> {
    await this.store.writeStatements(() => this.stmts.failed.run(error.slice(0, 2000), row.id));
  }

  /**
   * Takes an event out of the work queue: it stays in the inbox (its dedup key still counts as seen),
   * with the number of attempts and the last error, until it is retried or dropped (`butler-mqtt
   * inbox …`, which works on the file).
   */
  async quarantine(row: Pick<InboxRow, 'id'>, attempts: number, error: string): Promise<void> {
    await this.store.writeStatements(() => this.stmts.quarantine.run(attempts, error.slice(0, 2000), Date.now(), row.id));
    this.count -= 1;
    this.quarantinedCount += 1;
  }

  /** Quarantined events, oldest first (all sources when `source` is null). */
  listQuarantined(source: string | null = null, limit = 100): QuarantinedRow[] {
    return this.stmts.quarantined.all(source, source, limit) as QuarantinedRow[];
  }

  /** Events of a source still waiting, oldest first (used at start-up and to refill the work queue). */
  pending(source: string, afterId = 0, limit = 1000): InboxRow[] {
    return this.stmts.pending.all(source, afterId, limit) as InboxRow[];
  }

  /** Drops expired dedup keys (call now and then). */
  purgeExpired(now = Date.now()): void {
    for (const [k, exp] of this.burned) if (exp <= now) this.burned.delete(k);
    void this.store.writeStatements(() => this.stmts.purge.run(now)).catch(() => undefined);
  }

  oldestAgeSeconds(): number {
    const r = this.stmts.oldest.get() as { t: number } | undefined;
    return r === undefined ? 0 : Math.max(0, (Date.now() - r.t) / 1000);
  }
}
