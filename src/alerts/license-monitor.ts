// Checks the Qlik Sense server license on a schedule (GET /qrs/license) and publishes its status
// (P12) and, when it has expired or is about to, an alert (P13). The date arithmetic is a pure
// function so it can be tested on its own.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { MessageSink, OutgoingMessage } from '../store/types.ts';
import { licenseExpiredPayload, licenseExpiringPayload, licenseStatusPayload } from './payloads.ts';
import { Schedule, type ScheduleSpec } from './schedule.ts';

export interface LicenseMonitorOptions {
  schedule: ScheduleSpec;
  /** alert.thresholdDays: P13 is sent when the license expires within this many days. */
  thresholdDays: number;
  /** destination.mqtt.sendRecurring.enable: send P12 at every check. */
  sendRecurring: boolean;
  /** destination.mqtt.sendAlert.enable: send P13 when expired or within the threshold. */
  sendAlert: boolean;
  topics: { license: string; expire: string };
  now?: () => Date;
}

export type LicenseFetchResult =
  | { ok: true; value: Record<string, unknown> }
  | { ok: false; error: { kind: string; message: string; status?: number } };

export interface LicenseMonitorDeps {
  qrs: { getLicense(): Promise<LicenseFetchResult> };
  sink: MessageSink;
  logger: Logger;
  metrics: Metrics;
}

export interface LicenseStatus {
  licenseExpired: boolean;
  expiryDateStr: string;
  daysUntilExpiry: number;
}

export type LicenseReading = { ok: true; value: LicenseStatus } | { ok: false; reason: string; expiryDateStr?: string };

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Reads the QRS license object.
 *
 * - `licenseExpired` is `isExpired === true`.
 * - `expiryDateStr` is the text after `Valid To:` in `keyDetails`, up to the end of that line,
 *   trimmed (Butler cuts at the next colon, which truncates a time part; the whole text is kept).
 * - The expiry instant is that date at 00:00 UTC, which is what Butler's `new Date("YYYY-MM-DD")`
 *   gives (JavaScript reads a date-only ISO string as UTC). A time part (`2027-01-31 23:59:59`,
 *   `2027-01-31T00:00:00`) is honoured and read as UTC too, unless it carries its own offset
 *   (`Z`, `+02:00`). Other formats are not guessed at.
 * - `daysUntilExpiry` = (expiry − now) in days, rounded up, so it counts calendar days (UTC) for a
 *   date-only value: 17 from any time on 2026-11-23 to 2026-12-10, 0 during the expiry day itself,
 *   -1 during the day after. Butler takes the absolute value, turning "expired 3 days ago" into 3;
 *   here it stays negative.
 * - A missing or unparseable date gives no reading at all (a reason instead): P12 has no honest
 *   value for `daysUntilExpiry` then, and P13 cannot name a date.
 */
