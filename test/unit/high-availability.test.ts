// The pair's pure rules: who outranks whom, what counts as an announcement, and the key a held alert
// is matched by (a row's text payload and the bytes that come back from the broker give one key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outranks, parseAnnouncement, offlineWill, instanceTopic, heartbeatTopic } from '../../src/mqtt/high-availability.ts';
import { messageKey } from '../../src/mqtt/publisher.ts';

test('the higher priority outranks; on a tie the lower instance id', () => {
  assert.equal(outranks({ priority: 200, instanceId: 'b' }, { priority: 100, instanceId: 'a' }), true);
  assert.equal(outranks({ priority: 100, instanceId: 'a' }, { priority: 200, instanceId: 'b' }), false);
  assert.equal(outranks({ priority: 100, instanceId: 'alpha' }, { priority: 100, instanceId: 'beta' }), true);
  assert.equal(outranks({ priority: 100, instanceId: 'beta' }, { priority: 100, instanceId: 'alpha' }), false);
});

test('announcements: state, instanceId and priority are required; an unknown role reads as standby; times are optional', () => {
  assert.deepEqual(parseAnnouncement(Buffer.from('{"state":"online","instanceId":"a","priority":5,"role":"active","at":7,"startedAt":3}')), { state: 'online', instanceId: 'a', priority: 5, role: 'active', at: 7, startedAt: 3 });
  assert.deepEqual(parseAnnouncement(Buffer.from('{"state":"offline","instanceId":"a","priority":5,"role":"boss"}')), { state: 'offline', instanceId: 'a', priority: 5, role: 'standby', at: 0, startedAt: 0 });
  // An earlier version's announcement (no startedAt) and nonsense times read as "not given".
  assert.equal(parseAnnouncement(Buffer.from('{"state":"online","instanceId":"a","priority":5,"role":"active","at":7}'))?.startedAt, 0);
  for (const t of ['"soon"', '-5', 'null', '1e400']) assert.equal(parseAnnouncement(Buffer.from(`{"state":"online","instanceId":"a","priority":5,"startedAt":${t}}`))?.startedAt, 0, t);
  for (const bad of ['', 'online', '{"state":"up","instanceId":"a","priority":1}', '{"state":"online","priority":1}', '{"state":"online","instanceId":"a","priority":"1"}', '[]', 'null']) {
    assert.equal(parseAnnouncement(Buffer.from(bad)), null, bad);
  }
});

test('the last will is the retained offline announcement on the instance topic', () => {
  const will = offlineWill({ group: 'butler-mqtt', instanceId: 'node-1', priority: 100, retain: true, qos: 1 });
  assert.equal(will.topic, 'butler-mqtt/instances/node-1');
  assert.deepEqual(JSON.parse(will.payload), { state: 'offline', instanceId: 'node-1', priority: 100, role: 'standby' });
  assert.equal(will.retain, true);
  assert.equal(instanceTopic('g', 'x'), 'g/instances/x');
  assert.equal(heartbeatTopic('g', 'x'), 'g/heartbeat/x');
});

test('message key: the same topic and payload bytes give one key, as text or as bytes; anything else differs', () => {
  const text = '{"taskName":"Ünïcode reload","executionId":"1"}';
  assert.equal(messageKey('qliksense/task_failure_full', text), messageKey('qliksense/task_failure_full', Buffer.from(text, 'utf8')));
  assert.notEqual(messageKey('qliksense/task_failure_full', text), messageKey('qliksense/task_failure', text));
  assert.notEqual(messageKey('qliksense/task_failure_full', text), messageKey('qliksense/task_failure_full', `${text} `));
});

test('the standby watches the subscription root and each alert topic outside it, without overlapping filters', async () => {
  const { parseConfigText } = await import('../../src/config/load.ts');
  const { haSettings } = await import('../../src/app.ts');
  const config = parseConfigText(
    ['Butler:', '  mqttConfig:', '    enable: true', '    brokerHost: 127.0.0.1', '    taskFailureTopic: other/task_failure', '    taskFailureFullTopic: other/task_failure/full', '  highAvailability:', '    enable: true', '    instanceId: node-1'].join('\n'),
    'ha.yaml',
  );
  const ha = haSettings(config);
  assert.ok(ha);
  assert.equal(ha.instanceId, 'node-1');
  assert.deepEqual(ha.watchFilters, ['qliksense/#', 'other/task_failure/#', 'qscloud/butler/reload_failure/#', 'qscloud/butler/reload_failure_full/#']);
});
