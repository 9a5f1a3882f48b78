// Home Assistant discovery: each entity's config message is checked against Home Assistant's MQTT
// discovery documentation (the rules are written out below, by hand), and the state topic it names
// is fed the payload the bridge really publishes there, to show the entity accepts it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Value from 'typebox/value';
import { HaDiscovery, discoveryEntities, type HaDiscoveryOptions, type HaEntity, type AnnouncedTopics } from '../../src/alerts/ha-discovery.ts';
import { BridgeInfo } from '../../src/alerts/bridge-info.ts';
import { licenseStatusPayload, serviceStatusPayload, type ServiceState } from '../../src/alerts/payloads.ts';
import { HaDiscoveryConfig } from '../../src/contract/schemas.ts';
import { CHANNELS, channelMessages } from '../../src/contract/channels.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { OutgoingMessage } from '../../src/store/types.ts';

// ---- What Home Assistant's MQTT documentation says (integrations/mqtt, binary_sensor.mqtt, sensor.mqtt) ----
/** Discovery topic: <discovery_prefix>/<component>/[<node_id>/]<object_id>/config; ids are [a-zA-Z0-9_-]. */
const DISCOVERY_TOPIC = /^homeassistant\/(binary_sensor|sensor)\/[a-zA-Z0-9_-]+\/[a-zA-Z0-9_-]+\/config$/;
/** Both components: state_topic is required; unique_id is needed for the device registry; device needs identifiers. */
const REQUIRED = ['state_topic', 'unique_id', 'device'] as const;
/** binary_sensor: payload_on / payload_off default to "ON" / "OFF". */
const BINARY_DEFAULTS = { payload_on: 'ON', payload_off: 'OFF' };
/** The documented device classes used here. */
const BINARY_CLASSES = ['connectivity', 'problem', 'running'];
const SENSOR_CLASSES = ['duration'];
/** Units the duration device class accepts. */
const DURATION_UNITS = ['d', 'h', 'min', 's', 'ms'];
/** entity_category: config or diagnostic. */
const ENTITY_CATEGORIES = ['config', 'diagnostic'];

function checkAgainstDocs(e: HaEntity): void {
  const c = e.config as unknown as Record<string, unknown>;
  assert.match(e.topic, DISCOVERY_TOPIC, 'discovery topic format');
  assert.ok(e.topic.startsWith(`homeassistant/${e.component}/`), 'component level of the topic');
  for (const key of REQUIRED) assert.ok(c[key] !== undefined && c[key] !== '', `${e.objectId}: ${key} is required`);
  assert.equal(typeof c['state_topic'], 'string');
  assert.ok(!String(c['state_topic']).includes('+') && !String(c['state_topic']).includes('#'), 'state_topic is a topic, not a filter');
  const device = c['device'] as { identifiers?: unknown[] };
  assert.ok(Array.isArray(device.identifiers) && device.identifiers.length > 0, 'device.identifiers');
  if (c['device_class'] !== undefined) assert.ok((e.component === 'binary_sensor' ? BINARY_CLASSES : SENSOR_CLASSES).includes(String(c['device_class'])), `device_class ${String(c['device_class'])}`);
  if (c['device_class'] === 'duration') assert.ok(DURATION_UNITS.includes(String(c['unit_of_measurement'])), 'duration unit');
  if (c['entity_category'] !== undefined) assert.ok(ENTITY_CATEGORIES.includes(String(c['entity_category'])));
  if (c['expire_after'] !== undefined) assert.ok(Number.isInteger(c['expire_after']) && (c['expire_after'] as number) > 0);
  if (c['availability_topic'] !== undefined) assert.equal(typeof c['availability_topic'], 'string');
  assert.ok(Value.Check(HaDiscoveryConfig, e.config), 'fits the contract schema');
}

// ---- A small renderer for the two template forms the bridge uses (Home Assistant renders Jinja) ----
function pathOf(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), obj);
}

function render(template: string | undefined, payload: string): string {
  if (template === undefined) return payload;
  const value_json = JSON.parse(payload);
  let m = /^\{\{ value_json\.([\w.]+) \}\}$/.exec(template);
  if (m) return String(pathOf(value_json, m[1] as string));
  m = /^\{\{ '(\w+)' if value_json\.([\w.]+) > (-?\d+) else '(\w+)' \}\}$/.exec(template);
  if (m) return Number(pathOf(value_json, m[2] as string)) > Number(m[3]) ? (m[1] as string) : (m[4] as string);
  throw new Error(`template form not understood by the test renderer: ${template}`);
}

