// The command source of an instance in an active/standby pair: what a standby keeps, what a new
// active executes after its takeover, and the correlation ids it learns from the other's answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPublishPacket } from 'mqtt';
import { CommandSource } from '../../src/mqtt/command-source.ts';
import type { BrokerConnection } from '../../src/mqtt/connection.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const START = 'qliksense/start_task';
const RESULT = 'qliksense/start_task_result';
const TASK = '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f';

function pairSource(active: { value: boolean }) {
  const submitted: string[] = [];
  const started: string[] = [];
  const connection = { on() {}, off() {}, subscribe: () => ({}), unsubscribe() {}, options: { clean: true } } as unknown as BrokerConnection;
  const source = new CommandSource(
    { subscriptionFilter: 'qliksense/#', taskStartTopic: START, acceptRetained: false, unavailable: null, executes: () => active.value, deferWindowMs: 4000, resultTopic: RESULT, takeOverGraceMs: 0 },
    {
      connection,
      lane: { submit: (payload: Buffer) => (submitted.push((JSON.parse(payload.toString()) as { correlationId: string }).correlationId), Promise.resolve({ status: 'accepted' as const, id: 1 })), reject: () => undefined },
      answer: () => [],
      sink: { enqueue: () => Promise.resolve([]) } as never,
      logger: createLogger({ level: 'error', destination: { write: () => undefined } }),
      metrics: new Metrics(),
      startedElsewhere: (taskId, correlationId) => started.push(`${taskId}|${correlationId}`),
    },
  );
  let id = 1;
  const send = (topic: string, body: object) => source.onMessage(topic, Buffer.from(JSON.stringify(body)), { cmd: 'publish', topic, qos: 1, messageId: id++, dup: false, retain: false, payload: '' } as IPublishPacket);
  return { source, submitted, started, send };
}

test('a standby keeps commands; at the takeover it executes those the old active did not answer', () => {
  const active = { value: false };
  const { source, submitted, send } = pairSource(active);
  send(START, { taskId: TASK, correlationId: 'answered' });
  send(START, { taskId: TASK, correlationId: 'not-answered' });
  send(START, { taskId: TASK }); // no correlation id: the old active may have started it, so never executed here
  assert.deepEqual(submitted, []);
  send(RESULT, { taskId: TASK, correlationId: 'answered', status: 'started', detail: '' });
  active.value = true;
  assert.equal(source.executeDeferred(Date.now()), 1);
  assert.deepEqual(submitted, ['not-answered']);
  // Executed once: a second takeover finds nothing kept.
  assert.equal(source.executeDeferred(Date.now()), 0);
});

test('an answer from the old active arriving during the grace after the takeover cancels the command', () => {
  const active = { value: false };
  const { source, submitted, send } = pairSource(active);
  send(START, { taskId: TASK, correlationId: 'late-answer' });
  const takenAt = Date.now();
  active.value = true;
  send(RESULT, { taskId: TASK, correlationId: 'late-answer', status: 'started', detail: '' });
  assert.equal(source.executeDeferred(takenAt), 0);
  assert.deepEqual(submitted, []);
});

test('an instance that lost the role again during the grace keeps the commands for the next takeover', () => {
  const active = { value: false };
  const { source, submitted, send } = pairSource(active);
  send(START, { taskId: TASK, correlationId: 'kept' });
  assert.equal(source.executeDeferred(Date.now()), 0);
  active.value = true;
  assert.equal(source.executeDeferred(Date.now()), 1);
  assert.deepEqual(submitted, ['kept']);
});

test('"started" answers, the other instance\'s and its own, are handed on so the correlation id is refused here too', () => {
  const active = { value: true };
  const { started, send } = pairSource(active);
  send(RESULT, { taskId: TASK, correlationId: 'c1', status: 'started', detail: '' });
  send(RESULT, { taskId: TASK, correlationId: 'c2', status: 'failed', detail: 'QRS down' }); // not started: a retry may start it
  send(RESULT, { taskId: null, correlationId: 'c3', status: 'invalid', detail: '' });
  send(RESULT, { taskId: TASK, status: 'started', detail: '' }); // no correlation id: nothing to refuse by
  assert.deepEqual(started, [`${TASK}|c1`]);
});
