// Reading undici/Node network errors for the QRS and Qlik Cloud clients: the first useful code in an
// error's cause chain (undici wraps socket errors), and one line of text from that chain.

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
