// The composition root: builds every part the config asks for (a disabled feature is not built at
// all), starts them in dependency order, stops them in reverse. Nothing else knows every part.
import os from 'node:os';
import type { LoadedConfig } from './config/load.ts';
import type { ButlerConfig } from './config/schema.ts';
import { createLogger, type Logger, type LogLevel } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { ActivityLog } from './observability/activity.ts';
import { RotatingFile } from './observability/log-file.ts';
import { Store } from './store/sqlite.ts';
import { Outbox } from './store/outbox.ts';
import { Inbox } from './store/inbox.ts';
import { EmbeddedBroker } from './mqtt/embedded-broker.ts';
import { BrokerConnection, readPem, type BrokerConnectionOptions } from './mqtt/connection.ts';
import { Publisher, type DeliveryEvent } from './mqtt/publisher.ts';
import { connectedStatusPayload } from './alerts/payloads.ts';
import type { QoS } from './store/types.ts';

/** Every long-lived part has the same small lifecycle. */
export interface Part {
  name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

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
  const will = availability ? { topic: availability.topic, payload: availability.offline, qos: availability.qos, retain: availability.retain } : undefined;
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

export class App {
  readonly logger: Logger;
  readonly metrics = new Metrics();
  /** Recent events and what they published, for the status page (see src/observability/activity.ts). */
  readonly activity = new ActivityLog();
  readonly store: Store | null = null;
  readonly outbox: Outbox | null = null;
  readonly inbox: Inbox | null = null;
  readonly connection: BrokerConnection | null = null;
  readonly publisher: Publisher | null = null;
  readonly embeddedBroker: EmbeddedBroker | null = null;
  private readonly parts: Part[] = [];
  private started: Part[] = [];
  private stopping: Promise<void> | null = null;
  private readonly logFile: RotatingFile | null = null;

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
    const m = b.mqttConfig;
    if (!m.enable) {
      this.logger.warn('Butler.mqttConfig.enable is false: nothing will be published (every feature of butler-mqtt needs MQTT)');
      return;
    }
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
    Object.assign(this, { store, outbox, inbox });
    this.parts.push({ name: 'store', start: () => undefined, stop: () => store.close() });

    if (m.embeddedBroker.enable) {
      const broker = new EmbeddedBroker({ host: m.embeddedBroker.host, port: m.embeddedBroker.port }, { logger: this.logger });
      Object.assign(this, { embeddedBroker: broker });
      this.parts.push({ name: 'embedded broker', start: () => broker.start(), stop: () => broker.stop() });
    }

    const connOptions = mainConnectionOptions(config);
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
      },
      { logger: this.logger, metrics: this.metrics },
    );
    Object.assign(this, { connection, publisher });
    publisher.on('delivered', (d: DeliveryEvent) => this.activity.delivered(d));
    this.parts.push({
      name: 'MQTT connection',
      start: () => {
        publisher.start();
        connection.start();
      },
      stop: async () => {
        await publisher.stop(m.delivery.shutdownFlushSeconds * 1000);
        await connection.stop();
      },
    });
  }

  /** Adds a part built outside (features register here, after the core). */
  addPart(part: Part): void {
    this.parts.push(part);
  }

  async start(): Promise<void> {
    const b = this.config.butler;
    if (this.config.ignoredSections.length > 0) {
      this.logger.info(`ignoring Butler sections not used by butler-mqtt: ${this.config.ignoredSections.join(', ')}`);
    }
    for (const part of this.parts) {
      try {
        await part.start();
        this.started.push(part);
      } catch (err) {
        this.logger.error({ part: part.name, err: (err as Error).message }, `could not start ${part.name}: ${(err as Error).message}`);
        await this.stop();
        throw new StartError(part.name, err as Error);
      }
    }
    const message = `butler-mqtt started on ${os.hostname()} with config ${this.config.file}`;
    this.logger.info({ clientId: this.config.clientId, outbox: this.outbox?.depth ?? 0, logLevel: b.logLevel }, message);
  }

  /** Ready = connected to the main broker and the outbox below its high-water mark. */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.connection) reasons.push('MQTT is disabled');
    else if (!this.connection.connected) reasons.push('not connected to the MQTT broker');
    if (this.outbox) {
      const pct = this.config.butler.mqttConfig.delivery.highWaterPercent / 100;
      const { maxMessages, maxBytes } = this.outbox.limits;
      if (this.outbox.depth >= maxMessages * pct || this.outbox.byteSize >= maxBytes * pct) reasons.push('outbox above its high-water mark');
      const dead = this.outbox.deadLetters.count;
      if (dead > 0) reasons.push(`${dead} message${dead === 1 ? '' : 's'} in the dead-letter table (butler-mqtt outbox dead)`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    for (const part of [...this.started].reverse()) {
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