/** The state a binary_sensor takes for a payload: on, off, or (not accepted) null. */
function binaryState(e: HaEntity, payload: string): 'on' | 'off' | null {
  const v = render(e.config.value_template, payload);
  if (v === (e.config.payload_on ?? BINARY_DEFAULTS.payload_on)) return 'on';
  if (v === (e.config.payload_off ?? BINARY_DEFAULTS.payload_off)) return 'off';
  return null;
}

function numericState(e: HaEntity, payload: string): number {
  const v = render(e.config.value_template, payload);
  assert.match(v, /^-?\d+(\.\d+)?$/, `${e.objectId}: "${v}" is a number`);
  return Number(v);
}

// ---- Fixtures ----
const logger = createLogger({ level: 'error', secrets: [], pretty: false, destination: { write: () => undefined } });

function options(over: Partial<HaDiscoveryOptions> = {}): HaDiscoveryOptions {
  return {
    enable: true,
    discoveryPrefix: 'homeassistant',
    statusTopic: 'homeassistant/status',
    clientId: 'butler-mqtt-sense.example',
    version: '1.0.0',
    retain: true,
    availability: { topic: 'qliksense/butler/mqtt/availability', online: 'online', offline: 'offline' },
    health: { topic: 'qliksense/butler/mqtt/bridge/health', intervalSeconds: 60 },
    licenseTopic: 'qliksense/qliksense_server_license',
    services: [{ statusTopicRoot: 'qliksense/service_status', host: 'sense1', name: 'QlikSenseEngineService', friendlyName: 'Engine' }],
    ...over,
  };
}

const TASK_ID = 'e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e';
const entities = discoveryEntities(options(), [
  { kind: 'sense_task', taskId: TASK_ID, taskName: 'Reload sales', stateTopic: `qliksense/task/${TASK_ID}/state` },
  { kind: 'cloud_app', tenantId: 'tenant.eu', appId: 'a1b2c3', appName: 'Finance', stateTopic: 'qlikcloud/tenant.eu/app/a1b2c3/state' },
]);
const byObject = (id: string) => {
  const e = entities.find((x) => x.objectId === id);
  assert.ok(e, `entity ${id}`);
  return e;
};
const NODE = 'butler_mqtt_butler-mqtt-sense_example';

test('every entity belongs to one device, with unique ids and one topic each', () => {
  assert.deepEqual(
    entities.map((e) => e.topic),
    [
      `homeassistant/binary_sensor/${NODE}/connectivity/config`,
      `homeassistant/sensor/${NODE}/outbox_depth/config`,
      `homeassistant/sensor/${NODE}/outbox_oldest_age/config`,
      `homeassistant/sensor/${NODE}/license_days_left/config`,
      `homeassistant/binary_sensor/${NODE}/service_sense1_QlikSenseEngineService/config`,
      `homeassistant/binary_sensor/${NODE}/task_${TASK_ID}/config`,
      `homeassistant/binary_sensor/${NODE}/cloud_app_tenant_eu_a1b2c3/config`,
    ],
  );
  assert.equal(new Set(entities.map((e) => e.config.unique_id)).size, entities.length);
  for (const e of entities) assert.deepEqual(e.config.device.identifiers, [NODE]);
});

test('connectivity: a binary_sensor on the availability topic whose payload_on/off are exactly what that topic carries', () => {
  const e = byObject('connectivity');
  checkAgainstDocs(e);
  assert.equal(e.component, 'binary_sensor');
  assert.equal(e.config.device_class, 'connectivity');
  assert.equal(e.config.state_topic, 'qliksense/butler/mqtt/availability');
  assert.equal(e.config.availability_topic, undefined, 'it reports the availability itself');
  // What the availability channel may carry under the default config: online / offline.
  const config = parseConfigText('Butler: {}\n', '/etc/b.yaml').butler;
  const channel = CHANNELS.find((c) => c.id === 'availability');
  assert.ok(channel);
  const schema = channelMessages(channel, config)[0]?.schema as { anyOf: { const: string }[] };
  const carried = schema.anyOf.map((s) => s.const);
  assert.deepEqual(carried, ['online', 'offline']);
  assert.deepEqual(carried.map((p) => binaryState(e, p)), ['on', 'off']);
  // Configured payloads carry over.
  const custom = discoveryEntities(options({ availability: { topic: 'x/avail', online: 'UP', offline: 'DOWN' } }))[0] as HaEntity;
  assert.deepEqual([binaryState(custom, 'UP'), binaryState(custom, 'DOWN')], ['on', 'off']);
});

