// Prometheus metrics. One Metrics object per running bridge (no global registry), handed to
// every part that counts something. Label values are small fixed sets (source, reason, kind).
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';

export type SampledGauge = 'outboxDepth' | 'outboxBytes' | 'outboxOldestAge' | 'inboxDepth' | 'inboxOldestAge' | 'inboxQuarantined' | 'deadLetters' | 'haHeld';

/**
 * A one-label counter on a hot path (several increments per event in a storm): an increment adds to
 * a plain map, and the counts reach prom-client when the counter is read (scrape, total()). Label
 * handling in prom-client's inc() was about 3% of the bridge's time in a storm (bench/storm.ts).
 */
export class HotCounter<L extends string> {
  private readonly pending = new Map<string, number>();
  readonly counter: Counter<L>;

  constructor(
    config: { name: string; help: string; registers: Registry[] },
    private readonly label: L,
  ) {
    const flush = () => this.flush();
    this.counter = new Counter<L>({ ...config, labelNames: [label], collect: flush });
  }

  inc(labels: Record<L, string>): void {
    const value = labels[this.label];
    this.pending.set(value, (this.pending.get(value) ?? 0) + 1);
  }

  private flush(): void {
    for (const [value, n] of this.pending) this.counter.inc({ [this.label]: value } as Record<L, string>, n);
    this.pending.clear();
  }
}

export class Metrics {
  readonly registry = new Registry();

  /** Inputs seen by a source (udp_task, udp_session, mqtt_command, cloud, rest). */
  readonly eventsReceived = new HotCounter({ name: 'butler_mqtt_events_received_total', help: 'Inputs received, by source', registers: [this.registry] }, 'source');
  readonly eventsAccepted = new HotCounter({ name: 'butler_mqtt_events_accepted_total', help: 'Inputs accepted for processing, by source', registers: [this.registry] }, 'source');
  readonly eventsRejected = new Counter({ name: 'butler_mqtt_events_rejected_total', help: 'Inputs rejected or dropped, by source and reason', labelNames: ['source', 'reason'] as const, registers: [this.registry] });

  readonly messagesEnqueued = new HotCounter({ name: 'butler_mqtt_messages_enqueued_total', help: 'Messages durably stored in the outbox, by kind', registers: [this.registry] }, 'kind');
  readonly messagesDelivered = new HotCounter({ name: 'butler_mqtt_messages_delivered_total', help: 'Messages acknowledged by the broker (or written, for QoS 0), by kind', registers: [this.registry] }, 'kind');
  readonly messagesRefused = new Counter({ name: 'butler_mqtt_messages_refused_total', help: 'Messages refused at enqueue, by kind and reason', labelNames: ['kind', 'reason'] as const, registers: [this.registry] });

  readonly outboxDepth = new Gauge({ name: 'butler_mqtt_outbox_messages', help: 'Messages waiting in the outbox', registers: [this.registry], collect: () => this.sample('outboxDepth') });
  readonly outboxBytes = new Gauge({ name: 'butler_mqtt_outbox_bytes', help: 'Payload bytes waiting in the outbox', registers: [this.registry], collect: () => this.sample('outboxBytes') });
  readonly outboxOldestAge = new Gauge({ name: 'butler_mqtt_outbox_oldest_age_seconds', help: 'Age of the oldest outbox message', registers: [this.registry], collect: () => this.sample('outboxOldestAge') });
  readonly inboxDepth = new Gauge({ name: 'butler_mqtt_inbox_events', help: 'Accepted events not yet fully handled', registers: [this.registry], collect: () => this.sample('inboxDepth') });
  readonly inboxOldestAge = new Gauge({ name: 'butler_mqtt_inbox_oldest_age_seconds', help: 'Age of the oldest inbox event', registers: [this.registry], collect: () => this.sample('inboxOldestAge') });

  readonly inboxQuarantined = new Gauge({ name: 'butler_mqtt_inbox_quarantined_events', help: 'Accepted events set aside after failing too often (butler-mqtt inbox list)', registers: [this.registry], collect: () => this.sample('inboxQuarantined') });
  readonly eventsQuarantined = new Counter({ name: 'butler_mqtt_events_quarantined_total', help: 'Events set aside after failing too often, by source and reason', labelNames: ['source', 'reason'] as const, registers: [this.registry] });
  readonly handlerRetries = new Counter({ name: 'butler_mqtt_handler_retries_total', help: 'Failed handling attempts that were retried, by source', labelNames: ['source'] as const, registers: [this.registry] });
  readonly outboxWaits = new Counter({ name: 'butler_mqtt_outbox_full_waits_total', help: 'Times an event waited for room in a full outbox (nothing is dropped), by source', labelNames: ['source'] as const, registers: [this.registry] });
  readonly udpKernelDrops = new Gauge({
    name: 'butler_mqtt_udp_kernel_drops',
    help: 'Datagrams the kernel dropped on a UDP socket before the bridge read them (Linux /proc/net/udp drops), by port',
    labelNames: ['port'] as const,
    registers: [this.registry],
    collect: () => {
      for (const read of this.dropReaders) read();
    },
  });
  /** Readers that set udpKernelDrops at scrape time (one per UDP source). */
  readonly dropReaders = new Set<() => void>();
  readonly deadLetters = new Gauge({ name: 'butler_mqtt_dead_letters', help: 'Messages in the dead-letter table (the broker kept answering them with a disconnect)', registers: [this.registry], collect: () => this.sample('deadLetters') });
  readonly deadLettered = new Counter({ name: 'butler_mqtt_dead_letters_total', help: 'Messages moved to the dead-letter table, by kind', labelNames: ['kind'] as const, registers: [this.registry] });

