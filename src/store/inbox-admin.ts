// The operator's view of quarantined events, on the store file itself (also while a bridge runs: WAL
// lets a second connection read and write). Releasing an event clears its quarantine and attempts; the
// running bridge picks it up within a few seconds (its lanes look for released events when idle), a
// stopped one at its next start. Dropping deletes it.
import type { Store } from './sqlite.ts';

export interface QuarantineEntry {
  id: number;
  source: string;
  attempts: number;
  lastError: string;
  quarantinedAt: number;
  receivedAt: number;
  /** The input as received, as text (a datagram, a command, an event), cut at 500 characters. */
  payload: string;
}

export class InboxAdmin {
  constructor(private readonly store: Store) {}

  list(limit = 1000): QuarantineEntry[] {
    const rows = this.store.db
      .prepare(
        'SELECT id, source, attempts, last_error AS lastError, quarantined_at AS quarantinedAt, received_at AS receivedAt, payload FROM inbox WHERE quarantined_at IS NOT NULL ORDER BY id LIMIT ?',
      )
      .all(limit) as (Omit<QuarantineEntry, 'payload'> & { payload: Buffer })[];
    return rows.map((r) => ({ ...r, payload: r.payload.toString('utf8').slice(0, 500) }));
  }

  /** Puts quarantined events back in the queue (`ids` = 'all' or a list); returns how many. */
  release(ids: number[] | 'all'): number {
    const stmt = this.store.db.prepare('UPDATE inbox SET quarantined_at = NULL, attempts = 0 WHERE quarantined_at IS NOT NULL AND (? IS NULL OR id = ?)');
    return this.forEach(ids, (id) => stmt.run(id, id).changes);
  }

  /** Deletes quarantined events for good; returns how many. */
  drop(ids: number[] | 'all'): number {
    const stmt = this.store.db.prepare('DELETE FROM inbox WHERE quarantined_at IS NOT NULL AND (? IS NULL OR id = ?)');
    return this.forEach(ids, (id) => stmt.run(id, id).changes);
  }

  private forEach(ids: number[] | 'all', run: (id: number | null) => number): number {
    const tx = this.store.db.transaction(() => (ids === 'all' ? run(null) : ids.reduce((n, id) => n + run(id), 0)));
    return tx();
  }
}
