// Watches the Sense Windows services named in Butler.serviceMonitor: on each scheduled check it
// asks every host (in parallel) for each service's state through sc.exe, and turns state changes
// into P9 (stopped) / P10 (running) messages and every reading into P11 (status), via the outbox.
import { hostname } from 'node:os';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { MessageSink, OutgoingMessage } from '../store/types.ts';
import { createScRunner, queryService, type ScRunner, type ServiceInfo, type ServiceQueryError, type ServiceStatus } from '../sense/windows-services.ts';
import { serviceRunningPayload, serviceStatusPayload, serviceStoppedPayload, type ServiceState } from './payloads.ts';
import { Schedule, type ScheduleSpec } from './schedule.ts';

export interface ServiceMonitorOptions {
  hosts: { host: string; services: { name: string; friendlyName: string }[] }[];
  schedule: ScheduleSpec;
  topics: { running: string; stopped: string; status: string };
  /** Limit for each sc.exe call; default 15 s. */
  timeoutMs?: number;
  /** Defaults to process.platform. */
  platform?: NodeJS.Platform;
  /** How sc.exe is run; giving one also lifts the Windows-only check (tests use a stand-in). */
  runner?: ScRunner;
  /** This machine's name, to decide which hosts are local; defaults to os.hostname(). */
  localHostname?: string;
}

export interface ServiceMonitorDeps {
  sink: MessageSink;
  logger: Logger;
  metrics: Metrics;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/**
 * The status a service is taken to have had before the first reading. Butler's per-service state
 * starts as "paused", so a service already stopped at start-up is reported with
 * servicePrevStatus "PAUSED"; kept for byte parity.
 */
const INITIAL_PREV_STATUS = 'PAUSED';

interface ServiceTrack {
  /** Last committed status; undefined until the first successful reading. */
  status: ServiceStatus | undefined;
  /** A 1060 (no such service) was logged and not yet followed by a good reading. */
  notFoundReported: boolean;
  /** Some other per-service failure was logged and not yet followed by a good reading. */
  failureReported: string | null;
}

/** A host that is not answering, kept until it answers again so the outage is logged once. */
interface HostOutage {
  kind: 'unreachable' | 'access_denied';
  since: number;
}

type HostLevelKind = HostOutage['kind'];

/**
 * State rules:
 * - the first successful reading establishes the state: RUNNING is silent, STOPPED sends P9;
 * - afterwards a change to STOPPED sends P9, a change to RUNNING sends P10 (anything not STOPPED,
 *   e.g. START_PENDING or PAUSED, counts as RUNNING, as in Butler);
 * - every successful reading sends P11, after P9/P10 in the same batch.
 * A change is committed only once its messages are in the outbox: if the outbox refuses them, the
 * next check sees the same change again and retries the alert instead of losing it.
 *
 * Failures: a host that cannot be reached (RPC 1722, timeout, sc.exe not startable) or refuses
 * access (5) is logged once when the outage starts and once when it ends; its remaining services
 * are skipped for that check and retried at the next. A service that does not exist (1060) is a
 * configuration error, logged once (again only if it reappears and goes missing later).
 */
export class ServiceMonitor {
  private readonly runner: ScRunner | undefined;
  private readonly timeoutMs: number;
  private readonly tracks = new Map<string, ServiceTrack>();
  private readonly outages = new Map<string, HostOutage>();
  private readonly schedule: Schedule;
  private started = false;

  constructor(
    private readonly options: ServiceMonitorOptions,
    private readonly deps: ServiceMonitorDeps,
  ) {
    const platform = options.platform ?? process.platform;
    // Off Windows there is no sc.exe to ask, unless a runner was handed in explicitly.
    this.runner = options.runner ?? (platform === 'win32' ? createScRunner() : undefined);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.schedule = new Schedule(options.schedule, () => this.check(), { logger: deps.logger });
  }

