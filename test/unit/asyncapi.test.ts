// docs/asyncapi.yaml is generated from the message contract: it must be current, valid AsyncAPI 3
// (checked by @asyncapi/parser, the reference parser), and list the topics Butler users know.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';
import { ASYNCAPI_YAML, asyncApiYaml, defaultAsyncApiDocument } from '../../src/cli/asyncapi-doc.ts';
import { asyncApiDocument } from '../../src/contract/asyncapi.ts';
import { parseConfigText } from '../../src/config/load.ts';

const parser = new Parser();

/** Errors and warnings (severity 0 and 1); information and hints are not problems. */
async function problems(document: string | Record<string, unknown>): Promise<string[]> {
  const diagnostics = await parser.validate(typeof document === 'string' ? document : JSON.stringify(document));
  return diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`);
}

type Doc = { channels: Record<string, { address: string; messages: Record<string, unknown> }>; operations: Record<string, { action: string; bindings: { mqtt: { qos: number; retain: boolean } } }> };

test('docs/asyncapi.yaml is what the contract generates', () => {
  assert.equal(readFileSync(ASYNCAPI_YAML, 'utf8'), asyncApiYaml(), 'docs/asyncapi.yaml is stale: run `npm run docs:asyncapi` and commit the result');
});

test('docs/asyncapi.yaml is a valid AsyncAPI 3.0.0 document', async () => {
  const text = readFileSync(ASYNCAPI_YAML, 'utf8');
  assert.deepEqual(await problems(text), []);
  const { document } = await parser.parse(text);
  assert.ok(document, 'the parser returns a document');
  assert.equal(document.version(), '3.0.0');
  assert.ok(document.channels().length >= 30, `expected at least 30 channels, got ${document.channels().length}`);
});

test('the validation can fail: an operation pointing at a missing channel is an error', async () => {
  const doc = defaultAsyncApiDocument() as Doc & Record<string, unknown>;
  delete doc.channels['taskFailure'];
  const found = await problems(doc);
  assert.ok(found.length > 0, 'a broken document must not validate');
});

test('the default document has Butler\'s topics at their defaults, with direction, QoS and retain', () => {
  const doc = defaultAsyncApiDocument() as unknown as Doc;
  const address = (id: string) => doc.channels[id]?.address;
  const expected: Record<string, string> = {
    connectStatus: 'qliksense/butler/mqtt/status',
    availability: 'qliksense/butler/mqtt/availability',
    bridgeInfo: 'qliksense/butler/mqtt/bridge/info',
    bridgeHealth: 'qliksense/butler/mqtt/bridge/health',
    udpServerStatus: 'qliksense/butler/task_failure_server',
    taskFailure: 'qliksense/task_failure',
    taskFailureFull: 'qliksense/task_failure_full',
    taskAborted: 'qliksense/task_aborted',
    taskAbortedFull: 'qliksense/task_aborted_full',
    serviceStopped: 'qliksense/service_stopped/{host}/{serviceName}',
    serviceRunning: 'qliksense/service_running/{host}/{serviceName}',
    serviceStatus: 'qliksense/service_status/{host}/{serviceName}',
    serverLicense: 'qliksense/qliksense_server_license',
    serverLicenseExpire: 'qliksense/qliksense_server_license_expire',
    taskStartCommand: 'qliksense/start_task',
    cloudReloadFailure: 'qscloud/butler/reload_failure',
    cloudReloadFailureFull: 'qscloud/butler/reload_failure_full',
    sessionStart: 'qliksense/session/start',
    userEvent: 'qliksense/users/event',
    activeUserCount: 'qliksense/users/active/count',
    activeUsers: 'qliksense/users/active/usernames',
    homeAssistantDiscovery: 'homeassistant/{component}/{nodeId}/{objectId}/config',
    homeAssistantStatus: 'homeassistant/status',
    cloudEvent: 'qscloud/app/reload',
    forwardStatus: 'butler/qscloud/event/mqttforward/status',
    taskSuccess: '{taskSuccessTopic}',
  };
  for (const [id, topic] of Object.entries(expected)) assert.equal(address(id), topic, `channel ${id}`);
  assert.equal(doc.operations['sendTaskFailure']?.action, 'send');
  assert.deepEqual(doc.operations['sendTaskFailure']?.bindings.mqtt, { qos: 1, retain: false, bindingVersion: '0.2.0' });
  assert.equal(doc.operations['receiveTaskStartCommand']?.action, 'receive');
  assert.deepEqual(doc.operations['sendBridgeInfo']?.bindings.mqtt, { qos: 1, retain: true, bindingVersion: '0.2.0' });
  assert.deepEqual(doc.operations['sendForwardStatus']?.bindings.mqtt, { qos: 0, retain: false, bindingVersion: '0.2.0' });
  assert.deepEqual(Object.keys(doc.channels['taskStartCommand']?.messages ?? {}), ['taskStartPlain', 'taskStartJson']);
});

test('the served document uses the running config: its topics, QoS, and only the channels it has', async () => {
  const config = parseConfigText(
    [
      'Butler:',
      '  mqttConfig:',
      '    brokerHost: broker.example',
      '    brokerPort: 1884',
      '    taskFailureTopic: plant/alerts/failed',
      '    taskSuccessTopic: plant/alerts/ok',
      '    delivery: { qos: 0 }',
      '    availability: { enable: false }',
      '',
    ].join('\n'),
    '/etc/butler-mqtt/custom.yaml',
  ).butler;
  const doc = asyncApiDocument(config, { version: '9.9.9' }) as unknown as Doc & { servers: { main: { host: string } } };
  assert.equal(doc.channels['taskFailure']?.address, 'plant/alerts/failed');
  assert.equal(doc.channels['taskSuccess']?.address, 'plant/alerts/ok');
  assert.equal(doc.channels['availability'], undefined, 'availability switched off');
  assert.equal(doc.channels['restPublish'], undefined, 'REST endpoint off');
  assert.equal(doc.channels['taskStartResult'], undefined, 'no result topic');
  assert.deepEqual(doc.operations['sendTaskFailure']?.bindings.mqtt, { qos: 0, retain: false, bindingVersion: '0.2.0' });
  assert.equal(doc.servers.main.host, 'broker.example:1884');
  assert.deepEqual(await problems(doc as unknown as Record<string, unknown>), []);
});
