// Client for the Qlik Sense Repository Service (QRS): one keep-alive connection pool with the Sense
// client certificate, the xrfkey handshake on every call, deadlines, bounded retries, and a short
// cache (with in-flight coalescing) for the task/app lookups that alert enrichment repeats.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { randomInt } from 'node:crypto';
import { Pool } from 'undici';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { errorCode, errorText, waitBeforeRetry, type UpstreamError, type UpstreamHealth, type UpstreamResult } from '../net/upstream-errors.ts';

export interface QrsClientOptions {
  host: string;
  port: number;
  useSSL: boolean;
  rejectUnauthorized: boolean;
  /** configQRS.headers.static */
  headers: { name: string; value: string }[];
  /** File paths, already resolved. */
  clientCert?: string;
  clientCertKey?: string;
  clientCertCA?: string;
  /** Deadline for one attempt: connect, headers and body together. */
  timeoutMs?: number;
  /** Extra attempts after the first, for failures that may pass. */
  retries?: number;
  retryBaseMs?: number;
  cacheTtlMs?: number;
  cacheMaxEntries?: number;
}

export type QrsError = UpstreamError;
export type QrsResult<T> = UpstreamResult<T>;
export type QrsHealth = UpstreamHealth;
/** The lookups whose answers are cached (cacheTtlSeconds). */
export type CachedEndpoint = 'task' | 'task/full' | 'app/full';

const DEFAULTS = { timeoutMs: 10_000, retries: 2, retryBaseMs: 250, cacheTtlMs: 60_000, cacheMaxEntries: 500 };
const MAX_BACKOFF_MS = 5_000;
const XRF_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const LICENSE_USER = 'UserDirectory=Internal; UserId=sa_repository';

// Errors raised before a request could reach the server: safe to repeat even for a POST.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);
// Certificate problems do not heal by retrying.
const TLS_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);

/** Wraps a value for a QRS filter: `'...'` with inner quotes doubled. */
export function quoteFilterValue(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

export function newXrfKey(): string {
  let key = '';
  for (let i = 0; i < 16; i++) key += XRF_ALPHABET[randomInt(XRF_ALPHABET.length)];
  return key;
}

interface Call {
  method: 'GET' | 'POST';
  /** Below /qrs/, without query. */
  path: string;
  /** Metric label; a small fixed set. */
  endpoint: string;
  filter?: string;
  forceUser?: string;
  body?: string;
  /** POSTs are repeated only when the request certainly did not reach QRS. */
  idempotent: boolean;
}

interface Answer {
  status: number;
  text: string;
}

type Attempt = { ok: true; answer: Answer } | { ok: false; error: QrsError; retryable: boolean };

function readConfigFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`QRS ${what} file "${path}" cannot be read (${code})`);
  }
}