async function realHealthPayload(depth: number, age: number): Promise<string> {
  const part = new BridgeInfo(
    { topicRoot: 'r', healthIntervalSeconds: 0, retainInfo: true, version: '1', clientId: 'c', features: [], configFile: '/nonexistent' },
    { sink: { enqueue: async () => undefined }, stats: () => ({ outboxDepth: depth, outboxOldestAgeSeconds: age, inboxDepth: 0, refused: 0, qrs: null, qlikCloud: null }), logger },
  );
  return JSON.stringify(await part.health());
}

test('outbox depth: a sensor on bridge/health whose value_template yields the depth as a number', async () => {
  const e = byObject('outbox_depth');
  checkAgainstDocs(e);
  assert.equal(e.config.state_topic, 'qliksense/butler/mqtt/bridge/health');
  assert.equal(e.config.availability_topic, 'qliksense/butler/mqtt/availability');
  assert.equal(e.config.expire_after, 180, 'three health periods');
  assert.equal(numericState(e, await realHealthPayload(42, 0)), 42);
  assert.equal(numericState(e, await realHealthPayload(0, 0)), 0);
});

test('oldest outbox message age: a duration sensor in seconds from bridge/health', async () => {
  const e = byObject('outbox_oldest_age');
  checkAgainstDocs(e);
  assert.equal(e.config.unit_of_measurement, 's');
  assert.equal(numericState(e, await realHealthPayload(3, 12.5)), 12.5);
});

test('server license days left: a sensor on the license topic; its value_template yields daysUntilExpiry', () => {
  const e = byObject('license_days_left');
  checkAgainstDocs(e);
  assert.equal(e.config.state_topic, 'qliksense/qliksense_server_license');
  assert.equal(e.config.unit_of_measurement, 'd');
  assert.equal(numericState(e, licenseStatusPayload({ licenseExpired: false, expiryDateStr: '2026-12-10', daysUntilExpiry: 17 })), 17);
  assert.equal(numericState(e, licenseStatusPayload({ licenseExpired: true, expiryDateStr: '2026-01-02', daysUntilExpiry: -3 })), -3);
});

test('Windows service: a running binary_sensor per configured service, on and off from the status payload', () => {
  const e = byObject('service_sense1_QlikSenseEngineService');
  checkAgainstDocs(e);
  assert.equal(e.config.state_topic, 'qliksense/service_status/sense1/QlikSenseEngineService');
  assert.equal(e.config.name, 'Engine on sense1');
  const state = (status: ServiceState['status']): ServiceState => ({ host: 'sense1', serviceName: 'QlikSenseEngineService', friendlyName: 'Engine', displayName: 'Qlik Sense Engine Service', dependencies: [], startType: 'Automatic', exePath: 'C:\\Engine.exe', status });
  assert.equal(binaryState(e, serviceStatusPayload(state('RUNNING'))), 'on');
  assert.equal(binaryState(e, serviceStatusPayload(state('STOPPED'))), 'off');
});

// The retained state topics of tasks and apps: taskId/appId, name, status (enum name), consecutiveFailures …
const taskState = (status: string, consecutiveFailures: number) => JSON.stringify({ taskId: TASK_ID, taskName: 'Reload sales', status, consecutiveFailures });

test('Sense task: a problem binary_sensor on the task state topic, on while the last runs failed', () => {
  const e = byObject(`task_${TASK_ID}`);
  checkAgainstDocs(e);
  assert.equal(e.config.device_class, 'problem');
  assert.equal(e.config.state_topic, `qliksense/task/${TASK_ID}/state`);
  assert.equal(e.config.json_attributes_topic, `qliksense/task/${TASK_ID}/state`);
  assert.equal(e.config.name, 'Task Reload sales');
  assert.equal(binaryState(e, taskState('FinishedFail', 2)), 'on');
  assert.equal(binaryState(e, taskState('FinishedSuccess', 0)), 'off');
});

