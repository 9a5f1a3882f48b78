// Typed access to the store's `kv` table: small pieces of state a feature keeps across restarts
// (not messages, not events). Reads see what is committed; writes are meant to run inside a
// transaction the caller already holds, so the state moves in the same commit as what caused it.
import type { Db } from './sqlite.ts';

export interface KvEntry {
  key: string;
  value: string;
}

export class KeyValueTable {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      get: db.prepare('SELECT value FROM kv WHERE key = ?'),
      range: db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
      put: db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      delete: db.prepare('DELETE FROM kv WHERE key = ?'),
    };
  }

  get(key: string): string | undefined {
    return (this.stmts.get.get(key) as { value: string } | undefined)?.value;
  }

  /** Every entry whose key starts with `prefix`, in key order (an index range, not a scan). */
  entries(prefix: string): KvEntry[] {
    return this.stmts.range.all(prefix, prefixEnd(prefix)) as KvEntry[];
  }

  put(key: string, value: string): void {
    this.stmts.put.run(key, value);
  }

  delete(key: string): void {
    this.stmts.delete.run(key);
  }
}

/** The smallest string greater than every string starting with `prefix` (keys compare as UTF-8 bytes). */
function prefixEnd(prefix: string): string {
  if (prefix === '') throw new Error('a key prefix must not be empty');
  const last = prefix.charCodeAt(prefix.length - 1);
  // Prefixes are short ASCII names such as "active-user:"; incrementing the last unit bounds them.
  if (last >= 0x7f) throw new Error(`a key prefix must end in an ASCII character, got ${JSON.stringify(prefix)}`);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}
