// Property tests for the two pure parsers: they never throw, every rejection carries one of the typed reasons,
// accepted values keep their documented invariants, and isValidUuid agrees with a separately written rule.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isValidUuid, parseTaskStartCommand } from '../../src/mqtt/task-start-command.ts';
import { parseCloudEvent } from '../../src/cloud/cloud-event.ts';

const RUNS = { numRuns: 2000 };

// Reference rule, written from the `uuid` package's documented validate behaviour, character by character.
const HEX = '0123456789abcdef';
function referenceUuid(s: string): boolean {
  if (s.length !== 36) return false;
  const lower = s.toLowerCase();
  // toLowerCase can map non-ASCII letters onto ASCII (e.g. the Kelvin sign); only ASCII input may pass.
  for (let i = 0; i < 36; i++) if (s.charCodeAt(i) > 0x7f) return false;
  if (lower === '00000000-0000-0000-0000-000000000000' || lower === 'ffffffff-ffff-ffff-ffff-ffffffffffff') return true;
  for (let i = 0; i < 36; i++) {
    const c = lower.charAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== '-') return false;
    } else if (!HEX.includes(c)) {
      return false;
    }
  }
  const version = lower.charAt(14);
  const variant = lower.charAt(19);
  return '12345678'.includes(version) && '89ab'.includes(variant);
}

// UUID-shaped strings whose characters are drawn so that both valid and invalid ones are frequent.
const uuidChar = fc.constantFrom(...'0123456789abcdefABCDEF0f0f89cg-');
const seg = (n: number) => fc.string({ unit: uuidChar, minLength: n, maxLength: n });
const uuidShaped = fc.oneof(
  fc.tuple(seg(8), seg(4), seg(4), seg(4), seg(12)).map((p) => p.join('-')),
  fc.string({ unit: uuidChar, minLength: 34, maxLength: 38 }),
  fc.constantFrom('00000000-0000-0000-0000-000000000000', 'FFFFFFFF-ffff-FFFF-ffff-FFFFFFFFFFFF', '12345678-1234-1234-1234-123456789abc'),
);

const hexDigit = fc.constantFrom(...'0123456789abcdefABCDEF');
const hexN = (n: number) => fc.string({ unit: hexDigit, minLength: n, maxLength: n });
/** Always valid by construction: version 1-8, variant 8/9/a/b in either case. */
const validUuid = fc
  .tuple(hexN(8), hexN(4), fc.constantFrom(...'12345678'), hexN(3), fc.constantFrom(...'89abAB'), hexN(3), hexN(12))
  .map(([a, b, v, c, r, d, e]) => `${a}-${b}-${v}${c}-${r}${d}-${e}`);

const whitespace = fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r', '\u00a0', '\uFEFF'), maxLength: 4 });

const TASK_REASONS = new Set(['empty', 'invalid_uuid', 'invalid_json', 'missing_task_id', 'not_utf8']);

function checkTaskResult(r: ReturnType<typeof parseTaskStartCommand>): void {
  if (r.ok) {
    assert.equal(referenceUuid(r.value.taskId), true, `accepted id ${JSON.stringify(r.value.taskId)} must be a UUID`);
    assert.equal(r.value.taskId, r.value.taskId.trim());
    assert.ok(r.value.form === 'plain' || r.value.form === 'json');
    if (r.value.form === 'plain') assert.equal(Object.hasOwn(r.value, 'correlationId'), false);
    if (r.value.correlationId !== undefined) assert.equal(typeof r.value.correlationId, 'string');
  } else {
    assert.ok(TASK_REASONS.has(r.error.reason), r.error.reason);
    assert.equal(typeof r.error.detail, 'string');
    assert.ok(r.error.detail.length > 0);
    assert.ok(!/[\n\r]/.test(r.error.detail), `detail must stay on one line: ${JSON.stringify(r.error.detail)}`);
  }
}

