// The composition root: builds the shared parts once (store, pipeline, broker connection, Publisher,
// HTTP server, QRS client), asks each enabled feature for its parts (a disabled feature is not built at
// all), starts them in dependency order and stops them in reverse. Nothing else knows every part.
import os from 'node:os';
import type { LoadedConfig } from './config/load.ts';
import type { ButlerConfig } from './config/schema.ts';
import { createLogger, type Logger, type LogLevel } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { ActivityLog } from './observability/activity.ts';
import { RotatingFile } from './observability/log-file.ts';
import { Outbox } from './store/outbox.ts';
import { Inbox } from './store/inbox.ts';
import { EmbeddedBroker } from './mqtt/embedded-broker.ts';
import { BrokerConnection, readPem, topicMatches, type BrokerConnectionOptions } from './mqtt/connection.ts';
import { Publisher, type DeliveryEvent } from './mqtt/publisher.ts';
import { HaCoordinator, offlineWill, type HaOptions } from './mqtt/high-availability.ts';
import { RESULT_KIND } from './alerts/task-commands.ts';
import { Store } from './store/sqlite.ts';
import { RunLock } from './store/run-lock.ts';
import { connectedStatusPayload } from './alerts/payloads.ts';
import type { QoS } from './store/types.ts';
import { Pipeline } from './pipeline/pipeline.ts';
import { HttpServer } from './http/server.ts';
import { QrsClient } from './sense/qrs-client.ts';
import { packageVersion } from './package-root.ts';
import type { Delivery, Feature, FeatureContext, Part, Readiness } from './features/feature.ts';
import { operations } from './features/operations.ts';
import { restPublish } from './features/rest-publish.ts';
import { taskStartCommands } from './features/task-start-commands.ts';
import { lowerProcessingPriority } from './sense/thread-priority.ts';
import { licenseMonitor, serviceMonitor } from './features/monitors.ts';
import { taskAlerts } from './features/task-alerts.ts';
import { cloudForward } from './features/cloud-forward.ts';
import { cloudWebhooks } from './features/cloud-webhooks.ts';
import { userEvents } from './features/user-events.ts';
import { bridgeTopics, homeAssistantDiscovery } from './features/bridge-topics.ts';
import { qrsNotifications } from './features/qrs-notifications.ts';

export type { Part } from './features/feature.ts';

export interface AppOptions {
  /** Log destination (tests capture lines); default stdout. */
  logDestination?: { write(line: string): unknown };
  logPretty?: boolean;
  /** Overrides Butler.logLevel. */
  logLevel?: LogLevel;
}

/** Event Grid's limits (documented by Microsoft for MQTT in Event Grid namespaces). */
export const EVENT_GRID_MAX_PACKET_BYTES = 512 * 1024;

export function mainConnectionOptions(config: LoadedConfig): BrokerConnectionOptions {
  const m = config.butler.mqttConfig;
  const eg = m.azureEventGrid;
  const availability = availabilitySettings(config.butler);
  const ha = haSettings(config);
  // One will per connection: in a pair it says which instance went away (the availability topic
  // belongs to whichever instance is active, see docs/high-availability.md).
  const will = ha ? offlineWill(ha) : availability ? { topic: availability.topic, payload: availability.offline, qos: availability.qos, retain: availability.retain } : undefined;
  const common = {
    name: 'main',
    clientId: config.clientId,
    protocolVersion: m.protocolVersion === '5' ? 5 : 4,
    keepaliveSeconds: m.keepaliveSeconds,
    clean: true,
    will,
    minDelayMs: m.reconnect.minDelayMs,
    maxDelayMs: m.reconnect.maxDelayMs,
  } as const;
  if (eg.enable) {
    return {
      ...common,
      protocol: 'mqtts',
      host: m.brokerHost,
      port: m.brokerPort,
      username: eg.authenticationName || eg.clientId,
      cert: readPem(eg.clientCertFile, 'Event Grid client certificate'),
      key: readPem(eg.clientKeyFile, 'Event Grid client key'),
      ca: eg.caFile ? readPem(eg.caFile, 'Event Grid CA certificate') : undefined,
      rejectUnauthorized: true,
    };
  }
  const host = m.embeddedBroker.enable && !m.brokerHost ? m.embeddedBroker.host : m.brokerHost;
  const port = m.embeddedBroker.enable && !m.brokerHost ? m.embeddedBroker.port : m.brokerPort;
  return {
    ...common,
    protocol: m.tls.enable ? 'mqtts' : 'mqtt',
    host,
    port,
    username: m.username || undefined,
    password: m.password || undefined,
    ca: m.tls.enable && m.tls.caFile ? readPem(m.tls.caFile, 'broker CA certificate') : undefined,
    cert: m.tls.enable && m.tls.certFile ? readPem(m.tls.certFile, 'broker client certificate') : undefined,
    key: m.tls.enable && m.tls.keyFile ? readPem(m.tls.keyFile, 'broker client key') : undefined,
    rejectUnauthorized: m.tls.rejectUnauthorized,
  };
}

