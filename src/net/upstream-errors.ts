// What a failed upstream call is: the typed result the QRS and Qlik Cloud clients return, the health
// snapshot for the status page, reading undici/Node network errors (the first useful code in the
// cause chain, since undici wraps socket errors, and one line of text from that chain), and the rule
// that decides whether a failed attempt may be repeated.

export interface UpstreamError {
  kind: 'network' | 'timeout' | 'http' | 'parse';
  status?: number;
  message: string;
}

export type UpstreamResult<T> = { ok: true; value: T } | { ok: false; error: UpstreamError };

export interface UpstreamHealth {
  /** null until the first call finished. */
  reachable: boolean | null;
  /** When the service last answered with a status below 500. */
  lastSuccessAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

// Errors raised before a request could reach the server: safe to repeat even for a POST.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);
// Certificate problems do not heal by retrying.
const TLS_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** The first string code found along the cause chain, skipping undici's generic UND_ERR_SOCKET. */
export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET') return code;
    e = (e as { cause?: unknown }).cause;
  }
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The distinct messages along the cause chain, joined with ": ". */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    if (!parts.includes(e.message)) parts.push(e.message);
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(': ') || String(err);
}

/** What went wrong in an attempt that got no HTTP answer, and whether it may be repeated. */
export type FailureClass =
  /** The deadline passed; `connecting` when it passed before a connection existed (nothing was sent). */
  | { kind: 'timeout'; connecting: boolean }
  /** The server's certificate was refused, or the TLS layer itself failed: repeating will not help. */
  | { kind: 'tls'; code: string }
  /** The connection failed; `sent` is false only when the request certainly never left. */
  | { kind: 'network'; code: string | undefined; sent: boolean };

/**
 * Sorts a thrown request error. `timedOut` says the caller's own deadline fired (the abort error
 * itself carries no useful code).
 */
export function classifyFailure(err: unknown, timedOut: boolean): FailureClass {
  const code = errorCode(err);
  if (timedOut || (code !== undefined && TIMEOUT_CODES.has(code))) return { kind: 'timeout', connecting: code === 'UND_ERR_CONNECT_TIMEOUT' };
  if (code !== undefined && (TLS_CERT_CODES.has(code) || code.startsWith('ERR_SSL_'))) return { kind: 'tls', code };
  return { kind: 'network', code, sent: !(code !== undefined && NOT_SENT_CODES.has(code)) };
}

/**
 * Whether a failed attempt may be made again. A request that may have reached the server is
 * repeated only when repeating it is harmless (`idempotent`); one that certainly did not is always
 * repeated; a certificate problem never is.
 */
export function mayRepeatFailure(failure: FailureClass, idempotent: boolean): boolean {
  switch (failure.kind) {
    case 'tls':
      return false;
    case 'timeout':
      return idempotent || failure.connecting;
    case 'network':
      return idempotent || !failure.sent;
  }
}

/**
 * Whether an HTTP answer may be asked again. 429 means the server turned the request away before
 * handling it, so any method may repeat it; a 5xx may come after the work was done, so only an
 * idempotent request repeats it. Other answers are final.
 */
export function mayRepeatStatus(status: number, idempotent: boolean): boolean {
  if (status === 429) return true;
  return status >= 500 && idempotent;
}

/** Waits before retry `attempt` (1-based): exponential from baseMs, capped at maxMs, with jitter (50-100%). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}

/** A Retry-After header (seconds or an HTTP date) in milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