test('Qlik Cloud app: a problem binary_sensor on the app state topic', () => {
  const e = byObject('cloud_app_tenant_eu_a1b2c3');
  checkAgainstDocs(e);
  assert.equal(e.config.state_topic, 'qlikcloud/tenant.eu/app/a1b2c3/state');
  assert.equal(binaryState(e, JSON.stringify({ appId: 'a1b2c3', appName: 'Finance', status: 'FAILED', consecutiveFailures: 1 })), 'on');
  assert.equal(binaryState(e, JSON.stringify({ appId: 'a1b2c3', appName: 'Finance', status: 'SUCCEEDED', consecutiveFailures: 0 })), 'off');
});

test('without availability, health, license or services only the monitored items remain', () => {
  const none = discoveryEntities(options({ availability: null, health: null, licenseTopic: null, services: [] }));
  assert.deepEqual(none, []);
});

// ---- Lifecycle ----
function memoryTopics(initial: string[] = []): AnnouncedTopics & { topics: Set<string> } {
  const topics = new Set(initial);
  return { topics, list: () => [...topics], add: async (t) => void t.forEach((x) => topics.add(x)), clear: async () => topics.clear() };
}

function recordingSink() {
  const sent: OutgoingMessage[] = [];
  return { sent, enqueue: async (m: OutgoingMessage[]) => void sent.push(...m) };
}

test('start announces every entity retained; Home Assistant "online" announces again; a new task once', async () => {
  const sink = recordingSink();
  const announced = memoryTopics();
  let statusHandler: ((payload: Buffer) => void) | null = null;
  const ha = new HaDiscovery(options(), {
    sink,
    announced,
    subscribe: (topic, handler) => {
      assert.equal(topic, 'homeassistant/status');
      statusHandler = handler;
      return () => (statusHandler = null);
    },
    logger,
  });
  await ha.start();
  assert.equal(sink.sent.length, 5);
  assert.ok(sink.sent.every((m) => m.retain === true && m.kind === 'ha_discovery'));
  assert.equal(announced.topics.size, 5);
  (statusHandler as unknown as (p: Buffer) => void)(Buffer.from('offline'));
  (statusHandler as unknown as (p: Buffer) => void)(Buffer.from('online'));
  await new Promise((r) => setImmediate(r));
  assert.equal(sink.sent.length, 10, 'announced again on online, not on offline');
  const item = { kind: 'sense_task' as const, taskId: TASK_ID, taskName: 'Reload sales', stateTopic: `qliksense/task/${TASK_ID}/state` };
  await ha.addMonitored(item);
  await ha.addMonitored(item);
  assert.equal(sink.sent.length, 11, 'one announcement per new task');
  assert.equal(sink.sent[10]?.topic, `homeassistant/binary_sensor/${NODE}/task_${TASK_ID}/config`);
  ha.stop();
  assert.equal(statusHandler, null, 'unsubscribed on stop');
});

test('switched off: every topic announced before is cleared with an empty retained message, once', async () => {
  const sink = recordingSink();
  const announced = memoryTopics(['homeassistant/sensor/n/a/config', 'homeassistant/binary_sensor/n/b/config']);
  const ha = new HaDiscovery(options({ enable: false }), { sink, announced, subscribe: () => assert.fail('no subscription when off'), logger });
  await ha.start();
  assert.deepEqual(
    sink.sent.map((m) => [m.topic, m.payload, m.retain]),
    [
      ['homeassistant/sensor/n/a/config', '', true],
      ['homeassistant/binary_sensor/n/b/config', '', true],
    ],
  );
  assert.equal(announced.topics.size, 0);
  await ha.addMonitored({ kind: 'cloud_app', tenantId: 't', appId: 'a', stateTopic: 's' });
  ha.stop();
  await new HaDiscovery(options({ enable: false }), { sink, announced, subscribe: null, logger }).start();
  assert.equal(sink.sent.length, 2, 'nothing more to remove, nothing announced while off');
});
