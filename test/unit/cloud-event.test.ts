// Failed-reload recognition for Qlik Cloud events forwarded over MQTT: both event types, both attribute
// spellings, and every typed reason for ignoring a message.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCloudEvent } from '../../src/cloud/cloud-event.ts';

const FILTER = { appReloadTopic: 'qscloud/app/reload', tenantId: 'Xq3tenantAbC' };
const TOPIC = 'qscloud/app/reload/Xq3tenantAbC';

// CloudEvents 0.1 spelling, as Qlik's webhook forwards com.qlik.v1.app.reload.finished.
function v01(overrides: { data?: Record<string, unknown>; extensions?: Record<string, unknown>; top?: Record<string, unknown> } = {}) {
  return {
    cloudEventsVersion: '0.1',
    source: 'com.qlik/engine',
    contentType: 'application/json',
    eventId: '5b3e7a10-1111-4222-8333-944455556666',
    eventTime: '2026-11-20T06:01:09Z',
    eventTypeVersion: '1.0.0',
    eventType: 'com.qlik.v1.app.reload.finished',
    extensions: {
      ownerId: '6601aa',
      tenantId: 'Xq3tenantAbC',
      userId: '6601bb',
      topLevelResourceId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
      ...overrides.extensions,
    },
    data: {
      status: 'error',
      name: 'Sales forecast',
      reloadId: '6735cc',
      duration: 'PT41S',
      errors: [{ code: 'ScriptError' }],
      isPartialReload: false,
      isSessionApp: false,
      peakMemoryBytes: 52428800,
      size: { memory: 20971520 },
      ...overrides.data,
    },
    ...overrides.top,
  };
}

// CloudEvents 1.0 spelling of com.qlik.v1.reload.finished (Qlik extension attributes flat and lower case).
function v10(overrides: { data?: Record<string, unknown>; top?: Record<string, unknown> } = {}) {
  return {
    id: 'b347fd0d-1321-417f-91ee-90e96c76389c',
    host: 'qlik.example.com',
    time: '2026-11-20T07:06:22Z',
    type: 'com.qlik.v1.reload.finished',
    source: 'com.qlik/reloads',
    ownerid: '5be59decca62aa00097268a4',
    specversion: '1.0',
    datacontenttype: 'application/json',
    userid: '5be59decca62aa00097268a5',
    tenantid: 'Xq3tenantAbC',
    toplevelresourceid: '002ff8c5-3c11-4464-a22b-68fb5e7ee5e8',
    data: {
      id: '6a849f7f18ec290e6ceb025d',
      appId: '002ff8c5-3c11-4464-a22b-68fb5e7ee5e8',
      userId: '5be59decca62aa00097268a5',
      status: 'FAILED',
      succeeded: false,
      errorCode: 'EngineError',
      errorMessage: 'Field not found',
      durationSeconds: 12.5,
      ...overrides.data,
    },
    ...overrides.top,
  };
}

function buf(o: unknown): Buffer {
  return Buffer.from(JSON.stringify(o));
}

