// One running bridge per store. Two bridges on one outbox file would both execute what the other
// accepted (a lane takes every pending inbox row, including rows another process wrote, so that
// `butler-mqtt inbox retry` works) and both publish the other's messages: a task start command
// would start its task twice, and an active/standby pair on one file would not be a pair at all.
//
// The lock is an exclusive transaction on a small SQLite file next to the store (<file>.lock), held
// for as long as the bridge runs. SQLite locks the file through the operating system, which
// releases the lock when the process ends in any way (also kill -9), so a crashed bridge never
// leaves a stale lock. The command-line tools (`outbox`, `inbox`) do not take it: they are meant to
// work on the store of a running bridge.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export class StoreInUseError extends Error {
  override readonly name = 'StoreInUseError';
}

export class RunLock {
  private db: Database.Database | null = null;

  private constructor(readonly file: string) {}

  /** Takes the lock of the store `storeFile`, or throws StoreInUseError when another bridge holds it. */
  static acquire(storeFile: string): RunLock {
    const lock = new RunLock(`${storeFile}.lock`);
    if (storeFile === ':memory:') return lock;
    mkdirSync(path.dirname(lock.file), { recursive: true });
    const db = new Database(lock.file);
    try {
      db.pragma('busy_timeout = 0');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        throw new StoreInUseError(
          `another butler-mqtt is running on the store ${storeFile} (its lock ${lock.file} is held): two running instances must never share one store (Butler.mqttConfig.delivery.outboxFile); each instance of an active/standby pair has its own`,
        );
      }
      throw err;
    }
    lock.db = db;
    return lock;
  }

  get held(): boolean {
    return this.db !== null;
  }

  release(): void {
    const db = this.db;
    this.db = null;
    if (!db) return;
    try {
      db.exec('ROLLBACK');
    } finally {
      db.close();
    }
  }
}
