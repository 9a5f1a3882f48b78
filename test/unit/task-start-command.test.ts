// Task-start payload parsing: plain and JSON forms, the exact UUID rule of the `uuid` package's validate, and the
// typed rejections an administrator sees in the log.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isValidUuid, parseTaskStartCommand } from '../../src/mqtt/task-start-command.ts';

const V4 = '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f';

describe('isValidUuid', () => {
  const accepted: Array<[string, string]> = [
    ['v4 lower case', V4],
    ['v4 upper case', '9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F'],
    ['mixed case', '9f1C2d3E-4b5A-4c6D-8e7F-0a1B2c3D4e5F'],
    ['v1', 'a8098c1a-f86e-11da-bd1a-00112444be1e'],
    ['v7', '01890a5d-ac96-774b-bcce-b302099a8057'],
    ['v8', '320c3d4d-cc00-875b-8ec9-32d5f69181c0'],
    ['variant 8', '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f'],
    ['variant 9', '9f1c2d3e-4b5a-4c6d-9e7f-0a1b2c3d4e5f'],
    ['variant a', '9f1c2d3e-4b5a-4c6d-ae7f-0a1b2c3d4e5f'],
    ['variant B', '9f1c2d3e-4b5a-4c6d-Be7f-0a1b2c3d4e5f'],
    ['nil', '00000000-0000-0000-0000-000000000000'],
    ['max lower', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
    ['max upper', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'],
  ];
  for (const [name, s] of accepted) {
    it(`accepts ${name}`, () => assert.equal(isValidUuid(s), true));
  }

  const refused: Array<[string, string]> = [
    ['version 1 digit slot holds 1 but variant c', '9f1c2d3e-4b5a-1c6d-ce7f-0a1b2c3d4e5f'],
    ['variant c', '9f1c2d3e-4b5a-4c6d-ce7f-0a1b2c3d4e5f'],
    ['variant 7', '9f1c2d3e-4b5a-4c6d-7e7f-0a1b2c3d4e5f'],
    ['version 0 (not nil)', '9f1c2d3e-4b5a-0c6d-8e7f-0a1b2c3d4e5f'],
    ['version 9', '9f1c2d3e-4b5a-9c6d-8e7f-0a1b2c3d4e5f'],
    ['version f (not max)', '9f1c2d3e-4b5a-fc6d-8e7f-0a1b2c3d4e5f'],
    ['the classic fake 12345678-1234-1234-1234-123456789abc', '12345678-1234-1234-1234-123456789abc'],
    ['not-a-uuid', 'not-a-uuid'],
    ['empty', ''],
    ['no dashes', '9f1c2d3e4b5a4c6d8e7f0a1b2c3d4e5f'],
    ['braces', `{${V4}}`],
    ['urn prefix', `urn:uuid:${V4}`],
    ['trailing newline (trimming is the parser’s job)', `${V4}\n`],
    ['one hex digit too many', `${V4}0`],
    ['non-hex g', '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5g'],
    ['almost nil', '00000000-0000-0000-0000-000000000001'],
    ['almost max', 'ffffffff-ffff-ffff-ffff-fffffffffffe'],
    ['mixed nil/max', '00000000-0000-0000-0000-ffffffffffff'],
    ['full-width digit', '９f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f'],
  ];
  for (const [name, s] of refused) {
    it(`refuses ${name}`, () => assert.equal(isValidUuid(s), false));
  }
});

describe('parseTaskStartCommand: plain form', () => {
  it('accepts a v4 id in lower case', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.from(V4)), { ok: true, value: { taskId: V4, form: 'plain' } });
  });

  it('keeps upper case exactly as received', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.from('9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F')), {
      ok: true,
      value: { taskId: '9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F', form: 'plain' },
    });
  });

  it('trims a trailing newline', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.from(`${V4}\n`)), { ok: true, value: { taskId: V4, form: 'plain' } });
  });

  it('trims surrounding spaces, tabs and CRLF', () => {
    assert.deepEqual(parseTaskStartCommand(`  \t${V4}\r\n`), { ok: true, value: { taskId: V4, form: 'plain' } });
  });

  it('accepts a string payload as well as a Buffer', () => {
    assert.deepEqual(parseTaskStartCommand(V4), { ok: true, value: { taskId: V4, form: 'plain' } });
  });

  it('accepts the nil UUID (QRS will answer 404)', () => {
    assert.deepEqual(parseTaskStartCommand('00000000-0000-0000-0000-000000000000'), {
      ok: true,
      value: { taskId: '00000000-0000-0000-0000-000000000000', form: 'plain' },
    });
  });

  it('accepts the max UUID in upper case', () => {
    assert.deepEqual(parseTaskStartCommand('FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'), {
      ok: true,
      value: { taskId: 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', form: 'plain' },
    });
  });

  it('accepts v7 and v8 ids', () => {
    assert.deepEqual(parseTaskStartCommand('01890a5d-ac96-774b-bcce-b302099a8057'), {
      ok: true,
      value: { taskId: '01890a5d-ac96-774b-bcce-b302099a8057', form: 'plain' },
    });
    assert.deepEqual(parseTaskStartCommand('320c3d4d-cc00-875b-8ec9-32d5f69181c0'), {
      ok: true,
      value: { taskId: '320c3d4d-cc00-875b-8ec9-32d5f69181c0', form: 'plain' },
    });
  });

  it('refuses not-a-uuid with a readable detail', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.from('not-a-uuid')), {
      ok: false,
      error: { reason: 'invalid_uuid', detail: 'task id "not-a-uuid" is not a valid UUID', taskId: 'not-a-uuid' },
    });
  });

  it('refuses 12345678-1234-1234-1234-123456789abc (version 1 but variant 1)', () => {
    assert.deepEqual(parseTaskStartCommand('12345678-1234-1234-1234-123456789abc'), {
      ok: false,
      error: {
        reason: 'invalid_uuid',
        detail: 'task id "12345678-1234-1234-1234-123456789abc" is not a valid UUID',
        taskId: '12345678-1234-1234-1234-123456789abc',
      },
    });
  });

  it('refuses variant c', () => {
    const r = parseTaskStartCommand('9f1c2d3e-4b5a-4c6d-ce7f-0a1b2c3d4e5f');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.reason, 'invalid_uuid');
  });

  it('refuses an empty payload', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.alloc(0)), {
      ok: false,
      error: { reason: 'empty', detail: 'payload is empty; expected a task id' },
    });
  });

  it('refuses a whitespace-only payload as empty', () => {
    assert.deepEqual(parseTaskStartCommand(' \r\n\t '), {
      ok: false,
      error: { reason: 'empty', detail: 'payload is empty; expected a task id' },
    });
  });

  it('refuses bytes that are not UTF-8', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.from([0x39, 0x66, 0xff, 0xfe])), {
      ok: false,
      error: { reason: 'not_utf8', detail: 'payload is not valid UTF-8 text' },
    });
  });

  it('shortens a long echoed id to 100 characters and an ellipsis', () => {
    const long = 'x'.repeat(500);
    assert.deepEqual(parseTaskStartCommand(long), {
      ok: false,
      error: { reason: 'invalid_uuid', detail: `task id "${'x'.repeat(100)}…" is not a valid UUID`, taskId: long },
    });
  });

  it('quotes control characters inside the id so the log line stays on one line', () => {
    assert.deepEqual(parseTaskStartCommand('abc\ndef'), {
      ok: false,
      error: { reason: 'invalid_uuid', detail: 'task id "abc\\ndef" is not a valid UUID', taskId: 'abc\ndef' },
    });
  });
});

