// Which filter the task start command source subscribes to (commandFilter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandFilter } from '../../src/mqtt/command-source.ts';

const off = { wholeRoot: false, pair: false };

test('the command topic alone by default, whatever the root', () => {
  assert.equal(commandFilter('qliksense/#', 'qliksense/start_task', off), 'qliksense/start_task');
  assert.equal(commandFilter('qliksense/+', 'qliksense/start_task', off), 'qliksense/start_task');
  assert.equal(commandFilter('qliksense/start_task', 'qliksense/start_task', off), 'qliksense/start_task');
});

test('the whole root when asked for, for a shared subscription, and in an active/standby pair', () => {
  assert.equal(commandFilter('qliksense/#', 'qliksense/start_task', { wholeRoot: true, pair: false }), 'qliksense/#');
  assert.equal(commandFilter('qliksense/#', 'qliksense/start_task', { wholeRoot: false, pair: true }), 'qliksense/#');
  assert.equal(commandFilter('$share/butler/qliksense/#', 'qliksense/start_task', off), '$share/butler/qliksense/#');
});
