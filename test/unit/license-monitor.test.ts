// The server license check (P12/P13): expiry read from keyDetails, days counted from a fixed
// "now", alert thresholds and switches, and the failure paths (QRS down, no date, outbox full).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LicenseMonitor, type LicenseFetchResult, type LicenseMonitorOptions } from '../../src/alerts/license-monitor.ts';
import { parseSchedule } from '../../src/alerts/schedule.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { OutboxFullError, type MessageSink, type OutgoingMessage } from '../../src/store/types.ts';

const LICENSE_TOPIC = 'qliksense/qliksense_server_license';
const EXPIRE_TOPIC = 'qliksense/qliksense_server_license_expire';

function license(keyDetails: unknown, isExpired = false): Record<string, unknown> {
  return {
    id: 'l1',
    serial: '9999 0000 1111 2222',
    name: 'CORP',
    organization: 'CORP',
    product: 0,
    numberOfCores: 8,
    isExpired,
    expiredReason: '',
    isBlacklisted: false,
    isInvalid: false,
    isSubscription: true,
    keyDetails,
    privileges: null,
    schemaPath: 'License',
  };
}

const validTo = (date: string) => `Valid From: 2025-01-01\nValid To: ${date}\nProduct: Qlik Sense Enterprise\n`;

interface Harness {
  monitor: LicenseMonitor;
  sent: { topic: string; payload: string }[];
  kinds: (string | undefined)[];
  logs: Record<string, unknown>[];
  metrics: Metrics;
}

function harness(
  answer: LicenseFetchResult,
  opts: Partial<Omit<LicenseMonitorOptions, 'now'>> & { now?: string; sink?: MessageSink } = {},
): Harness {
  const sent: { topic: string; payload: string }[] = [];
  const kinds: (string | undefined)[] = [];
  const logs: Record<string, unknown>[] = [];
  const sink: MessageSink = opts.sink ?? {
    async enqueue(messages: OutgoingMessage[]) {
      for (const m of messages) {
        sent.push({ topic: m.topic, payload: String(m.payload) });
        kinds.push(m.kind);
      }
    },
  };
  const metrics = new Metrics({ processMetrics: false });
  const logger = createLogger({ level: 'debug', pretty: false, destination: { write: (l: string) => logs.push(JSON.parse(l) as Record<string, unknown>) } });
  const schedule = parseSchedule('every 24 hours');
  if (!schedule.ok) throw new Error(schedule.error);
  const now = new Date(opts.now ?? '2026-11-23T10:00:00Z');
  const monitor = new LicenseMonitor(
    {
      schedule: opts.schedule ?? schedule.value,
      thresholdDays: opts.thresholdDays ?? 60,
      sendRecurring: opts.sendRecurring ?? true,
      sendAlert: opts.sendAlert ?? true,
      topics: opts.topics ?? { license: LICENSE_TOPIC, expire: EXPIRE_TOPIC },
      now: () => now,
    },
    { qrs: { getLicense: async () => answer }, sink, logger, metrics },
  );
  return { monitor, sent, kinds, logs, metrics };
}

