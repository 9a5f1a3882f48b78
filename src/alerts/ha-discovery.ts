// Home Assistant MQTT discovery (opt-in): announces the bridge as a device with retained config
// messages at `<discoveryPrefix>/<component>/<nodeId>/<objectId>/config` — connectivity (availability
// topic), outbox sensors (bridge health), server license days left, one sensor per monitored Windows
// service, and one problem sensor per Sense task / Qlik Cloud app reported by `addMonitored`.
// Announces again whenever Home Assistant says `online` on its status topic. When switched off, every
// topic it ever announced (remembered in the store) is cleared with an empty retained message.
import type { HaDiscoveryPayload } from '../contract/schemas.ts';
import { KeyValueTable } from '../store/kv.ts';
import type { Store } from '../store/sqlite.ts';
import type { MessageSink, OutgoingMessage, QoS } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { BrokerConnection } from '../mqtt/connection.ts';

export const KIND_DISCOVERY = 'ha_discovery';

export type HaComponent = 'sensor' | 'binary_sensor';

export interface HaEntity {
  component: HaComponent;
  objectId: string;
  /** The discovery topic. */
  topic: string;
  config: HaDiscoveryPayload;
}

/** A Sense task or Qlik Cloud app whose retained state topic carries taskId/appId, status, consecutiveFailures … */
export type MonitoredItem =
  | { kind: 'sense_task'; taskId: string; taskName?: string; stateTopic: string }
  | { kind: 'cloud_app'; tenantId: string; appId: string; appName?: string; stateTopic: string };

export interface HaDiscoveryOptions {
  enable: boolean;
  discoveryPrefix: string;
  /** Home Assistant's birth/last-will topic. */
  statusTopic: string;
  clientId: string;
  version: string;
  /** Retain the config messages (false only in Azure Event Grid mode). */
  retain: boolean;
  qos?: QoS;
  /** The bridge's availability topic and payloads; null when switched off. */
  availability: { topic: string; online: string; offline: string } | null;
  /** `<root>/bridge/health` and its period; null when the bridge topics are off. */
  health: { topic: string; intervalSeconds: number } | null;
  /** The server license status topic, when the license monitor publishes it. */
  licenseTopic: string | null;
  /** Monitored Windows services and the status topic root they are published under. */
  services: { statusTopicRoot: string; host: string; name: string; friendlyName: string }[];
}

/** Remembers every discovery topic announced, so switching discovery off can clear them after a restart. */
export interface AnnouncedTopics {
  list(): string[];
  add(topics: string[]): Promise<void>;
  clear(): Promise<void>;
}

/** Subscribes to one topic on the main broker (again after every reconnect); returns the unsubscribe. */
export type TopicSubscriber = (topic: string, handler: (payload: Buffer) => void) => () => void;

export interface HaDiscoveryDeps {
  sink: MessageSink;
  announced: AnnouncedTopics;
  subscribe: TopicSubscriber | null;
  logger: Logger;
}

/** Home Assistant's id character class for node_id and object_id: `[a-zA-Z0-9_-]`. */
export function haId(text: string): string {
  return text.replace(/[^a-zA-Z0-9_-]/g, '_');
}

export function nodeIdOf(clientId: string): string {
  return `butler_mqtt_${haId(clientId)}`;
}

type EntityFactory = (component: HaComponent, objectId: string, config: Omit<HaDiscoveryPayload, 'unique_id' | 'device' | 'origin'>) => HaEntity;

/** Builds entities of this bridge's device; `availability` is the block every entity but connectivity carries. */
function entityFactory(o: HaDiscoveryOptions): { entity: EntityFactory; availability: Partial<HaDiscoveryPayload> } {
  const nodeId = nodeIdOf(o.clientId);
  const device: HaDiscoveryPayload['device'] = {
    identifiers: [nodeId],
    name: `butler-mqtt ${o.clientId}`,
    manufacturer: 'butler-mqtt',
    model: 'Qlik Sense MQTT bridge',
    sw_version: o.version,
  };
  const origin = { name: 'butler-mqtt', sw_version: o.version };
  const availability = o.availability ? { availability_topic: o.availability.topic, payload_available: o.availability.online, payload_not_available: o.availability.offline } : {};
  const entity: EntityFactory = (component, objectId, config) => ({
    component,
    objectId,
    topic: `${o.discoveryPrefix}/${component}/${nodeId}/${objectId}/config`,
    config: { ...config, unique_id: `${nodeId}_${objectId}`, device, origin },
  });
  return { entity, availability };
}

