// Properties of the two datagram parsers over generated input: they never throw, a rejection is
// always one of the typed reasons, and an accepted event has exactly the documented fields, each
// obeying the sanitising rules. Runs are bounded so the file finishes in a few seconds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDatagram, type SchedulerEvent } from '../../src/sense/datagram.ts';
import { parseUserEvent, type UserEvent } from '../../src/sense/user-event.ts';

// endOnFailure: report the first counterexample as found; shrinking strings of hundreds of
// characters can take minutes, and a failing run must stay as quick as a passing one.
const PARAMS = { numRuns: 400, endOnFailure: true };

const SCHEDULER_REASONS = ['not_utf8', 'unknown_type', 'field_count', 'invalid_task_id', 'invalid_app_id', 'empty'];
const USER_REASONS = ['not_utf8', 'empty', 'unknown_type', 'field_count', 'unknown_command'];

const SCHEDULER_KEYS = [
  'appId',
  'appName',
  'executionId',
  'fields',
  'hostName',
  'logLevel',
  'logMessage',
  'logTimeStamp',
  'rawType',
  'taskId',
  'taskName',
  'type',
  'user',
].sort();
const USER_KEYS = ['command', 'context', 'host', 'message', 'messageType', 'origin', 'userDirectory', 'userId'].sort();

/** The sanitising rules, restated independently: no C0 control character or DEL, at most 500 UTF-16 units. */
function obeysSanitisingRules(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > 500) return false;
  for (let i = 0; i < value.length; i += 1) {
    const code = value.charCodeAt(i);
    if (code <= 0x1f || code === 0x7f) return false;
  }
  return true;
}

/** What a field must become: control characters removed, then the first 500 UTF-16 units. */
function expectedField(raw: string): string {
  let kept = '';
  for (let i = 0; i < raw.length; i += 1) {
    const code = raw.charCodeAt(i);
    if (code > 0x1f && code !== 0x7f) kept += raw[i];
  }
  return kept.length > 500 ? kept.slice(0, 500) : kept;
}

// Any UTF-16 code unit, lone surrogates included, with control characters and `;` made common.
// Long strings use size 'large' so values past the 500-character cut are actually generated.
const anyUnit = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom(';', '\r', '\n', '\t', '\u0000', '\u007f', '/', ' ', '😀'),
);
// The same without lone surrogates: text that UTF-8 can carry, so well-formed datagrams are accepted.
const wellFormedUnit = fc.oneof(
  fc.integer({ min: 0, max: 0xfffd }).map((c) => (c >= 0xd800 && c <= 0xdfff ? 'x' : String.fromCharCode(c))),
  fc.constantFrom(';', '\r', '\n', '\t', '\u0000', '\u007f', '/', ' ', '😀'),
);
const anyText = fc.string({ unit: anyUnit, maxLength: 1200, size: 'large' });
const fieldText = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: anyUnit, maxLength: 700, size: 'large' }));

const schedulerType = fc
  .tuple(
    fc.constantFrom(
      '/scheduler-reload-failed/',
      '/scheduler-task-failed/',
      '/scheduler-reloadtask-failed/',
      '/scheduler-reload-aborted/',
      '/scheduler-task-aborted/',
      '/scheduler-reloadtask-success/',
      '/scheduler-task-success/',
      '/scheduler-task-success//',
      '/scheduler-distribute/',
      '/engine-reload-failed/',
    ),
    fc.boolean(),
  )
  .map(([t, upper]) => (upper ? t.toUpperCase() : t));

// Datagram-shaped text: a known or random type, then fields laid out as the scheduler sends them
// (ids mostly GUIDs or empty), with a few fields sometimes dropped or added.
const idLike = fc.oneof(fc.uuid(), fc.constant(''), fieldText);
const datagramLike = fc
  .tuple(
    fc.oneof({ weight: 3, arbitrary: schedulerType }, { weight: 1, arbitrary: fieldText }),
    fc.array(fieldText, { minLength: 4, maxLength: 4 }),
    fc.tuple(idLike, idLike),
    fc.array(fieldText, { minLength: 4, maxLength: 4 }),
    fc.integer({ min: -3, max: 3 }),
  )
  .map(([type, head, ids, tail, delta]) => {
    const fields = [type, ...head, ...ids, ...tail];
    return (delta < 0 ? fields.slice(0, fields.length + delta) : [...fields, ...Array<string>(delta).fill('x')]).join(';');
  });

