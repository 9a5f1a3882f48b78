// Reads a bridge's SQLite store from the test, with a read-only connection of its own that is closed
// again whatever the reader does (the bridge may be running, stopped or killed).
import Database from 'better-sqlite3';

export function readStore<T>(file: string, read: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** The number of rows a `SELECT count(*) AS n …` query finds. */
export function countRows(file: string, sql: string): number {
  return readStore(file, (db) => (db.prepare(sql).get() as { n: number }).n);
}
