// The one field sanitiser shared by every Sense datagram parser: log-appender fields end up in
// MQTT payloads, logs and the status page, so control characters are removed and length is bounded.
// Pure; no I/O.

/** Longest a sanitised field may be, counted in UTF-16 code units (see sanitizeField). */
export const MAX_FIELD_LENGTH = 500;

// C0 controls (U+0000–U+001F, which includes TAB, CR and LF) and DEL (U+007F).
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/g;

/**
 * Deletes U+0000–U+001F and U+007F, then keeps the first MAX_FIELD_LENGTH characters.
 *
 * The cut counts UTF-16 code units, exactly like `String.prototype.substring(0, 500)` in
 * JavaScript, because that is how Butler-compatible consumers measure it. A character outside
 * the Basic Multilingual Plane counts as two, and a cut that falls between the two halves of a
 * surrogate pair keeps the first half on its own (JSON.stringify then writes it as `\ud83d`).
 * Deletion happens before the cut, so removed characters never use up the 500.
 */
export function sanitizeField(value: string): string {
  const cleaned = value.replace(CONTROL_CHARACTERS, '');
  return cleaned.length > MAX_FIELD_LENGTH ? cleaned.substring(0, MAX_FIELD_LENGTH) : cleaned;
}

/** True when `value` is already what sanitizeField would return (used by tests and assertions). */
export function isSanitized(value: string): boolean {
  return value.length <= MAX_FIELD_LENGTH && !/[\u0000-\u001f\u007f]/.test(value);
}
