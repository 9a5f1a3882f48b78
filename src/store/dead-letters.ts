// The dead-letter table: messages the broker kept answering with a disconnect, moved out of the
// outbox by the Publisher so they cannot block the rest. Listed, retried (moved back to the end of
// the outbox) or dropped by `butler-mqtt outbox`, from the bridge or from a second process on the
// same file (WAL lets both open it; the bridge notices the change, see Outbox.changedElsewhere()).
import type { Db } from './sqlite.ts';

export interface DeadLetterRow {
  id: number;
  topic: string;
  payload: Buffer | string;
  qos: number;
  retain: boolean;
  kind: string;
  bytes: number;
  createdAt: number;
  reason: string;
  movedAt: number;
  attempts: number;
}

/** What a retry or drop did; `missing` are ids that were not in the table. */
export interface DeadLetterChange {
  ids: number[];
  missing: number[];
}

const COLUMNS = 'id, topic, payload, qos, retain, kind, bytes, created_at AS createdAt, reason, moved_at AS movedAt, attempts';

type RawRow = Omit<DeadLetterRow, 'retain'> & { retain: number };

export class DeadLetters {
  private readonly countStmt;
  private readonly listStmt;

  constructor(private readonly db: Db) {
    this.countStmt = db.prepare('SELECT count(*) FROM dead_letter').pluck();
    this.listStmt = db.prepare(`SELECT ${COLUMNS} FROM dead_letter ORDER BY moved_at DESC, id DESC LIMIT ?`);
  }

  get count(): number {
    return this.countStmt.get() as number;
  }

  /** The most recently moved first. */
  latest(limit: number): DeadLetterRow[] {
    return (this.listStmt.all(limit) as RawRow[]).map(toRow);
  }

  /** Moves rows back to the end of the outbox (new ids, original created_at), in their original order. */
  retry(which: number[] | 'all'): DeadLetterChange {
    return this.db.transaction(() => {
      const ids = this.select(which);
      const insert = this.db.prepare('INSERT INTO outbox (topic, payload, qos, retain, kind, bytes, created_at) SELECT topic, payload, qos, retain, kind, bytes, created_at FROM dead_letter WHERE id = ?');
      const del = this.db.prepare('DELETE FROM dead_letter WHERE id = ?');
      for (const id of ids.ids) {
        insert.run(id);
        del.run(id);
      }
      return ids;
    })();
  }

  drop(which: number[] | 'all'): DeadLetterChange {
    return this.db.transaction(() => {
      const ids = this.select(which);
      const del = this.db.prepare('DELETE FROM dead_letter WHERE id = ?');
      for (const id of ids.ids) del.run(id);
      return ids;
    })();
  }

  private select(which: number[] | 'all'): DeadLetterChange {
    const present = new Set(this.db.prepare('SELECT id FROM dead_letter ORDER BY id').pluck().all() as number[]);
    if (which === 'all') return { ids: [...present], missing: [] };
    const ids = [...new Set(which)].sort((a, b) => a - b);
    return { ids: ids.filter((id) => present.has(id)), missing: ids.filter((id) => !present.has(id)) };
  }
}

function toRow(r: RawRow): DeadLetterRow {
  return { ...r, retain: r.retain === 1 };
}
