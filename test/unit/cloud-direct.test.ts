// Qlik Cloud direct intakes, the pure parts: the Qlik-Signature check, reading reload-finished events in
// CloudEvents 1.0, hybrid and legacy form, reload records of the reloads API, durations, the app state
// after a reload, and writing the webhook secret into a commented config file.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { verifySignature, signBody } from '../../src/cloud/webhook-signature.ts';
import { isoDurationMs, parseReloadFinishedEvent, parseReloadRecord, parseCloudEvent } from '../../src/cloud/cloud-event.ts';
import { nextAppState } from '../../src/alerts/cloud-reload-events.ts';
import { webhookTarget, withWebhookSecret } from '../../src/cli/cloud-webhook.ts';
import { ConfigError, parseConfigText } from '../../src/config/load.ts';
import { cloudTenants } from '../../src/cloud/tenants.ts';

const SECRET = 'k'.repeat(40);
const BODY = Buffer.from('{"specversion":"1.0","id":"e1"}');
// Computed independently: HMAC-SHA256(key, body) as lower-case hex.
const GOOD = createHmac('sha256', SECRET).update(BODY).digest('hex');

describe('Qlik-Signature', () => {
  it('accepts the hex HMAC-SHA256 of the raw body, in either case', () => {
    assert.equal(signBody(BODY, SECRET), GOOD);
    assert.deepEqual(verifySignature(BODY, GOOD, SECRET), { ok: true });
    assert.deepEqual(verifySignature(BODY, GOOD.toUpperCase(), SECRET), { ok: true });
  });
  it('refuses a missing, malformed, base64 or wrong signature with its own reason', () => {
    assert.equal((verifySignature(BODY, undefined, SECRET) as { reason: string }).reason, 'signature_missing');
    assert.equal((verifySignature(BODY, '', SECRET) as { reason: string }).reason, 'signature_missing');
    assert.equal((verifySignature(BODY, `sha256=${GOOD}`, SECRET) as { reason: string }).reason, 'signature_malformed');
    assert.equal((verifySignature(BODY, Buffer.from(GOOD, 'hex').toString('base64'), SECRET) as { reason: string }).reason, 'signature_malformed');
    assert.equal((verifySignature(BODY, [GOOD, GOOD], SECRET) as { reason: string }).reason, 'signature_malformed');
    assert.equal((verifySignature(Buffer.from(`${BODY.toString()} `), GOOD, SECRET) as { reason: string }).reason, 'signature_invalid');
    assert.equal((verifySignature(BODY, GOOD, 'x'.repeat(40)) as { reason: string }).reason, 'signature_invalid');
  });
});

const ce10 = {
  specversion: '1.0',
  id: 'evt-1',
  source: 'com.qlik/reloads',
  type: 'com.qlik.v1.reload.finished',
  time: '2026-11-20T06:01:09.377Z',
  tenantid: 'T1',
  userid: 'U1',
  toplevelresourceid: 'app-1',
  data: { id: 'r1', appId: 'app-1', status: 'SUCCEEDED', durationSeconds: 41.263 },
};

