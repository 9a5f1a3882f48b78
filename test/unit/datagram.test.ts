// Scheduler log-appender datagrams: every accepted type, the field-count and GUID rules, the
// sanitiser, and each typed rejection, with expected values written out by hand.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isGuid, parseDatagram, type SchedulerEvent } from '../../src/sense/datagram.ts';
import { MAX_FIELD_LENGTH, isSanitized, sanitizeField } from '../../src/sense/sanitize.ts';

const TASK_ID = '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f';
const APP_ID = '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f';
const EXEC_ID = '7be1c2d3-1111-4222-8333-944455566677';

function datagram(type: string, message = 'Max retries reached. Task finished with state FinishedFail'): string {
  return `${type};sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;${TASK_ID};${APP_ID};2026-11-20 02:03:12,345;ERROR;${EXEC_ID};${message}`;
}

function accepted(input: Buffer | string): SchedulerEvent {
  const r = parseDatagram(input);
  if (!r.ok) assert.fail(`expected the datagram to be accepted, got ${r.error.reason}: ${r.error.detail}`);
  return r.value;
}

function rejected(input: Buffer | string): { reason: string; detail: string } {
  const r = parseDatagram(input);
  if (r.ok) assert.fail(`expected a rejection, got an event of type ${r.value.type}`);
  return r.error;
}

describe('parseDatagram: accepted events', () => {
  it('maps the 11 fields of a reload-failed datagram to the named fields', () => {
    assert.deepEqual(accepted(datagram('/scheduler-reload-failed/')), {
      type: 'failed',
      rawType: '/scheduler-reload-failed/',
      hostName: 'sense-sched-1',
      taskName: 'Nightly finance reload',
      appName: 'Finance dashboard',
      user: 'CORP\\anna',
      taskId: '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f',
      appId: '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
      logTimeStamp: '2026-11-20 02:03:12,345',
      logLevel: 'ERROR',
      executionId: '7be1c2d3-1111-4222-8333-944455566677',
      logMessage: 'Max retries reached. Task finished with state FinishedFail',
      fields: [
        '/scheduler-reload-failed/',
        'sense-sched-1',
        'Nightly finance reload',
        'Finance dashboard',
        'CORP\\anna',
        '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f',
        '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
        '2026-11-20 02:03:12,345',
        'ERROR',
        '7be1c2d3-1111-4222-8333-944455566677',
        'Max retries reached. Task finished with state FinishedFail',
      ],
    });
  });

  const typeTable: [string, string][] = [
    ['/scheduler-reload-failed/', 'failed'],
    ['/scheduler-task-failed/', 'failed'],
    ['/scheduler-reloadtask-failed/', 'failed'],
    ['/scheduler-reload-aborted/', 'aborted'],
    ['/scheduler-task-aborted/', 'aborted'],
    ['/scheduler-reloadtask-success/', 'success'],
    ['/scheduler-task-success/', 'success'],
    ['/scheduler-task-success//', 'success'],
    ['/scheduler-distribute/', 'distribute'],
    ['/SCHEDULER-RELOAD-FAILED/', 'failed'],
    ['/Scheduler-Task-Aborted/', 'aborted'],
    ['/Scheduler-Task-Success//', 'success'],
  ];
  for (const [raw, type] of typeTable) {
    it(`recognises ${raw} as ${type} and keeps the type text as received`, () => {
      const e = accepted(datagram(raw));
      assert.equal(e.type, type);
      assert.equal(e.rawType, raw);
    });
  }

  it('keeps a ; inside the log message as part of the message', () => {
    const e = accepted(datagram('/scheduler-reload-failed/', 'Error: a;b;c; done'));
    assert.equal(e.logMessage, 'Error: a;b;c; done');
    assert.equal(e.fields.length, 11);
    assert.equal(e.fields[10], 'Error: a;b;c; done');
  });

  it('does not let a trailing CRLF invalidate the event or reach the message', () => {
    const e = accepted(`${datagram('/scheduler-reload-aborted/', 'Execution State Change to Aborting')}\r\n`);
    assert.equal(e.type, 'aborted');
    assert.equal(e.logMessage, 'Execution State Change to Aborting');
  });

  it('accepts an empty message when the datagram ends right after the 10th separator', () => {
    assert.equal(accepted(datagram('/scheduler-reload-failed/', '')).logMessage, '');
    assert.equal(accepted(`${datagram('/scheduler-reload-failed/', '')}\n`).logMessage, '');
  });

  it('deletes control characters inside fields and keeps spaces as they are', () => {
    const text = `/scheduler-reload-failed/;sense\u0007-sched-1; Nightly\tfinance reload ;Finance dashboard;CORP\\anna;${TASK_ID};${APP_ID};2026-11-20;ERROR\u007f;${EXEC_ID};line one\r\nline two`;
    const e = accepted(text);
    assert.equal(e.hostName, 'sense-sched-1');
    assert.equal(e.taskName, ' Nightlyfinance reload ');
    assert.equal(e.logLevel, 'ERROR');
    assert.equal(e.logMessage, 'line oneline two');
  });

  it('matches the type after trimming spaces, and reports the spaces in rawType', () => {
    const e = accepted(datagram(' /scheduler-reload-failed/ '));
    assert.equal(e.type, 'failed');
    assert.equal(e.rawType, ' /scheduler-reload-failed/ ');
  });

  it('accepts empty task and app ids (they are only checked when present)', () => {
    const text = `/scheduler-reload-failed/;h;t;a;u;;;2026-11-20;ERROR;;msg`;
    const e = accepted(text);
    assert.equal(e.taskId, '');
    assert.equal(e.appId, '');
    assert.equal(e.executionId, '');
  });

  it('accepts upper-case GUIDs and keeps their case', () => {
    const text = `/scheduler-reload-failed/;h;t;a;u;9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F;${APP_ID};2026;ERROR;x;msg`;
    assert.equal(accepted(text).taskId, '9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F');
  });

  it('decodes UTF-8 from a Buffer and drops a leading byte-order mark', () => {
    const body = datagram('/scheduler-reload-failed/', 'Fel i skriptet: Försäljning – 😀');
    const e = accepted(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body, 'utf8')]));
    assert.equal(e.rawType, '/scheduler-reload-failed/');
    assert.equal(e.logMessage, 'Fel i skriptet: Försäljning – 😀');
  });

  it('cuts a 600-character field to its first 500 characters', () => {
    const long = 'abcdefghij'.repeat(60);
    const e = accepted(datagram('/scheduler-reload-failed/', long));
    assert.equal(e.logMessage, 'abcdefghij'.repeat(50));
    assert.equal(e.logMessage.length, 500);
  });

  it('accepts a distribute datagram with 11 fields and re-joins a longer message', () => {
    const e = accepted(datagram('/scheduler-distribute/', 'Exiting execute of Distribute task request.;x'));
    assert.equal(e.type, 'distribute');
    assert.equal(e.logMessage, 'Exiting execute of Distribute task request.;x');
    assert.equal(e.fields.length, 11);
  });

  it('accepts an engine reload-failed datagram of exactly 9 fields, named by the engine layout', () => {
    const text = `/engine-reload-failed/;sense-engine-1;${APP_ID};5f0e1d2c-3b4a-4596-8877-665544332211;CORP;anna;2026-11-20 02:03:12,345;ERROR;Reload failed\r\n`;
    assert.deepEqual(accepted(text), {
      type: 'engine-reload-failed',
      rawType: '/engine-reload-failed/',
      hostName: 'sense-engine-1',
      taskName: '',
      appName: '',
      user: 'CORP\\anna',
      taskId: '',
      appId: '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
      logTimeStamp: '2026-11-20 02:03:12,345',
      logLevel: 'ERROR',
      executionId: '',
      logMessage: 'Reload failed',
      fields: [
        '/engine-reload-failed/',
        'sense-engine-1',
        '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
        '5f0e1d2c-3b4a-4596-8877-665544332211',
        'CORP',
        'anna',
        '2026-11-20 02:03:12,345',
        'ERROR',
        'Reload failed',
      ],
    });
  });
});

