// The one HTTP engine behind the QRS and Qlik Cloud clients: a keep-alive connection pool to one
// origin (TLS with an optional client certificate and CA), a deadline per attempt, bounded retries
// with backoff for failures that may pass, error classification, the service's health for the
// status page, and the request metrics. A client adds only what its service wants on top: its
// headers, its paths, what its answers look like.
//
// Retry rules (see upstream-errors.ts): a request that certainly never left (connection refused,
// name not resolved, connect timeout) is always repeated; one that may have reached the server
// (reset, deadline, 5xx) is repeated only when it is idempotent (GET, HEAD, PUT, DELETE, OPTIONS,
// unless the request says otherwise); a 429 is repeated for any method, after Retry-After when the
// server sends one; other answers and certificate problems are final.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { createRequire } from 'node:module';
import type { Pool } from 'undici';

// Loaded by the first client: a config without QRS and Qlik Cloud never needs it (about 4 MB).
let undiciPool: typeof Pool | null = null;
const PoolClass = (): typeof Pool => (undiciPool ??= (createRequire(import.meta.url)('undici') as typeof import('undici')).Pool);
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import {
  backoffDelay,
  classifyFailure,
  errorText,
  mayRepeatFailure,
  mayRepeatStatus,
  retryAfterMs,
  type FailureClass,
  type UpstreamError,
  type UpstreamHealth,
  type UpstreamResult,
} from './upstream-errors.ts';

export type { UpstreamError, UpstreamHealth, UpstreamResult } from './upstream-errors.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

