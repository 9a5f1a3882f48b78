// When the periodic monitors (license, Windows services) run. Accepts Butler's text form
// ("every 30 seconds", parsed by @breejs/later) or a cron expression (croner), and drives a check:
// once at start, then at each due time, never two runs of the same check at once.
import { createRequire } from 'node:module';
import { Cron } from 'croner';
import type { Logger } from '../observability/logger.ts';

/**
 * The compiled form of a text schedule as @breejs/later produces it (`{ schedules, exceptions }`).
 * Kept as plain data so a ScheduleSpec can sit inside the validated config.
 */
export interface LaterScheduleData {
  schedules: Record<string, unknown>[];
  exceptions: Record<string, unknown>[];
}

export type ScheduleSpec =
  | { kind: 'text'; source: string; later: LaterScheduleData }
  | { kind: 'cron'; source: string };

export type ParseScheduleResult = { ok: true; value: ScheduleSpec } | { ok: false; error: string };

// @breejs/later ships CommonJS without type declarations; this is the slice used here.
interface LaterModule {
  parse: { text(text: string): LaterScheduleData & { error: number } };
  schedule(data: LaterScheduleData): { next(count: number, start?: Date): Date | Date[] | 0 };
}
// Loaded at the first text schedule: a config without monitors never needs it (about 3 MB).
let laterModule: LaterModule | null = null;
const laterLib = (): LaterModule => (laterModule ??= createRequire(import.meta.url)('@breejs/later') as LaterModule);

/**
 * Reads a schedule written as Butler writes it (`every 30 seconds`, `every 24 hours`, any sentence
 * later's text parser accepts) or as a cron expression (5 to 7 fields, or a nickname like @daily).
 *
 * Text schedules keep Butler's meaning, which is clock-aligned rather than "N units after start":
 * `every 30 seconds` fires at :00 and :30 of each minute, `every 24 hours` at 00:00 UTC (later
 * works in UTC unless told otherwise, and Butler never tells it), `every 90 seconds` once a minute.
 * Cron expressions follow the usual convention of the local time zone.
 */
export function parseSchedule(text: string): ParseScheduleResult {
  const source = text.trim();
  const expected = `expected a schedule like "every 30 seconds" or a cron expression, got ${JSON.stringify(text)}`;
  if (source === '') return { ok: false, error: expected };

  const parsed = laterLib().parse.text(source);
  // later reports the character position where it stopped understanding the text, -1 when it read all of it.
  if (parsed.error === -1 && parsed.schedules.length > 0) {
    const spec: ScheduleSpec = { kind: 'text', source, later: { schedules: parsed.schedules, exceptions: parsed.exceptions } };
    if (nextRunAfter(spec, new Date()) === null) return { ok: false, error: `${expected} (it never runs)` };
    return { ok: true, value: spec };
  }

  if (looksLikeCron(source)) {
    let cron: Cron;
    try {
      cron = new Cron(source);
    } catch (err) {
      return { ok: false, error: `${expected} (${cronReason(err)})` };
    }
    const next = cron.nextRun(new Date());
    cron.stop();
    if (next === null) return { ok: false, error: `${expected} (it never runs)` };
    return { ok: true, value: { kind: 'cron', source } };
  }
  return { ok: false, error: expected };
}

/** The first due time strictly after `after`, or null when the schedule has no further runs. */
export function nextRunAfter(spec: ScheduleSpec, after: Date): Date | null {
  if (spec.kind === 'cron') {
    const cron = new Cron(spec.source);
    const next = cron.nextRun(after);
    cron.stop();
    return next;
  }
  // later answers with the start of the matching range, which is `from` itself when `from` lies
  // inside a matching minute/hour/day ("every 5 minutes" at 10:05:10 answers 10:05:10), and it
  // carries `from`'s milliseconds into second-level schedules. Start from a whole second and take
  // the first candidate that is really in the future.
  const from = new Date(Math.floor(after.getTime() / 1000) * 1000);
  const found = laterLib().schedule(spec.later).next(3, from);
  const candidates = found === 0 ? [] : Array.isArray(found) ? found : [found];
  return candidates.find((d) => d.getTime() > after.getTime()) ?? null;
}

