// Catch-up poller for one Qlik Cloud tenant: reads the reloads API (`GET /api/v1/reloads`, newest
// first, every app's reloads for a tenant admin's key) and hands every reload that finished since its
// durable cursor to the pipeline, oldest first. The cursor (the latest end time handed over) moves only
// after every reload up to it was accepted or found to be a duplicate; a refused hand-over leaves it
// where it was, so the next poll tries again. Each poll re-reads an overlap before the cursor (records
// can appear late); the pipeline's dedup makes those repeats harmless. Without a cursor the first poll
// goes back a bounded lookback, not the tenant's whole history.
import type { Logger } from '../observability/logger.ts';
import type { CloudClient } from './cloud-client.ts';
import { FINISHED_RELOAD_STATUSES } from './cloud-event.ts';

export interface PollerCursor {
  /** Epoch ms of the latest end time handed over, or null before the first successful poll. */
  get(): number | null;
  set(ms: number): Promise<void>;
}

export type HandOver = (record: Buffer) => Promise<{ status: string; reason?: string; detail?: string }>;

export interface ReloadPollerOptions {
  tenant: string;
  intervalMs: number;
  lookbackMs: number;
  overlapMs: number;
  /** Records per page (1-100). */
  pageSize?: number;
  /** Pages per poll at most. */
  maxPages?: number;
}

export interface PollResult {
  ok: boolean;
  handedOver: number;
  accepted: number;
  duplicates: number;
  error?: string;
}

function ms(v: unknown): number | null {
  if (typeof v !== 'string' || v === '') return null;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : null;
}

export class ReloadPoller {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = true;
  lastResult: PollResult | null = null;

  constructor(
    private readonly options: ReloadPollerOptions,
    private readonly deps: { client: Pick<CloudClient, 'reloadsPage'>; cursor: PollerCursor; handOver: HandOver; logger: Logger },
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const run = this.pollOnce().catch((err: unknown) => this.deps.logger.error({ err, tenant: this.options.tenant }, 'Qlik Cloud reload poll failed unexpectedly'));
      this.running = run;
      void run.finally(() => {
        this.running = null;
        this.schedule(this.options.intervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  /** One poll: read, hand over oldest first, move the cursor. */
  async pollOnce(now = Date.now()): Promise<PollResult> {
    const { logger, client, cursor, handOver } = this.deps;
    const tenant = this.options.tenant;
    const start = cursor.get() ?? now - this.options.lookbackMs;
    const floor = start - (cursor.get() === null ? 0 : this.options.overlapMs);
    const found: { record: Record<string, unknown>; end: number }[] = [];
    let page: { query: string } | { next: string } = { query: `limit=${this.options.pageSize ?? 100}&log=false` };
    const maxPages = this.options.maxPages ?? 50;
    for (let n = 1; ; n++) {
      const answer = await client.reloadsPage(page);
      if (!answer.ok) {
        const result = { ok: false, handedOver: 0, accepted: 0, duplicates: 0, error: answer.error.message };
        logger.warn({ tenant, err: answer.error.message }, `Qlik Cloud reloads of tenant ${tenant} could not be read; next try in ${Math.round(this.options.intervalMs / 1000)} s`);
        this.lastResult = result;
        return result;
      }
      let older = answer.value.data.length > 0;
      for (const record of answer.value.data) {
        const end = ms(record['endTime']);
        const status = typeof record['status'] === 'string' ? record['status'].toUpperCase() : '';
        if (end !== null && end >= floor && (FINISHED_RELOAD_STATUSES as readonly string[]).includes(status)) found.push({ record, end });
        // Newest first by creation: a page whose reloads were all created before the floor ends the walk.
        const created = ms(record['creationTime']) ?? end;
        if (created === null || created >= floor) older = false;
      }
      if (older || answer.value.next === '') break;
      if (n >= maxPages) {
        logger.warn({ tenant }, `Qlik Cloud reload poll of tenant ${tenant} stopped after ${maxPages} pages; the rest follows on the next poll`);
        break;
      }
      page = { next: answer.value.next };
    }
    found.sort((a, b) => a.end - b.end);
    let accepted = 0;
    let duplicates = 0;
    let latest = cursor.get();
    for (const { record, end } of found) {
      const outcome = await handOver(Buffer.from(JSON.stringify(record)));
      if (outcome.status === 'accepted') accepted += 1;
      else if (outcome.status === 'duplicate') duplicates += 1;
      else if (outcome.status === 'refused') {
        const result = { ok: false, handedOver: accepted + duplicates, accepted, duplicates, error: `${outcome.reason}: ${outcome.detail}` };
        logger.warn({ tenant, reason: outcome.reason }, `Qlik Cloud reload ${String(record['id'])} of tenant ${tenant} was not accepted (${outcome.reason}); the cursor stays, next poll tries again`);
        if (latest !== null) await cursor.set(latest);
        this.lastResult = result;
        return result;
      }
      // invalid: counted and logged by the pipeline; nothing to retry.
      latest = latest === null ? end : Math.max(latest, end);
    }
    const next = Math.max(latest ?? start, start);
    await cursor.set(next);
    const result = { ok: true, handedOver: accepted + duplicates, accepted, duplicates };
    if (accepted > 0) logger.info({ tenant, accepted, duplicates }, `Qlik Cloud poller of tenant ${tenant}: ${accepted} finished reload(s) handed over`);
    this.lastResult = result;
    return result;
  }
}
