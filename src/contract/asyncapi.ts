// The AsyncAPI 3.0.0 document of the bridge, built from the channel list (channels.ts). With the
// defaults it is docs/asyncapi.yaml (npm run docs:asyncapi); with the running config it is what
// GET /asyncapi.json serves, so its addresses are the topics this bridge really uses.
import type { ButlerConfig } from '../config/schema.ts';
import { CHANNELS, channelAddress, channelMessages, channelQos, channelRetain, configDefault, type ChannelDef, type ContractMessage } from './channels.ts';

type Json = Record<string, unknown>;

const MQTT_BINDING_VERSION = '0.2.0';

function describeTopic(def: ChannelDef): string {
  const t = def.topic;
  if (t.any) return 'The topic is given by the caller.';
  if (t.fixed) return `Fixed topic \`${t.fixed}\`.`;
  const def0 = configDefault(t.key as string);
  const shown = def0 === '' ? 'empty = off' : `default \`${String(def0)}\``;
  const suffix = t.suffix ? `, followed by \`${t.suffix}\`` : '';
  const prefix = t.prefix ? ' (any topic starting with it)' : '';
  return `Topic from \`Butler.${t.key}\` (${shown})${suffix}${prefix}.`;
}

function describeQos(def: ChannelDef): string {
  if (def.qos === 'delivery') return 'QoS from `Butler.mqttConfig.delivery.qos` (default 1; at most 1 in Azure Event Grid mode).';
  if (def.qos === 'availability') return 'QoS from `Butler.mqttConfig.delivery.qos`, at most 1.';
  return def.action === 'receive' ? `Subscribed with QoS ${def.qos}.` : `QoS ${def.qos}.`;
}

function describeRetain(def: ChannelDef): string {
  if (def.retain === 'connectStatus') return 'Retained when `Butler.mqttConfig.connectStatusRetain` is true (default false).';
  if (def.retain === 'availability') return 'Retained unless `Butler.mqttConfig.availability.retain` is false (default: retained, not in Azure Event Grid mode).';
  if (def.retain === 'notEventGrid') return 'Retained (not in Azure Event Grid mode).';
  return def.retain ? 'Retained.' : 'Not retained.';
}

/** Copies a TypeBox schema as plain JSON Schema (TypeBox schemas are plain objects already). */
function plain(schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema)) as Json;
}

function messageObject(m: ContractMessage): Json {
  return {
    name: m.name,
    title: m.title,
    contentType: m.contentType,
    payload: m.contentType === 'application/json' ? { $ref: `#/components/schemas/${m.schemaName ?? m.name}` } : plain(m.schema),
  };
}

const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * The document for a config. `documentedDefaults` (docs/asyncapi.yaml) lists every channel with its
 * default address, also the ones the default config switches off; otherwise only the channels this
 * config has, at their configured addresses.
 */
export function asyncApiDocument(b: ButlerConfig, options: { version: string; documentedDefaults?: boolean }): Json {
  const m = b.mqttConfig;
  const fwd = m.qlikSenseCloud.event.mqttForward;
  const channels: Json = {};
  const operations: Json = {};
  const messages: Json = {};
  const schemas: Json = {};
  for (const def of CHANNELS) {
    let address = channelAddress(def, b);
    if (address === null && options.documentedDefaults) address = def.topic.fixed ?? `${String(configDefault(def.topic.key as string) || `{${def.topic.key?.split('.').pop()}}`)}${def.topic.suffix ?? ''}`;
    if (address === null) continue;
    const list = channelMessages(def, b);
    const parameters = { ...def.parameters };
    for (const name of address.match(/\{([^}]+)\}/g) ?? []) {
      const key = name.slice(1, -1);
      parameters[key] ??= `Set by \`Butler.${def.topic.key}\` (off by default).`;
    }
    channels[def.id] = {
      address,
      title: def.title,
      description: [def.description, describeTopic(def), def.action === 'send' ? describeRetain(def) : ''].filter(Boolean).join(' '),
      servers: [{ $ref: `#/servers/${def.server}` }],
      ...(Object.keys(parameters).length > 0 ? { parameters: Object.fromEntries(Object.entries(parameters).map(([k, d]) => [k, { description: d }])) } : {}),
      messages: Object.fromEntries(list.map((msg) => [msg.name, { $ref: `#/components/messages/${msg.name}` }])),
      ...(def.topic.key ? { 'x-butler-config-key': `Butler.${def.topic.key}` } : {}),
    };
    operations[`${def.action}${capital(def.id)}`] = {
      action: def.action,
      channel: { $ref: `#/channels/${def.id}` },
      summary: def.title,
      description: describeQos(def),
      messages: list.map((msg) => ({ $ref: `#/channels/${def.id}/messages/${msg.name}` })),
      bindings: { mqtt: { qos: channelQos(def, b), retain: channelRetain(def, b), bindingVersion: MQTT_BINDING_VERSION } },
    };
    for (const msg of list) {
      messages[msg.name] = messageObject(msg);
      if (msg.contentType === 'application/json') schemas[msg.schemaName ?? msg.name] = plain(msg.schema);
    }
  }
  const host = options.documentedDefaults ? '{brokerHost}:{brokerPort}' : `${m.brokerHost || (m.embeddedBroker.enable ? m.embeddedBroker.host : 'localhost')}:${m.brokerHost || !m.embeddedBroker.enable ? m.brokerPort : m.embeddedBroker.port}`;
  const secure = m.tls.enable || m.azureEventGrid.enable;
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'butler-mqtt',
      version: options.version,
      description:
        'Every MQTT topic butler-mqtt publishes or reads: Qlik Sense reload task alerts, Windows service and server license status, user sessions, task start commands, Qlik Cloud reload alerts, the bridge\'s own info and health, and Home Assistant discovery. Topics come from the config file (each channel names its key and default). All payloads are UTF-8; JSON payloads are compact, without a trailing newline.',
      license: { name: 'MIT' },
    },
    defaultContentType: 'application/json',
    servers: {
      main: {
        host,
        protocol: secure ? 'secure-mqtt' : 'mqtt',
        description: 'The main broker (Butler.mqttConfig.brokerHost and brokerPort).',
        ...(options.documentedDefaults
          ? { variables: { brokerHost: { default: 'localhost', description: 'Butler.mqttConfig.brokerHost' }, brokerPort: { default: '1883', description: 'Butler.mqttConfig.brokerPort' } } }
          : {}),
        ...(m.availability.enable
          ? {
              bindings: {
                mqtt: {
                  lastWill: { topic: m.availability.topic, qos: Math.min(1, m.delivery.qos), message: m.availability.offlinePayload, retain: m.availability.retain ?? !m.azureEventGrid.enable },
                  keepAlive: m.keepaliveSeconds,
                  bindingVersion: MQTT_BINDING_VERSION,
                },
              },
            }
          : {}),
      },
      cloudForward: {
        host: options.documentedDefaults ? '{forwardHost}:{forwardPort}' : `${fwd.broker.host || 'localhost'}:${fwd.broker.port}`,
        protocol: 'secure-mqtt',
        description: 'The broker Qlik Cloud events are forwarded to (Butler.mqttConfig.qlikSenseCloud.event.mqttForward.broker), over TLS.',
        ...(options.documentedDefaults
          ? { variables: { forwardHost: { default: 'localhost', description: 'Butler.mqttConfig.qlikSenseCloud.event.mqttForward.broker.host' }, forwardPort: { default: '8883', description: 'Butler.mqttConfig.qlikSenseCloud.event.mqttForward.broker.port' } } }
          : {}),
      },
    },
    channels,
    operations,
    components: { messages, schemas },
  };
}
