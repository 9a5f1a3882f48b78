// Client for the Qlik Sense Repository Service (QRS): what is QRS's own on top of the upstream
// engine (src/net/upstream.ts, which holds the pool, the client certificate, deadlines, retries and
// health): the xrfkey handshake on every call, the X-Qlik-User header, QRS filters, the endpoints
// used, and the cache of task/app lookups (qrs-cache.ts) that alert enrichment repeats.
//
// A new endpoint is one method: build the call with `request()` and hand it to the engine
// (`send`, `json`, `jsonObject`, `jsonList`); the engine applies the retry rules by method.
import { randomInt } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { Upstream, type HttpMethod, type UpstreamRequest } from '../net/upstream.ts';
import type { UpstreamError, UpstreamHealth, UpstreamResult } from '../net/upstream-errors.ts';
import { QrsCache, type CachedEndpoint } from './qrs-cache.ts';

export type { CachedEndpoint } from './qrs-cache.ts';

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

const DEFAULTS = { timeoutMs: 10_000, retries: 2, retryBaseMs: 250, cacheTtlMs: 60_000, cacheMaxEntries: 500 };
const MAX_BACKOFF_MS = 5_000;
const XRF_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const LICENSE_USER = 'UserDirectory=Internal; UserId=sa_repository';

