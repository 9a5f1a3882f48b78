// What a feature is: a name, a rule for whether the config enables it, and a builder that turns the
// shared parts it is handed into long-lived parts with a start and a stop. The composition root
// (src/app.ts) builds the shared clients once and asks each enabled feature for its parts; no
// feature knows the composition root or any other feature.
import type { LoadedConfig } from '../config/load.ts';
import type { ButlerConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ActivityLog } from '../observability/activity.ts';
import type { Store } from '../store/sqlite.ts';
import type { Outbox } from '../store/outbox.ts';
import type { Inbox } from '../store/inbox.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { BrokerConnection } from '../mqtt/connection.ts';
import type { Publisher } from '../mqtt/publisher.ts';
import type { HaCoordinator } from '../mqtt/high-availability.ts';
import type { HttpServer } from '../http/server.ts';
import type { QrsClient } from '../sense/qrs-client.ts';

/** Every long-lived part has the same small lifecycle. */
export interface Part {
  name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** The delivery core, present when MQTT is on. */
export interface Delivery {
  store: Store;
  outbox: Outbox;
  inbox: Inbox;
  pipeline: Pipeline;
  connection: BrokerConnection;
  publisher: Publisher;
  /** The active/standby coordinator (Butler.highAvailability), or null for a single instance. */
  ha: HaCoordinator | null;
}

/** What a feature may use. Shared clients are built on first request and closed after every part. */
export interface FeatureContext {
  readonly config: LoadedConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly activity: ActivityLog;
  /** null when Butler.mqttConfig.enable is false. */
  readonly delivery: Delivery | null;
  /** null when restServerConfig.enable is false; routes are registered on it before it listens. */
  readonly http: HttpServer | null;
  /** The QRS client, or null when Butler.configQRS.host is empty. */
  qrs(): QrsClient | null;
  readiness(): Readiness;
  /** Adds a reason why the bridge is not ready (checked at every /ready and status request). */
  addReadinessCheck(check: () => string | null): void;
  /** Adds an upstream's health (e.g. 'qlik_cloud'), for the bridge's health message. */
  addHealth(service: string, health: () => { reachable: boolean | null; lastError: string | null }): void;
  /** The health readers other features added for a service (features built earlier in the list). */
  healthOf(service: string): (() => { reachable: boolean | null; lastError: string | null })[];
  /** Names a socket the feature listens on, for the start-up summary (`where` is read after start). */
  addListener(name: string, where: () => { address: string; port: number } | null): void;
}

export interface Feature {
  name: string;
  enabled(config: ButlerConfig): boolean;
  /** The parts, in start order (they stop in reverse). May log why it builds nothing. */
  build(ctx: FeatureContext): Part[];
}