export function deliveryQos(b: ButlerConfig): QoS {
  const q = b.mqttConfig.delivery.qos;
  return (b.mqttConfig.azureEventGrid.enable ? Math.min(q, 1) : q) as QoS;
}

function availabilitySettings(b: ButlerConfig): { topic: string; online: string; offline: string; retain: boolean; qos: QoS } | undefined {
  const a = b.mqttConfig.availability;
  if (!a.enable) return undefined;
  const retain = a.retain ?? !b.mqttConfig.azureEventGrid.enable;
  return { topic: a.topic, online: a.onlinePayload, offline: a.offlinePayload, retain, qos: Math.min(1, deliveryQos(b)) as QoS };
}

/** Butler.highAvailability as the coordinator's options, or null when the pair is off. */
export function haSettings(config: LoadedConfig): HaOptions | null {
  const b = config.butler;
  const h = b.highAvailability;
  if (!h.enable) return null;
  const instanceId = h.instanceId || os.hostname();
  if (instanceId === '' || /[/+#\u0000]/.test(instanceId) || instanceId.startsWith('$')) {
    throw new Error(`Butler.highAvailability.instanceId ${JSON.stringify(instanceId)} cannot be a topic level (no / + # or NUL, not starting with $)`);
  }
  if (h.group === '' || /[+#\u0000]/.test(h.group) || h.group.startsWith('$')) {
    throw new Error(`Butler.highAvailability.group ${JSON.stringify(h.group)} cannot be a topic prefix (no wildcards, not starting with $)`);
  }
  return {
    instanceId,
    priority: h.priority,
    group: h.group,
    failoverMs: h.failoverSeconds * 1000,
    retain: !b.mqttConfig.azureEventGrid.enable,
    qos: Math.min(1, deliveryQos(b)) as QoS,
    watchFilters: watchFilters(b),
  };
}

/**
 * Where a standby watches the active's alerts: the subscription root (already subscribed for commands;
 * one subscription, so a message is not delivered twice), plus every configured alert topic outside it.
 */
function watchFilters(b: ButlerConfig): string[] {
  const m = b.mqttConfig;
  const root = m.subscriptionRootTopic;
  const alertTopics = [
    m.taskFailureTopic, m.taskFailureFullTopic, m.taskAbortedTopic, m.taskAbortedFullTopic, m.taskSuccessTopic, m.taskSuccessFullTopic,
    m.serviceRunningTopic, m.serviceStoppedTopic, m.serviceStatusTopic, m.qlikSenseServerLicenseTopic, m.qlikSenseServerLicenseExpireTopic,
    m.cloudReloadFailureTopic, m.cloudReloadFailureFullTopic, m.sessionStartTopic, m.sessionStopTopic, m.connectionOpenTopic,
    m.connectionCloseTopic, m.userEventTopic, m.activeUserCountTopic, m.activeUsersTopic, m.taskStartResultTopic,
  ];
  // `t/#` matches t and everything below it (topics that take a suffix: a host and service name, a
  // user). Filters must not overlap: a broker delivers a message once per matching subscription.
  const filters = [root];
  for (const t of [...new Set(alertTopics.filter((x) => x))].sort((x, y) => x.split('/').length - y.split('/').length)) {
    if (filters.some((f) => topicMatches(f, t))) continue;
    filters.push(`${t}/#`);
  }
  return filters;
}

/**
 * Kinds a member of a pair publishes whatever its role: they come from inputs only it received (REST,
 * the status page, task start commands it executed) or describe the instance itself (its UDP input).
 */
const OWN_KINDS = ['rest', 'test_event', 'udp_status', RESULT_KIND];

/** The features, in the order their parts start (they stop in reverse, before the broker connection). */
const FEATURES: readonly Feature[] = [operations, restPublish, taskStartCommands, licenseMonitor, serviceMonitor, taskAlerts, cloudForward, cloudWebhooks, userEvents, qrsNotifications, bridgeTopics, homeAssistantDiscovery];

/**
 * Start order: the store and the embedded broker, then every feature's parts (listeners bind, lanes
 * resume), then the HTTP server, and last the broker connection, which announces the bridge: nothing
 * is published for a bridge that could not bind its ports. Stop order: HTTP and the features first (no
 * new input; lanes finish or leave work in the inbox), then the connection (the Publisher flushes what
 * they produced), then the core.
 */
export class App {
  readonly logger: Logger;
  readonly metrics = new Metrics();
  /** Recent events and what they published, for the status page (see src/observability/activity.ts). */
  readonly activity = new ActivityLog();
  readonly delivery: Delivery | null = null;
  readonly http: HttpServer | null = null;
  readonly embeddedBroker: EmbeddedBroker | null = null;
  private readonly core: Part[] = [];
  private readonly featureParts: Part[] = [];
  private connectionPart: Part | null = null;
  private started: Part[] = [];
  private stopping: Promise<void> | null = null;
  private readonly logFile: RotatingFile | null = null;
  private qrsClient: QrsClient | null | undefined;
  private readonly readinessChecks: (() => string | null)[] = [];
  private readonly healthReaders = new Map<string, (() => { reachable: boolean | null; lastError: string | null })[]>();
  private readonly listenerList: { name: string; where: () => { address: string; port: number } | null }[] = [];

  /** The sockets the features listen on, with the addresses they bound (after start). */
  listeners(): { name: string; host: string; port: number }[] {
    return this.listenerList.flatMap((l) => {
      const at = l.where();
      return at ? [{ name: l.name, host: at.address, port: at.port }] : [];
    });
  }

  get store(): Store | null {
    return this.delivery?.store ?? null;
  }
  get outbox(): Outbox | null {
    return this.delivery?.outbox ?? null;
  }
  get inbox(): Inbox | null {
    return this.delivery?.inbox ?? null;
  }
  get connection(): BrokerConnection | null {
    return this.delivery?.connection ?? null;
  }
  get publisher(): Publisher | null {
    return this.delivery?.publisher ?? null;
  }

  constructor(
    readonly config: LoadedConfig,
    options: AppOptions = {},
  ) {
    const b = config.butler;
    let fileError: string | null = null;
    if (b.fileLogging) {
      try {
        this.logFile = new RotatingFile({ dir: b.logDirectory, name: 'butler-mqtt.log', maxBytes: b.logFileMaxBytes, count: b.logFileCount });
      } catch (err) {
        fileError = (err as Error).message;
      }
    }
    this.logger = createLogger({ level: options.logLevel ?? b.logLevel, secrets: config.secrets, pretty: options.logPretty, destination: options.logDestination, file: this.logFile ?? undefined });
    if (fileError) this.logger.error(`Butler.fileLogging: cannot write the log file in ${b.logDirectory}: ${fileError}; logging to the console only`);
    this.metrics.buildInfo.set({ version: packageVersion(), node: process.version }, 1);
    if (b.mqttConfig.enable) this.buildDelivery();
    else this.logger.warn('Butler.mqttConfig.enable is false: nothing will be published (every feature of butler-mqtt needs MQTT)');
    if (b.restServerConfig.enable) this.buildHttp();

    const ctx: FeatureContext = {
      config,
      logger: this.logger,
      metrics: this.metrics,
      activity: this.activity,
      delivery: this.delivery,
      http: this.http,
      qrs: () => this.qrs(),
      readiness: () => this.readiness(),
      addReadinessCheck: (check) => this.readinessChecks.push(check),
      addListener: (name, where) => this.listenerList.push({ name, where }),
      addHealth: (service, health) => this.healthReaders.set(service, [...(this.healthReaders.get(service) ?? []), health]),
      healthOf: (service) => this.healthReaders.get(service) ?? [],
    };
    for (const feature of FEATURES) {
      if (!feature.enabled(b)) continue;
      this.featureParts.push(...feature.build(ctx));
    }
    const http = this.http;
    if (http) this.featureParts.push({ name: 'HTTP server', start: () => http.start(), stop: () => http.stop() });
  }

  /** The core of delivery: store, outbox, inbox, pipeline, (embedded broker,) connection, Publisher. */
  private buildDelivery(): void {
    const config = this.config;
    const b = config.butler;
    const m = b.mqttConfig;
    const eg = m.azureEventGrid.enable;
    const store = new Store({ file: m.delivery.outboxFile });
    const outbox = new Outbox(
      store,
      {
        maxMessages: m.delivery.maxMessages,
        maxBytes: m.delivery.maxBytes,
        defaultQos: deliveryQos(b),
        maxQos: eg ? 1 : 2,
        maxPacketBytes: eg ? EVENT_GRID_MAX_PACKET_BYTES : 0,
        checkTopic: eg ? eventGridTopicProblem : undefined,
      },
      this.metrics,
    );
    const inbox = new Inbox(store, outbox, { maxEvents: b.udpServerConfig.inboxMaxEvents, dedupTtlMs: b.udpServerConfig.deduplication.ttlMinutes * 60_000 }, this.metrics);
    this.metrics.sampleOnCollect('outboxOldestAge', () => outbox.oldestAgeSeconds());
    this.metrics.sampleOnCollect('inboxOldestAge', () => inbox.oldestAgeSeconds());
    const pipeline = new Pipeline({ inbox, outbox, logger: this.logger, metrics: this.metrics, activity: this.activity });
    // One running bridge per store (src/store/run-lock.ts): taken before anything reads the inbox
    // or the outbox, released after the store is closed.
    let lock: RunLock | null = null;
    this.core.push({
      name: 'store',
      start: () => {
        try {
          lock = RunLock.acquire(m.delivery.outboxFile);
        } catch (err) {
          store.close();
          throw err;
        }
      },
      stop: () => {
        store.close();
        lock?.release();
        lock = null;
      },
    });

    if (m.embeddedBroker.enable) {
      const broker = new EmbeddedBroker({ host: m.embeddedBroker.host, port: m.embeddedBroker.port }, { logger: this.logger });
      Object.assign(this, { embeddedBroker: broker });
      this.core.push({ name: 'embedded broker', start: () => broker.start(), stop: () => broker.stop() });
    }

    const connOptions = mainConnectionOptions(config);
    const ha = haSettings(config);
    const connection = new BrokerConnection(connOptions, { logger: this.logger, metrics: this.metrics });
    const publisher = new Publisher(
      connection,
      outbox,
      store,
      {
        inFlightWindow: m.delivery.inFlightWindow,
        connectStatus: {
          topic: 'qliksense/butler/mqtt/status',
          payload: connectedStatusPayload(connOptions.host, connOptions.port, config.clientId),
          qos: deliveryQos(b),
          retain: m.connectStatusRetain && !eg,
        },
        availability: availabilitySettings(b),
        deadLetterAfterDisconnects: m.delivery.deadLetterAfterDisconnects,
        standby: ha ? { ownKinds: OWN_KINDS, heldMaxAgeMs: b.highAvailability.heldMaxAgeMinutes * 60_000, seenTtlMs: 10 * 60_000, seenMax: 100_000 } : undefined,
      },
      { logger: this.logger, metrics: this.metrics },
    );
    publisher.on('delivered', (d: DeliveryEvent) => this.activity.delivered(d));
    const coordinator = ha ? new HaCoordinator(ha, { connection, publisher, logger: this.logger, metrics: this.metrics }) : null;
    if (coordinator) {
      this.readinessChecks.push(() => (coordinator.role === 'starting' ? 'high availability: role not decided yet (looking for the other instance)' : null));
      this.logger.info({ instanceId: ha?.instanceId, priority: ha?.priority, group: ha?.group }, `high availability: instance ${ha?.instanceId} (priority ${ha?.priority}) of group ${ha?.group}; alerts are held until this instance is active`);
    }
    Object.assign(this, { delivery: { store, outbox, inbox, pipeline, connection, publisher, ha: coordinator } satisfies Delivery });
    this.connectionPart = {
      name: 'MQTT connection',
      start: () => {
        publisher.start();
        coordinator?.start();
        connection.start();
      },
      stop: async () => {
        await publisher.stop(m.delivery.shutdownFlushSeconds * 1000);
        await coordinator?.stop();
        await connection.stop();
      },
    };
  }

  private buildHttp(): void {
    const r = this.config.butler.restServerConfig;
    const http = new HttpServer(
      {
        host: r.serverHost,
        port: r.serverPort,
        tls: r.tls.enable ? { cert: r.tls.cert, key: r.tls.key, ca: r.tls.ca } : null,
        bodyLimitBytes: r.bodyLimitBytes,
        rateLimitPerMinute: r.rateLimitPerMinute,
        apiToken: r.apiToken,
        allowedHosts: r.allowedHosts,
      },
      { logger: this.logger, metrics: this.metrics, readiness: () => this.readiness() },
    );
    Object.assign(this, { http });
  }

  /** The QRS client, built on first request (null when Butler.configQRS.host is empty); closed last. */
  private qrs(): QrsClient | null {
    if (this.qrsClient !== undefined) return this.qrsClient;
    const b = this.config.butler;
    if (!b.configQRS.host) return (this.qrsClient = null);
    const client = new QrsClient(
      {
        host: b.configQRS.host,
        port: b.configQRS.port,
        useSSL: b.configQRS.useSSL,
        rejectUnauthorized: b.configQRS.rejectUnauthorized,
        headers: b.configQRS.headers.static,
        clientCert: b.cert.clientCert || undefined,
        clientCertKey: b.cert.clientCertKey || undefined,
        clientCertCA: b.cert.clientCertCA || undefined,
        timeoutMs: b.configQRS.timeoutMs,
        retries: b.configQRS.retries,
        cacheTtlMs: b.configQRS.cacheTtlSeconds * 1000,
      },
      { logger: this.logger, metrics: this.metrics },
    );
    this.qrsClient = client;
    this.core.unshift({ name: 'QRS client', start: () => undefined, stop: () => client.close() });
    return client;
  }

  async start(): Promise<void> {
    const b = this.config.butler;
    if (this.config.ignoredSections.length > 0) {
      this.logger.info(`ignoring Butler sections not used by butler-mqtt: ${this.config.ignoredSections.join(', ')}`);
    }
    const order = [...this.core, ...this.featureParts, ...(this.connectionPart ? [this.connectionPart] : [])];
    for (const part of order) {
      try {
        await part.start();
        this.started.push(part);
      } catch (err) {
        this.logger.error({ part: part.name, err: (err as Error).message }, `could not start ${part.name}: ${(err as Error).message}`);
        await this.stop();
        throw new StartError(part.name, err as Error);
      }
    }
    // Every UDP receive thread exists now (a thread takes its creator's nice value): from here on the
    // main thread yields to them when the CPU is busy.
    if (b.udpServerConfig.enable) lowerProcessingPriority(b.udpServerConfig.processingNice, this.logger);
    const message = `butler-mqtt started on ${os.hostname()} with config ${this.config.file}`;
    this.logger.info({ clientId: this.config.clientId, outbox: this.outbox?.depth ?? 0, logLevel: b.logLevel }, message);
  }

  /** Ready = connected to the main broker and the outbox below its high-water mark (and every feature's check). */
  readiness(): Readiness {
    const reasons: string[] = [];
    const connection = this.connection;
    const outbox = this.outbox;
    if (!connection) reasons.push('MQTT is disabled');
    else if (!connection.connected) reasons.push('not connected to the MQTT broker');
    if (outbox) {
      const pct = this.config.butler.mqttConfig.delivery.highWaterPercent / 100;
      const { maxMessages, maxBytes } = outbox.limits;
      if (outbox.depth >= maxMessages * pct || outbox.byteSize >= maxBytes * pct) reasons.push('outbox above its high-water mark');
      const dead = outbox.deadLetters.count;
      if (dead > 0) reasons.push(`${dead} message${dead === 1 ? '' : 's'} in the dead-letter table (butler-mqtt outbox dead)`);
    }
    for (const check of this.readinessChecks) {
      const reason = check();
      if (reason) reasons.push(reason);
    }
    return { ready: reasons.length === 0, reasons };
  }

  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const started = new Set(this.started);
    const order = [...[...this.featureParts].reverse(), ...(this.connectionPart ? [this.connectionPart] : []), ...[...this.core].reverse()];
    for (const part of order) {
      if (!started.has(part)) continue;
      try {
        await part.stop();
      } catch (err) {
        this.logger.error({ part: part.name, err: (err as Error).message }, `error while stopping ${part.name}`);
      }
    }
    this.started = [];
    this.logger.info({ outboxLeft: this.outbox?.depth }, 'butler-mqtt stopped');
    this.logger.flush();
    this.logFile?.close();
  }
}

export class StartError extends Error {
  override readonly name = 'StartError';
  constructor(
    readonly part: string,
    override readonly cause: Error,
  ) {
    super(`could not start ${part}: ${cause.message}`);
  }
}

/** Event Grid: topics of at most 256 bytes and 8 levels (checked at enqueue for topics from REST). */
export function eventGridTopicProblem(topic: string): string | null {
  if (Buffer.byteLength(topic) > 256) return `topic ${JSON.stringify(topic.slice(0, 60))}… is longer than 256 bytes (Azure Event Grid limit)`;
  const levels = topic.split('/').length;
  if (levels > 8) return `topic ${JSON.stringify(topic)} has ${levels} levels; Azure Event Grid allows 8`;
  return null;
}