describe('parseDatagram: rejections', () => {
  it('refuses 10 fields for a failed event, saying how many it got', () => {
    const text = `/scheduler-reload-failed/;h;t;a;u;${TASK_ID};${APP_ID};2026;ERROR;${EXEC_ID}`;
    assert.deepEqual(rejected(text), { reason: 'field_count', detail: 'expected 11 fields, got 10' });
  });

  it('refuses 9 fields for an aborted and a success event', () => {
    assert.deepEqual(rejected('/scheduler-reload-aborted/;h;t;a;u;;;2026;INFO'), {
      reason: 'field_count',
      detail: 'expected 11 fields, got 9',
    });
    assert.equal(rejected('/scheduler-task-success/;h;t').reason, 'field_count');
  });

  it('refuses a distribute datagram with fewer than 11 fields', () => {
    assert.deepEqual(rejected('/scheduler-distribute/;h;t;a;u;;;2026;INFO;x'), {
      reason: 'field_count',
      detail: 'expected 11 fields, got 10',
    });
  });

  it('refuses an engine datagram that does not have exactly 9 fields', () => {
    assert.deepEqual(rejected(`/engine-reload-failed/;h;${APP_ID};s;CORP;anna;2026;ERROR;a;b`), {
      reason: 'field_count',
      detail: 'expected 9 fields, got 10',
    });
    assert.deepEqual(rejected(`/engine-reload-failed/;h;${APP_ID};s;CORP;anna;2026;ERROR`), {
      reason: 'field_count',
      detail: 'expected 9 fields, got 8',
    });
  });

  it('refuses unknown types, including the old untyped layout', () => {
    assert.deepEqual(rejected(datagram('/scheduler-reload-exploded/')), {
      reason: 'unknown_type',
      detail: 'unknown message type "/scheduler-reload-exploded/"',
    });
    const legacy = `sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;${TASK_ID};${APP_ID};2026;ERROR;${EXEC_ID};msg`;
    assert.deepEqual(rejected(legacy), { reason: 'unknown_type', detail: 'unknown message type "sense-sched-1"' });
    assert.equal(rejected('hello').reason, 'unknown_type');
    assert.equal(rejected(';;;;;;;;;;').reason, 'unknown_type');
  });

  it('bounds the type quoted in the detail', () => {
    const e = rejected(`${'x'.repeat(300)};a`);
    assert.deepEqual(e, { reason: 'unknown_type', detail: `unknown message type "${'x'.repeat(60)}…"` });
  });

  it('refuses a task id that is not a GUID', () => {
    const text = `/scheduler-reload-failed/;h;t;a;u;not-a-guid;${APP_ID};2026;ERROR;${EXEC_ID};msg`;
    assert.deepEqual(rejected(text), { reason: 'invalid_task_id', detail: 'task id "not-a-guid" is not a GUID' });
  });

  it('refuses a task id with surrounding spaces (spaces are not control characters)', () => {
    const text = `/scheduler-reload-failed/;h;t;a;u; ${TASK_ID};${APP_ID};2026;ERROR;${EXEC_ID};msg`;
    assert.equal(rejected(text).reason, 'invalid_task_id');
  });

  it('refuses an app id that is not a GUID', () => {
    const text = `/scheduler-reload-failed/;h;t;a;u;${TASK_ID};2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2;2026;ERROR;${EXEC_ID};msg`;
    assert.deepEqual(rejected(text), {
      reason: 'invalid_app_id',
      detail: 'app id "2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2" is not a GUID',
    });
  });

  it('refuses an engine datagram whose app id is not a GUID', () => {
    assert.equal(rejected('/engine-reload-failed/;h;nope;s;CORP;anna;2026;ERROR;m').reason, 'invalid_app_id');
  });

  it('checks the field count before the ids', () => {
    assert.equal(rejected('/scheduler-reload-failed/;h;t;a;u;bad;bad').reason, 'field_count');
  });

  it('refuses bytes that are not UTF-8', () => {
    assert.deepEqual(rejected(Buffer.from([0x2f, 0xc3, 0x28, 0x3b])), {
      reason: 'not_utf8',
      detail: '4 bytes that are not valid UTF-8',
    });
    assert.equal(rejected(Buffer.from([0xff])).reason, 'not_utf8');
  });

  it('refuses a string holding an unpaired surrogate', () => {
    assert.equal(rejected(`${datagram('/scheduler-reload-failed/')}\ud800`).reason, 'not_utf8');
    assert.equal(rejected(`\udc00${datagram('/scheduler-reload-failed/')}`).reason, 'not_utf8');
  });

  it('refuses empty and blank datagrams', () => {
    for (const input of ['', '\r\n', '   ', '\u0000\u0001', Buffer.alloc(0), Buffer.from([0xef, 0xbb, 0xbf])]) {
      assert.deepEqual(rejected(input), { reason: 'empty', detail: 'datagram is empty' });
    }
  });
});