/** Every entity the options describe, plus one per monitored item, in a stable order. */
export function discoveryEntities(o: HaDiscoveryOptions, items: readonly MonitoredItem[] = []): HaEntity[] {
  const { entity, availability } = entityFactory(o);
  const out: HaEntity[] = [];
  if (o.availability) {
    out.push(
      entity('binary_sensor', 'connectivity', {
        name: 'Connectivity',
        state_topic: o.availability.topic,
        payload_on: o.availability.online,
        payload_off: o.availability.offline,
        device_class: 'connectivity',
        entity_category: 'diagnostic',
      }),
    );
  }
  if (o.health) {
    // A health message missed three periods in a row makes the value unavailable rather than stale.
    const expire = o.health.intervalSeconds > 0 ? { expire_after: o.health.intervalSeconds * 3 } : {};
    out.push(
      entity('sensor', 'outbox_depth', {
        name: 'Outbox depth',
        state_topic: o.health.topic,
        value_template: '{{ value_json.outbox.depth }}',
        unit_of_measurement: 'messages',
        state_class: 'measurement',
        entity_category: 'diagnostic',
        icon: 'mdi:tray-full',
        ...expire,
        ...availability,
      }),
      entity('sensor', 'outbox_oldest_age', {
        name: 'Oldest outbox message age',
        state_topic: o.health.topic,
        value_template: '{{ value_json.outbox.oldestAgeSeconds }}',
        unit_of_measurement: 's',
        device_class: 'duration',
        state_class: 'measurement',
        entity_category: 'diagnostic',
        ...expire,
        ...availability,
      }),
    );
  }
  if (o.licenseTopic) {
    out.push(
      entity('sensor', 'license_days_left', {
        name: 'Server license days left',
        state_topic: o.licenseTopic,
        value_template: '{{ value_json.daysUntilExpiry }}',
        unit_of_measurement: 'd',
        device_class: 'duration',
        icon: 'mdi:license',
        ...availability,
      }),
    );
  }
  for (const s of o.services) {
    out.push(
      entity('binary_sensor', haId(`service_${s.host}_${s.name}`), {
        name: `${s.friendlyName || s.name} on ${s.host}`,
        state_topic: `${s.statusTopicRoot}/${s.host}/${s.name}`,
        value_template: '{{ value_json.serviceStatus }}',
        payload_on: 'RUNNING',
        payload_off: 'STOPPED',
        device_class: 'running',
        json_attributes_topic: `${s.statusTopicRoot}/${s.host}/${s.name}`,
        ...availability,
      }),
    );
  }
  for (const item of items) out.push(monitoredEntity(item, entity, availability));
  return out;
}

function monitoredEntity(item: MonitoredItem, entity: EntityFactory, availability: Partial<HaDiscoveryPayload>): HaEntity {
  // Problem while the last run failed: the state topic counts consecutive failures, 0 after a success.
  const common = {
    state_topic: item.stateTopic,
    value_template: "{{ 'ON' if value_json.consecutiveFailures > 0 else 'OFF' }}",
    payload_on: 'ON',
    payload_off: 'OFF',
    device_class: 'problem',
    json_attributes_topic: item.stateTopic,
    ...availability,
  };
  if (item.kind === 'sense_task') return entity('binary_sensor', haId(`task_${item.taskId}`), { name: `Task ${item.taskName || item.taskId}`, ...common });
  return entity('binary_sensor', haId(`cloud_app_${item.tenantId}_${item.appId}`), { name: `Qlik Cloud app ${item.appName || item.appId}`, ...common });
}

const monitoredKey = (item: MonitoredItem) => (item.kind === 'sense_task' ? `task:${item.taskId.toLowerCase()}` : `app:${item.tenantId}:${item.appId}`);

export class HaDiscovery {
  private readonly items = new Map<string, MonitoredItem>();
  private unsubscribe: (() => void) | null = null;
  private running = false;

  constructor(
    private readonly options: HaDiscoveryOptions,
    private readonly deps: HaDiscoveryDeps,
  ) {}

  /** Enabled: announce everything and listen for Home Assistant's birth. Disabled: clear what was announced before. */
  async start(): Promise<void> {
    this.running = true;
    if (!this.options.enable) {
      await this.removeAll();
      return;
    }
    await this.announce(this.entities());
    if (this.deps.subscribe) {
      this.unsubscribe = this.deps.subscribe(this.options.statusTopic, (payload) => {
        if (payload.toString('utf8').trim() !== 'online') return;
        this.deps.logger.info({ topic: this.options.statusTopic }, 'Home Assistant is online: announcing the bridge entities again');
        void this.announce(this.entities());
      });
    }
  }

  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /**
   * A Sense task or Qlik Cloud app now has a retained state topic: announce its problem sensor (once
   * per id; again only when its name changes). Safe to call for every state message.
   */
  async addMonitored(item: MonitoredItem): Promise<void> {
    if (!this.options.enable) return;
    const key = monitoredKey(item);
    const known = this.items.get(key);
    if (known && JSON.stringify(known) === JSON.stringify(item)) return;
    this.items.set(key, item);
    if (!this.running) return; // announced with the rest at start
    const { entity, availability } = entityFactory(this.options);
    await this.announce([monitoredEntity(item, entity, availability)]);
  }

