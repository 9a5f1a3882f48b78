// The one SQLite file behind the inbox, the outbox and dedup keys: opening, pragmas, migrations,
// and group commit. Writes from many callers in the same tick share one transaction (one fsync),
// and each caller's promise resolves only after that transaction is durable.
//
// Durability: SQLite's synchronous=FULL makes every COMMIT wait for an fsync of the WAL, on the
// event loop. Instead the connection runs with synchronous=NORMAL (COMMIT writes the WAL but does
// not sync it; checkpoints still sync) and the store syncs the WAL file itself on libuv's thread
// pool, resolving the writes of every transaction committed before that sync started only when it
// has finished. A resolved write is on disk exactly as with FULL; the event loop keeps working
// (and gathering the next batch) while the disk catches up. One sync at a time; writes queued
// meanwhile are committed together when it ends (they could not be durable sooner anyway), so
// there is one transaction per sync and each page is written to the WAL once per sync.
import Database from 'better-sqlite3';
import { closeSync, fsync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';

export type Db = Database.Database;

/** WAL size (in pages) at which SQLite checkpoints; the WAL file stays at about this size. */
export const WAL_CHECKPOINT_PAGES = 10_000;

const MIGRATIONS: string[] = [
  `CREATE TABLE outbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     topic TEXT NOT NULL,
     payload BLOB NOT NULL,
     qos INTEGER NOT NULL,
     retain INTEGER NOT NULL,
     kind TEXT NOT NULL,
     bytes INTEGER NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE inbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     source TEXT NOT NULL,
     payload BLOB NOT NULL,
     dedup_key TEXT,
     meta TEXT,
     received_at INTEGER NOT NULL
   );
   CREATE TABLE dedup (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
   CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // Dedup keys as an append-only log: a key table indexed by random UUIDs dirtied a different B-tree
  // page (two, with its index) for nearly every completed event, each page written to the WAL at the
  // next commit. Appends touch the last page only; the keys are read into memory at start-up (the
  // latest expiry of a key wins) and expired rows are deleted now and then.
  `CREATE TABLE dedup_log (expires_at INTEGER NOT NULL, key TEXT NOT NULL);
   INSERT INTO dedup_log (expires_at, key) SELECT expires_at, key FROM dedup ORDER BY expires_at;
   DROP TABLE dedup;`,
  // Quarantine: an event whose handling keeps failing stays in the inbox, out of the work queue, with
  // the number of failed attempts and the last error, until an operator retries or drops it.
  `ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE inbox ADD COLUMN last_error TEXT;
   ALTER TABLE inbox ADD COLUMN quarantined_at INTEGER;`,
  // Messages the broker kept answering with a disconnect, moved out of the outbox so they cannot
  // block the rest; kept until retried (moved back to the end of the outbox) or dropped.
  `CREATE TABLE dead_letter (
     id INTEGER PRIMARY KEY,
     topic TEXT NOT NULL,
     payload BLOB NOT NULL,
     qos INTEGER NOT NULL,
     retain INTEGER NOT NULL,
     kind TEXT NOT NULL,
     bytes INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     reason TEXT NOT NULL,
     moved_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL
   );`,
];

export interface StoreOptions {
  file: string;
  /**
   * FULL (default): a resolved write survives power loss (the WAL is synced before it resolves).
   * NORMAL (benchmarks comparing the cost only): resolved at commit, survives a crash of the process
   * but not of the machine.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** How the WAL file is synced; fs.fsync. Tests pass their own to control when a sync finishes. */
  syncFile?: (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void;
}

interface PendingWrite {
  run: (db: Db) => unknown;
  /** Run in its own savepoint (see write() and writeStatements()). */
  savepoint: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Outcome {
  ok: boolean;
  value: unknown;
  /** Registered with onDurable() by a write that succeeded. */
  hooks?: (() => void)[];
}

interface CommittedBatch {
  batch: PendingWrite[];
  outcomes: Outcome[];
}

export class Store {
  readonly db: Db;
  private queue: PendingWrite[] = [];
  /** Committed, waiting for the WAL sync. */
  private unsynced: CommittedBatch[] = [];
  private syncing = false;
  /** The WAL file, opened after the first commit (null: in memory, or NORMAL). */
  private walFd: number | null = null;
  private readonly syncWal: boolean;
  /** While a write runs inside a batch: where its onDurable() callbacks go. */
  private collecting: (() => void)[] | null = null;
  private readonly syncFile: NonNullable<StoreOptions['syncFile']>;
  private scheduled = false;
  private closed = false;
  /** Called after each committed batch (the Publisher wakes on it). */
  private readonly committedListeners: (() => void)[] = [];
  private readonly failedListeners: (() => void)[] = [];
  /** Built once: better-sqlite3 makes new wrapper functions on every db.transaction() call. */
  private readonly runBatch: (batch: PendingWrite[], outcomes: Outcome[]) => void;

  constructor(options: StoreOptions) {
    if (options.file !== ':memory:') mkdirSync(path.dirname(options.file), { recursive: true });
    this.db = new Database(options.file);
    this.db.pragma('journal_mode = WAL');
    this.syncWal = options.file !== ':memory:' && (options.synchronous ?? 'FULL') === 'FULL';
    this.db.pragma('synchronous = NORMAL');
    this.syncFile = options.syncFile ?? fsync;
    this.db.pragma('busy_timeout = 5000');
    // Checkpoint (copy the WAL back into the database file) every 10,000 pages (40 MiB) instead of
    // SQLite's 1,000. Outbox rows live for milliseconds, so the WAL holds the same few pages over and
    // over; a checkpoint copies the latest version of each page once and syncs twice, on the event
    // loop. Ten times fewer checkpoints: storm median 9,666 -> 10,791 events/s (bench/storm.ts, 5 rounds).
    this.db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    this.migrate();
    // Called inside the batch's transaction, so each write gets its own savepoint.
    const inSavepoint = this.db.transaction((w: PendingWrite) => w.run(this.db));
    this.runBatch = this.db.transaction((batch: PendingWrite[], outcomes: Outcome[]) => {
      for (const w of batch) {
        try {
          const hooks: (() => void)[] = [];
          this.collecting = hooks;
          const value = w.savepoint ? inSavepoint(w) : w.run(this.db);
          outcomes.push(hooks.length > 0 ? { ok: true, value, hooks } : { ok: true, value });
        } catch (err) {
          outcomes.push({ ok: false, value: err });
        } finally {
          this.collecting = null;
        }
      }
    });
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /**
   * Called from inside a write: runs `fn` once the transaction holding this write is durable, before
   * the write's promise resolves and before the committed listeners. Dropped if the write or its
   * batch fails (then nothing of the write is stored).
   */
  onDurable(fn: () => void): void {
    if (this.collecting === null) throw new Error('Store.onDurable() is only valid inside a write');
    this.collecting.push(fn);
  }

  onCommitted(listener: () => void): void {
    this.committedListeners.push(listener);
  }

  /** Called when a whole batch failed to commit (in-memory totals must be re-read). */
  onCommitFailed(listener: () => void): void {
    this.failedListeners.push(listener);
  }

  /**
   * Runs `fn` inside the next group-committed transaction and resolves with its result once the
   * transaction is durable. If `fn` throws, only its own changes are rolled back (a savepoint) and
   * only its promise rejects; the other writes of the batch still commit.
   */
  write<T>(fn: (db: Db) => T): Promise<T> {
    return this.enqueue(fn, true);
  }

  /**
   * Like write(), without the savepoint, for a write made of statements that each stand alone: one
   * INSERT, or DELETEs whose partial application leaves nothing inconsistent (SQLite undoes a failing
   * statement by itself). A savepoint costs two more statements per write, about a fifth of the
   * store's time in a storm (bench/storm.ts).
   */
  writeStatements<T>(fn: (db: Db) => T): Promise<T> {
    return this.enqueue(fn, false);
  }

  private enqueue<T>(fn: (db: Db) => T, savepoint: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: fn, savepoint, resolve: resolve as (v: unknown) => void, reject });
      // While a sync runs, writes gather and commit when it ends: a write committed now could not be
      // durable sooner anyway, and one transaction for all of them dirties each page once.
      if (!this.syncing) this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const outcomes: Outcome[] = [];
    try {
      this.runBatch(batch, outcomes);
    } catch (err) {
      // The commit itself failed (disk full, I/O error): nothing of the batch is stored.
      for (const w of batch) w.reject(err);
      for (const l of this.failedListeners) l();
      return;
    }
    this.unsynced.push({ batch, outcomes });
    if (!this.syncWal) this.settle(this.unsynced.length);
    else if (!this.syncing) this.startSync();
  }

  /** Syncs the WAL on the thread pool; then settles every batch committed before the sync began. */
  private startSync(): void {
    const covered = this.unsynced.length;
    if (covered === 0) return;
    try {
      // Read-write: on Windows fsync (FlushFileBuffers) needs a handle with write access. Nothing is written through it.
      this.walFd ??= openSync(`${this.db.name}-wal`, 'r+');
    } catch (err) {
      this.failUnsynced(covered, err);
      return;
    }
    this.syncing = true;
    this.syncFile(this.walFd, (err) => {
      this.syncing = false;
      if (this.closed) return; // close() synced and settled everything
      if (err) this.failUnsynced(covered, err);
      else this.settle(covered);
      // After the callers' continuations (which often write again) have queued their writes.
      if (this.queue.length > 0) this.scheduleFlush();
      else this.startSync();
    });
  }

  private settle(count: number): void {
    const done = this.unsynced.splice(0, count);
    for (const { outcomes } of done) for (const o of outcomes) if (o.hooks) for (const h of o.hooks) h();
    for (const { batch, outcomes } of done) {
      batch.forEach((w, i) => {
        const o = outcomes[i] as { ok: boolean; value: unknown };
        if (o.ok) w.resolve(o.value);
        else w.reject(o.value);
      });
    }
    if (done.length > 0) for (const l of this.committedListeners) l();
  }

  /** The WAL could not be synced: committed, but not known to be durable; callers see the error. */
  private failUnsynced(count: number, err: unknown): void {
    const failed = this.unsynced.splice(0, count);
    for (const { batch } of failed) for (const w of batch) w.reject(err);
    for (const l of this.failedListeners) l();
  }

  /** Commits what is queued, then closes the file. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.unsynced.length > 0) {
      try {
        if (this.syncWal) fsyncSync(this.walFd ?? (this.walFd = openSync(`${this.db.name}-wal`, 'r+')));
        this.settle(this.unsynced.length);
      } catch (err) {
        this.failUnsynced(this.unsynced.length, err);
      }
    }
    if (this.walFd !== null) closeSync(this.walFd);
    this.walFd = null;
    this.db.close();
  }
}