  start(): void {
    if (this.started) return;
    if (!this.runner) {
      const platform = this.options.platform ?? process.platform;
      this.deps.logger.warn(
        { platform },
        `Windows service monitoring is enabled but cannot run on this platform (${platform}): it needs sc.exe on Windows; the service monitor stays off`,
      );
      return;
    }
    this.started = true;
    const services = this.options.hosts.reduce((n, h) => n + h.services.length, 0);
    this.deps.logger.info(
      { hosts: this.options.hosts.map((h) => h.host), services, schedule: this.options.schedule.source },
      `monitoring ${services} Windows service(s) on ${this.options.hosts.length} host(s)`,
    );
    this.schedule.start();
  }

  /** Stops scheduling and waits for a check in progress to finish. */
  async stop(): Promise<void> {
    this.started = false;
    await this.schedule.stop();
  }

  /** One check of every configured service; the schedule calls this, tests may too. */
  async check(): Promise<void> {
    const runner = this.runner;
    if (!runner) return;
    await Promise.all(this.options.hosts.map((h) => this.checkHost(runner, h.host, h.services)));
  }

  private async checkHost(runner: ScRunner, host: string, services: { name: string; friendlyName: string }[]): Promise<void> {
    const local = this.options.localHostname ?? hostname();
    for (const service of services) {
      const started = process.hrtime.bigint();
      const result = await queryService(runner, host, service.name, this.timeoutMs, local);
      this.deps.metrics.upstreamDuration.observe({ service: 'sc', endpoint: 'query_service' }, Number(process.hrtime.bigint() - started) / 1e9);
      if (result.ok) {
        this.hostAnswered(host);
        await this.handleReading(host, service, result.value);
        continue;
      }
      this.deps.metrics.upstreamErrors.inc({ service: 'sc', reason: result.error.kind });
      const hostLevel = hostLevelKind(result.error);
      if (hostLevel) {
        this.hostFailed(host, hostLevel, result.error);
        // The other services of this host would fail the same way (and each wait for the timeout).
        return;
      }
      // not_found / other / bad_output: the host itself did answer.
      this.hostAnswered(host);
      this.serviceFailed(host, service, result.error);
    }
  }

  private async handleReading(host: string, service: { name: string; friendlyName: string }, info: ServiceInfo): Promise<void> {
    const track = this.track(host, service.name);
    if (track.notFoundReported || track.failureReported) {
      this.deps.logger.info({ host, service: service.name }, `Windows service "${service.name}" on host ${host} answers again`);
      track.notFoundReported = false;
      track.failureReported = null;
    }

    const state: ServiceState = {
      host,
      serviceName: service.name,
      friendlyName: service.friendlyName,
      displayName: info.displayName,
      dependencies: info.dependencies,
      startType: info.startType,
      exePath: info.exePath,
      status: info.status,
    };
    const prev = track.status;
    const log = { host, service: service.name, state: info.state, status: info.status, prevStatus: prev ?? null };
    this.deps.logger.debug(log, `Windows service "${service.name}" on host ${host}: ${info.state}`);

    const messages: OutgoingMessage[] = [];
    if (info.status === 'STOPPED' && prev !== 'STOPPED') {
      this.deps.logger.warn(log, prev === undefined ? `Windows service "${info.displayName}" on host ${host} is stopped` : `Windows service "${info.displayName}" on host ${host} has stopped`);
      this.addMessage(messages, this.options.topics.stopped, host, service.name, serviceStoppedPayload(state, (prev ?? INITIAL_PREV_STATUS).toUpperCase()), 'service_stopped');
    } else if (info.status === 'RUNNING' && prev === 'STOPPED') {
      this.deps.logger.info(log, `Windows service "${info.displayName}" on host ${host} is running again`);
      this.addMessage(messages, this.options.topics.running, host, service.name, serviceRunningPayload(state, prev.toUpperCase()), 'service_running');
    } else if (prev === undefined) {
      this.deps.logger.info(log, `Windows service "${info.displayName}" on host ${host} is running`);
    }
    this.addMessage(messages, this.options.topics.status, host, service.name, serviceStatusPayload(state), 'service_status');

    if (await this.enqueue(messages, host, service.name)) track.status = info.status;
  }