const IDEMPOTENT: ReadonlySet<HttpMethod> = new Set<HttpMethod>(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

export interface UpstreamOptions {
  /** The `service` label of the metrics: `qrs`, `qlik_cloud`. */
  service: string;
  /** How messages name the service: `QRS`, `Qlik Cloud`. */
  name: string;
  /** `https://host:port` (or http). */
  origin: string;
  /** File paths (already resolved); used only for an https origin. */
  tls?: { clientCert?: string; clientCertKey?: string; ca?: string; rejectUnauthorized?: boolean };
  /** Deadline for one attempt: connect, headers and body together. */
  timeoutMs: number;
  /** Extra attempts after the first, for failures that may pass. */
  retries: number;
  retryBaseMs: number;
  /** Upper bound of one wait between attempts (also for a server's Retry-After). */
  maxBackoffMs: number;
  /** Pool size: requests that may be in flight at once. */
  connections: number;
  /** Text that must never appear in a message or log line (an API key): replaced by `***`. */
  secret?: string;
  /** Added to the message when an https server closed the connection without a word. */
  closedConnectionHint?: string;
  logger: Logger;
  metrics?: Metrics | undefined;
}

export interface UpstreamRequest {
  method: HttpMethod;
  /** Path and query string, as sent. */
  path: string;
  /** Metric label and the name used in messages; keep to a small fixed set. */
  endpoint: string;
  headers: Record<string, string>;
  /** JSON text; sent with `content-type: application/json`. */
  body?: string;
  /** Whether repeating it is harmless; by default true for GET, HEAD, PUT, DELETE and OPTIONS. */
  idempotent?: boolean;
  /** The statuses that are an answer to hand back; any other is an `http` error. Default: 2xx. */
  expect?: readonly number[];
}

export interface UpstreamAnswer {
  status: number;
  text: string;
}

type Attempt =
  | { answered: true; status: number; text: string; retryAfter: string | string[] | undefined }
  | { answered: false; error: UpstreamError; retryable: boolean };

const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Reads the certificate files, failing at construction with the file named rather than on every call later. */
function loadTls(name: string, tls: NonNullable<UpstreamOptions['tls']>): { cert?: Buffer; key?: Buffer; ca?: Buffer; rejectUnauthorized: boolean } {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`${name} ${what} file "${path}" cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const out: { cert?: Buffer; key?: Buffer; ca?: Buffer; rejectUnauthorized: boolean } = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
  if (tls.clientCert) out.cert = read(tls.clientCert, 'client certificate');
  if (tls.clientCertKey) out.key = read(tls.clientCertKey, 'client certificate key');
  if (tls.ca) out.ca = read(tls.ca, 'CA');
  try {
    createSecureContext({ ...(out.cert ? { cert: out.cert } : {}), ...(out.key ? { key: out.key } : {}), ...(out.ca ? { ca: out.ca } : {}) });
  } catch (err) {
    const files = [tls.clientCert, tls.clientCertKey, tls.ca].filter(Boolean).map((f) => `"${f}"`);
    throw new Error(`${name} certificate file${files.length === 1 ? '' : 's'} ${files.join(', ')} cannot be used: ${(err as Error).message}`);
  }
  return out;
}

/**
 * The detail of an error answer: Qlik's JSON error form (`errors[0].title` and `code`) when the
 * body has it, else the body text on one line, shortened.
 */
export function statusDetail(text: string): string {
  if (text.startsWith('{')) {
    try {
      const first = (JSON.parse(text) as { errors?: { title?: unknown; code?: unknown }[] }).errors?.[0];
      if (first && typeof first.title === 'string') return `${first.title}${typeof first.code === 'string' ? ` (${first.code})` : ''}`;
    } catch {
      // not JSON after all: the text below
    }
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

export class Upstream {
  readonly origin: string;
  private readonly options: UpstreamOptions;
  private readonly poolOptions: Pool.Options;
  /** Made at the first request: undici (about 4 MB of heap) is loaded only once something is asked. */
  private poolInstance: Pool | null = null;
  private readonly state: UpstreamHealth = { reachable: null, lastSuccessAt: null, lastError: null, lastErrorAt: null };
  private closed = false;

  constructor(options: UpstreamOptions) {
    this.options = { ...options, retries: Math.max(0, options.retries) };
    this.origin = options.origin;
    const tls = options.origin.startsWith('https:') ? loadTls(options.name, options.tls ?? {}) : undefined;
    this.poolOptions = {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
      connect: { timeout: options.timeoutMs, ...(tls ?? {}) },
    };
  }

  private get pool(): Pool {
    return (this.poolInstance ??= new (PoolClass())(this.origin, this.poolOptions));
  }

  /**
   * Runs a request with the retry rules. An expected status is a value; anything else comes back
   * as an error, already counted in the metrics and noted in the health.
   */
  async send(req: UpstreamRequest): Promise<UpstreamResult<UpstreamAnswer>> {
    const { name, retries, retryBaseMs, maxBackoffMs, metrics, logger, service } = this.options;
    if (this.closed) return { ok: false, error: { kind: 'network', message: `${name} client is closed` } };
    const idempotent = req.idempotent ?? IDEMPOTENT.has(req.method);
    let lastError: UpstreamError | undefined;
    let delayMs = 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        await wait(Math.max(delayMs, backoffDelay(attempt, retryBaseMs, maxBackoffMs)));
        if (this.closed) break;
      }
      const a = await this.attempt(req, idempotent);
      let retryable: boolean;
      if (a.answered) {
        const status = a.status;
        if (req.expect ? req.expect.includes(status) : status >= 200 && status < 300) {
          this.noteAnswer();
          return { ok: true, value: { status, text: a.text } };
        }
        metrics?.upstreamErrors.inc({ service, reason: status >= 500 ? 'http_5xx' : status >= 400 ? 'http_4xx' : 'http_other' });
        lastError = { kind: 'http', status, message: this.clean(`${name} ${req.method} ${req.endpoint} answered HTTP ${status}${detailSuffix(a.text)}`) };
        retryable = mayRepeatStatus(status, idempotent);
        delayMs = retryable ? Math.min(maxBackoffMs, retryAfterMs(a.retryAfter) ?? 0) : 0;
        if (!retryable || attempt === retries) {
          // An answer below 500 says the service is there; the request was wrong (unknown id, bad key …).
          if (status < 500) this.noteAnswer();
          this.noteFailure(lastError.message, status < 500);
          return { ok: false, error: lastError };
        }
      } else {
        metrics?.upstreamErrors.inc({ service, reason: a.error.kind });
        lastError = a.error;
        retryable = a.retryable;
        delayMs = 0;
        if (!retryable) break;
      }
      if (attempt < retries) logger.debug({ endpoint: req.endpoint, attempt: attempt + 1, error: lastError.message }, `${name} call failed, retrying`);
    }
    const error = lastError ?? { kind: 'network' as const, message: `${name} client is closed` };
    this.noteFailure(error.message, false);
    return { ok: false, error };
  }

  /** `send`, then the body as JSON (anything else is a `parse` error). */
  async json(req: UpstreamRequest): Promise<UpstreamResult<unknown>> {
    const answer = await this.send(req);
    if (!answer.ok) return answer;
    try {
      return { ok: true, value: JSON.parse(answer.value.text) as unknown };
    } catch {
      return this.parseFailure(req, 'body is not JSON');
    }
  }

  /** `json`, requiring one JSON object. */
  async jsonObject(req: UpstreamRequest): Promise<UpstreamResult<Record<string, unknown>>> {
    const result = await this.json(req);
    if (!result.ok) return result;
    if (!isObject(result.value)) return this.parseFailure(req, 'expected a JSON object');
    return { ok: true, value: result.value };
  }

  /** `json`, requiring an array of JSON objects. */
  async jsonList(req: UpstreamRequest): Promise<UpstreamResult<Record<string, unknown>[]>> {
    const result = await this.json(req);
    if (!result.ok) return result;
    if (!Array.isArray(result.value) || !result.value.every(isObject)) return this.parseFailure(req, 'expected a JSON array of objects');
    return { ok: true, value: result.value as Record<string, unknown>[] };
  }

  /** For an answer whose shape a client finds wrong: a `parse` error, counted and noted in the health. */
  parseFailure(req: Pick<UpstreamRequest, 'method' | 'endpoint'>, what: string): { ok: false; error: UpstreamError } {
    const message = `${this.options.name} ${req.method} ${req.endpoint}: unexpected answer, ${what}`;
    this.options.metrics?.upstreamErrors.inc({ service: this.options.service, reason: 'parse' });
    this.noteFailure(message, true);
    return { ok: false, error: { kind: 'parse', message } };
  }

  health(): UpstreamHealth {
    return { ...this.state };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.poolInstance?.close();
  }

  // -------------------------------------------------------------------------------------------------

  private noteAnswer(): void {
    this.state.reachable = true;
    this.state.lastSuccessAt = Date.now();
  }

  private noteFailure(message: string, reachable: boolean): void {
    this.state.reachable = reachable;
    this.state.lastError = message;
    this.state.lastErrorAt = Date.now();
  }

  /** Masks the secret wherever a server or library might have echoed it. */
  private clean(text: string): string {
    const secret = this.options.secret;
    return secret !== undefined && secret.length >= 3 && text.includes(secret) ? text.split(secret).join('***') : text;
  }

  private async attempt(req: UpstreamRequest, idempotent: boolean): Promise<Attempt> {
    const { timeoutMs, metrics, service } = this.options;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error('deadline passed'));
    }, timeoutMs);
    const started = process.hrtime.bigint();
    const observe = () => metrics?.upstreamDuration.observe({ service, endpoint: req.endpoint }, Number(process.hrtime.bigint() - started) / 1e9);
    try {
      const res = await this.pool.request({
        method: req.method,
        path: req.path,
        headers: req.body === undefined ? req.headers : { ...req.headers, 'content-type': 'application/json' },
        body: req.body ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: controller.signal,
      });
      const text = await res.body.text();
      observe();
      // The pool marks the connection idle a tick after the body ends; yielding once lets the
      // caller's next request reuse it instead of opening a second TLS connection.
      await new Promise((r) => setImmediate(r));
      this.options.logger.debug({ endpoint: req.endpoint, status: res.statusCode }, `${this.options.name} call answered`);
      return { answered: true, status: res.statusCode, text, retryAfter: res.headers['retry-after'] };
    } catch (err) {
      observe();
      const failure = classifyFailure(err, timedOut);
      return { answered: false, error: this.failureError(req, failure, err), retryable: mayRepeatFailure(failure, idempotent) };
    } finally {
      clearTimeout(timer);
    }
  }

  private failureError(req: UpstreamRequest, failure: FailureClass, err: unknown): UpstreamError {
    const where = `${this.options.name} ${req.method} ${req.endpoint} (${this.origin})`;
    switch (failure.kind) {
      case 'timeout':
        return { kind: 'timeout', message: `${where}: no answer within ${this.options.timeoutMs} ms${failure.connecting ? ' (connecting)' : ''}` };
      case 'tls':
        return { kind: 'network', message: this.clean(`${where}: TLS handshake refused (${failure.code}): ${errorText(err)}`) };
      case 'network': {
        // With TLS 1.3 a refused client certificate shows up only as a closed connection.
        const hint = failure.code === 'UND_ERR_SOCKET' && this.origin.startsWith('https:') ? (this.options.closedConnectionHint ?? '') : '';
        return { kind: 'network', message: this.clean(`${where}: ${failure.code ? `${failure.code}: ` : ''}${errorText(err)}${hint}`) };
      }
    }
  }
}

function detailSuffix(text: string): string {
  const detail = statusDetail(text);
  return detail ? `: ${detail}` : '';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
