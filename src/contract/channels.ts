// Every MQTT channel of the bridge, once: where its topic comes from (config key and default, or a
// fixed topic), which way it goes, QoS, retain flag and its message payloads (schemas.ts). The
// AsyncAPI document (asyncapi.ts) and the contract tests are generated from this list; a topic the
// list does not describe is not part of the contract.
import type { TSchema } from 'typebox';
import Value from 'typebox/value';
import type { ButlerConfig } from '../config/schema.ts';
import { ButlerSchema } from '../config/schema.ts';
import { topicMatches } from '../mqtt/topics.ts';
import * as S from './schemas.ts';

export type ServerName = 'main' | 'cloudForward';

export interface ContractMessage {
  /** Component name in the AsyncAPI document (unique across the contract). */
  name: string;
  title: string;
  contentType: 'application/json' | 'text/plain';
  schema: TSchema;
  /** Component schema name for JSON payloads shared by several messages. */
  schemaName?: string;
}

/**
 * Where the topic comes from: a config key (path below `Butler`, its default read from the schema) or
 * a fixed topic, then an optional suffix whose `{name}` levels are parameters (one topic level each).
 */
export interface TopicSource {
  key?: string;
  fixed?: string;
  suffix?: string;
  /** The bridge takes every topic that starts with the address (a plain string prefix, as Butler). */
  prefix?: boolean;
  /** The topic is the caller's choice (REST publish). */
  any?: boolean;
}

/** `delivery`: Butler.mqttConfig.delivery.qos (capped at 1 in Event Grid mode); `availability`: that, capped at 1. */
export type QosRule = 'delivery' | 'availability' | 0 | 1;
/** `connectStatus`: mqttConfig.connectStatusRetain; `availability`: availability.retain (default true); `notEventGrid`: true except in Event Grid mode. */
export type RetainRule = boolean | 'connectStatus' | 'availability' | 'notEventGrid';

export interface ChannelDef {
  id: string;
  title: string;
  /** When it is sent (or what the bridge does with it). */
  description: string;
  /** From the bridge's side: it sends (publishes) or receives (subscribes). */
  action: 'send' | 'receive';
  server: ServerName;
  topic: TopicSource;
  parameters?: Record<string, string>;
  qos: QosRule;
  retain: RetainRule;
  messages: ContractMessage[] | ((b: ButlerConfig) => ContractMessage[]);
  /** False when the config switches the channel off for reasons beyond an empty topic. */
  active?: (b: ButlerConfig) => boolean;
}

const json = (name: string, title: string, schema: TSchema, schemaName?: string): ContractMessage => ({ name, title, contentType: 'application/json', schema, schemaName: schemaName ?? name });
const text = (name: string, title: string, schema: TSchema): ContractMessage => ({ name, title, contentType: 'text/plain', schema });

const mqttKey = (k: string) => `mqttConfig.${k}`;
const SERVICE_PARAMS = { host: 'Host name of the Sense node, as configured in serviceMonitor.monitor[].host.', serviceName: 'Windows service name, as configured.' };
const TASK_NAME = text('taskName', 'Task name', S.TaskNameText);
const TASK_FAILURE_FULL = json('taskFailureFull', 'Reload task failed (full)', S.TaskFailureFull, 'TaskFailureFull');
const TASK_SUCCESS_FULL = json('taskSuccessFull', 'Reload task succeeded (full)', S.TaskFailureFull, 'TaskFailureFull');
const SESSION_LEGACY = text('sessionLegacy', 'Session or connection event (legacy text)', S.SessionLegacyText);

export const CONNECT_STATUS_TOPIC = 'qliksense/butler/mqtt/status';
export const FORWARD_STATUS_TOPIC = 'butler/qscloud/event/mqttforward/status';
export const TEST_EVENT_TOPIC = 'qliksense/butler/mqtt/test';