describe('reload-finished events', () => {
  it('CloudEvents 1.0: every status is a finished reload', () => {
    const r = parseReloadFinishedEvent(JSON.stringify(ce10), 'T1');
    assert.ok(r.ok);
    assert.deepEqual([r.value.tenantId, r.value.appId, r.value.reloadId, r.value.status, r.value.failed, r.value.stopTime, r.value.durationMs, r.value.event.eventId], ['T1', 'app-1', 'r1', 'SUCCEEDED', false, '2026-11-20T06:01:09.377Z', 41263, 'evt-1']);
  });
  it('hybrid form: the CloudEvents 1.0 names win over the legacy ones', () => {
    const hybrid = { ...ce10, eventType: 'com.qlik.v1.something.else', eventId: 'legacy-id', extensions: { tenantId: 'LEGACY' } };
    const r = parseReloadFinishedEvent(JSON.stringify(hybrid), 'T1');
    assert.ok(r.ok);
    assert.equal(r.value.event.eventId, 'evt-1');
    assert.equal(r.value.tenantId, 'T1');
  });
  it('legacy app.reload.finished: "error" is FAILED, "ok" SUCCEEDED; the reload id is data.reloadId', () => {
    const legacy = { eventId: 'e9', eventType: 'com.qlik.v1.app.reload.finished', eventTime: '2026-11-20T06:01:09Z', extensions: { tenantId: 'T1', topLevelResourceId: 'app-9' }, data: { status: 'error', reloadId: 'r9', name: 'Sales', duration: 'PT1M2.5S' } };
    const r = parseReloadFinishedEvent(JSON.stringify(legacy), 'T1');
    assert.ok(r.ok);
    assert.deepEqual([r.value.status, r.value.failed, r.value.reloadId, r.value.appName, r.value.durationMs], ['FAILED', true, 'r9', 'Sales', 62500]);
    const ok = parseReloadFinishedEvent(JSON.stringify({ ...legacy, data: { ...legacy.data, status: 'ok' } }), 'T1');
    assert.ok(ok.ok && ok.value.status === 'SUCCEEDED');
  });
  it('another tenant, another type, no JSON: typed reasons', () => {
    assert.deepEqual(parseReloadFinishedEvent(JSON.stringify(ce10), 'T2'), { ok: false, error: { reason: 'other_tenant', detail: 'tenant "T1" is not this tenant\'s id' } });
    assert.equal((parseReloadFinishedEvent(JSON.stringify({ ...ce10, type: 'com.qlik.app.created' }), '') as { error: { reason: string } }).error.reason, 'other_event_type');
    assert.equal((parseReloadFinishedEvent('{', '') as { error: { reason: string } }).error.reason, 'not_json');
  });
  it('the forward intake reads the 1.0 names first too, and still only failures', () => {
    const failed = { ...ce10, data: { ...ce10.data, status: 'FAILED' } };
    const r = parseCloudEvent('qscloud/app/reload/T1', JSON.stringify(failed), { appReloadTopic: 'qscloud/app/reload', tenantId: 'T1' });
    assert.ok(r.ok && r.value.eventId === 'evt-1');
    assert.equal((parseCloudEvent('qscloud/app/reload/T1', JSON.stringify(ce10), { appReloadTopic: 'qscloud/app/reload', tenantId: 'T1' }) as { error: { reason: string } }).error.reason, 'not_failed');
  });
});

describe('reloads API records', () => {
  const record = { id: 'r2', appId: 'app-2', tenantId: 'T1', status: 'EXCEEDED_LIMIT', errorCode: 'ReloadTimeout', errorMessage: 'too long', startTime: '2026-11-20T06:00:00.000Z', endTime: '2026-11-20T06:10:00.500Z', duration: 'PT10M0.5S' };
  it('a finished record → a failed reload with its error', () => {
    const r = parseReloadRecord(JSON.stringify(record), 'T1');
    assert.ok(r.ok);
    assert.deepEqual([r.value.status, r.value.failed, r.value.durationMs, r.value.event.errors, r.value.event.eventId], ['EXCEEDED_LIMIT', true, 600500, [{ code: 'ReloadTimeout', message: 'too long' }], '']);
  });
  it('QUEUED, RELOADING and CANCELING are not finished', () => {
    for (const status of ['QUEUED', 'RELOADING', 'CANCELING']) assert.equal((parseReloadRecord(JSON.stringify({ ...record, status }), 'T1') as { error: { reason: string } }).error.reason, 'not_failed');
  });
  it('ISO 8601 durations', () => {
    assert.deepEqual(['PT41.263S', 'PT1H', 'P1DT1S', 'PT', 'P', '41', 'PT1M'].map(isoDurationMs), [41263, 3600000, 86401000, null, null, null, 60000]);
  });
});