function checkSchedulerEvent(e: SchedulerEvent): void {
  assert.deepEqual(Object.keys(e).sort(), SCHEDULER_KEYS);
  for (const key of SCHEDULER_KEYS) {
    if (key === 'fields' || key === 'type') continue;
    assert.ok(obeysSanitisingRules(e[key as keyof SchedulerEvent]), `${key} is sanitised`);
  }
  assert.ok(e.fields.every(obeysSanitisingRules), 'every field is sanitised');
  assert.equal(e.fields.length, e.type === 'engine-reload-failed' ? 9 : 11);
  assert.equal(e.fields[0], e.rawType);
  assert.ok(['failed', 'aborted', 'success', 'distribute', 'engine-reload-failed'].includes(e.type));
  for (const id of [e.taskId, e.appId]) {
    assert.ok(id === '' || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id), `id ${id}`);
  }
}

function checkUserEvent(e: UserEvent): void {
  const keys = Object.keys(e).sort();
  assert.deepEqual(
    keys.filter((k) => k !== 'appId'),
    USER_KEYS,
  );
  for (const [key, value] of Object.entries(e)) assert.ok(obeysSanitisingRules(value), `${key} is sanitised`);
  assert.ok(['session', 'connection'].includes(e.messageType));
  assert.ok(['Start session', 'Stop session', 'Open connection', 'Close connection'].includes(e.command));
  if (e.appId !== undefined) assert.ok(e.context.toLowerCase().startsWith(`/app/${e.appId.toLowerCase()}`));
}

describe('parseDatagram properties', () => {
  it('never throws on any string; rejections are typed; accepted events are well formed', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, datagramLike), (text) => {
        const r = parseDatagram(text);
        if (r.ok) checkSchedulerEvent(r.value);
        else {
          assert.ok(SCHEDULER_REASONS.includes(r.error.reason), r.error.reason);
          assert.equal(typeof r.error.detail, 'string');
          assert.ok(r.error.detail.length > 0 && r.error.detail.length < 200);
        }
      }),
      PARAMS,
    );
  });

  it('never throws on any bytes', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 1500, size: 'large' }),
      datagramLike.map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
    );
    fc.assert(
      fc.property(bytes, (u8) => {
        const r = parseDatagram(Buffer.from(u8));
        if (r.ok) checkSchedulerEvent(r.value);
        else assert.ok(SCHEDULER_REASONS.includes(r.error.reason), r.error.reason);
      }),
      PARAMS,
    );
  });

  it('accepts every well-formed failed datagram and sanitises each field, keeping ; in the message', () => {
    const plain = fc
  .oneof(fc.string({ maxLength: 20 }), fc.string({ unit: wellFormedUnit, maxLength: 600, size: 'large' }))
  .map((v) => v.replaceAll(';', ''));
    fc.assert(
      fc.property(
        fc.constantFrom('/scheduler-reload-failed/', '/scheduler-task-aborted/', '/scheduler-task-success//'),
        fc.tuple(plain, plain, plain, plain),
        fc.oneof(fc.constant(''), fc.uuid()),
        fc.oneof(fc.constant(''), fc.uuid()),
        fc.tuple(plain, plain, plain),
        fc.string({ unit: wellFormedUnit, maxLength: 900, size: 'large' }),
        (type, [host, task, app, user], taskId, appId, [stamp, level, exec], message) => {
          const raw = [type, host, task, app, user, taskId, appId, stamp, level, exec, message];
          const r = parseDatagram(Buffer.from(raw.join(';'), 'utf8'));
          if (!r.ok) assert.fail(`${r.error.reason}: ${r.error.detail}`);
          assert.deepEqual(r.value.fields, raw.map(expectedField));
          assert.equal(r.value.logMessage, expectedField(message));
        },
      ),
      PARAMS,
    );
  });
});

describe('parseUserEvent properties', () => {
  const command = fc.constantFrom('Start session', 'Stop session', 'Open connection', 'Close connection', 'start SESSION', 'Login');
  const userLike = fc.oneof(
    fc
      .tuple(fc.constantFrom('/qseow-proxy-session/', '/qseow-proxy-connection/', '/QSEOW-PROXY-SESSION/', '/proxy-x/'), fieldText, command, fc.array(fieldText, { maxLength: 8 }))
      .map(([t, h, c, rest]) => [t, h, c, ...rest].join(';')),
    fc.tuple(fieldText, command, fieldText, fieldText).map((f) => f.join(';')),
  );

  it('never throws on any string; rejections are typed; accepted events are well formed', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, userLike), (text) => {
        const r = parseUserEvent(text);
        if (r.ok) checkUserEvent(r.value);
        else {
          assert.ok(USER_REASONS.includes(r.error.reason), r.error.reason);
          assert.ok(r.error.detail.length > 0 && r.error.detail.length < 200);
        }
      }),
      PARAMS,
    );
  });

  it('never throws on any bytes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 1500, size: 'large' }), userLike.map((s) => new Uint8Array(Buffer.from(s, 'utf8')))), (u8) => {
        const r = parseUserEvent(Buffer.from(u8));
        if (r.ok) checkUserEvent(r.value);
        else assert.ok(USER_REASONS.includes(r.error.reason), r.error.reason);
      }),
      PARAMS,
    );
  });
});
