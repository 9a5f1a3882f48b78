// The pure parts of the QRS notification source and its handler: callback bodies, stored inputs,
// ExecutionResult reading, the appender timestamp layout; and Inbox.claimInTransaction on a real file
// (a claim holds across a restart and is a duplicate for the UDP source's key).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Store } from '../../src/store/sqlite.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { Inbox } from '../../src/store/inbox.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { appenderTimestamp } from '../../src/alerts/task-executions.ts';
import {
  EMPTY_GUID,
  encodeChanged,
  encodeResult,
  executionStatusName,
  MAX_CALLBACK_IDS,
  parseCallbackBody,
  parseExecutionInput,
  readExecutionResult,
} from '../../src/sense/qrs-notifications.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-qrs-notify-unit-');
after(() => tmp.cleanup());

const ID = '9c0f1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f';
const TASK = 'b1f3a2c4-5d6e-4f70-8192-a3b4c5d6e7f8';

test('a callback body: only ExecutionResult changes with a GUID count; ids lower-cased and unique', () => {
  const body = [
    { objectType: 'ExecutionResult', objectID: ID.toUpperCase(), changeType: 2 },
    { objectType: 'executionresult', objectID: ID },
    { objectType: 'App', objectID: TASK },
    { objectType: 'ExecutionResult', objectID: '../../task' },
    'text',
  ];
  assert.deepEqual(parseCallbackBody(body), { ok: true, ids: [ID], skipped: 3 });
  assert.deepEqual(parseCallbackBody({ objectID: ID }), { ok: false, reason: 'invalid_callback', detail: 'the body is not a JSON array of changes' });
  const tooMany = parseCallbackBody(Array.from({ length: MAX_CALLBACK_IDS + 1 }, () => ({ objectType: 'ExecutionResult', objectID: ID })));
  assert.equal(tooMany.ok, false);
  assert.equal(!tooMany.ok && tooMany.reason, 'too_many_changes');
});

test('stored inputs: a callback id has no dedup key; a catch-up result is keyed by its id', () => {
  assert.deepEqual(parseExecutionInput(encodeChanged(ID)), { ok: true, event: { kind: 'changed', id: ID }, dedupKey: null });
  const result = { id: ID, taskID: TASK, status: 8 };
  assert.deepEqual(parseExecutionInput(encodeResult(result)), { ok: true, event: { kind: 'result', result }, dedupKey: `qrs-executionresult:${ID}` });
  assert.equal(parseExecutionInput(Buffer.from('{"kind":"changed","id":"x"}')).ok, false);
  assert.equal(parseExecutionInput(Buffer.from('nope')).ok, false);
});

test('an ExecutionResult is read defensively', () => {
  const r = readExecutionResult({
    id: ID, executionID: 'e1', taskID: TASK, appID: '', executingNodeName: 'n1', status: 7, startTime: 'a', stopTime: 'b', duration: 5,
    fileReferenceID: EMPTY_GUID, scriptLogAvailable: true, details: [{ detailsType: 2, message: 'm', detailCreatedDate: 'd' }, 7], modifiedDate: 'm1',
  });
  assert.ok(typeof r !== 'string');
  assert.equal(r.appID, EMPTY_GUID, 'no app: the empty GUID');
  assert.deepEqual(r.details, [{ detailsType: 2, message: 'm', detailCreatedDate: 'd' }]);
  assert.equal(readExecutionResult({ id: ID, taskID: TASK, status: '8' }), `ExecutionResult ${ID} has no numeric status`);
  assert.equal(readExecutionResult({ id: ID, taskID: 'x', status: 8 }), `ExecutionResult ${ID} names no valid taskID`);
  assert.equal(executionStatusName(8), 'FinishedFail');
  assert.equal(executionStatusName(14), 'DistributionRunning');
  assert.equal(executionStatusName(99), 'Unknown(99)');
});

test('the appender timestamp layout from a QRS time', () => {
  assert.equal(appenderTimestamp('2026-12-06T18:00:05.123Z'), '2026-12-06 18:00:05,123');
  assert.equal(appenderTimestamp('2026-12-06T18:00:05Z'), '2026-12-06 18:00:05,000');
  assert.equal(appenderTimestamp('garbage'), 'garbage');
});

test('Inbox.claimInTransaction: a claimed key is a duplicate at once (after applied) and after a restart', async () => {
  const file = path.join(tmp.dir, 'claim.sqlite');
  const open = () => {
    const store = new Store({ file });
    const metrics = new Metrics({ processMetrics: false });
    const outbox = new Outbox(store, { maxMessages: 100, maxBytes: 1 << 20, defaultQos: 1, maxQos: 2, maxPacketBytes: 0 }, metrics);
    return { store, inbox: new Inbox(store, outbox, { maxEvents: 100, dedupTtlMs: 60_000 }, metrics) };
  };
  const a = open();
  let second: (() => void) | null = () => undefined;
  await a.store.write(() => {
    const note = a.inbox.claimInTransaction('exec-42');
    assert.ok(note);
    assert.equal(a.inbox.isDuplicate('exec-42'), false, 'counts in memory only once applied');
    note();
    second = a.inbox.claimInTransaction('exec-42');
  });
  assert.equal(second, null, 'a second claim is a duplicate');
  assert.equal((await a.inbox.accept('udp_task', Buffer.from('x'), 'exec-42')).status, 'duplicate', 'the UDP source sees the claim');
  a.store.close();
  const b = open();
  assert.equal(b.inbox.isDuplicate('exec-42'), true, 'kept across a restart');
  b.store.close();
});