/** Cron has 5–7 space-separated fields or starts with @ (nicknames); anything else is meant as text. */
function looksLikeCron(source: string): boolean {
  if (source.startsWith('@')) return true;
  const fields = source.split(/\s+/).length;
  return fields >= 5 && fields <= 7 && /^[0-9*?LW#/,\-A-Za-z\s]+$/.test(source) && /[0-9*?]/.test(source.charAt(0));
}

function cronReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^CronPattern:\s*/, '');
}

// setTimeout cannot wait longer than about 24.8 days; long waits are taken in hops, which also lets
// a wall-clock change (NTP step, DST for cron) be picked up within the hop.
const MAX_WAIT_MS = 60 * 60 * 1000;
// A timer may fire a hair before the wall clock reaches the due time; treat that as on time.
const EARLY_TOLERANCE_MS = 50;

/**
 * Runs `run` at start and then whenever the schedule is due.
 *
 * - A due time that arrives while the previous run is still busy is skipped (logged at debug);
 *   the next one is computed from the clock, so a slow check never causes a burst of catch-up runs.
 * - A run that throws is logged; the schedule keeps going.
 * - Timers are unref'd: a schedule does work while the process is up, but it is not what keeps the
 *   process up. That belongs to the composition root, which holds the long-lived sockets and
 *   servers and decides when to stop; a schedule left running by mistake (a failed start path, a
 *   test) then never keeps a process alive on its own. A run already in progress holds its own
 *   handles (child processes, sockets) and finishes normally.
 */
export class Schedule {
  private timer: NodeJS.Timeout | undefined;
  private dueAt: Date | null = null;
  private inFlight: Promise<void> | null = null;
  private running = false;

  constructor(
    private readonly spec: ScheduleSpec,
    private readonly run: () => Promise<void>,
    private readonly deps: { logger: Logger },
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.fire();
    this.arm(new Date());
  }

  /** Stops future runs and resolves once a run in progress (if any) has finished. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = null;
    if (this.inFlight) await this.inFlight;
  }

  /** The next due time, or null when stopped or the schedule has no further runs. */
  nextRun(): Date | null {
    return this.dueAt;
  }

  private arm(after: Date): void {
    if (!this.running) return;
    const due = nextRunAfter(this.spec, after);
    this.dueAt = due;
    if (due === null) {
      this.deps.logger.warn({ schedule: this.spec.source }, 'schedule has no further runs; no more checks will be made');
      return;
    }
    this.wait(due);
  }

  private wait(due: Date): void {
    const delay = Math.min(Math.max(due.getTime() - Date.now(), 0), MAX_WAIT_MS);
    this.timer = setTimeout(() => this.onTimer(due), delay);
    this.timer.unref();
  }

  private onTimer(due: Date): void {
    this.timer = undefined;
    if (!this.running) return;
    const now = Date.now();
    if (now < due.getTime() - EARLY_TOLERANCE_MS) {
      // An intermediate hop of a long wait.
      this.wait(due);
      return;
    }
    this.fire();
    this.arm(new Date(Math.max(now, due.getTime())));
  }

  private fire(): void {
    if (this.inFlight) {
      this.deps.logger.debug({ schedule: this.spec.source }, 'previous check still running; skipping this scheduled run');
      return;
    }
    const current = (async () => {
      try {
        await this.run();
      } catch (err) {
        this.deps.logger.error({ err, schedule: this.spec.source }, 'scheduled check failed unexpectedly');
      }
    })();
    this.inFlight = current;
    void current.finally(() => {
      if (this.inFlight === current) this.inFlight = null;
    });
  }
}
