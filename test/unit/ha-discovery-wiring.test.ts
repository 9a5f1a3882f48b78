// Which delivered messages announce a Home Assistant problem sensor: the retained state topics of Sense
// tasks (QRS change notifications) and Qlik Cloud apps (webhooks and poller), read from the topic itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { monitoredFromDelivery } from '../../src/alerts/ha-discovery.ts';

const roots = { task: 'qliksense/task', cloud: 'qlikcloud' };
const TASK = 'e3b27f50-b1c0-4d49-85ae-aa4a1c1f2e55';
const APP = '7a2f1c3e-9b8d-4e6f-a1b2-c3d4e5f60718';

test('a Sense task state message names its task', () => {
  assert.deepEqual(monitoredFromDelivery({ topic: `qliksense/task/${TASK}/state`, kind: 'task_state' }, roots), {
    kind: 'sense_task',
    taskId: TASK,
    stateTopic: `qliksense/task/${TASK}/state`,
  });
});

test('a Qlik Cloud app state message names its tenant and app', () => {
  assert.deepEqual(monitoredFromDelivery({ topic: `qlikcloud/acme/app/${APP}/state`, kind: 'cloud_app_state' }, roots), {
    kind: 'cloud_app',
    tenantId: 'acme',
    appId: APP,
    stateTopic: `qlikcloud/acme/app/${APP}/state`,
  });
});

test('other messages announce nothing: executions, reloads, other kinds, topics outside the roots', () => {
  const none = [
    { topic: `qliksense/task/${TASK}/execution`, kind: 'task_execution' },
    { topic: `qlikcloud/acme/app/${APP}/reload`, kind: 'cloud_reload' },
    { topic: `qliksense/task/${TASK}/state`, kind: 'task_failure' },
    { topic: `other/root/${TASK}/state`, kind: 'task_state' },
    { topic: `qliksense/task/${TASK}/extra/state`, kind: 'task_state' },
    { topic: `qlikcloud/acme/${APP}/state`, kind: 'cloud_app_state' },
  ];
  for (const d of none) assert.equal(monitoredFromDelivery(d, roots), null, d.topic);
});