  readonly brokerConnected = new Gauge({ name: 'butler_mqtt_broker_connected', help: '1 when connected to the broker', labelNames: ['broker'] as const, registers: [this.registry] });
  readonly brokerReconnects = new Counter({ name: 'butler_mqtt_broker_reconnects_total', help: 'Reconnect attempts', labelNames: ['broker'] as const, registers: [this.registry] });

  /** Active/standby pair (Butler.highAvailability). */
  readonly haRole = new Gauge({ name: 'butler_mqtt_ha_role', help: '1 for the role this instance has now (starting, active, standby), 0 for the others', labelNames: ['role'] as const, registers: [this.registry] });
  readonly haPeers = new Gauge({ name: 'butler_mqtt_ha_live_peers', help: 'Other instances of the pair heard from within failoverSeconds', registers: [this.registry] });
  readonly haHeld = new Gauge({ name: 'butler_mqtt_ha_held_messages', help: 'Alerts a standby holds because the active has not been seen publishing them yet', registers: [this.registry], collect: () => this.sample('haHeld') });
  readonly haRoleChanges = new Counter({ name: 'butler_mqtt_ha_role_changes_total', help: 'Role changes of this instance, by new role', labelNames: ['role'] as const, registers: [this.registry] });
  readonly haMatched = new Counter({ name: 'butler_mqtt_ha_matched_total', help: 'Held alerts dropped because the active was seen publishing them', registers: [this.registry] });
  readonly haReleased = new Counter({ name: 'butler_mqtt_ha_released_total', help: 'Held alerts published at a takeover (the active had not been seen publishing them), or by a restarted standby for inputs the active never received; an upper bound of the duplicates they cause', registers: [this.registry] });
  readonly haHeldExpired = new Counter({ name: 'butler_mqtt_ha_held_expired_total', help: 'Held alerts dropped after heldMaxAgeMinutes without being seen published', registers: [this.registry] });
  readonly haDuplicates = new Counter({ name: 'butler_mqtt_ha_duplicates_seen_total', help: 'Alerts this instance saw published a second time within the matching window after it took over (duplicates around a failover)', registers: [this.registry] });

  readonly upstreamDuration = new Histogram({ name: 'butler_mqtt_upstream_request_duration_seconds', help: 'QRS and Qlik Cloud request latency', labelNames: ['service', 'endpoint'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  readonly upstreamErrors = new Counter({ name: 'butler_mqtt_upstream_errors_total', help: 'QRS and Qlik Cloud request failures', labelNames: ['service', 'reason'] as const, registers: [this.registry] });

  readonly restRequests = new Counter({ name: 'butler_mqtt_rest_requests_total', help: 'REST requests, by route and status code', labelNames: ['route', 'status'] as const, registers: [this.registry] });

  readonly buildInfo = new Gauge({ name: 'butler_mqtt_build_info', help: 'Always 1; the labels say which version runs', labelNames: ['version', 'node'] as const, registers: [this.registry] });

  /** Gauges whose value is read when scraped (set by the part that owns the value). */
  private readonly samplers = new Map<SampledGauge, () => number>();

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'butler_mqtt_' });
  }

  /**
   * Reads the gauge's value from `read` at every scrape: the age of the oldest outbox row, which
   * changes with time, not with events; the outbox and inbox depths, read from the stores' own
   * counters so a scrape never shows a value older than the store's (a gauge set after each commit
   * trailed it until the commit's sync finished). A read that throws leaves the previous value.
   */
  sampleOnCollect(gauge: SampledGauge, read: () => number): void {
    this.samplers.set(gauge, read);
  }

  private sample(gauge: SampledGauge): void {
    const read = this.samplers.get(gauge);
    if (!read) return;
    try {
      this[gauge].set(read());
    } catch {
      // e.g. the store is closed during shutdown
    }
  }

  /** Sum of a counter's values over every label set (helper for tests and the status page). */
  async total(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) throw new Error(`no metric ${name}`);
    const data = await metric.get();
    return data.values
      .filter((v) => Object.entries(labels).every(([k, val]) => String((v.labels as Record<string, unknown>)[k]) === val))
      .reduce((sum, v) => sum + v.value, 0);
  }
}
