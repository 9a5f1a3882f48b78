// Qlik Cloud signs a webhook delivery with HMAC-SHA256 of the raw request body, keyed with the
// webhook's secret, and sends the digest as lower-case hex in the `Qlik-Signature` header.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'qlik-signature';

export function signBody(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

export type SignatureCheck = { ok: true } | { ok: false; reason: 'signature_missing' | 'signature_malformed' | 'signature_invalid'; detail: string };

/** Checks the header against the body in constant time (hex compared as bytes, so case does not matter). */
export function verifySignature(body: Buffer, header: string | string[] | undefined, secret: string): SignatureCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'signature_missing', detail: 'the delivery has no Qlik-Signature header' };
  if (Array.isArray(header)) return { ok: false, reason: 'signature_malformed', detail: 'the delivery has more than one Qlik-Signature header' };
  const given = header.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(given)) return { ok: false, reason: 'signature_malformed', detail: 'Qlik-Signature is not 64 hex digits (HMAC-SHA256)' };
  const expected = createHmac('sha256', secret).update(body).digest();
  if (!timingSafeEqual(Buffer.from(given, 'hex'), expected)) return { ok: false, reason: 'signature_invalid', detail: 'Qlik-Signature does not match the body and the webhook secret' };
  return { ok: true };
}
