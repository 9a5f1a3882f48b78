// MQTT topic filter matching used to route incoming messages to subscription handlers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { innerFilter, topicMatches } from '../../src/mqtt/connection.ts';

test('topicMatches: exact, + (one level), # (this level and below), $ topics and wildcards', () => {
  const cases: [string, string, boolean][] = [
    ['qliksense/start_task', 'qliksense/start_task', true],
    ['qliksense/start_task', 'qliksense/start_task/x', false],
    ['qliksense/#', 'qliksense/start_task', true],
    ['qliksense/#', 'qliksense', true],
    ['qliksense/#', 'qliksense/a/b/c', true],
    ['qliksense/#', 'qliksensex/a', false],
    ['#', 'anything/at/all', true],
    ['+/x', 'a/x', true],
    ['+/x', 'a/b/x', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a//c', true],
    ['a/+', 'a', false],
    ['a/+', 'a/', true],
    ['a/+/#', 'a/b', true],
    ['#', '$SYS/broker/load', false],
    ['+/broker/load', '$SYS/broker/load', false],
    ['$SYS/#', '$SYS/broker/load', true],
    ['a/b', 'a/B', false],
  ];
  for (const [filter, topic, expected] of cases) assert.equal(topicMatches(filter, topic), expected, `${filter} vs ${topic}`);
});

test('innerFilter: a shared subscription routes by the filter after $share/<group>/', () => {
  assert.equal(innerFilter('$share/butler/qliksense/#'), 'qliksense/#');
  assert.equal(innerFilter('$share/g/a/+/c'), 'a/+/c');
  assert.equal(innerFilter('qliksense/#'), 'qliksense/#');
  assert.equal(innerFilter('$SYS/#'), '$SYS/#');
});
