// Client for the Qlik Cloud REST API: what is Qlik Cloud's own on top of the upstream engine
// (src/net/upstream.ts, which holds the pool, TLS, deadlines, retries and health): the Bearer API
// key, the tenant URL forms, the endpoints used, and paging by `links.next.href`.
// The key is a secret: it is sent as a header and never appears in a message or log line (the
// engine masks it wherever a server or library might echo it).
//
// A new endpoint is one method: build the call with `request()` and hand it to the engine
// (`send`, `jsonObject`), or to `listAll` for a paged list; the engine applies the retry rules by
// method (a POST that may have reached the tenant is not repeated).
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { Upstream, type HttpMethod, type UpstreamRequest } from '../net/upstream.ts';
import type { UpstreamError, UpstreamHealth, UpstreamResult } from '../net/upstream-errors.ts';

export interface CloudClientOptions {
  /** `https://tenant.region.qlikcloud.com`, with or without scheme and trailing slash. */
  tenantUrl: string;
  token: string;
  /** File path of an extra CA bundle to trust (tests, TLS-inspecting proxies). */
  ca?: string;
  rejectUnauthorized?: boolean;
  /** Deadline for one attempt: connect, headers and body together. */
  timeoutMs?: number;
  retries?: number;
  retryBaseMs?: number;
}

export type CloudError = UpstreamError;
export type CloudResult<T> = UpstreamResult<T>;
export type CloudHealth = UpstreamHealth;

const DEFAULTS = { timeoutMs: 15_000, retries: 2, retryBaseMs: 500 };
const MAX_BACKOFF_MS = 8_000;
/** Upper bound of pages one listAll call follows, against a server whose `next` never ends. */
const DEFAULT_MAX_PAGES = 50;

