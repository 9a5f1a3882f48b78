// The second MQTT client: connects to the broker that Qlik Cloud events are forwarded to (TLS,
// user name and password), subscribes to the configured root on every connect and hands each message
// on as raw bytes. Parsing, dedup and alerts happen downstream; this module only receives.
import { BrokerConnection, readPem, type BrokerConnectionOptions } from '../mqtt/connection.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { publishStatusMessage } from '../mqtt/publisher.ts';

export const FORWARD_STATUS_TOPIC = 'butler/qscloud/event/mqttforward/status';

export interface CloudEventSubscriberOptions {
  host: string;
  port: number;
  username: string;
  password: string;
  /** CA file (PEM) of the forward broker; empty = system CAs. */
  caFile: string;
  rejectUnauthorized: boolean;
  clientId: string;
  subscriptionRoot: string;
  keepaliveSeconds: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export type CloudMessageHandler = (topic: string, payload: Buffer) => void;

/** The text of the status message, as Butler words it. */
export function forwardStatusPayload(host: string, port: number, clientId: string): string {
  return `Connected to MQTT broker "mqtts://${host}:${port}" with client ID ${clientId}`;
}

export function cloudConnectionOptions(o: CloudEventSubscriberOptions): BrokerConnectionOptions {
  return {
    name: 'cloud',
    protocol: 'mqtts',
    host: o.host,
    port: o.port,
    clientId: o.clientId,
    username: o.username || undefined,
    password: o.password || undefined,
    ca: o.caFile ? readPem(o.caFile, 'Qlik Cloud forward broker CA certificate') : undefined,
    rejectUnauthorized: o.rejectUnauthorized,
    protocolVersion: 4,
    keepaliveSeconds: o.keepaliveSeconds,
    clean: true,
    minDelayMs: o.minDelayMs,
    maxDelayMs: o.maxDelayMs,
  };
}

export class CloudEventSubscriber {
  readonly connection: BrokerConnection;
  private running = false;

  constructor(
    private readonly options: CloudEventSubscriberOptions,
    private readonly onMessage: CloudMessageHandler,
    private readonly deps: { logger: Logger; metrics?: Metrics },
  ) {
    this.connection = new BrokerConnection(cloudConnectionOptions(options), deps);
    this.connection.on('connect', () => this.onConnect());
    // Made again by the connection on every connect: the session is clean, the broker forgets it.
    this.connection.subscribe(options.subscriptionRoot, { qos: 1, purpose: 'on the Qlik Cloud forward broker' }, (topic, payload) => {
      if (this.running) this.onMessage(topic, payload);
    });
  }

  get connected(): boolean {
    return this.connection.connected;
  }

  start(): void {
    this.running = true;
    this.connection.start();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.connection.stop();
  }

  private onConnect(): void {
    // The status message belongs to the forward broker (as in Butler), not to the main broker the
    // outbox delivers to, and it is informational: QoS 0, not kept, sent through the Publisher module.
    publishStatusMessage(this.connection, { topic: FORWARD_STATUS_TOPIC, payload: forwardStatusPayload(this.options.host, this.options.port, this.options.clientId), qos: 0, retain: false }, (err) => {
      this.deps.logger.warn({ broker: 'cloud', err: err.message }, 'could not publish the Qlik Cloud forward status message');
    });
  }
}