describe('parseTaskStartCommand: JSON form', () => {
  it('accepts taskId with correlationId', () => {
    assert.deepEqual(parseTaskStartCommand(Buffer.from(`{"taskId":"${V4}","correlationId":"req-42"}`)), {
      ok: true,
      value: { taskId: V4, correlationId: 'req-42', form: 'json' },
    });
  });

  it('accepts taskId alone, without a correlationId key in the result', () => {
    const r = parseTaskStartCommand(`{"taskId":"${V4}"}`);
    assert.deepEqual(r, { ok: true, value: { taskId: V4, form: 'json' } });
    assert.equal(r.ok && Object.hasOwn(r.value, 'correlationId'), false);
  });

  it('trims the taskId, keeps its case, ignores other keys and surrounding whitespace', () => {
    assert.deepEqual(
      parseTaskStartCommand(`\n  { "extra": [1, 2], "taskId": "  9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F\\n", "correlationId": " c 1 " }  \n`),
      { ok: true, value: { taskId: '9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F', correlationId: ' c 1 ', form: 'json' } },
    );
  });

  it('ignores a correlationId that is not a string', () => {
    assert.deepEqual(parseTaskStartCommand(`{"taskId":"${V4}","correlationId":42}`), {
      ok: true,
      value: { taskId: V4, form: 'json' },
    });
  });

  it('refuses JSON without taskId and keeps the correlationId', () => {
    assert.deepEqual(parseTaskStartCommand('{"correlationId":"req-7"}'), {
      ok: false,
      error: { reason: 'missing_task_id', detail: 'JSON payload has no "taskId"', correlationId: 'req-7' },
    });
  });

  it('refuses a taskId that is not a string', () => {
    assert.deepEqual(parseTaskStartCommand('{"taskId":123}'), {
      ok: false,
      error: { reason: 'missing_task_id', detail: 'JSON payload has a "taskId" that is not a string (number)' },
    });
    assert.deepEqual(parseTaskStartCommand('{"taskId":null,"correlationId":"c"}'), {
      ok: false,
      error: { reason: 'missing_task_id', detail: 'JSON payload has a "taskId" that is not a string (null)', correlationId: 'c' },
    });
  });

  it('refuses an empty taskId', () => {
    assert.deepEqual(parseTaskStartCommand('{"taskId":"   "}'), {
      ok: false,
      error: { reason: 'missing_task_id', detail: 'JSON payload has an empty "taskId"' },
    });
  });

  it('refuses an invalid taskId and keeps both ids in the error', () => {
    assert.deepEqual(parseTaskStartCommand('{"taskId":"not-a-uuid","correlationId":"req-9"}'), {
      ok: false,
      error: {
        reason: 'invalid_uuid',
        detail: 'task id "not-a-uuid" is not a valid UUID',
        correlationId: 'req-9',
        taskId: 'not-a-uuid',
      },
    });
  });

  it('refuses a JSON array', () => {
    assert.deepEqual(parseTaskStartCommand(`["${V4}"]`), {
      ok: false,
      error: { reason: 'invalid_json', detail: 'JSON payload must be an object like {"taskId": "<uuid>"}, got an array' },
    });
  });

  it('refuses invalid JSON, quoting the payload', () => {
    const r = parseTaskStartCommand('{"taskId": \n');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.reason, 'invalid_json');
    assert.equal(!r.ok && r.error.detail.startsWith('payload "{\\"taskId\\":" is not valid JSON ('), true);
    assert.equal(!r.ok && Object.hasOwn(r.error, 'correlationId'), false);
  });

  it('reads a "__proto__" key as data, not as a prototype', () => {
    assert.deepEqual(parseTaskStartCommand(`{"__proto__":{"taskId":"${V4}"}}`), {
      ok: false,
      error: { reason: 'missing_task_id', detail: 'JSON payload has no "taskId"' },
    });
  });
});