describe('parseCloudEvent: accepted failed reloads', () => {
  it('reads the CloudEvents 0.1 app.reload.finished shape', () => {
    const ev = v01();
    assert.deepEqual(parseCloudEvent(TOPIC, buf(ev), FILTER), {
      ok: true,
      value: {
        eventId: '5b3e7a10-1111-4222-8333-944455556666',
        eventType: 'com.qlik.v1.app.reload.finished',
        eventTime: '2026-11-20T06:01:09Z',
        tenantId: 'Xq3tenantAbC',
        appId: 'a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d',
        appName: 'Sales forecast',
        reloadId: '6735cc',
        status: 'error',
        userId: '6601bb',
        ownerId: '6601aa',
        duration: 'PT41S',
        errors: [{ code: 'ScriptError' }],
        raw: ev,
      },
    });
  });

  it('reads the CloudEvents 1.0 reload.finished shape', () => {
    const ev = v10();
    assert.deepEqual(parseCloudEvent(TOPIC, buf(ev), FILTER), {
      ok: true,
      value: {
        eventId: 'b347fd0d-1321-417f-91ee-90e96c76389c',
        eventType: 'com.qlik.v1.reload.finished',
        eventTime: '2026-11-20T07:06:22Z',
        tenantId: 'Xq3tenantAbC',
        appId: '002ff8c5-3c11-4464-a22b-68fb5e7ee5e8',
        appName: '',
        reloadId: '6a849f7f18ec290e6ceb025d',
        status: 'FAILED',
        userId: '5be59decca62aa00097268a5',
        ownerId: '5be59decca62aa00097268a4',
        duration: 'PT12.5S',
        errors: [{ code: 'EngineError', message: 'Field not found' }],
        raw: ev,
      },
    });
  });

  it('reads app.reload.finished in CloudEvents 1.0 names (as the event catalogue shows it)', () => {
    const ev = {
      id: 'ccb149fb-e2dd-420b-8d9f-e6aacb95eb76',
      type: 'com.qlik.v1.app.reload.finished',
      time: '2026-11-21T01:00:00Z',
      source: 'com.qlik/engine',
      tenantid: 'Xq3tenantAbC',
      userid: 'u-1',
      ownerid: 'o-1',
      toplevelresourceid: 'c35f4b70-3ce4-4a30-b62b-2aef16943bc4',
      data: { name: 'Budget', status: 'error', reloadId: 'r-1', duration: 4200, errors: [] },
    };
    assert.deepEqual(parseCloudEvent(TOPIC, buf(ev), FILTER), {
      ok: true,
      value: {
        eventId: 'ccb149fb-e2dd-420b-8d9f-e6aacb95eb76',
        eventType: 'com.qlik.v1.app.reload.finished',
        eventTime: '2026-11-21T01:00:00Z',
        tenantId: 'Xq3tenantAbC',
        appId: 'c35f4b70-3ce4-4a30-b62b-2aef16943bc4',
        appName: 'Budget',
        reloadId: 'r-1',
        status: 'error',
        userId: 'u-1',
        ownerId: 'o-1',
        duration: '4200',
        errors: [],
        raw: ev,
      },
    });
  });

  it('matches the status case-insensitively and keeps it as sent', () => {
    for (const status of ['ERROR', 'Error', 'failed', 'EXCEEDED_LIMIT', 'exceeded_limit']) {
      const r = parseCloudEvent(TOPIC, buf(v01({ data: { status } })), FILTER);
      assert.equal(r.ok && r.value.status, status, status);
    }
  });

  it('treats succeeded:false without a status as FAILED', () => {
    const r = parseCloudEvent(TOPIC, buf(v10({ data: { status: undefined } })), FILTER);
    assert.equal(r.ok && r.value.status, 'FAILED');
  });

  it('takes the tenant from tenantid when extensions are absent, and the app from data.appId', () => {
    const ev = v10({ top: { toplevelresourceid: undefined } });
    const r = parseCloudEvent(TOPIC, buf(ev), FILTER);
    assert.equal(r.ok && r.value.appId, '002ff8c5-3c11-4464-a22b-68fb5e7ee5e8');
    assert.equal(r.ok && r.value.tenantId, 'Xq3tenantAbC');
  });

  it('falls back to data.tenantId when no top-level tenant attribute is present', () => {
    const r = parseCloudEvent(TOPIC, buf(v10({ top: { tenantid: undefined }, data: { tenantId: 'Xq3tenantAbC' } })), FILTER);
    assert.equal(r.ok && r.value.tenantId, 'Xq3tenantAbC');
  });

  it('fills absent optional fields with empty values', () => {
    const ev = {
      eventId: 'e-1',
      eventType: 'com.qlik.v1.app.reload.finished',
      extensions: { tenantId: 'Xq3tenantAbC', topLevelResourceId: 'app-1' },
      data: { status: 'error' },
    };
    assert.deepEqual(parseCloudEvent(TOPIC, JSON.stringify(ev), FILTER), {
      ok: true,
      value: {
        eventId: 'e-1',
        eventType: 'com.qlik.v1.app.reload.finished',
        eventTime: '',
        tenantId: 'Xq3tenantAbC',
        appId: 'app-1',
        appName: '',
        reloadId: '',
        status: 'error',
        userId: '',
        ownerId: '',
        duration: '',
        errors: [],
        raw: ev,
      },
    });
  });

  it('accepts a topic that equals the prefix and a UTF-8 BOM before the JSON', () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf(v01())]);
    assert.equal(parseCloudEvent('qscloud/app/reload', bom, FILTER).ok, true);
    assert.equal(parseCloudEvent(TOPIC, `\uFEFF${JSON.stringify(v01())}`, FILTER).ok, true);
  });
});

