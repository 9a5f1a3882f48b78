// Rate-limited logging of refused input: the first refusal of a reason in a minute is a warning with
// its detail, the rest of that minute go to debug, so a flood of bad input cannot flood the log. The
// metric counts every one (the caller does that).
import type { Logger } from '../observability/logger.ts';

const WINDOW_MS = 60_000;

export class RejectionLog {
  private readonly seen = new Map<string, { windowStart: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly name: string,
    /** The metric label, also put on each line. */
    private readonly source: string,
  ) {}

  note(reason: string, detail: string, from: string): void {
    const now = Date.now();
    const entry = this.seen.get(reason);
    const text = `${this.name}: input${from ? ` from ${from}` : ''} refused (${reason}): ${detail}`;
    if (!entry || now - entry.windowStart >= WINDOW_MS) {
      const suppressed = entry?.suppressed ?? 0;
      this.seen.set(reason, { windowStart: now, suppressed: 0 });
      this.logger.warn({ source: this.source, reason, from, ...(suppressed > 0 ? { alsoRefusedLastWindow: suppressed } : {}) }, text);
      return;
    }
    entry.suppressed += 1;
    this.logger.debug({ source: this.source, reason, from }, text);
  }
}