  private addMessage(into: OutgoingMessage[], topicRoot: string, host: string, serviceName: string, payload: string, kind: string): void {
    // As Butler: an empty topic key switches that message off.
    if (topicRoot === '') return;
    into.push({ topic: `${topicRoot}/${host}/${serviceName}`, payload, kind });
  }

  /** True when the messages are stored (or there were none to store). */
  private async enqueue(messages: OutgoingMessage[], host: string, serviceName: string): Promise<boolean> {
    if (messages.length === 0) return true;
    try {
      await this.deps.sink.enqueue(messages);
      return true;
    } catch (err) {
      // The sink counted the refusal (a full outbox is waited out there; this is what remains).
      this.deps.logger.error(
        { err: (err as Error).message, host, service: serviceName, kinds: messages.map((m) => m.kind) },
        `could not queue Windows service messages for "${serviceName}" on host ${host}; a state change will be retried at the next check`,
      );
      return false;
    }
  }

  private hostFailed(host: string, kind: HostLevelKind, error: ServiceQueryError): void {
    const current = this.outages.get(host);
    if (current?.kind === kind) {
      this.deps.logger.debug({ host, error }, `Windows service host ${host} still not answering: ${error.message}`);
      return;
    }
    this.outages.set(host, { kind, since: Date.now() });
    if (kind === 'access_denied') {
      this.deps.logger.warn(
        { host, code: error.code, error: error.message },
        `access denied when querying Windows services on host ${host} (sc.exe error 5): the account running butler-mqtt needs the right to query services there; retrying at each check`,
      );
    } else {
      this.deps.logger.warn(
        { host, reason: error.kind, code: error.code, error: error.message },
        `Windows service host ${host} cannot be reached (${error.message}); retrying at each check`,
      );
    }
  }

  private hostAnswered(host: string): void {
    const outage = this.outages.get(host);
    if (!outage) return;
    this.outages.delete(host);
    const seconds = Math.round((Date.now() - outage.since) / 1000);
    this.deps.logger.info({ host, outageSeconds: seconds }, outage.kind === 'access_denied' ? `access to Windows services on host ${host} works again` : `Windows service host ${host} answers again`);
  }

  private serviceFailed(host: string, service: { name: string; friendlyName: string }, error: ServiceQueryError): void {
    const track = this.track(host, service.name);
    if (error.kind === 'not_found') {
      if (track.notFoundReported) return;
      track.notFoundReported = true;
      this.deps.logger.error(
        { host, service: service.name, code: error.code },
        `configuration error: Windows service "${service.name}" ("${service.friendlyName}") does not exist on host ${host} (sc.exe error 1060); check Butler.serviceMonitor.monitor`,
      );
      return;
    }
    const key = `${error.kind}:${String(error.code)}`;
    if (track.failureReported === key) return;
    track.failureReported = key;
    this.deps.logger.warn({ host, service: service.name, reason: error.kind, code: error.code }, `could not read Windows service "${service.name}" on host ${host}: ${error.message}`);
  }

  private track(host: string, serviceName: string): ServiceTrack {
    const key = `${host}\u0000${serviceName}`;
    let track = this.tracks.get(key);
    if (!track) {
      track = { status: undefined, notFoundReported: false, failureReported: null };
      this.tracks.set(key, track);
    }
    return track;
  }
}

function hostLevelKind(error: ServiceQueryError): HostLevelKind | null {
  switch (error.kind) {
    case 'unreachable':
    case 'timeout':
    case 'spawn_failed':
      return 'unreachable';
    case 'access_denied':
      return 'access_denied';
    default:
      return null;
  }
}