/** Wraps a value for a QRS filter: `'...'` with inner quotes doubled. */
export function quoteFilterValue(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

export function newXrfKey(): string {
  let key = '';
  for (let i = 0; i < 16; i++) key += XRF_ALPHABET[randomInt(XRF_ALPHABET.length)];
  return key;
}

/** One QRS call, before the xrfkey and headers are added. */
interface QrsCall {
  /** Below /qrs/, without query; ids already percent-encoded. */
  path: string;
  /** Metric label and the name in messages; a small fixed set. */
  endpoint: string;
  /** A QRS filter expression (values quoted with quoteFilterValue). */
  filter?: string;
  /** Further query parameters. */
  query?: Record<string, string>;
  /** Sends as this user instead of the configured X-Qlik-User. */
  forceUser?: string;
  /** JSON text. */
  body?: string;
  /** Statuses that are an answer (default 2xx). */
  expect?: readonly number[];
}

export class QrsClient {
  private readonly http: Upstream;
  private readonly cache: QrsCache;
  private readonly headers: { name: string; value: string }[];

  constructor(options: QrsClientOptions, deps: { logger: Logger; metrics?: Metrics }) {
    this.headers = options.headers.map((h) => ({ name: h.name, value: h.value }));
    this.cache = new QrsCache({ ttlMs: options.cacheTtlMs ?? DEFAULTS.cacheTtlMs, maxEntries: options.cacheMaxEntries ?? DEFAULTS.cacheMaxEntries });
    const scheme = options.useSSL ? 'https' : 'http';
    const hostPart = options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
    this.http = new Upstream({
      service: 'qrs',
      name: 'QRS',
      origin: `${scheme}://${hostPart}:${options.port}`,
      tls: { clientCert: options.clientCert, clientCertKey: options.clientCertKey, ca: options.clientCertCA, rejectUnauthorized: options.rejectUnauthorized },
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      retries: options.retries ?? DEFAULTS.retries,
      retryBaseMs: options.retryBaseMs ?? DEFAULTS.retryBaseMs,
      maxBackoffMs: MAX_BACKOFF_MS,
      connections: 8,
      closedConnectionHint: ' (QRS closed the connection; a missing or untrusted client certificate causes this)',
      logger: deps.logger,
      metrics: deps.metrics,
    });
  }

  /** `GET /qrs/task?filter=id eq …` (cached). */
  getTask(taskId: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cachedList('task', taskId);
  }

  /** `GET /qrs/task/full?filter=id eq …` (cached). */
  getTaskFull(taskId: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cachedList('task/full', taskId);
  }

  /** `GET /qrs/app/full?filter=id eq …` (cached). */
  getAppFull(appId: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cachedList('app/full', appId);
  }

  /** `GET /qrs/task/full?filter=…`, not cached. */
  findTasksFull(filter: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.http.jsonList(this.request('GET', { path: 'task/full', endpoint: 'task/full', filter }));
  }

  /**
   * `POST /qrs/task/{id}/start`; QRS answers 204. As a POST it is repeated only when the
   * connection failed before anything was sent: a reset, a timeout or a 5xx after the request went
   * out may mean the task did start, and a second start of a running task is not harmless to the
   * caller's intent (it would be reported as a failure or, worse, queue a second run).
   */
  async startTask(taskId: string): Promise<QrsResult<{ status: number }>> {
    const result = await this.http.send(this.request('POST', { path: `task/${encodeURIComponent(taskId)}/start`, endpoint: 'task/start', body: '{}', expect: [204] }));
    return result.ok ? { ok: true, value: { status: 204 } } : result;
  }

  /** `GET /qrs/license`, always as the repository service account (only it may read the license). */
  getLicense(): Promise<QrsResult<Record<string, unknown>>> {
    return this.http.jsonObject(this.request('GET', { path: 'license', endpoint: 'license', forceUser: LICENSE_USER }));
  }

  /**
   * `POST /qrs/notification?name=…&changetype=…[&filter=…]` with the URL to call as a JSON string
   * body. QRS answers with the subscription handle (a GUID, wrapped as `{"value": …}`); the handle
   * is what `deleteNotification` takes. A POST: repeated only when the request never left.
   */
  async addNotification(name: string, changeType: string, callbackUrl: string, filter?: string): Promise<QrsResult<string>> {
    const req = this.request('POST', { path: 'notification', endpoint: 'notification', query: { name, changetype: changeType }, body: JSON.stringify(callbackUrl), ...(filter === undefined ? {} : { filter }) });
    const result = await this.http.json(req);
    if (!result.ok) return result;
    const value = result.value;
    const handle = typeof value === 'string' ? value : typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['value'] : undefined;
    if (typeof handle !== 'string' || handle === '') return this.http.parseFailure(req, 'a subscription handle');
    return { ok: true, value: handle };
  }

  /** `DELETE /qrs/notification?handle=…`; a handle QRS no longer knows (404) counts as deleted. */
  async deleteNotification(handle: string): Promise<QrsResult<{ status: number }>> {
    const result = await this.http.send(this.request('DELETE', { path: 'notification', endpoint: 'notification', query: { handle }, expect: [200, 204, 404] }));
    return result.ok ? { ok: true, value: { status: result.value.status } } : result;
  }

  /** `GET /qrs/executionresult/{id}`: one ExecutionResult, or null when QRS does not know the id (404). */
  async getExecutionResult(id: string): Promise<QrsResult<Record<string, unknown> | null>> {
    const req = this.request('GET', { path: `executionresult/${encodeURIComponent(id)}`, endpoint: 'executionresult', expect: [200, 404] });
    const result = await this.http.send(req);
    if (!result.ok) return result;
    if (result.value.status === 404) return { ok: true, value: null };
    try {
      const value: unknown = JSON.parse(result.value.text);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return { ok: true, value: value as Record<string, unknown> };
    } catch {
      // below
    }
    return this.http.parseFailure(req, 'an ExecutionResult object');
  }

  /**
   * `GET /qrs/executionresult/full?filter=…&orderBy=…&skip=…&take=…`: one page of ExecutionResults.
   * Not cached (the point is to see what changed).
   */
  listExecutionResults(filter: string, page: { orderBy: string; skip: number; take: number }): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.http.jsonList(
      this.request('GET', { path: 'executionresult/full', endpoint: 'executionresult/full', filter, query: { orderBy: page.orderBy, skip: String(page.skip), take: String(page.take) } }),
    );
  }

  /**
   * The cached answer of getTask/getTaskFull/getAppFull, without waiting; undefined when it would
   * take a call (not cached, or expired). Lets a caller finish an event in the same turn.
   */
  peekCached(endpoint: CachedEndpoint, id: string): Record<string, unknown>[] | undefined {
    return this.cache.peek(endpoint, id);
  }

  health(): QrsHealth {
    return this.http.health();
  }

  async close(): Promise<void> {
    if (this.http.isClosed) return;
    this.cache.clear();
    await this.http.close();
  }

  // -------------------------------------------------------------------------------------------------

  private cachedList(endpoint: CachedEndpoint, id: string): Promise<QrsResult<Record<string, unknown>[]>> {
    return this.cache.get(endpoint, id, () => this.http.jsonList(this.request('GET', { path: endpoint, endpoint, filter: `id eq ${id}` })));
  }

  /** The engine request for a QRS call: a fresh xrfkey in query and header, the configured headers. */
  private request(method: HttpMethod, call: QrsCall): UpstreamRequest {
    const xrfKey = newXrfKey();
    let path = `/qrs/${call.path}?xrfkey=${xrfKey}`;
    if (call.filter !== undefined) path += `&filter=${encodeURIComponent(call.filter)}`;
    if (call.query) for (const [k, v] of Object.entries(call.query)) path += `&${encodeURIComponent(k)}=${encodeURIComponent(v)}`;
    const headers: Record<string, string> = {};
    for (const h of this.headers) {
      if (call.forceUser && h.name.toLowerCase() === 'x-qlik-user') continue;
      headers[h.name] = h.value;
    }
    if (call.forceUser) headers['X-Qlik-User'] = call.forceUser;
    headers['X-Qlik-Xrfkey'] = xrfKey;
    headers['Accept'] = 'application/json';
    return { method, path, endpoint: call.endpoint, headers, body: call.body, expect: call.expect };
  }
}