describe('app state', () => {
  const base = { tenantId: 'T', appId: 'a', appName: '', reloadId: 'r', startTime: '', durationMs: 1, event: {} as never };
  it('counts failures in a row, resets on success, keeps the count over a cancel, ignores an older reload', () => {
    const f1 = nextAppState(null, { ...base, status: 'FAILED', failed: true, stopTime: '2026-01-01T00:00:01Z' });
    assert.deepEqual(f1, { status: 'FAILED', startTime: '', stopTime: '2026-01-01T00:00:01Z', consecutiveFailures: 1, lastSuccessTime: '' });
    const c = nextAppState(f1, { ...base, status: 'CANCELED', failed: false, stopTime: '2026-01-01T00:00:02Z' });
    assert.equal(c?.consecutiveFailures, 1);
    const f2 = nextAppState(c, { ...base, status: 'EXCEEDED_LIMIT', failed: true, stopTime: '2026-01-01T00:00:03Z' });
    assert.equal(f2?.consecutiveFailures, 2);
    const s = nextAppState(f2, { ...base, status: 'SUCCEEDED', failed: false, stopTime: '2026-01-01T00:00:04Z' });
    assert.deepEqual([s?.consecutiveFailures, s?.lastSuccessTime], [0, '2026-01-01T00:00:04Z']);
    assert.equal(nextAppState(s, { ...base, status: 'FAILED', failed: true, stopTime: '2026-01-01T00:00:03Z' }), null);
  });
});

describe('webhook CLI helpers', () => {
  it('the target URL: https only, the tenant path added once', () => {
    assert.equal(webhookTarget('https://bridge.example.com/', 'acme'), 'https://bridge.example.com/qlik-cloud/webhook/acme');
    assert.equal(webhookTarget('https://bridge.example.com/qlik-cloud/webhook/acme', 'acme'), 'https://bridge.example.com/qlik-cloud/webhook/acme');
    assert.throws(() => webhookTarget('http://bridge.example.com', 'acme'), /must use https/);
  });
  it('writes the secret to the named tenant and keeps every comment', () => {
    const text = ['# Butler config', 'Butler:', '  qlikSenseCloud:', '    tenants:', '      # production', '      - name: acme   # the main tenant', '        url: https://acme.eu.qlikcloud.com', '      - name: globex', '        webhookSecret: old', ''].join('\n');
    assert.equal(
      withWebhookSecret(text, 'globex', 'S'.repeat(64)),
      ['# Butler config', 'Butler:', '  qlikSenseCloud:', '    tenants:', '      # production', '      - name: acme # the main tenant', '        url: https://acme.eu.qlikcloud.com', '      - name: globex', `        webhookSecret: ${'S'.repeat(64)}`, ''].join('\n'),
    );
    assert.throws(() => withWebhookSecret(text, 'initech', 'x'), /no entry with name "initech"/);
  });
});

describe('tenants in the config', () => {
  it('every problem at once: a name used twice, a poller without URL or key, a secret Qlik Cloud would refuse', () => {
    const text = ['Butler:', '  qlikSenseCloud:', '    tenants:', '      - name: acme', '        webhookSecret: short', '      - name: acme', '        webhook: false', ''].join('\n');
    assert.throws(
      () => parseConfigText(text, 'butler.yaml'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.issues.map((i) => i.path), [
          'Butler.qlikSenseCloud.tenants.0.url',
          'Butler.qlikSenseCloud.tenants.0.apiKey',
          'Butler.qlikSenseCloud.tenants.0.webhookSecret',
          'Butler.qlikSenseCloud.tenants.1.name',
          'Butler.qlikSenseCloud.tenants.1.url',
          'Butler.qlikSenseCloud.tenants.1.apiKey',
        ]);
        return true;
      },
    );
  });
  it('the first tenant takes url, key and id from the single-tenant keys; secrets are masked', () => {
    const text = ['Butler:', '  qlikSenseCloud:', '    event:', '      mqtt:', '        tenant:', '          id: T1', '          tenantUrl: https://acme.eu.qlikcloud.com', '          auth:', '            jwt:', '              token: legacy-api-key', '    tenants:', '      - name: acme', `        webhookSecret: ${'s'.repeat(40)}`, '      - name: globex', '        url: https://globex.us.qlikcloud.com', '        apiKey: globex-api-key', ''].join('\n');
    const config = parseConfigText(text, 'butler.yaml');
    const tenants = cloudTenants(config.butler);
    assert.deepEqual(tenants.map((t) => [t.name, t.url, t.tenantId, t.apiKey, t.webhook, t.poller, t.pollIntervalSeconds]), [
      ['acme', 'https://acme.eu.qlikcloud.com', 'T1', 'legacy-api-key', true, true, 60],
      ['globex', 'https://globex.us.qlikcloud.com', '', 'globex-api-key', true, true, 60],
    ]);
    assert.ok(config.secrets.includes('s'.repeat(40)) && config.secrets.includes('globex-api-key'));
  });
});
