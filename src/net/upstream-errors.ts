// What the QRS and Qlik Cloud clients have in common: the typed result of a call, the health snapshot
// for the status page, and reading undici/Node network errors (the first useful code in the cause
// chain, since undici wraps socket errors, and one line of text from that chain).

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

/** Waits before retry `attempt` (1-based): exponential from baseMs, capped at maxMs, with jitter (50-100%). */
export function waitBeforeRetry(attempt: number, baseMs: number, maxMs: number): Promise<void> {
  const delay = Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
  return new Promise((r) => setTimeout(r, delay));
}
