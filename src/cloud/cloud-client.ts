// Client for the Qlik Cloud REST API, used to enrich failed-reload events: app, reload and script
// log lookups over one keep-alive pool with a Bearer token, deadlines and bounded retries.
// The token is a secret: it is sent as a header and never appears in a message or log line.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { Pool } from 'undici';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { errorCode, errorText, waitBeforeRetry, type UpstreamError, type UpstreamHealth, type UpstreamResult } from '../net/upstream-errors.ts';

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
const TLS_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);

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

interface Call {
  path: string;
  endpoint: 'apps' | 'reloads' | 'reload_logs';
  accept: string;
}

type Attempt =
  | { ok: true; status: number; text: string }
  | { ok: false; error: CloudError; retryable: boolean };



export class CloudClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly token: string;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly state: CloudHealth = { reachable: null, lastSuccessAt: null, lastError: null, lastErrorAt: null };
  private closed = false;

  constructor(options: CloudClientOptions, deps: { logger: Logger; metrics?: Metrics }) {
    const { origin, basePath } = normaliseTenantUrl(options.tenantUrl);
    this.origin = origin;
    this.basePath = basePath;
    this.token = options.token;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.retries = Math.max(0, options.retries ?? DEFAULTS.retries);
    this.retryBaseMs = options.retryBaseMs ?? DEFAULTS.retryBaseMs;

    const tls: { ca?: Buffer; rejectUnauthorized: boolean } = { rejectUnauthorized: options.rejectUnauthorized ?? true };
    if (options.ca) {
      try {
        tls.ca = readFileSync(options.ca);
      } catch (err) {
        throw new Error(`Qlik Cloud CA file "${options.ca}" cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      try {
        createSecureContext({ ca: tls.ca });
      } catch (err) {
        throw new Error(`Qlik Cloud CA file "${options.ca}" cannot be used: ${(err as Error).message}`);
      }
    }
    this.pool = new Pool(origin, {
      connections: 4,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.timeoutMs, ...(origin.startsWith('https:') ? tls : {}) },
    });
  }

  /** `GET /api/v1/apps/{appId}`: `{ attributes: {...}, privileges, ... }`. */
  async getApp(appId: string): Promise<CloudResult<Record<string, unknown>>> {
    return this.json({ path: `/api/v1/apps/${encodeURIComponent(appId)}`, endpoint: 'apps', accept: 'application/json' });
  }

  /** `GET /api/v1/reloads/{reloadId}`. */
  async getReload(reloadId: string): Promise<CloudResult<Record<string, unknown>>> {
    return this.json({ path: `/api/v1/reloads/${encodeURIComponent(reloadId)}`, endpoint: 'reloads', accept: 'application/json' });
  }

  /** `GET /api/v1/apps/{appId}/reloads/logs/{reloadId}`: the script log as sent (CRLF lines). */
  async getReloadLog(appId: string, reloadId: string): Promise<CloudResult<string>> {
    const call: Call = { path: `/api/v1/apps/${encodeURIComponent(appId)}/reloads/logs/${encodeURIComponent(reloadId)}`, endpoint: 'reload_logs', accept: 'text/plain' };
    const answer = await this.execute(call);
    if (!answer.ok) return answer;
    return { ok: true, value: answer.value.text };
  }

  health(): CloudHealth {
    return { ...this.state };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  // -------------------------------------------------------------------------------------------------

  private async json(call: Call): Promise<CloudResult<Record<string, unknown>>> {
    const answer = await this.execute(call);
    if (!answer.ok) return answer;
    let value: unknown;
    try {
      value = JSON.parse(answer.value.text);
    } catch {
      value = undefined;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      const message = `Qlik Cloud GET ${call.endpoint}: unexpected answer, expected a JSON object`;
      this.metrics?.upstreamErrors.inc({ service: 'qlik_cloud', reason: 'parse' });
      this.noteFailure(message, true);
      return { ok: false, error: { kind: 'parse', message } };
    }
    return { ok: true, value: value as Record<string, unknown> };
  }

  /** Masks the token wherever a server or library might have echoed it. */
  private clean(text: string): string {
    return this.token.length >= 3 ? text.split(this.token).join('***') : text;
  }

  private statusMessage(call: Call, status: number, text: string): string {
    let detail = '';
    try {
      const body = JSON.parse(text) as { errors?: { title?: unknown; code?: unknown }[] };
      const first = body.errors?.[0];
      if (first && typeof first.title === 'string') detail = `${first.title}${typeof first.code === 'string' ? ` (${first.code})` : ''}`;
    } catch {
      detail = text.replace(/\s+/g, ' ').trim().slice(0, 200);
    }
    return this.clean(`Qlik Cloud GET ${call.endpoint} answered HTTP ${status}${detail ? `: ${detail}` : ''}`);
  }

  private async execute(call: Call): Promise<CloudResult<{ status: number; text: string }>> {
    if (this.closed) return { ok: false, error: { kind: 'network', message: 'Qlik Cloud client is closed' } };
    let lastError: CloudError | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        await waitBeforeRetry(attempt, this.retryBaseMs, MAX_BACKOFF_MS);
        if (this.closed) break;
      }
      const result = await this.attempt(call);
      let retryable: boolean;
      if (result.ok) {
        if (result.status >= 200 && result.status < 300) {
          this.state.reachable = true;
          this.state.lastSuccessAt = Date.now();
          return { ok: true, value: { status: result.status, text: result.text } };
        }
        // 429: Qlik Cloud rate limiting; waiting and asking again is what it asks for.
        retryable = result.status >= 500 || result.status === 429;
        this.metrics?.upstreamErrors.inc({ service: 'qlik_cloud', reason: result.status >= 500 ? 'http_5xx' : 'http_4xx' });
        lastError = { kind: 'http', status: result.status, message: this.statusMessage(call, result.status, result.text) };
        if (!retryable) {
          // The service answered: it is reachable, the request was wrong (unknown id, bad token …).
          this.noteFailure(lastError.message, true);
          return { ok: false, error: lastError };
        }
      } else {
        this.metrics?.upstreamErrors.inc({ service: 'qlik_cloud', reason: result.error.kind });
        lastError = result.error;
        retryable = result.retryable;
      }
      if (!retryable) break;
      if (attempt < this.retries) this.logger.debug({ endpoint: call.endpoint, attempt: attempt + 1, error: lastError.message }, 'Qlik Cloud call failed, retrying');
    }
    const error = lastError ?? { kind: 'network' as const, message: 'Qlik Cloud client is closed' };
    this.noteFailure(error.message, false);
    return { ok: false, error };
  }

  private noteFailure(message: string, reachable: boolean): void {
    this.state.reachable = reachable;
    this.state.lastError = message;
    this.state.lastErrorAt = Date.now();
  }

  private async attempt(call: Call): Promise<Attempt> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error('deadline passed'));
    }, this.timeoutMs);
    const started = process.hrtime.bigint();
    const observe = () => {
      this.metrics?.upstreamDuration.observe({ service: 'qlik_cloud', endpoint: call.endpoint }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    try {
      const res = await this.pool.request({
        method: 'GET',
        path: this.basePath + call.path,
        headers: { authorization: `Bearer ${this.token}`, accept: call.accept },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: controller.signal,
      });
      const text = await res.body.text();
      observe();
      // Lets the pool mark the connection idle so the next call reuses it.
      await new Promise((r) => setImmediate(r));
      this.logger.debug({ endpoint: call.endpoint, status: res.statusCode }, 'Qlik Cloud call answered');
      return { ok: true, status: res.statusCode, text };
    } catch (err) {
      observe();
      const code = errorCode(err);
      const where = `Qlik Cloud GET ${call.endpoint} (${this.origin})`;
      if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        return { ok: false, error: { kind: 'timeout', message: `${where}: no answer within ${this.timeoutMs} ms` }, retryable: true };
      }
      const text = this.clean(errorText(err));
      if (code && (TLS_CERT_CODES.has(code) || code.startsWith('ERR_SSL_'))) {
        return { ok: false, error: { kind: 'network', message: `${where}: TLS handshake refused (${code}): ${text}` }, retryable: false };
      }
      return { ok: false, error: { kind: 'network', message: `${where}: ${code ? `${code}: ` : ''}${text}` }, retryable: true };
    } finally {
      clearTimeout(timer);
    }
  }
}