test('far from expiry: status only', async () => {
  const h = harness({ ok: true, value: license(validTo('2027-01-31')) });
  await h.monitor.check();
  assert.deepEqual(h.sent, [{ topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2027-01-31","daysUntilExpiry":69}' }]);
  assert.deepEqual(h.kinds, ['license_status']);
});

test('within the threshold: status and the about-to-expire alert', async () => {
  const h = harness({ ok: true, value: license(validTo('2026-12-10')) });
  await h.monitor.check();
  assert.deepEqual(h.sent, [
    { topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2026-12-10","daysUntilExpiry":17}' },
    { topic: EXPIRE_TOPIC, payload: 'Qlik Sense server license is about to expire in 17 days, on 2026-12-10' },
  ]);
  assert.deepEqual(h.kinds, ['license_status', 'license_expire']);
});

test('the threshold is inclusive', async () => {
  const at = harness({ ok: true, value: license(validTo('2026-12-10')) }, { thresholdDays: 17 });
  await at.monitor.check();
  assert.equal(at.sent.length, 2);
  const below = harness({ ok: true, value: license(validTo('2026-12-10')) }, { thresholdDays: 16 });
  await below.monitor.check();
  assert.deepEqual(below.sent, [{ topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2026-12-10","daysUntilExpiry":17}' }]);
});

test('days are calendar days (UTC): the same count at any time of the day', async () => {
  for (const now of ['2026-11-23T00:00:00Z', '2026-11-23T00:00:01Z', '2026-11-23T23:59:59Z']) {
    const h = harness({ ok: true, value: license(validTo('2026-12-10')) }, { now, sendAlert: false });
    await h.monitor.check();
    assert.deepEqual(h.sent, [{ topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2026-12-10","daysUntilExpiry":17}' }], now);
  }
});

test('expired (isExpired) with a past date: negative days and the expired alert', async () => {
  const h = harness({ ok: true, value: license(validTo('2026-11-20'), true) });
  await h.monitor.check();
  assert.deepEqual(h.sent, [
    { topic: LICENSE_TOPIC, payload: '{"licenseExpired":true,"expiryDateStr":"2026-11-20","daysUntilExpiry":-3}' },
    { topic: EXPIRE_TOPIC, payload: 'Qlik Sense server license expired on 2026-11-20' },
  ]);
});

test('a past date not (yet) flagged isExpired still gets the expired wording', async () => {
  const h = harness({ ok: true, value: license(validTo('2026-11-20'), false) });
  await h.monitor.check();
  assert.deepEqual(h.sent, [
    { topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2026-11-20","daysUntilExpiry":-3}' },
    { topic: EXPIRE_TOPIC, payload: 'Qlik Sense server license expired on 2026-11-20' },
  ]);
});

test('on the expiry day itself: 0 days, about to expire', async () => {
  const h = harness({ ok: true, value: license(validTo('2026-11-23')) });
  await h.monitor.check();
  assert.deepEqual(h.sent, [
    { topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2026-11-23","daysUntilExpiry":0}' },
    { topic: EXPIRE_TOPIC, payload: 'Qlik Sense server license is about to expire in 0 days, on 2026-11-23' },
  ]);
});

test('isExpired set while the date is in the future: expired alert, days as counted', async () => {
  const h = harness({ ok: true, value: license(validTo('2027-01-31'), true) });
  await h.monitor.check();
  assert.deepEqual(h.sent, [
    { topic: LICENSE_TOPIC, payload: '{"licenseExpired":true,"expiryDateStr":"2027-01-31","daysUntilExpiry":69}' },
    { topic: EXPIRE_TOPIC, payload: 'Qlik Sense server license expired on 2027-01-31' },
  ]);
});

test('dates with a time part, an ISO T, an offset, and CRLF line ends', async () => {
  const cases: [string, string, string][] = [
    ['Valid To: 2026-12-10 23:59:59\n', '2026-11-23T10:00:00Z', '{"licenseExpired":false,"expiryDateStr":"2026-12-10 23:59:59","daysUntilExpiry":18}'],
    ['Valid To: 2026-12-10T00:00:00\n', '2026-11-23T10:00:00Z', '{"licenseExpired":false,"expiryDateStr":"2026-12-10T00:00:00","daysUntilExpiry":17}'],
    ['Valid To: 2026-12-10T00:00:00+02:00\n', '2026-11-23T23:00:00Z', '{"licenseExpired":false,"expiryDateStr":"2026-12-10T00:00:00+02:00","daysUntilExpiry":16}'],
    ['Valid To: 2026-12-10\n', '2026-11-23T23:00:00Z', '{"licenseExpired":false,"expiryDateStr":"2026-12-10","daysUntilExpiry":17}'],
    ['Valid From: 2025-01-01\r\nValid To:   2026-12-10  \r\nProduct: X\r\n', '2026-11-23T10:00:00Z', '{"licenseExpired":false,"expiryDateStr":"2026-12-10","daysUntilExpiry":17}'],
  ];
  for (const [keyDetails, now, expected] of cases) {
    const h = harness({ ok: true, value: license(keyDetails) }, { now, sendAlert: false });
    await h.monitor.check();
    assert.deepEqual(h.sent, [{ topic: LICENSE_TOPIC, payload: expected }], keyDetails);
  }
});

test('missing or unparseable expiry date: nothing published, the reason logged and counted', async () => {
  const cases: [unknown, RegExp][] = [
    ['Valid From: 2025-01-01\nProduct: Qlik Sense Enterprise\n', /keyDetails has no "Valid To:" line/],
    [validTo('someday'), /"Valid To: someday" is not a date/],
    [validTo('2027-02-30'), /"Valid To: 2027-02-30" is not a date/],
    [validTo(''), /"Valid To:" is empty/],
    [undefined, /the license has no keyDetails text/],
  ];
  for (const [keyDetails, reason] of cases) {
    const h = harness({ ok: true, value: license(keyDetails, true) });
    await h.monitor.check();
    assert.deepEqual(h.sent, [], String(keyDetails));
    const warn = h.logs.find((l) => l['level'] === 'warn');
    assert.ok(warn, 'a warning is logged');
    assert.match(String(warn['msg']), /^server license check: no expiry date could be read \(/);
    assert.match(String(warn['msg']), reason);
    assert.equal(await h.metrics.total('butler_mqtt_events_rejected_total', { source: 'license_monitor', reason: 'no_expiry_date' }), 1);
  }
});

test('switches: sendRecurring off sends only the alert, sendAlert off only the status', async () => {
  const onlyAlert = harness({ ok: true, value: license(validTo('2026-12-10')) }, { sendRecurring: false });
  await onlyAlert.monitor.check();
  assert.deepEqual(onlyAlert.sent, [{ topic: EXPIRE_TOPIC, payload: 'Qlik Sense server license is about to expire in 17 days, on 2026-12-10' }]);

  const onlyStatus = harness({ ok: true, value: license(validTo('2026-11-20'), true) }, { sendAlert: false });
  await onlyStatus.monitor.check();
  assert.deepEqual(onlyStatus.sent, [{ topic: LICENSE_TOPIC, payload: '{"licenseExpired":true,"expiryDateStr":"2026-11-20","daysUntilExpiry":-3}' }]);

  const none = harness({ ok: true, value: license(validTo('2026-11-20'), true) }, { sendAlert: false, sendRecurring: false });
  await none.monitor.check();
  assert.deepEqual(none.sent, []);
});

test('QRS failure: nothing published, logged and counted', async () => {
  const h = harness({ ok: false, error: { kind: 'http_status', message: 'QRS answered 503', status: 503 } });
  await h.monitor.check();
  assert.deepEqual(h.sent, []);
  const warn = h.logs.find((l) => l['level'] === 'warn');
  assert.equal(warn?.['msg'], 'server license check failed, nothing published: could not read the license from QRS (http_status 503: QRS answered 503)');
  assert.equal(await h.metrics.total('butler_mqtt_events_rejected_total', { source: 'license_monitor', reason: 'qrs_http_status' }), 1);
});

test('a refused enqueue: logged, the check does not throw, and the monitor counts nothing itself (the sink does, once)', async () => {
  const full: MessageSink = {
    async enqueue() {
      throw new OutboxFullError('messages', 1000, 1000);
    },
  };
  const h = harness({ ok: true, value: license(validTo('2026-12-10')) }, { sink: full });
  await h.monitor.check();
  assert.equal(await h.metrics.total('butler_mqtt_messages_refused_total'), 0);
  assert.ok(h.logs.some((l) => l['level'] === 'error' && l['msg'] === 'could not queue the server license messages; the next check will send them again'));
});

test('start() checks at once; stop() ends it', async () => {
  const h = harness({ ok: true, value: license(validTo('2027-01-31')) });
  h.monitor.start();
  const end = Date.now() + 10_000;
  while (h.sent.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  await h.monitor.stop();
  assert.deepEqual(h.sent, [{ topic: LICENSE_TOPIC, payload: '{"licenseExpired":false,"expiryDateStr":"2027-01-31","daysUntilExpiry":69}' }]);
});
