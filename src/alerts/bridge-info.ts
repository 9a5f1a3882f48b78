// The bridge describes itself on MQTT: a retained `<root>/bridge/info` at start (version, client id,
// enabled features, config file hash, start time) and `<root>/bridge/health` at start and on a
// fixed period (outbox, inbox, refusals, QRS and Qlik Cloud health). Payload shapes are the
// contract's (src/contract/schemas.ts); messages go through the outbox like every other.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ButlerConfig } from '../config/schema.ts';
import type { BridgeHealthPayload, BridgeInfoPayload } from '../contract/schemas.ts';
import { OutboxFullError, MessageRejectedError, type MessageSink, type OutgoingMessage, type QoS } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';

export const KIND_INFO = 'bridge_info';
export const KIND_HEALTH = 'bridge_health';

export type BridgeFeature = BridgeInfoPayload['features'][number];

export interface BridgeInfoOptions {
  /** `<root>` of `<root>/bridge/info` and `<root>/bridge/health` (Butler.mqttConfig.bridgeTopicRoot). */
  topicRoot: string;
  /** Seconds between health messages; 0 = only the one at start. */
  healthIntervalSeconds: number;
  /** Retain the info message (false in Azure Event Grid mode). */
  retainInfo: boolean;
  qos?: QoS;
  version: string;
  clientId: string;
  features: BridgeFeature[];
  /** The config file, hashed at start (SHA-256 of its bytes). */
  configFile: string;
}

/** What the health message reports, read at each tick. */
export interface BridgeStats {
  outboxDepth: number;
  outboxOldestAgeSeconds: number;
  inboxDepth: number;
  refused: number;
  qrs: { reachable: boolean | null; lastError: string | null } | null;
  qlikCloud: BridgeHealthPayload['qlikCloud'];
}

export interface BridgeInfoDeps {
  sink: MessageSink;
  stats: () => BridgeStats | Promise<BridgeStats>;
  logger: Logger;
  now?: () => number;
}

/** The features a config switches on, in a fixed order (the names of the contract). */
export function enabledFeatures(b: ButlerConfig): BridgeFeature[] {
  const m = b.mqttConfig;
  const udp = b.udpServerConfig;
  const lic = b.qlikSenseLicense.serverLicenseMonitor;
  const on: [BridgeFeature, boolean][] = [
    ['task_alerts', udp.enable],
    ['user_events', udp.enable && udp.sessionConnectionEvents.enable],
    ['task_start_commands', m.enable],
    ['rest_publish', b.restServerConfig.enable && b.restServerEndpointsEnable.mqttPublishMessage],
    ['service_monitor', b.serviceMonitor.enable && b.serviceMonitor.alertDestination.mqtt.enable],
    ['license_monitor', lic.enable && lic.destination.mqtt.enable],
    ['cloud_reload_alerts', m.qlikSenseCloud.event.mqttForward.enable],
    ['home_assistant', m.homeAssistant.enable],
  ];
  return on.filter(([, enabled]) => enabled).map(([name]) => name);
}

/** SHA-256 (hex) of a file's bytes, or null when it cannot be read. */
export function fileSha256(file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}

export class BridgeInfo {
  readonly infoTopic: string;
  readonly healthTopic: string;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private running = false;
  private tick: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: BridgeInfoOptions,
    private readonly deps: BridgeInfoDeps,
  ) {
    this.infoTopic = `${options.topicRoot}/bridge/info`;
    this.healthTopic = `${options.topicRoot}/bridge/health`;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Queues the info message and the first health message, then one health message per interval. */
  async start(): Promise<void> {
    this.running = true;
    this.startedAt = this.now();
    const hash = fileSha256(this.options.configFile);
    if (hash === null) this.deps.logger.warn({ file: this.options.configFile }, `bridge info: cannot read the config file ${this.options.configFile} to hash it; configSha256 is null`);
    await this.send([{ topic: this.infoTopic, payload: JSON.stringify(this.info(hash)), retain: this.options.retainInfo, kind: KIND_INFO, ...this.qos() }], 'bridge info');
    await this.sendHealth();
    if (this.options.healthIntervalSeconds > 0) {
      this.timer = setInterval(() => {
        // One health message at a time: a slow outbox does not pile up ticks.
        this.tick = this.tick.then(() => this.sendHealth());
      }, this.options.healthIntervalSeconds * 1000);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.tick;
  }

  info(configSha256: string | null): BridgeInfoPayload {
    const o = this.options;
    return { version: o.version, clientId: o.clientId, features: o.features, configSha256, startedAt: new Date(this.startedAt).toISOString() };
  }

  async health(): Promise<BridgeHealthPayload> {
    const s = await this.deps.stats();
    const now = this.now();
    return {
      at: new Date(now).toISOString(),
      uptimeSeconds: Math.max(0, Math.floor((now - this.startedAt) / 1000)),
      outbox: { depth: s.outboxDepth, oldestAgeSeconds: s.outboxOldestAgeSeconds },
      inbox: { depth: s.inboxDepth },
      refused: s.refused,
      qrs: s.qrs,
      qlikCloud: s.qlikCloud,
    };
  }

  private async sendHealth(): Promise<void> {
    if (!this.running) return;
    let payload: BridgeHealthPayload;
    try {
      payload = await this.health();
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, `bridge health: could not read the statistics: ${(err as Error).message}`);
      return;
    }
    await this.send([{ topic: this.healthTopic, payload: JSON.stringify(payload), kind: KIND_HEALTH, ...this.qos() }], 'bridge health');
  }

  private qos(): { qos?: QoS } {
    return this.options.qos === undefined ? {} : { qos: this.options.qos };
  }

  /** A refused message is logged (the outbox counts it); the next tick tries again. */
  private async send(messages: OutgoingMessage[], what: string): Promise<void> {
    try {
      await this.deps.sink.enqueue(messages);
    } catch (err) {
      const known = err instanceof OutboxFullError || err instanceof MessageRejectedError;
      this.deps.logger[known ? 'warn' : 'error']({ err: (err as Error).message, topic: messages[0]?.topic }, `${what} not queued: ${(err as Error).message}`);
    }
  }
}