export class QrsClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;
  private readonly headers: { name: string; value: string }[];
  /** Entries keep the answer as JSON text: parsing it is the cheapest way to give each caller its own copy. */
  private readonly cache = new Map<string, { expires: number; value: Record<string, unknown>[] }>();
  private readonly inFlight = new Map<string, Promise<QrsResult<Record<string, unknown>[]>>>();
  private readonly state: QrsHealth = { reachable: null, lastSuccessAt: null, lastError: null, lastErrorAt: null };
  private closed = false;

  constructor(options: QrsClientOptions, deps: { logger: Logger; metrics?: Metrics }) {
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.retries = Math.max(0, options.retries ?? DEFAULTS.retries);
    this.retryBaseMs = options.retryBaseMs ?? DEFAULTS.retryBaseMs;
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULTS.cacheTtlMs;
    this.cacheMaxEntries = Math.max(0, options.cacheMaxEntries ?? DEFAULTS.cacheMaxEntries);
    this.headers = options.headers.map((h) => ({ name: h.name, value: h.value }));

    const scheme = options.useSSL ? 'https' : 'http';
    const hostPart = options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
    this.origin = `${scheme}://${hostPart}:${options.port}`;

    let tls: { cert?: Buffer; key?: Buffer; ca?: Buffer; rejectUnauthorized: boolean } | undefined;
    if (options.useSSL) {
      tls = { rejectUnauthorized: options.rejectUnauthorized };
      if (options.clientCert) tls.cert = readConfigFile(options.clientCert, 'client certificate');
      if (options.clientCertKey) tls.key = readConfigFile(options.clientCertKey, 'client certificate key');
      if (options.clientCertCA) tls.ca = readConfigFile(options.clientCertCA, 'CA certificate');
      // Fail now, naming the files, rather than on every request later.
      try {
        createSecureContext({ ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}), ...(tls.ca ? { ca: tls.ca } : {}) });
      } catch (err) {
        const files = [options.clientCert, options.clientCertKey, options.clientCertCA].filter(Boolean).map((f) => `"${f}"`).join(', ');
        throw new Error(`QRS certificate files ${files} cannot be used: ${(err as Error).message}`);
      }
    }

    this.pool = new Pool(this.origin, {
      connections: 8,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
      connect: { timeout: this.timeoutMs, ...(tls ?? {}) },
    });
  }

  getTask(taskId: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cachedList('task', taskId);
  }

  getTaskFull(taskId: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cachedList('task/full', taskId);
  }

  getAppFull(appId: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cachedList('app/full', appId);
  }

  async findTasksFull(filter: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.list({ method: 'GET', path: 'task/full', endpoint: 'task/full', filter, idempotent: true });
  }

  async startTask(taskId: string): Promise<QrsResult<{ status: number }>> {
    // Only connection failures that happen before anything was sent are repeated: a reset, a
    // timeout or a 5xx after the request went out may mean the task did start, and a second start
    // of a running task is not harmless to the caller's intent (it would be reported as a failure
    // or, worse, queue a second run).
    const call: Call = { method: 'POST', path: `task/${encodeURIComponent(taskId)}/start`, endpoint: 'task/start', body: '{}', idempotent: false };
    const result = await this.execute(call);
    if (!result.ok) return result;
    if (result.value.status === 204) return { ok: true, value: { status: 204 } };
    const error: QrsError = { kind: 'http', status: result.value.status, message: this.statusMessage(call, result.value) };
    return { ok: false, error };
  }

  async getLicense(): Promise<QrsResult<Record<string, unknown>>> {
    const call: Call = { method: 'GET', path: 'license', endpoint: 'license', forceUser: LICENSE_USER, idempotent: true };
    const result = await this.json(call);
    if (!result.ok) return result;
    if (!result.value || typeof result.value !== 'object' || Array.isArray(result.value)) {
      return this.parseFailure(call, 'expected a JSON object');
    }
    return { ok: true, value: result.value as Record<string, unknown> };
  }

  health(): QrsHealth {
    return { ...this.state };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.pool.close();
  }

  // -------------------------------------------------------------------------------------------------

  /**
   * The cached answer of getTask/getTaskFull/getAppFull, without waiting; undefined when it would
   * take a call (not cached, or expired). Lets a caller finish an event in the same turn.
   */
  peekCached(endpoint: CachedEndpoint, id: string): Record<string, unknown>[] | undefined {
    const key = `${endpoint} ${id}`;
    const hit = this.cache.get(key);
    if (hit === undefined) return undefined;
    if (hit.expires > Date.now()) return hit.value;
    this.cache.delete(key);
    return undefined;
  }

  private async cachedList(endpoint: CachedEndpoint, id: string): Promise<QrsResult<Record<string, unknown>[]>> {
    const cached = this.peekCached(endpoint, id);
    if (cached !== undefined) return { ok: true, value: cached };
    const key = `${endpoint} ${id}`;

    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.list({ method: 'GET', path: endpoint, endpoint, filter: `id eq ${id}`, idempotent: true }).then((result) => (result.ok ? { ok: true, value: deepFreeze(result.value) } : result));
      this.inFlight.set(key, pending);
      void pending.then((result) => {
        this.inFlight.delete(key);
        // Failures and "not found" are not kept: a task created a moment ago must be found next time.
        if (result.ok && result.value.length > 0 && this.cacheTtlMs > 0 && this.cacheMaxEntries > 0) this.remember(key, result.value);
      });
    }
    return pending;
  }

  private remember(key: string, value: Record<string, unknown>[]): void {
    this.cache.delete(key);
    this.cache.set(key, { expires: Date.now() + this.cacheTtlMs, value });
    while (this.cache.size > this.cacheMaxEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
  }

  private async list(call: Call): Promise<QrsResult<Record<string, unknown>[]>> {
    const result = await this.json(call);
    if (!result.ok) return result;
    if (!Array.isArray(result.value) || !result.value.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) {
      return this.parseFailure(call, 'expected a JSON array of objects');
    }
    return { ok: true, value: result.value as Record<string, unknown>[] };
  }

  private async json(call: Call): Promise<QrsResult<unknown>> {
    const result = await this.execute(call);
    if (!result.ok) return result;
    if (result.value.status !== 200) {
      return { ok: false, error: { kind: 'http', status: result.value.status, message: this.statusMessage(call, result.value) } };
    }
    try {
      return { ok: true, value: JSON.parse(result.value.text) as unknown };
    } catch {
      return this.parseFailure(call, 'body is not JSON');
    }
  }

  private parseFailure<T>(call: Call, what: string): QrsResult<T> {
    const message = `QRS ${call.method} ${call.endpoint}: unexpected answer, ${what}`;
    this.metrics?.upstreamErrors.inc({ service: 'qrs', reason: 'parse' });
    this.noteFailure(message, true);
    return { ok: false, error: { kind: 'parse', message } };
  }

  private statusMessage(call: Call, answer: Answer): string {
    const detail = answer.text.replace(/\s+/g, ' ').trim().slice(0, 200);
    return `QRS ${call.method} ${call.endpoint} answered HTTP ${answer.status}${detail ? `: ${detail}` : ''}`;
  }

  /** Runs a call with retries; any HTTP answer (even 4xx) is a value, not an error, at this level. */
  private async execute(call: Call): Promise<QrsResult<Answer>> {
    if (this.closed) return { ok: false, error: { kind: 'network', message: 'QRS client is closed' } };
    let last: Attempt | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        await waitBeforeRetry(attempt, this.retryBaseMs, MAX_BACKOFF_MS);
        if (this.closed) break;
      }
      last = await this.attempt(call);
      if (last.ok) {
        const status = last.answer.status;
        if (status < 500) {
          this.state.reachable = true;
          this.state.lastSuccessAt = Date.now();
          if (status >= 400) this.metrics?.upstreamErrors.inc({ service: 'qrs', reason: 'http_4xx' });
          return { ok: true, value: last.answer };
        }
        this.metrics?.upstreamErrors.inc({ service: 'qrs', reason: 'http_5xx' });
        if (!call.idempotent) break;
        last = { ok: false, error: { kind: 'http', status, message: this.statusMessage(call, last.answer) }, retryable: true };
      } else {
        this.metrics?.upstreamErrors.inc({ service: 'qrs', reason: last.error.kind });
        if (!last.retryable) break;
      }
      if (attempt < this.retries) this.logger.debug({ endpoint: call.endpoint, attempt: attempt + 1, error: last.error.message }, 'QRS call failed, retrying');
    }
    if (!last) return { ok: false, error: { kind: 'network', message: 'QRS client is closed' } };
    if (last.ok) {
      // A 5xx answer to a POST that is not repeated.
      const error: QrsError = { kind: 'http', status: last.answer.status, message: this.statusMessage(call, last.answer) };
      this.noteFailure(error.message, false);
      return { ok: false, error };
    }
    this.noteFailure(last.error.message, last.error.kind === 'http' && (last.error.status ?? 500) < 500);
    return { ok: false, error: last.error };
  }

  private noteFailure(message: string, reachable: boolean): void {
    this.state.reachable = reachable;
    this.state.lastError = message;
    this.state.lastErrorAt = Date.now();
  }

  private buildHeaders(call: Call, xrfKey: string): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const h of this.headers) {
      if (call.forceUser && h.name.toLowerCase() === 'x-qlik-user') continue;
      headers[h.name] = h.value;
    }
    if (call.forceUser) headers['X-Qlik-User'] = call.forceUser;
    headers['X-Qlik-Xrfkey'] = xrfKey;
    headers['Accept'] = 'application/json';
    if (call.body !== undefined) headers['Content-Type'] = 'application/json';
    return headers;
  }

  private async attempt(call: Call): Promise<Attempt> {
    const xrfKey = newXrfKey();
    let path = `/qrs/${call.path}?xrfkey=${xrfKey}`;
    if (call.filter !== undefined) path += `&filter=${encodeURIComponent(call.filter)}`;

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error('deadline passed'));
    }, this.timeoutMs);
    const started = process.hrtime.bigint();
    const observe = () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics?.upstreamDuration.observe({ service: 'qrs', endpoint: call.endpoint }, seconds);
    };
    try {
      const res = await this.pool.request({
        method: call.method,
        path,
        headers: this.buildHeaders(call, xrfKey),
        body: call.body ?? null,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: controller.signal,
      });
      const text = await res.body.text();
      observe();
      // The pool marks the connection idle a tick after the body ends; yielding once lets the
      // caller's next request reuse it instead of opening a second TLS connection.
      await new Promise((r) => setImmediate(r));
      this.logger.debug({ endpoint: call.endpoint, status: res.statusCode }, 'QRS call answered');
      return { ok: true, answer: { status: res.statusCode, text } };
    } catch (err) {
      observe();
      return this.classify(call, err, timedOut);
    } finally {
      clearTimeout(timer);
    }
  }

  private classify(call: Call, err: unknown, timedOut: boolean): Attempt {
    const code = errorCode(err);
    const where = `QRS ${call.method} ${call.endpoint} (${this.origin})`;
    if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      const connectPhase = code === 'UND_ERR_CONNECT_TIMEOUT';
      return {
        ok: false,
        error: { kind: 'timeout', message: `${where}: no answer within ${this.timeoutMs} ms${connectPhase ? ' (connecting)' : ''}` },
        retryable: call.idempotent || connectPhase,
      };
    }
    const text = errorText(err);
    if (code && (TLS_CERT_CODES.has(code) || code.startsWith('ERR_SSL_'))) {
      return { ok: false, error: { kind: 'network', message: `${where}: TLS handshake refused (${code}): ${text}` }, retryable: false };
    }
    const notSent = code !== undefined && NOT_SENT_CODES.has(code);
    // With TLS 1.3 a refused client certificate shows up only as a closed connection.
    const hint = code === 'UND_ERR_SOCKET' && this.origin.startsWith('https:') ? ' (QRS closed the connection; a missing or untrusted client certificate causes this)' : '';
    return {
      ok: false,
      error: { kind: 'network', message: `${where}: ${code ? `${code}: ` : ''}${text}${hint}` },
      retryable: call.idempotent || notSent,
    };
  }
}

/**
 * Task and app lookups are shared by every caller (and kept in the cache) as one frozen copy: no
 * caller can change what the next one reads, and a hit costs no copy (a parse per hit was about 6%
 * of the bridge's CPU time in a storm). Writing to a frozen object throws in strict-mode code.
 */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