export const CHANNELS: readonly ChannelDef[] = [
  {
    id: 'connectStatus',
    title: 'Connect status',
    description: 'Published on every successful connect to the main broker, before the backlog.',
    action: 'send', server: 'main', topic: { fixed: CONNECT_STATUS_TOPIC }, qos: 'delivery', retain: 'connectStatus',
    messages: [text('connectStatus', 'Connected to the broker', S.ConnectStatusText)],
  },
  {
    id: 'availability',
    title: 'Availability',
    description: 'Online on every connect; offline on shutdown and as the last-will when the connection is lost.',
    action: 'send', server: 'main', topic: { key: mqttKey('availability.topic') }, qos: 'availability', retain: 'availability',
    messages: (b) => [text('availability', 'Online or offline', S.availabilityText(b.mqttConfig.availability.onlinePayload, b.mqttConfig.availability.offlinePayload))],
    active: (b) => b.mqttConfig.availability.enable,
  },
  {
    id: 'bridgeInfo',
    title: 'Bridge info',
    description: 'What is running: version, client id, enabled features, config file hash, start time; sent at start.',
    action: 'send', server: 'main', topic: { key: mqttKey('bridgeTopicRoot'), suffix: '/bridge/info' }, qos: 'delivery', retain: 'notEventGrid',
    messages: [json('bridgeInfo', 'Bridge info', S.BridgeInfo, 'BridgeInfo')],
  },
  {
    id: 'bridgeHealth',
    title: 'Bridge health',
    description: 'Outbox and inbox depth, refusals, QRS and Qlik Cloud health; at start and every mqttConfig.bridgeHealthIntervalSeconds.',
    action: 'send', server: 'main', topic: { key: mqttKey('bridgeTopicRoot'), suffix: '/bridge/health' }, qos: 'delivery', retain: false,
    messages: [json('bridgeHealth', 'Bridge health', S.BridgeHealth, 'BridgeHealth')],
  },
  {
    id: 'udpServerStatus',
    title: 'UDP server status',
    description: 'Status of the UDP input for Sense scheduler events.',
    action: 'send', server: 'main', topic: { key: mqttKey('taskFailureServerStatusTopic') }, qos: 'delivery', retain: false,
    messages: [text('udpServerStatus', 'start or error', S.UdpServerStatusText)],
  },
  {
    id: 'taskFailure', title: 'Reload task failed', description: 'A reload task failed (Sense scheduler log appender).',
    action: 'send', server: 'main', topic: { key: mqttKey('taskFailureTopic') }, qos: 'delivery', retain: false, messages: [TASK_NAME],
  },
  {
    id: 'taskFailureFull', title: 'Reload task failed (full)', description: 'A reload task failed, with QRS details; when mqttConfig.taskFailureSendFull.',
    action: 'send', server: 'main', topic: { key: mqttKey('taskFailureFullTopic') }, qos: 'delivery', retain: false, messages: [TASK_FAILURE_FULL],
  },
  {
    id: 'taskAborted', title: 'Reload task aborted', description: 'A reload task was aborted.',
    action: 'send', server: 'main', topic: { key: mqttKey('taskAbortedTopic') }, qos: 'delivery', retain: false, messages: [TASK_NAME],
  },
  {
    id: 'taskAbortedFull', title: 'Reload task aborted (full)', description: 'A reload task was aborted, with QRS details; when mqttConfig.taskAbortedSendFull.',
    action: 'send', server: 'main', topic: { key: mqttKey('taskAbortedFullTopic') }, qos: 'delivery', retain: false,
    messages: [json('taskAbortedFull', 'Reload task aborted (full)', S.TaskAbortedFull, 'TaskAbortedFull')],
  },
  {
    id: 'taskSuccess', title: 'Reload task succeeded', description: 'A reload task succeeded (off unless the topic is set).',
    action: 'send', server: 'main', topic: { key: mqttKey('taskSuccessTopic') }, qos: 'delivery', retain: false, messages: [TASK_NAME],
  },
  {
    id: 'taskSuccessFull', title: 'Reload task succeeded (full)', description: 'A reload task succeeded, with QRS details, in the failure payload layout (off unless the topic is set).',
    action: 'send', server: 'main', topic: { key: mqttKey('taskSuccessFullTopic') }, qos: 'delivery', retain: false, messages: [TASK_SUCCESS_FULL],
  },
  {
    id: 'taskExecution', title: 'Task execution', description: 'Every finished execution of every task type (QRS change notifications, with qrsChangeNotifications.enable).',
    action: 'send', server: 'main', topic: { key: mqttKey('taskEventsTopicRoot'), suffix: '/{taskId}/execution' }, parameters: { taskId: 'The Sense task id.' }, qos: 'delivery', retain: false,
    messages: [json('taskExecution', 'Task execution', S.TaskExecution, 'TaskExecution')],
    active: (b) => b.qrsChangeNotifications.enable,
  },
  {
    id: 'taskState', title: 'Task state', description: 'The last outcome of each task, retained (QRS change notifications).',
    action: 'send', server: 'main', topic: { key: mqttKey('taskEventsTopicRoot'), suffix: '/{taskId}/state' }, parameters: { taskId: 'The Sense task id.' }, qos: 'delivery', retain: 'notEventGrid',
    messages: [json('taskState', 'Task state', S.TaskState, 'TaskState')],
    active: (b) => b.qrsChangeNotifications.enable,
  },
  {
    id: 'cloudAppReload', title: 'Qlik Cloud app reload', description: 'Every finished reload of a Qlik Cloud app (webhook or reloads poller of a tenant in qlikSenseCloud.tenants).',
    action: 'send', server: 'main', topic: { key: mqttKey('cloudEventsTopicRoot'), suffix: '/{tenant}/app/{appId}/reload' }, parameters: { tenant: 'The tenant name of the config.', appId: 'The Qlik Cloud app id.' }, qos: 'delivery', retain: false,
    messages: [json('cloudAppReload', 'Qlik Cloud app reload', S.CloudAppReload, 'CloudAppReload')],
    active: (b) => b.qlikSenseCloud.tenants.length > 0,
  },
  {
    id: 'cloudAppState', title: 'Qlik Cloud app state', description: 'The last reload outcome of each Qlik Cloud app, retained.',
    action: 'send', server: 'main', topic: { key: mqttKey('cloudEventsTopicRoot'), suffix: '/{tenant}/app/{appId}/state' }, parameters: { tenant: 'The tenant name of the config.', appId: 'The Qlik Cloud app id.' }, qos: 'delivery', retain: true,
    messages: [json('cloudAppState', 'Qlik Cloud app state', S.CloudAppState, 'CloudAppState')],
    active: (b) => b.qlikSenseCloud.tenants.length > 0,
  },
  {
    id: 'serviceStopped', title: 'Windows service stopped', description: 'A monitored service changed to STOPPED (also at start-up when already stopped).',
    action: 'send', server: 'main', topic: { key: mqttKey('serviceStoppedTopic'), suffix: '/{host}/{serviceName}' }, parameters: SERVICE_PARAMS, qos: 'delivery', retain: false,
    messages: [json('serviceStopped', 'Service stopped', S.ServiceStopped, 'ServiceStopped')],
  },
  {
    id: 'serviceRunning', title: 'Windows service running', description: 'A monitored service changed to RUNNING.',
    action: 'send', server: 'main', topic: { key: mqttKey('serviceRunningTopic'), suffix: '/{host}/{serviceName}' }, parameters: SERVICE_PARAMS, qos: 'delivery', retain: false,
    messages: [json('serviceRunning', 'Service running', S.ServiceRunning, 'ServiceRunning')],
  },
  {
    id: 'serviceStatus', title: 'Windows service status', description: 'The state of a monitored service, on every check.',
    action: 'send', server: 'main', topic: { key: mqttKey('serviceStatusTopic'), suffix: '/{host}/{serviceName}' }, parameters: SERVICE_PARAMS, qos: 'delivery', retain: false,
    messages: [json('serviceStatus', 'Service status', S.ServiceStatus, 'ServiceStatus')],
  },
  {
    id: 'serverLicense', title: 'Server license status', description: 'Every server license check (when sendRecurring.enable).',
    action: 'send', server: 'main', topic: { key: mqttKey('qlikSenseServerLicenseTopic') }, qos: 'delivery', retain: false,
    messages: [json('serverLicense', 'Server license status', S.LicenseStatus, 'LicenseStatus')],
  },
  {
    id: 'serverLicenseExpire', title: 'Server license expiry alert', description: 'The license has expired, or expires within alert.thresholdDays (when sendAlert.enable).',
    action: 'send', server: 'main', topic: { key: mqttKey('qlikSenseServerLicenseExpireTopic') }, qos: 'delivery', retain: false,
    messages: [text('serverLicenseExpire', 'License expiry alert', S.LicenseExpireText)],
  },
  {
    id: 'taskStartCommand', title: 'Task start command',
    description: 'Starts a Qlik Sense task. The bridge subscribes to this topic (QoS 1; to all of mqttConfig.subscriptionRootTopic with mqttConfig.subscribeWholeRoot, a shared-subscription root or highAvailability) and takes messages on exactly this topic.',
    action: 'receive', server: 'main', topic: { key: mqttKey('taskStartTopic') }, qos: 1, retain: false,
    messages: [text('taskStartPlain', 'Task id', S.TaskStartCommandText), json('taskStartJson', 'Task id and correlation id', S.TaskStartCommandJson, 'TaskStartCommand')],
  },
  {
    id: 'taskStartResult', title: 'Task start result', description: 'The outcome of each task start command (off unless the topic is set).',
    action: 'send', server: 'main', topic: { key: mqttKey('taskStartResultTopic') }, qos: 'delivery', retain: false,
    messages: [json('taskStartResult', 'Task start result', S.TaskStartResult, 'TaskStartResult')],
  },
  {
    id: 'cloudReloadFailure', title: 'Qlik Cloud reload failed', description: 'A Qlik Cloud app reload failed (from a forwarded CloudEvent).',
    action: 'send', server: 'main', topic: { key: mqttKey('cloudReloadFailureTopic') }, qos: 'delivery', retain: false,
    messages: [text('cloudReloadFailure', 'App name', S.AppNameText)],
  },
  {
    id: 'cloudReloadFailureFull', title: 'Qlik Cloud reload failed (full)', description: 'A Qlik Cloud app reload failed, with the reload record and script log tail when enrichment is on.',
    action: 'send', server: 'main', topic: { key: mqttKey('cloudReloadFailureFullTopic') }, qos: 'delivery', retain: false,
    messages: [json('cloudReloadFailureFull', 'Qlik Cloud reload failed (full)', S.CloudReloadFull, 'CloudReloadFull')],
  },
  ...(
    [
      ['sessionStart', 'User session started', 'sessionStartTopic'],
      ['sessionStop', 'User session stopped', 'sessionStopTopic'],
      ['connectionOpen', 'Connection opened', 'connectionOpenTopic'],
      ['connectionClose', 'Connection closed', 'connectionCloseTopic'],
    ] as const
  ).map(([id, title, key]): ChannelDef => ({
    id, title, description: `${title} (Sense proxy log appender; with udpServerConfig.sessionConnectionEvents.enable).`,
    action: 'send', server: 'main', topic: { key: mqttKey(key) }, qos: 'delivery', retain: false, messages: [SESSION_LEGACY],
  })),
  {
    id: 'userEvent', title: 'User event', description: 'Every session and connection event as JSON (with udpServerConfig.sessionConnectionEvents.enable).',
    action: 'send', server: 'main', topic: { key: mqttKey('userEventTopic') }, qos: 'delivery', retain: false,
    messages: [json('userEvent', 'User event', S.UserEventJson, 'UserEvent')],
  },
  {
    id: 'activeUserCount', title: 'Active user count', description: 'The number of active users, on every change.',
    action: 'send', server: 'main', topic: { key: mqttKey('activeUserCountTopic') }, qos: 'delivery', retain: 'notEventGrid',
    messages: [text('activeUserCount', 'Active user count', S.ActiveUserCountText)],
  },
  {
    id: 'activeUsers', title: 'Active users', description: 'The list of active users, on every change.',
    action: 'send', server: 'main', topic: { key: mqttKey('activeUsersTopic') }, qos: 'delivery', retain: 'notEventGrid',
    messages: [json('activeUsers', 'Active users', S.ActiveUsers, 'ActiveUsers')],
  },
  {
    id: 'testEvent', title: 'Status page test message', description: 'Sent by the status page test button when the UDP input is off (restServerConfig.testEventButton).',
    action: 'send', server: 'main', topic: { fixed: TEST_EVENT_TOPIC }, qos: 'delivery', retain: false,
    messages: [json('testEvent', 'Test message', S.TestEvent, 'TestEvent')],
  },
  {
    id: 'restPublish', title: 'REST publish',
    description: 'Any message sent with PUT /v4/mqttpublishmessage, on the topic given (restServerConfig.publishAllowedTopicPrefixes limits it).',
    action: 'send', server: 'main', topic: { fixed: '{topic}', any: true }, parameters: { topic: 'The topic of the request body.' }, qos: 'delivery', retain: false,
    messages: [text('restPublish', 'Message from the REST endpoint', S.AnyText)],
    active: (b) => b.restServerConfig.enable && b.restServerEndpointsEnable.mqttPublishMessage,
  },
  {
    id: 'homeAssistantDiscovery', title: 'Home Assistant discovery',
    description: 'One retained config message per entity (with mqttConfig.homeAssistant.enable); an empty retained message removes the entity when discovery is switched off.',
    action: 'send', server: 'main', topic: { key: mqttKey('homeAssistant.discoveryPrefix'), suffix: '/{component}/{nodeId}/{objectId}/config' },
    parameters: { component: '`sensor` or `binary_sensor`.', nodeId: 'The bridge: `butler_mqtt_<client id>`.', objectId: 'The entity.' },
    qos: 'delivery', retain: 'notEventGrid',
    messages: [json('homeAssistantConfig', 'Entity config', S.HaDiscoveryConfig, 'HomeAssistantDiscovery'), text('homeAssistantRemove', 'Entity removal', S.EmptyText)],
  },
  {
    id: 'homeAssistantStatus', title: 'Home Assistant status', description: 'When Home Assistant says `online` (it restarted), the bridge announces its entities again.',
    action: 'receive', server: 'main', topic: { key: mqttKey('homeAssistant.statusTopic') }, qos: 1, retain: false,
    messages: [text('homeAssistantStatus', 'Home Assistant birth or last-will', S.HomeAssistantStatusText)],
    active: (b) => b.mqttConfig.homeAssistant.enable,
  },
  {
    id: 'cloudEvent', title: 'Qlik Cloud event',
    description: 'Qlik Cloud events forwarded to the forward broker. The bridge subscribes to topic.subscriptionRoot and takes every topic that starts with this one.',
    action: 'receive', server: 'cloudForward', topic: { key: mqttKey('qlikSenseCloud.event.mqttForward.topic.appReload'), prefix: true }, qos: 1, retain: false,
    messages: [json('cloudEvent', 'CloudEvent', S.CloudEvent, 'CloudEvent')],
    active: (b) => b.mqttConfig.qlikSenseCloud.event.mqttForward.enable,
  },
  {
    id: 'forwardStatus', title: 'Forward broker status', description: 'Published on the forward broker on every connect (QoS 0, as Butler).',
    action: 'send', server: 'cloudForward', topic: { fixed: FORWARD_STATUS_TOPIC }, qos: 0, retain: false,
    messages: [text('forwardStatus', 'Connected to the forward broker', S.ForwardStatusText)],
    active: (b) => b.mqttConfig.qlikSenseCloud.event.mqttForward.enable,
  },
];