/** Splits a configured tenant URL into origin and path prefix (normally empty). */
export function normaliseTenantUrl(tenantUrl: string): { origin: string; basePath: string } {
  const trimmed = tenantUrl.trim();
  if (!trimmed) throw new Error('Qlik Cloud tenant URL is empty');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`Qlik Cloud tenant URL "${tenantUrl}" is not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`Qlik Cloud tenant URL "${tenantUrl}" must use https`);
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') };
}

export class CloudClient {
  private readonly http: Upstream;
  private readonly basePath: string;
  private readonly authorization: string;

  constructor(options: CloudClientOptions, deps: { logger: Logger; metrics?: Metrics }) {
    const { origin, basePath } = normaliseTenantUrl(options.tenantUrl);
    this.basePath = basePath;
    this.authorization = `Bearer ${options.token}`;
    this.http = new Upstream({
      service: 'qlik_cloud',
      name: 'Qlik Cloud',
      origin,
      tls: { ca: options.ca, rejectUnauthorized: options.rejectUnauthorized ?? true },
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      retries: options.retries ?? DEFAULTS.retries,
      retryBaseMs: options.retryBaseMs ?? DEFAULTS.retryBaseMs,
      maxBackoffMs: MAX_BACKOFF_MS,
      connections: 4,
      secret: options.token,
      logger: deps.logger,
      metrics: deps.metrics,
    });
  }

  /** `GET /api/v1/apps/{appId}`: `{ attributes: {...}, privileges, ... }`. */
  getApp(appId: string): Promise<CloudResult<Record<string, unknown>>> {
    return this.http.jsonObject(this.request('GET', `/api/v1/apps/${encodeURIComponent(appId)}`, 'apps'));
  }

  /** `GET /api/v1/reloads/{reloadId}`. */
  getReload(reloadId: string): Promise<CloudResult<Record<string, unknown>>> {
    return this.http.jsonObject(this.request('GET', `/api/v1/reloads/${encodeURIComponent(reloadId)}`, 'reloads'));
  }

  /** `GET /api/v1/apps/{appId}/reloads/logs/{reloadId}`: the script log as sent (CRLF lines). */
  async getReloadLog(appId: string, reloadId: string): Promise<CloudResult<string>> {
    const answer = await this.http.send(this.request('GET', `/api/v1/apps/${encodeURIComponent(appId)}/reloads/logs/${encodeURIComponent(reloadId)}`, 'reload_logs', { accept: 'text/plain' }));
    return answer.ok ? { ok: true, value: answer.value.text } : answer;
  }

  /**
   * Every item of a paged list (`{ data: [...], links: { next: { href } } }`), following
   * `links.next.href` from `path` (below the tenant URL, query included) until there is no next
   * page. A next link to another origin is refused (the API key goes nowhere else), as are a link
   * seen before and more than `maxPages` pages.
   */
  async listAll(path: string, endpoint: string, maxPages = DEFAULT_MAX_PAGES): Promise<CloudResult<Record<string, unknown>[]>> {
    const items: Record<string, unknown>[] = [];
    const seen = new Set<string>();
    let target = this.basePath + path;
    for (let page = 1; ; page++) {
      seen.add(target);
      const req = this.request('GET', target, endpoint, { full: true });
      const result = await this.http.jsonObject(req);
      if (!result.ok) return result;
      const data = result.value['data'];
      if (!Array.isArray(data) || !data.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) {
        return this.http.parseFailure(req, 'expected "data" to be an array of objects');
      }
      items.push(...(data as Record<string, unknown>[]));
      const href = (result.value['links'] as { next?: { href?: unknown } } | undefined)?.next?.href;
      if (href === undefined || href === null || href === '') return { ok: true, value: items };
      if (typeof href !== 'string') return this.http.parseFailure(req, 'links.next.href is not a string');
      let next: URL;
      try {
        next = new URL(href, this.http.origin);
      } catch {
        return this.http.parseFailure(req, 'links.next.href is not a URL');
      }
      if (next.origin !== this.http.origin) return this.http.parseFailure(req, `links.next.href leads to another origin (${next.origin})`);
      target = next.pathname + next.search;
      if (seen.has(target)) return this.http.parseFailure(req, 'links.next.href repeats a page already read');
      if (page >= maxPages) return this.http.parseFailure(req, `more than ${maxPages} pages`);
    }
  }

  /**
   * One page of `GET /api/v1/reloads` (tenant admins see every app's reloads): `first` is the query of
   * the first page (e.g. `limit=100&log=false`), or a `links.next.href` from the page before (same
   * origin only: the API key goes nowhere else). Returns the records and the next link ('' at the end).
   */
  async reloadsPage(first: { query: string } | { next: string }): Promise<CloudResult<{ data: Record<string, unknown>[]; next: string }>> {
    let target: string;
    if ('query' in first) target = `${this.basePath}/api/v1/reloads${first.query ? `?${first.query}` : ''}`;
    else {
      let next: URL;
      try {
        next = new URL(first.next, this.http.origin);
      } catch {
        return this.http.parseFailure(this.request('GET', '/api/v1/reloads', 'reloads_list'), 'links.next.href is not a URL');
      }
      if (next.origin !== this.http.origin) return this.http.parseFailure(this.request('GET', '/api/v1/reloads', 'reloads_list'), `links.next.href leads to another origin (${next.origin})`);
      target = next.pathname + next.search;
    }
    const req = this.request('GET', target, 'reloads_list', { full: true });
    const result = await this.http.jsonObject(req);
    if (!result.ok) return result;
    const data = result.value['data'];
    if (!Array.isArray(data) || !data.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) {
      return this.http.parseFailure(req, 'expected "data" to be an array of objects');
    }
    const href = (result.value['links'] as { next?: { href?: unknown } } | undefined)?.next?.href;
    return { ok: true, value: { data: data as Record<string, unknown>[], next: typeof href === 'string' ? href : '' } };
  }

  /** `GET /api/v1/webhooks`, every page. */
  listWebhooks(): Promise<CloudResult<Record<string, unknown>[]>> {
    return this.listAll('/api/v1/webhooks?limit=100', 'webhooks');
  }

  /** `POST /api/v1/webhooks` with `{ name, description, url, eventTypes, secret, enabled, level, … }`; answers the webhook (without the secret). */
  createWebhook(body: Record<string, unknown>): Promise<CloudResult<Record<string, unknown>>> {
    return this.http.jsonObject(this.request('POST', '/api/v1/webhooks', 'webhooks', { body: JSON.stringify(body), contentType: 'application/json' }));
  }

  /** `DELETE /api/v1/webhooks/{id}` (204). */
  async deleteWebhook(id: string): Promise<CloudResult<void>> {
    const answer = await this.http.send(this.request('DELETE', `/api/v1/webhooks/${encodeURIComponent(id)}`, 'webhooks'));
    return answer.ok ? { ok: true, value: undefined } : answer;
  }

  health(): CloudHealth {
    return this.http.health();
  }

  close(): Promise<void> {
    return this.http.close();
  }

  // -------------------------------------------------------------------------------------------------

  /** The engine request for a Qlik Cloud call: the tenant's path prefix, the API key, JSON unless said otherwise. */
  private request(method: HttpMethod, path: string, endpoint: string, extra: { accept?: string; body?: string; full?: boolean; contentType?: string } = {}): UpstreamRequest {
    return {
      method,
      path: extra.full ? path : this.basePath + path,
      endpoint,
      headers: { authorization: this.authorization, accept: extra.accept ?? 'application/json', ...(extra.contentType ? { 'content-type': extra.contentType } : {}) },
      body: extra.body,
    };
  }
}