describe('isGuid', () => {
  it('accepts 8-4-4-4-12 hex in either case, without version or variant checks', () => {
    assert.equal(isGuid('9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f'), true);
    assert.equal(isGuid('9F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F'), true);
    assert.equal(isGuid('12345678-1234-1234-1234-123456789abc'), true);
    assert.equal(isGuid('00000000-0000-0000-0000-000000000000'), true);
  });

  it('refuses other shapes', () => {
    for (const s of [
      '',
      '9f1c2d3e4b5a4c6d8e7f0a1b2c3d4e5f',
      '{9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f}',
      '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5g',
      '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f ',
      '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\n',
      '9f1c2d3e-4b5a-4c6d-8e7f0-a1b2c3d4e5f',
    ]) {
      assert.equal(isGuid(s), false, JSON.stringify(s));
    }
  });
});

describe('sanitizeField', () => {
  it('deletes U+0000–U+001F and U+007F and nothing else', () => {
    assert.equal(sanitizeField('a\u0000b\u001fc\u007fd\u0080e\u00a0f\tg\r\nh'), 'abcd\u0080e\u00a0fgh');
  });

  it('cuts to 500 after deleting, so deleted characters do not count', () => {
    assert.equal(MAX_FIELD_LENGTH, 500);
    const value = '\u0001'.repeat(20) + 'y'.repeat(500);
    assert.equal(sanitizeField(value), 'y'.repeat(500));
    assert.equal(sanitizeField('z'.repeat(501)), 'z'.repeat(500));
    assert.equal(sanitizeField('z'.repeat(500)), 'z'.repeat(500));
  });

  it('counts UTF-16 code units like String.prototype.substring, so a pair can be split', () => {
    const value = 'a'.repeat(499) + '😀';
    assert.equal(value.length, 501);
    assert.equal(sanitizeField(value), 'a'.repeat(499) + '\ud83d');
    assert.equal(sanitizeField('a'.repeat(498) + '😀b'), 'a'.repeat(498) + '😀');
  });

  it('isSanitized agrees with the rules', () => {
    assert.equal(isSanitized('plain text'), true);
    assert.equal(isSanitized('tab\there'), false);
    assert.equal(isSanitized('q'.repeat(501)), false);
  });
});