describe('parseCloudEvent: ignored messages', () => {
  it('wrong_topic when the topic does not start with the prefix', () => {
    assert.deepEqual(parseCloudEvent('qscloud/other', buf(v01()), FILTER), {
      ok: false,
      error: { reason: 'wrong_topic', detail: 'topic "qscloud/other" does not start with "qscloud/app/reload"' },
    });
  });

  it('wrong_topic is checked before the payload is looked at', () => {
    const r = parseCloudEvent('Qscloud/app/reload', 'not json', FILTER);
    assert.equal(!r.ok && r.error.reason, 'wrong_topic');
  });

  it('not_json for text that is not JSON', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, Buffer.from('hello'), FILTER), {
      ok: false,
      error: { reason: 'not_json', detail: 'payload "hello" is not valid JSON' },
    });
  });

  it('not_json for bytes that are not UTF-8', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), FILTER), {
      ok: false,
      error: { reason: 'not_json', detail: 'payload is not valid UTF-8 text' },
    });
  });

  it('not_json detail shortens long payloads', () => {
    const r = parseCloudEvent(TOPIC, 'y'.repeat(1000), FILTER);
    assert.deepEqual(r, { ok: false, error: { reason: 'not_json', detail: `payload "${'y'.repeat(100)}…" is not valid JSON` } });
  });

  it('not_object for JSON arrays, strings, numbers and null', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, '[1,2]', FILTER), {
      ok: false,
      error: { reason: 'not_object', detail: 'payload is JSON but an array, not an event object' },
    });
    assert.deepEqual(parseCloudEvent(TOPIC, '"x"', FILTER), {
      ok: false,
      error: { reason: 'not_object', detail: 'payload is JSON but string, not an event object' },
    });
    assert.deepEqual(parseCloudEvent(TOPIC, '42', FILTER), {
      ok: false,
      error: { reason: 'not_object', detail: 'payload is JSON but number, not an event object' },
    });
    assert.deepEqual(parseCloudEvent(TOPIC, 'null', FILTER), {
      ok: false,
      error: { reason: 'not_object', detail: 'payload is JSON but null, not an event object' },
    });
  });

  it('other_event_type for another Qlik event', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v01({ top: { eventType: 'com.qlik.v1.app.opened' } })), FILTER), {
      ok: false,
      error: {
        reason: 'other_event_type',
        detail: 'event type "com.qlik.v1.app.opened"; only com.qlik.v1.app.reload.finished and com.qlik.v1.reload.finished are handled',
      },
    });
  });

  it('other_event_type for the retired com.qlik.app.reload.ended and for a missing type', () => {
    const ended = parseCloudEvent(TOPIC, buf(v01({ top: { eventType: 'com.qlik.app.reload.ended' } })), FILTER);
    assert.equal(!ended.ok && ended.error.reason, 'other_event_type');
    assert.deepEqual(parseCloudEvent(TOPIC, '{"data":{"status":"error"}}', FILTER), {
      ok: false,
      error: {
        reason: 'other_event_type',
        detail: 'no event type (eventType or type); only com.qlik.v1.app.reload.finished and com.qlik.v1.reload.finished are handled',
      },
    });
  });

  it('other_event_type when the type differs only in case', () => {
    const r = parseCloudEvent(TOPIC, buf(v01({ top: { eventType: 'COM.QLIK.V1.APP.RELOAD.FINISHED' } })), FILTER);
    assert.equal(!r.ok && r.error.reason, 'other_event_type');
  });

  it('other_tenant for another tenant, compared case-sensitively', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v01({ extensions: { tenantId: 'xq3tenantabc' } })), FILTER), {
      ok: false,
      error: { reason: 'other_tenant', detail: 'tenant "xq3tenantabc" is not the configured tenant' },
    });
    const r = parseCloudEvent(TOPIC, buf(v10({ top: { tenantid: 'SomeoneElse' } })), FILTER);
    assert.equal(!r.ok && r.error.reason, 'other_tenant');
  });

  it('other_tenant when the event carries no tenant id', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v01({ extensions: { tenantId: undefined } })), FILTER), {
      ok: false,
      error: { reason: 'other_tenant', detail: 'event carries no tenant id (extensions.tenantId or tenantid)' },
    });
  });

  it('other_tenant is decided before the status', () => {
    const r = parseCloudEvent(TOPIC, buf(v01({ extensions: { tenantId: 'other' }, data: { status: 'ok' } })), FILTER);
    assert.equal(!r.ok && r.error.reason, 'other_tenant');
  });

  it('not_failed for successful and cancelled reloads', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v01({ data: { status: 'ok' } })), FILTER), {
      ok: false,
      error: { reason: 'not_failed', detail: 'reload status "ok" is not a failure' },
    });
    for (const status of ['SUCCEEDED', 'CANCELED']) {
      const r = parseCloudEvent(TOPIC, buf(v10({ data: { status, succeeded: status === 'SUCCEEDED' } })), FILTER);
      assert.equal(!r.ok && r.error.reason, 'not_failed', status);
    }
  });

  it('not_failed when there is no status and no succeeded:false', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v10({ data: { status: undefined, succeeded: true } })), FILTER), {
      ok: false,
      error: { reason: 'not_failed', detail: 'event has no data.status' },
    });
    const noData = parseCloudEvent(TOPIC, buf(v01({ top: { data: 'oops' } })), FILTER);
    assert.equal(!noData.ok && noData.error.reason, 'not_failed');
  });

  it('not_failed for a status that is not a string', () => {
    const r = parseCloudEvent(TOPIC, buf(v01({ data: { status: 500 } })), FILTER);
    assert.equal(!r.ok && r.error.reason, 'not_failed');
  });

  it('missing_field names the missing event id', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v01({ top: { eventId: undefined } })), FILTER), {
      ok: false,
      error: { reason: 'missing_field', detail: 'failed-reload event has no event id (eventId or id)' },
    });
    const emptyId = parseCloudEvent(TOPIC, buf(v10({ top: { id: '' } })), FILTER);
    assert.equal(!emptyId.ok && emptyId.error.reason, 'missing_field');
  });

  it('missing_field names the missing app id', () => {
    assert.deepEqual(parseCloudEvent(TOPIC, buf(v01({ extensions: { topLevelResourceId: undefined } })), FILTER), {
      ok: false,
      error: {
        reason: 'missing_field',
        detail:
          'failed-reload event "5b3e7a10-1111-4222-8333-944455556666" has no app id (extensions.topLevelResourceId, toplevelresourceid or data.appId)',
      },
    });
    const r = parseCloudEvent(TOPIC, buf(v10({ top: { toplevelresourceid: undefined }, data: { appId: 7 } })), FILTER);
    assert.equal(!r.ok && r.error.reason, 'missing_field');
  });

  it('ignores inherited properties such as a "__proto__" key', () => {
    const text = '{"__proto__":{"eventType":"com.qlik.v1.app.reload.finished"},"data":{"status":"error"}}';
    const r = parseCloudEvent(TOPIC, text, FILTER);
    assert.equal(!r.ok && r.error.reason, 'other_event_type');
  });
});