describe('task-start command properties', () => {
  it('isValidUuid agrees with the reference rule on UUID-shaped strings', () => {
    fc.assert(
      fc.property(uuidShaped, (s) => {
        assert.equal(isValidUuid(s), referenceUuid(s), s);
      }),
      RUNS,
    );
  });

  it('isValidUuid agrees with the reference rule on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        assert.equal(isValidUuid(s), referenceUuid(s));
      }),
      RUNS,
    );
  });

  it('never throws on arbitrary bytes and honours the result invariants', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        checkTaskResult(parseTaskStartCommand(Buffer.from(bytes)));
      }),
      RUNS,
    );
  });

  it('never throws on arbitrary strings, including lone surrogates', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        checkTaskResult(parseTaskStartCommand(s));
      }),
      RUNS,
    );
  });

  it('never throws on arbitrary JSON values and JSON objects with odd taskId/correlationId values', () => {
    const oddObject = fc.record(
      { taskId: fc.oneof(fc.jsonValue(), uuidShaped, validUuid), correlationId: fc.jsonValue(), extra: fc.jsonValue() },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), oddObject), (v) => {
        checkTaskResult(parseTaskStartCommand(Buffer.from(JSON.stringify(v) ?? '')));
      }),
      RUNS,
    );
  });

  it('a valid id with surrounding whitespace is accepted as the trimmed id (plain form)', () => {
    fc.assert(
      fc.property(whitespace, validUuid, whitespace, (pre, id, post) => {
        assert.deepEqual(parseTaskStartCommand(Buffer.from(pre + id + post)), { ok: true, value: { taskId: id, form: 'plain' } });
      }),
      RUNS,
    );
  });

  it('a valid id in JSON is accepted with its correlation id', () => {
    fc.assert(
      fc.property(whitespace, validUuid, fc.string({ maxLength: 30 }), (pad, id, corr) => {
        const payload = JSON.stringify({ correlationId: corr, taskId: pad + id + pad });
        assert.deepEqual(parseTaskStartCommand(payload), { ok: true, value: { taskId: id, correlationId: corr, form: 'json' } });
      }),
      RUNS,
    );
  });

  it('a rejected JSON command keeps its string correlation id', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), uuidShaped), fc.string({ maxLength: 30 }), (taskId, corr) => {
        const r = parseTaskStartCommand(JSON.stringify({ taskId, correlationId: corr }));
        if (!r.ok) assert.equal(r.error.correlationId, corr);
      }),
      RUNS,
    );
  });

  it('plain payloads are accepted exactly when the trimmed text is a valid UUID', () => {
    fc.assert(
      fc.property(whitespace, uuidShaped, whitespace, (pre, s, post) => {
        const r = parseTaskStartCommand(pre + s + post);
        const trimmed = s.trim();
        if (trimmed === '') assert.equal(!r.ok && r.error.reason, 'empty');
        else if (referenceUuid(trimmed)) assert.deepEqual(r, { ok: true, value: { taskId: trimmed, form: 'plain' } });
        else assert.equal(!r.ok && r.error.reason, 'invalid_uuid');
      }),
      RUNS,
    );
  });
});

const CLOUD_REASONS = new Set(['not_json', 'not_object', 'wrong_topic', 'other_event_type', 'other_tenant', 'not_failed', 'missing_field']);
const FILTER = { appReloadTopic: 'qscloud/app/reload', tenantId: 'Tn1' };
const FAILURE_WORDS = ['error', 'failed', 'exceeded_limit'];

function checkCloudResult(topic: string, r: ReturnType<typeof parseCloudEvent>): void {
  if (r.ok) {
    const v = r.value;
    assert.ok(topic.startsWith(FILTER.appReloadTopic));
    assert.ok(v.eventType === 'com.qlik.v1.app.reload.finished' || v.eventType === 'com.qlik.v1.reload.finished');
    assert.equal(v.tenantId, FILTER.tenantId);
    assert.ok(FAILURE_WORDS.includes(v.status.toLowerCase()), v.status);
    assert.ok(v.eventId.length > 0);
    assert.ok(v.appId.length > 0);
    for (const k of ['eventTime', 'appName', 'reloadId', 'userId', 'ownerId', 'duration'] as const) assert.equal(typeof v[k], 'string', k);
    assert.ok(Array.isArray(v.errors));
    assert.ok(v.raw !== null && typeof v.raw === 'object' && !Array.isArray(v.raw));
  } else {
    assert.ok(CLOUD_REASONS.has(r.error.reason), r.error.reason);
    assert.ok(r.error.detail.length > 0);
    assert.ok(!/[\n\r]/.test(r.error.detail), `detail must stay on one line: ${JSON.stringify(r.error.detail)}`);
  }
}