export function readLicense(license: Record<string, unknown>, now: Date): LicenseReading {
  const keyDetails = license['keyDetails'];
  if (typeof keyDetails !== 'string') return { ok: false, reason: 'the license has no keyDetails text' };
  const line = keyDetails.split(/\r?\n/).find((l) => l.includes('Valid To:'));
  if (line === undefined) return { ok: false, reason: 'keyDetails has no "Valid To:" line' };
  const expiryDateStr = line.slice(line.indexOf('Valid To:') + 'Valid To:'.length).trim();
  if (expiryDateStr === '') return { ok: false, reason: '"Valid To:" is empty', expiryDateStr };
  const expiry = parseExpiryDate(expiryDateStr);
  if (expiry === null) return { ok: false, reason: `"Valid To: ${expiryDateStr}" is not a date of the form YYYY-MM-DD (optionally with a time)`, expiryDateStr };
  const days = Math.ceil((expiry.getTime() - now.getTime()) / DAY_MS);
  return { ok: true, value: { licenseExpired: license['isExpired'] === true, expiryDateStr, daysUntilExpiry: days === 0 ? 0 : days } };
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]][Z|±HH:MM]]`; UTC when no offset is given; null when not a real date. */
export function parseExpiryDate(text: string): Date | null {
  const m = DATE_RE.exec(text);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const millis = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const check = new Date(utc);
  // Date.UTC rolls 2027-02-30 over into March; such a date is not real.
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return null;
  const offset = m[8];
  if (!offset || offset.toUpperCase() === 'Z') return check;
  const om = /^([+-])(\d{2}):?(\d{2})$/.exec(offset);
  if (!om) return null;
  const minutes = (Number(om[2]) * 60 + Number(om[3])) * (om[1] === '-' ? -1 : 1);
  return new Date(utc - minutes * 60_000);
}

/**
 * P12 only when sendRecurring; P13 only when sendAlert and the license is expired or within
 * thresholdDays. "Expired" for the P13 wording means `isExpired`, or a date whose whole day has
 * passed (days < 0): Sense may not have flagged it yet, and "about to expire in -2 days" would be
 * nonsense. Whether `isExpired` is set is still reported as such in P12.
 */
export function licenseMessages(status: LicenseStatus, options: Pick<LicenseMonitorOptions, 'thresholdDays' | 'sendRecurring' | 'sendAlert' | 'topics'>): OutgoingMessage[] {
  const messages: OutgoingMessage[] = [];
  if (options.sendRecurring && options.topics.license !== '') {
    messages.push({ topic: options.topics.license, payload: licenseStatusPayload(status), kind: 'license_status' });
  }
  if (options.sendAlert && options.topics.expire !== '') {
    const expired = status.licenseExpired || status.daysUntilExpiry < 0;
    if (expired) {
      messages.push({ topic: options.topics.expire, payload: licenseExpiredPayload(status.expiryDateStr), kind: 'license_expire' });
    } else if (status.daysUntilExpiry <= options.thresholdDays) {
      messages.push({ topic: options.topics.expire, payload: licenseExpiringPayload(status.daysUntilExpiry, status.expiryDateStr), kind: 'license_expire' });
    }
  }
  return messages;
}

export class LicenseMonitor {
  private readonly schedule: Schedule;
  private readonly now: () => Date;

  constructor(
    private readonly options: LicenseMonitorOptions,
    private readonly deps: LicenseMonitorDeps,
  ) {
    this.now = options.now ?? (() => new Date());
    this.schedule = new Schedule(options.schedule, () => this.check(), { logger: deps.logger });
  }

  start(): void {
    this.deps.logger.info({ schedule: this.options.schedule.source, thresholdDays: this.options.thresholdDays }, 'checking the Qlik Sense server license on schedule');
    this.schedule.start();
  }

  /** Stops scheduling and waits for a check in progress to finish. */
  async stop(): Promise<void> {
    await this.schedule.stop();
  }

  /** One license check; the schedule calls this, tests may too. */
  async check(): Promise<void> {
    const fetched = await this.deps.qrs.getLicense();
    if (!fetched.ok) {
      const { kind, message, status } = fetched.error;
      this.deps.metrics.eventsRejected.inc({ source: 'license_monitor', reason: `qrs_${kind}` });
      this.deps.logger.warn({ reason: kind, status }, `server license check failed, nothing published: could not read the license from QRS (${kind}${status === undefined ? '' : ` ${status}`}: ${message})`);
      return;
    }
    const reading = readLicense(fetched.value, this.now());
    if (!reading.ok) {
      this.deps.metrics.eventsRejected.inc({ source: 'license_monitor', reason: 'no_expiry_date' });
      this.deps.logger.warn({ expiryDateStr: reading.expiryDateStr }, `server license check: no expiry date could be read (${reading.reason}); no license status or alert published`);
      return;
    }
    const status = reading.value;
    const log = { ...status, thresholdDays: this.options.thresholdDays };
    if (status.licenseExpired || status.daysUntilExpiry < 0) {
      this.deps.logger.warn(log, `Qlik Sense server license expired on ${status.expiryDateStr}`);
    } else if (status.daysUntilExpiry <= this.options.thresholdDays) {
      this.deps.logger.warn(log, `Qlik Sense server license expires in ${status.daysUntilExpiry} days, on ${status.expiryDateStr}`);
    } else {
      this.deps.logger.info(log, `Qlik Sense server license valid to ${status.expiryDateStr} (${status.daysUntilExpiry} days)`);
    }

    const messages = licenseMessages(status, this.options);
    if (messages.length === 0) return;
    try {
      await this.deps.sink.enqueue(messages);
    } catch (err) {
      // The sink counted the refusal (a full outbox is waited out there; this is what remains).
      this.deps.logger.error({ err: (err as Error).message, kinds: messages.map((m) => m.kind) }, 'could not queue the server license messages; the next check will send them again');
    }
  }
}
