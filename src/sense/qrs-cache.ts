// The short cache of QRS task and app lookups that alert enrichment repeats: answers kept for a
// TTL, at most maxEntries of them (the oldest stored goes first), identical lookups in flight
// sharing one request, and a synchronous peek for callers that can finish an event in the same turn.
//
// Entries hold the parsed answer itself, deep-frozen, and every caller gets that same object: no
// caller can change what the next one reads, and a hit costs no copy (parsing a copy per hit was
// about 6 % of the bridge's CPU time in an alert storm). Writing to a frozen object throws in
// strict-mode code.
import type { UpstreamResult } from '../net/upstream-errors.ts';

/** The lookups whose answers are cached (cacheTtlSeconds). */
export type CachedEndpoint = 'task' | 'task/full' | 'app/full';

export type QrsObjects = Record<string, unknown>[];

export interface QrsCacheOptions {
  /** 0 keeps nothing (lookups are still coalesced). */
  ttlMs: number;
  maxEntries: number;
}

export class QrsCache {
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly entries = new Map<string, { expires: number; value: QrsObjects }>();
  private readonly inFlight = new Map<string, Promise<UpstreamResult<QrsObjects>>>();

  constructor(options: QrsCacheOptions) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = Math.max(0, options.maxEntries);
  }

  /** The cached answer without waiting; undefined when it would take a call (not cached, or expired). */
  peek(endpoint: CachedEndpoint, id: string): QrsObjects | undefined {
    // On the hot path of an alert storm: one key string, one map lookup, nothing else.
    const key = `${endpoint} ${id}`;
    const hit = this.entries.get(key);
    if (hit === undefined) return undefined;
    if (hit.expires > Date.now()) return hit.value;
    this.entries.delete(key);
    return undefined;
  }

  /**
   * The cached answer, or `load()`'s, shared with every identical lookup made while it runs.
   * Failures and empty answers ("not found") are not kept: a task created a moment ago must be
   * found next time.
   */
  get(endpoint: CachedEndpoint, id: string, load: () => Promise<UpstreamResult<QrsObjects>>): Promise<UpstreamResult<QrsObjects>> {
    const cached = this.peek(endpoint, id);
    if (cached !== undefined) return Promise.resolve({ ok: true, value: cached });
    const key = `${endpoint} ${id}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = load().then((result) => (result.ok ? { ok: true, value: deepFreeze(result.value) } : result));
      this.inFlight.set(key, pending);
      void pending.then(
        (result) => {
          this.inFlight.delete(key);
          if (result.ok && result.value.length > 0) this.remember(key, result.value);
        },
        () => this.inFlight.delete(key),
      );
    }
    return pending;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  private remember(key: string, value: QrsObjects): void {
    if (this.ttlMs <= 0 || this.maxEntries <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { expires: Date.now() + this.ttlMs, value });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
