// Recent activity for the status page: the last inputs (events) with the messages each one produced
// and whether the broker acknowledged them. In memory only and bounded; recording costs a few object
// allocations, so sources report unconditionally.
//
// The whole API a source or handler needs (`app.activity`):
//
//   const id = activity.event({ source: 'udp_task', summary: 'reload failed: "Nightly sales"' });
//   activity.messages(id, rowIds, topics);   // once the outbox committed the rows (ids from enqueue/complete);
//                                            // empty lists = handled, nothing to publish
//   activity.failed(id, 'QRS timeout');      // the event was dropped or could not be handled
//   activity.event({ source: 'udp_task', summary: '…', rejected: 'bad_field_count' });  // refused at the door
//
// The App feeds the Publisher's 'delivered' events into `delivered()`; a delivered row that no event
// claimed (license status, service status, the UDP "start" message …) shows as an entry of its own.
import { EventEmitter } from 'node:events';

export type ActivityState = 'received' | 'queued' | 'delivered' | 'no messages' | 'rejected' | 'failed';

export interface ActivityMessage {
  /** Outbox row id. */
  id: number;
  topic: string;
  /** When the broker acknowledged it (epoch ms); null while waiting. */
  deliveredAt: number | null;
}

export interface ActivityEntry {
  id: number;
  /** 'event': an input reported by a source; 'message': a delivered message no event claimed. */
  type: 'event' | 'message';
  /** Epoch ms. */
  at: number;
  source: string;
  summary: string;
  state: ActivityState;
  /** Why it was rejected or failed. */
  reason: string | null;
  messages: ActivityMessage[];
}

export interface ActivityInput {
  /** Where it came from: the metric label of the source (udp_task, rest, cloud, mqtt_command …). */
  source: string;
  /** One line for people; never a secret. */
  summary: string;
  /** Set when the input was refused before any work (the reason, e.g. a metric reason label). */
  rejected?: string;
}

export interface ActivityOptions {
  /** Entries kept (oldest dropped first). Default 100. */
  capacity?: number;
  now?: () => number;
}

const SUMMARY_MAX = 200;

export declare interface ActivityLog {
  /** An entry was added or changed (a copy is passed). */
  on(event: 'change', listener: (entry: ActivityEntry) => void): this;
  off(event: 'change', listener: (entry: ActivityEntry) => void): this;
  /** An entry left the list before falling out of the window (a delivery that an event claimed later). */
  on(event: 'remove', listener: (id: number) => void): this;
  off(event: 'remove', listener: (id: number) => void): this;
}

export class ActivityLog extends EventEmitter {
  private readonly capacity: number;
  private readonly now: () => number;
  private readonly entries = new Map<number, ActivityEntry>();
  /** Outbox row id -> the entry whose message it is (for rows not yet delivered). */
  private readonly byRow = new Map<number, ActivityEntry>();
  /**
   * Rows of events that fell out of the window before their messages were delivered: their delivery
   * is not news of its own (in a storm of alerts, most deliveries). Bounded; oldest forgotten first.
   */
  private readonly orphaned = new Set<number>();
  /** Deliveries that arrived before their event claimed the row (row id -> time); bounded. */
  private readonly early = new Map<number, { at: number; entryId: number }>();
  private nextId = 1;

  constructor(options: ActivityOptions = {}) {
    super();
    this.capacity = Math.max(1, options.capacity ?? 100);
    this.now = options.now ?? Date.now;
    // The status page may hold many SSE connections; each listens here.
    this.setMaxListeners(0);
  }

  /** Records an input; returns its id for messages()/failed(). */
  event(input: ActivityInput): number {
    const entry: ActivityEntry = {
      id: this.nextId++,
      type: 'event',
      at: this.now(),
      source: input.source,
      summary: oneLine(input.summary),
      state: input.rejected ? 'rejected' : 'received',
      reason: input.rejected ?? null,
      messages: [],
    };
    this.add(entry);
    return entry.id;
  }

  /** The outbox rows an event produced (same order as topics). Rows already delivered count at once. */
  messages(eventId: number, rowIds: readonly number[], topics: readonly string[]): void {
    const entry = this.entries.get(eventId);
    if (!entry) return; // fell out of the window already
    for (let i = 0; i < rowIds.length; i++) {
      const id = rowIds[i] as number;
      const early = this.early.get(id);
      let deliveredAt: number | null = null;
      if (early) {
        // Delivered before it was claimed: it was shown on its own meanwhile; move it here.
        this.early.delete(id);
        deliveredAt = early.at;
        this.remove(early.entryId);
      } else {
        this.byRow.set(id, entry);
      }
      entry.messages.push({ id, topic: topics[i] ?? '', deliveredAt });
    }
    this.refresh(entry);
  }

  /** The event could not be handled (dropped after retries, refused by the outbox …). */
  failed(eventId: number, reason: string): void {
    const entry = this.entries.get(eventId);
    if (!entry) return;
    entry.state = 'failed';
    entry.reason = oneLine(reason);
    this.changed(entry);
  }

  /** The broker acknowledged an outbox row (wired to the Publisher's 'delivered' event). */
  delivered(d: { id: number; topic: string; kind: string }): void {
    if (this.orphaned.delete(d.id)) return;
    const at = this.now();
    const entry = this.byRow.get(d.id);
    if (entry) {
      this.byRow.delete(d.id);
      const m = entry.messages.find((x) => x.id === d.id);
      if (m) m.deliveredAt = at;
      this.refresh(entry);
      return;
    }
    const own: ActivityEntry = {
      id: this.nextId++,
      type: 'message',
      at,
      source: d.kind,
      summary: d.topic,
      state: 'delivered',
      reason: null,
      messages: [{ id: d.id, topic: d.topic, deliveredAt: at }],
    };
    this.add(own);
    this.early.set(d.id, { at, entryId: own.id });
    if (this.early.size > this.capacity * 4) {
      const oldest = this.early.keys().next().value as number;
      this.early.delete(oldest);
    }
  }

  /** Newest first; copies. */
  recent(): ActivityEntry[] {
    return [...this.entries.values()].reverse().map(copy);
  }

  private add(entry: ActivityEntry): void {
    this.entries.set(entry.id, entry);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.values().next().value as ActivityEntry;
      this.remove(oldest.id, false);
    }
    this.changed(entry);
  }

  private remove(id: number, announce = true): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    for (const m of entry.messages) {
      if (this.byRow.get(m.id) !== entry) continue;
      this.byRow.delete(m.id);
      this.orphaned.add(m.id);
    }
    while (this.orphaned.size > this.capacity * 100) this.orphaned.delete(this.orphaned.values().next().value as number);
    if (announce) this.emit('remove', id);
  }

  private refresh(entry: ActivityEntry): void {
    if (entry.state === 'failed' || entry.state === 'rejected') return this.changed(entry);
    if (entry.messages.length === 0) entry.state = 'no messages';
    else entry.state = entry.messages.every((m) => m.deliveredAt !== null) ? 'delivered' : 'queued';
    this.changed(entry);
  }

  private changed(entry: ActivityEntry): void {
    if (this.listenerCount('change') > 0) this.emit('change', copy(entry));
  }
}

function copy(e: ActivityEntry): ActivityEntry {
  return { ...e, messages: e.messages.map((m) => ({ ...m })) };
}

/** Control characters out, length bounded: summaries come from network input. */
function oneLine(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return clean.length > SUMMARY_MAX ? `${clean.slice(0, SUMMARY_MAX - 1)}…` : clean;
}
