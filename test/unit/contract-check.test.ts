// The contract check the integration tests' collector applies to every message: real payloads of the
// bridge pass; unknown topics, wrong payloads, a wrong retain flag or QoS are reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contractViolation } from '../support/contract.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { licenseExpiringPayload, licenseStatusPayload, serviceStatusPayload, taskFailureFullPayload } from '../../src/alerts/payloads.ts';
import { parseDatagram } from '../../src/sense/datagram.ts';

const config = (yaml = '') => parseConfigText(`Butler:\n  mqttConfig:\n    enable: true\n    brokerHost: b\n${yaml}`, '/etc/b.yaml').butler;
const defaults = [config()];
const msg = (topic: string, payload: string, retain = false, qos = 1) => ({ topic, payload: Buffer.from(payload), retain, qos });

const DATAGRAM =
  '/scheduler-reload-failed/;sense1;Reload sales;Sales;INTERNAL\\\\sa_scheduler;e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e;6f8e8a46-3c1b-4a43-9b1e-0d1b5d9b1c11;2026-05-01 10:00:00,000;ERROR;0e6bd4e4-9a0b-4c1e-8c84-1b6c3a5d2e7f;Reload failed';

test('real payloads of the bridge fit their channels', () => {
  const parsed = parseDatagram(Buffer.from(DATAGRAM));
  assert.ok(parsed.ok);
  const ok: [string, string][] = [
    ['qliksense/task_failure', 'Reload sales'],
    ['qliksense/task_failure_full', taskFailureFullPayload(parsed.value, {})],
    ['qliksense/task_failure_full', taskFailureFullPayload(parsed.value, {}, 'QRS is not configured')],
    ['qliksense/qliksense_server_license', licenseStatusPayload({ licenseExpired: false, expiryDateStr: '2026-12-10', daysUntilExpiry: 17 })],
    ['qliksense/qliksense_server_license_expire', licenseExpiringPayload(17, '2026-12-10')],
    [
      'qliksense/service_status/sense1/QlikSenseEngineService',
      serviceStatusPayload({ host: 'sense1', serviceName: 'QlikSenseEngineService', friendlyName: '', displayName: 'Engine', dependencies: ['HTTP'], startType: 'Automatic', exePath: 'x', status: 'RUNNING' }),
    ],
    ['qliksense/butler/task_failure_server', 'start'],
    ['qliksense/butler/mqtt/status', 'Connected to MQTT broker b:1883 with client ID bridge-1'],
  ];
  for (const [topic, payload] of ok) assert.equal(contractViolation(msg(topic, payload), defaults), null, topic);
  // Retained channels: received with the retain flag from the broker's store.
  assert.equal(contractViolation(msg('qliksense/butler/mqtt/availability', 'online', true), defaults), null);
  assert.equal(contractViolation(msg('qliksense/users/active/count', '3', true), defaults), null);
});

test('an unknown topic is a violation', () => {
  assert.match(contractViolation(msg('qliksense/not_a_channel', 'x'), defaults) ?? '', /^topic "qliksense\/not_a_channel" is in no channel of the message contract/);
  // Off by default: the success topics and the result topic.
  assert.match(contractViolation(msg('qliksense/task_success', 'x'), defaults) ?? '', /in no channel/);
});

test('a payload that does not fit, a retained message on a channel that is not, or a wrong QoS is a violation', () => {
  assert.match(contractViolation(msg('qliksense/qliksense_server_license', '{"licenseExpired":"no"}'), defaults) ?? '', /channel serverLicense: payload fits no message/);
  assert.match(contractViolation(msg('qliksense/task_failure_full', 'not json'), defaults) ?? '', /not JSON/);
  assert.match(contractViolation(msg('qliksense/butler/task_failure_server', 'started'), defaults) ?? '', /payload fits no message/);
  assert.match(contractViolation(msg('qliksense/task_failure', 'Reload sales', true), defaults) ?? '', /retained, but the channel is not/);
  assert.match(contractViolation(msg('qliksense/task_failure', 'Reload sales', false, 0), defaults) ?? '', /QoS 0, expected 1/);
  assert.match(contractViolation(msg('qliksense/butler/mqtt/availability', 'maybe', true), defaults) ?? '', /payload fits no message/);
});

test('topics and rules follow the config: custom topics, QoS 0, the REST endpoint and its prefixes', () => {
  const custom = [config('    taskFailureTopic: plant/failed\n    delivery: { qos: 0 }\n  restServerConfig: { enable: true, publishAllowedTopicPrefixes: [scripts/] }\n  restServerEndpointsEnable: { mqttPublishMessage: true }')];
  assert.equal(contractViolation(msg('plant/failed', 'Reload sales', false, 0), custom), null);
  assert.match(contractViolation(msg('qliksense/task_failure', 'Reload sales', false, 0), custom) ?? '', /in no channel/);
  assert.equal(contractViolation(msg('scripts/anything/goes', 'free text', false, 0), custom), null, 'REST publish within the allowed prefix');
  assert.match(contractViolation(msg('elsewhere/x', 'free text', false, 0), custom) ?? '', /in no channel/);
});

test('messages on channels the bridge reads are known topics; their payloads are the sender\'s business', () => {
  assert.equal(contractViolation(msg('qliksense/start_task', 'not a uuid'), defaults), null);
});
