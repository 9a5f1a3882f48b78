// Schedules: Butler's text form and cron are read (or refused with a clear reason), due times are
// computed as Butler's later-based timers compute them, and a running Schedule runs at once,
// never overlaps itself, and waits for a run in progress when stopped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedule, nextRunAfter, Schedule, type ScheduleSpec } from '../../src/alerts/schedule.ts';
import { createLogger } from '../../src/observability/logger.ts';

function spec(text: string): ScheduleSpec {
  const parsed = parseSchedule(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

test('text schedules as Butler writes them', () => {
  assert.deepEqual(parseSchedule('every 30 seconds'), { ok: true, value: { kind: 'text', source: 'every 30 seconds', later: { schedules: [{ s: [0, 30] }], exceptions: [] } } });
  assert.deepEqual(parseSchedule('every 24 hours'), { ok: true, value: { kind: 'text', source: 'every 24 hours', later: { schedules: [{ h: [0] }], exceptions: [] } } });
  for (const text of ['every 5 minutes', 'every 1 day', 'every 2 hours', '  every 30 seconds  ']) {
    const parsed = parseSchedule(text);
    assert.equal(parsed.ok && parsed.value.kind, 'text', text);
  }
});

test('cron expressions (5 or 6 fields, nicknames)', () => {
  assert.deepEqual(parseSchedule('*/5 * * * *'), { ok: true, value: { kind: 'cron', source: '*/5 * * * *' } });
  assert.deepEqual(parseSchedule('*/10 * * * * *'), { ok: true, value: { kind: 'cron', source: '*/10 * * * * *' } });
  assert.deepEqual(parseSchedule('@daily'), { ok: true, value: { kind: 'cron', source: '@daily' } });
  assert.deepEqual(parseSchedule('0 6 * * MON-FRI'), { ok: true, value: { kind: 'cron', source: '0 6 * * MON-FRI' } });
});

test('invalid schedules give an error naming what was expected and what was found', () => {
  assert.deepEqual(parseSchedule('sometimes'), { ok: false, error: 'expected a schedule like "every 30 seconds" or a cron expression, got "sometimes"' });
  assert.deepEqual(parseSchedule(''), { ok: false, error: 'expected a schedule like "every 30 seconds" or a cron expression, got ""' });
  assert.deepEqual(parseSchedule('every 30 seconds please'), { ok: false, error: 'expected a schedule like "every 30 seconds" or a cron expression, got "every 30 seconds please"' });
  assert.deepEqual(parseSchedule('61 * * * *'), { ok: false, error: 'expected a schedule like "every 30 seconds" or a cron expression, got "61 * * * *" (Invalid value for minute: 61)' });
  assert.deepEqual(parseSchedule('0 0 31 2 *'), { ok: false, error: 'expected a schedule like "every 30 seconds" or a cron expression, got "0 0 31 2 *" (it never runs)' });
});

test('due times: clock-aligned, strictly after the given instant', () => {
  const at = (iso: string) => new Date(iso);
  const next = (text: string, iso: string) => nextRunAfter(spec(text), at(iso))?.toISOString();
  assert.equal(next('every 30 seconds', '2026-11-23T10:05:10.500Z'), '2026-11-23T10:05:30.000Z');
  assert.equal(next('every 30 seconds', '2026-11-23T10:05:30.000Z'), '2026-11-23T10:06:00.000Z');
  assert.equal(next('every 5 minutes', '2026-11-23T10:05:10.000Z'), '2026-11-23T10:10:00.000Z');
  assert.equal(next('every 5 minutes', '2026-11-23T10:04:59.900Z'), '2026-11-23T10:05:00.000Z');
  assert.equal(next('every 24 hours', '2026-11-23T10:05:10.000Z'), '2026-11-24T00:00:00.000Z');
  assert.equal(next('every 24 hours', '2026-11-24T00:00:00.000Z'), '2026-11-25T00:00:00.000Z');
  assert.equal(next('every 1 day', '2026-11-23T10:05:10.000Z'), '2026-11-24T00:00:00.000Z');
  assert.equal(next('*/10 * * * * *', '2026-11-23T10:05:10.500Z'), '2026-11-23T10:05:20.000Z');
  assert.equal(next('*/5 * * * *', '2026-11-23T10:05:10.000Z'), '2026-11-23T10:10:00.000Z');
});

function captureLogger(lines: Record<string, unknown>[]) {
  return createLogger({ level: 'debug', pretty: false, destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) } });
}

async function until(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('runs at once on start, skips a due time while a run is busy, waits for it on stop', async () => {
  const lines: Record<string, unknown>[] = [];
  let runs = 0;
  let release: (() => void) | null = null;
  const schedule = new Schedule(
    spec('* * * * * *'),
    async () => {
      runs += 1;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    },
    { logger: captureLogger(lines) },
  );
  schedule.start();
  assert.equal(runs, 1, 'the first run starts synchronously within start()');

  const skipped = () => lines.some((l) => l['msg'] === 'previous check still running; skipping this scheduled run');
  await until(skipped, 'a skipped due time');
  assert.equal(runs, 1, 'no second run while the first is busy');

  const firstRelease = release as (() => void) | null;
  release = null;
  firstRelease?.();
  await until(() => runs === 2, 'the next run after the first finished');

  let stopped = false;
  const stopping = schedule.stop().then(() => {
    stopped = true;
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(stopped, false, 'stop waits for the run in progress');
  (release as (() => void) | null)?.();
  await stopping;
  assert.equal(stopped, true);
  assert.equal(schedule.nextRun(), null);

  const after = runs;
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(runs, after, 'no run after stop');
});

test('a run that throws is logged and the schedule goes on', async () => {
  const lines: Record<string, unknown>[] = [];
  let runs = 0;
  const schedule = new Schedule(
    spec('* * * * * *'),
    async () => {
      runs += 1;
      throw new Error('boom');
    },
    { logger: captureLogger(lines) },
  );
  schedule.start();
  await until(() => runs >= 2, 'a second run after a failing first');
  await schedule.stop();
  const failures = lines.filter((l) => l['msg'] === 'scheduled check failed unexpectedly');
  assert.ok(failures.length >= 2);
  assert.equal((failures[0]?.['err'] as { message?: string } | undefined)?.message, 'boom');
  assert.equal(failures[0]?.['level'], 'error');
});