  entities(): HaEntity[] {
    return discoveryEntities(this.options, [...this.items.values()]);
  }

  private async announce(entities: HaEntity[]): Promise<void> {
    if (entities.length === 0) return;
    const topics = entities.map((e) => e.topic);
    try {
      // Remembered first: a topic recorded but never announced only costs one empty message later.
      await this.deps.announced.add(topics);
      await this.deps.sink.enqueue(entities.map((e) => this.message(e.topic, JSON.stringify(e.config))));
      this.deps.logger.debug({ count: entities.length }, `Home Assistant discovery: announced ${entities.length} entit${entities.length === 1 ? 'y' : 'ies'}`);
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, `Home Assistant discovery not announced: ${(err as Error).message}`);
    }
  }

  private async removeAll(): Promise<void> {
    const topics = this.deps.announced.list();
    if (topics.length === 0) return;
    try {
      await this.deps.sink.enqueue(topics.map((t) => this.message(t, '')));
      await this.deps.announced.clear();
      this.deps.logger.info({ count: topics.length }, `Home Assistant discovery is off: removing the ${topics.length} entit${topics.length === 1 ? 'y' : 'ies'} announced before`);
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, `Home Assistant entities not removed (tried again at the next start): ${(err as Error).message}`);
    }
  }

  private message(topic: string, payload: string): OutgoingMessage {
    return { topic, payload, retain: this.options.retain, kind: KIND_DISCOVERY, ...(this.options.qos === undefined ? {} : { qos: this.options.qos }) };
  }
}

const KV_PREFIX = 'ha-discovery:';

/** AnnouncedTopics in the store's key-value table (one key per topic). */
export function storedAnnouncedTopics(store: Store): AnnouncedTopics {
  const kv = new KeyValueTable(store.db);
  return {
    list: () => kv.entries(KV_PREFIX).map((e) => e.key.slice(KV_PREFIX.length)),
    add: (topics) => store.write(() => {
      for (const t of topics) kv.put(`${KV_PREFIX}${t}`, '1');
    }),
    clear: () => store.write(() => {
      for (const e of kv.entries(KV_PREFIX)) kv.delete(e.key);
    }),
  };
}

/** The part of the broker connection a subscription needs (src/mqtt/connection.ts). */
/** The part of the broker connection discovery needs: a subscription kept across reconnects. */
export type SubscribableConnection = Pick<BrokerConnection, 'subscribe' | 'unsubscribe'>;

/** A TopicSubscriber on the main connection: subscribes on every connect, hands on messages of exactly that topic. */
export function connectionSubscriber(connection: SubscribableConnection): TopicSubscriber {
  return (topic, handler) => {
    const subscription = connection.subscribe(topic, { qos: 1, purpose: 'for Home Assistant restarts' }, (t, payload) => {
      if (t === topic) handler(payload);
    });
    return () => connection.unsubscribe(subscription);
  };
}

/**
 * The item a delivered message announces, when it is a task or app state message: `<taskRoot>/<taskId>/state`
 * (kind task_state) or `<cloudRoot>/<tenant>/app/<appId>/state` (kind cloud_app_state); null otherwise.
 */
export function monitoredFromDelivery(d: { topic: string; kind: string }, roots: { task: string; cloud: string }): MonitoredItem | null {
  if (d.kind === 'task_state' && d.topic.startsWith(`${roots.task}/`)) {
    const rest = d.topic.slice(roots.task.length + 1).split('/');
    if (rest.length === 2 && rest[1] === 'state' && rest[0]) return { kind: 'sense_task', taskId: rest[0], stateTopic: d.topic };
  }
  if (d.kind === 'cloud_app_state' && d.topic.startsWith(`${roots.cloud}/`)) {
    const rest = d.topic.slice(roots.cloud.length + 1).split('/');
    if (rest.length === 4 && rest[1] === 'app' && rest[3] === 'state' && rest[0] && rest[2]) return { kind: 'cloud_app', tenantId: rest[0], appId: rest[2], stateTopic: d.topic };
  }
  return null;
}