// ---- Resolution against a config ----

/** The value at a dotted path below `Butler` (config or schema defaults). */
function at(root: unknown, path: string): unknown {
  let v = root;
  for (const k of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** The schema default of a config key (path below Butler). */
export function configDefault(key: string): unknown {
  let node: unknown = ButlerSchema;
  for (const k of key.split('.')) node = (node as { properties?: Record<string, unknown> }).properties?.[k];
  return (node as { default?: unknown } | undefined)?.default;
}

export function channelMessages(def: ChannelDef, b: ButlerConfig): ContractMessage[] {
  return typeof def.messages === 'function' ? def.messages(b) : def.messages;
}

/** The channel's address under this config (parameters as `{name}`), or null when the config switches it off. */
export function channelAddress(def: ChannelDef, b: ButlerConfig): string | null {
  if (def.active && !def.active(b)) return null;
  const base = def.topic.fixed ?? (at(b, def.topic.key as string) as string);
  if (typeof base !== 'string' || base === '') return null;
  return base + (def.topic.suffix ?? '');
}

function deliveryQos(b: ButlerConfig): 0 | 1 | 2 {
  const q = b.mqttConfig.delivery.qos;
  return (b.mqttConfig.azureEventGrid.enable ? Math.min(q, 1) : q) as 0 | 1 | 2;
}

export function channelQos(def: ChannelDef, b: ButlerConfig): 0 | 1 | 2 {
  if (def.qos === 'delivery') return deliveryQos(b);
  if (def.qos === 'availability') return Math.min(1, deliveryQos(b)) as 0 | 1;
  return def.qos;
}

export function channelRetain(def: ChannelDef, b: ButlerConfig): boolean {
  const eventGrid = b.mqttConfig.azureEventGrid.enable;
  if (def.retain === 'connectStatus') return b.mqttConfig.connectStatusRetain && !eventGrid;
  if (def.retain === 'availability') return b.mqttConfig.availability.retain ?? !eventGrid;
  if (def.retain === 'notEventGrid') return !eventGrid;
  return def.retain;
}

/** Does a topic belong to the channel under this config? */
export function channelMatches(def: ChannelDef, b: ButlerConfig, topic: string): boolean {
  const address = channelAddress(def, b);
  if (address === null) return false;
  if (def.topic.any) {
    const prefixes = b.restServerConfig.publishAllowedTopicPrefixes;
    return prefixes.length === 0 || prefixes.some((p) => topic.startsWith(p));
  }
  if (def.topic.prefix) return topic.startsWith(address);
  return topicMatches(address.replace(/\{[^/}]+\}/g, '+'), topic);
}

/** The first problem of a payload against one message of the contract, or null when it fits. */
export function payloadProblem(message: ContractMessage, payload: Buffer | string): string | null {
  const textValue = typeof payload === 'string' ? payload : new TextDecoder('utf-8', { fatal: false }).decode(payload);
  let value: unknown = textValue;
  if (message.contentType === 'application/json') {
    try {
      value = JSON.parse(textValue);
    } catch (err) {
      return `not JSON: ${(err as Error).message}`;
    }
  }
  if (Value.Check(message.schema, value)) return null;
  const first = [...Value.Errors(message.schema, value)][0];
  return first ? `${first.instancePath || '(payload)'} ${first.message}` : 'does not match the schema';
}