// Events built from the fields the parser reads, each present or absent, with plausible and implausible values.
const maybeStr = (...likely: string[]) => fc.oneof(fc.constantFrom(...likely), fc.string({ maxLength: 8 }), fc.jsonValue());
const statusArb = fc.oneof(
  fc.constantFrom('error', 'ERROR', 'Failed', 'FAILED', 'EXCEEDED_LIMIT', 'ok', 'SUCCEEDED', 'CANCELED', ''),
  fc.string({ maxLength: 8 }),
  fc.jsonValue(),
);
const near = fc.record(
  {
    eventType: maybeStr('com.qlik.v1.app.reload.finished', 'com.qlik.v1.reload.finished'),
    type: maybeStr('com.qlik.v1.reload.finished', 'com.qlik.v1.app.reload.finished'),
    eventId: maybeStr('e1', ''),
    id: maybeStr('e2', ''),
    tenantid: maybeStr('Tn1', 'tn1'),
    toplevelresourceid: maybeStr('app-9', ''),
    extensions: fc.oneof(
      fc.record({ tenantId: maybeStr('Tn1', 'Other'), topLevelResourceId: maybeStr('app-1'), userId: maybeStr('u') }, { requiredKeys: [] }),
      fc.jsonValue(),
    ),
    data: fc.oneof(
      fc.record(
        {
          status: statusArb,
          succeeded: fc.oneof(fc.boolean(), fc.jsonValue()),
          appId: maybeStr('app-2'),
          name: maybeStr('Sales'),
          errors: fc.jsonValue(),
          errorCode: maybeStr('E1'),
          duration: fc.jsonValue(),
          durationSeconds: fc.oneof(fc.double(), fc.jsonValue()),
        },
        { requiredKeys: [] },
      ),
      fc.jsonValue(),
    ),
  },
  { requiredKeys: [] },
);
const topicArb = fc.oneof(fc.constantFrom('qscloud/app/reload', 'qscloud/app/reload/Tn1', 'qscloud/app', 'other'), fc.string({ maxLength: 30 }));

describe('cloud event properties', () => {
  it('never throws on arbitrary bytes and topics', () => {
    fc.assert(
      fc.property(topicArb, fc.uint8Array({ maxLength: 300 }), (topic, bytes) => {
        checkCloudResult(topic, parseCloudEvent(topic, Buffer.from(bytes), FILTER));
      }),
      RUNS,
    );
  });

  it('never throws on arbitrary strings, including lone surrogates', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        checkCloudResult('qscloud/app/reload', parseCloudEvent('qscloud/app/reload', s, FILTER));
      }),
      RUNS,
    );
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        checkCloudResult('qscloud/app/reload/x', parseCloudEvent('qscloud/app/reload/x', JSON.stringify(v) ?? '', FILTER));
      }),
      RUNS,
    );
  });

  it('near-miss events are accepted or rejected with a typed reason, and accepted ones keep the invariants', () => {
    fc.assert(
      fc.property(topicArb, near, (topic, ev) => {
        checkCloudResult(topic, parseCloudEvent(topic, Buffer.from(JSON.stringify(ev)), FILTER));
      }),
      { numRuns: 5000 },
    );
  });

  it('a well-formed event for our tenant is accepted exactly when its status is a failure word', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom('error', 'Error', 'FAILED', 'exceeded_limit', 'ok', 'SUCCEEDED', 'CANCELED'), fc.string({ minLength: 1, maxLength: 10 })), (status) => {
        const ev = {
          eventId: 'e1',
          eventType: 'com.qlik.v1.app.reload.finished',
          extensions: { tenantId: 'Tn1', topLevelResourceId: 'app-1' },
          data: { status },
        };
        const r = parseCloudEvent('qscloud/app/reload', JSON.stringify(ev), FILTER);
        const expected = ['error', 'failed', 'exceeded_limit'].includes(status.toLowerCase());
        assert.equal(r.ok, expected, status);
        if (!r.ok) assert.equal(r.error.reason, 'not_failed');
      }),
      RUNS,
    );
  });
});
