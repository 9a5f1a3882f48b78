// Active/standby pair coordinated through the broker (docs/high-availability.md). Each instance
// announces itself on <group>/instances/<instanceId> (retained; its last will says "offline") and
// sends a heartbeat on <group>/heartbeat/<instanceId> (for brokers without retained messages). The
// active publishes alerts; the standby's Publisher holds its own copies, drops each one it sees the
// active publish, and publishes what is left when it takes over. Everything here is published through
// the Publisher (publishCoordination), never on the client directly.
import { EventEmitter } from 'node:events';
import type { BrokerConnection, Subscription } from './connection.ts';
import { messageKey, type Publisher } from './publisher.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { QoS } from '../store/types.ts';

export type HaRole = 'starting' | 'active' | 'standby';

export interface HaOptions {
  instanceId: string;
  priority: number;
  group: string;
  failoverMs: number;
  /** Retain the announcement (false for brokers without retained messages, e.g. Azure Event Grid). */
  retain: boolean;
  qos: QoS;
  /** Where the active's alerts are watched: the subscription root, and each alert topic outside it. */
  watchFilters: string[];
  /** Heartbeat period, ms (default failoverMs / 4). */
  heartbeatMs?: number;
}

export interface PeerState {
  instanceId: string;
  priority: number;
  role: HaRole;
  online: boolean;
  lastHeard: number;
  /** When the peer's process started taking inputs (its clock, ms since the epoch); 0 when it did not say. */
  startedAt: number;
}

export interface Announcement {
  state: 'online' | 'offline';
  instanceId: string;
  priority: number;
  role: HaRole;
  /** ms since the epoch, when the message was made. */
  at: number;
  /** ms since the epoch, when this instance's process started taking inputs; 0 when not given. */
  startedAt: number;
}

export function instanceTopic(group: string, instanceId: string): string {
  return `${group}/instances/${instanceId}`;
}

export function heartbeatTopic(group: string, instanceId: string): string {
  return `${group}/heartbeat/${instanceId}`;
}

/** The last will of an instance: retained "offline" on its announcement topic. */
export function offlineWill(options: Pick<HaOptions, 'group' | 'instanceId' | 'priority' | 'retain' | 'qos'>): { topic: string; payload: string; qos: QoS; retain: boolean } {
  const payload: Omit<Announcement, 'at' | 'startedAt'> = { state: 'offline', instanceId: options.instanceId, priority: options.priority, role: 'standby' };
  return { topic: instanceTopic(options.group, options.instanceId), payload: JSON.stringify(payload), qos: options.qos, retain: options.retain };
}

/** Whether `a` wins over `b`: higher priority, then the lower instance id. */
export function outranks(a: { priority: number; instanceId: string }, b: { priority: number; instanceId: string }): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.instanceId < b.instanceId;
}

export function parseAnnouncement(payload: Buffer): Announcement | null {
  try {
    const v = JSON.parse(payload.toString('utf8')) as Partial<Announcement>;
    if ((v.state !== 'online' && v.state !== 'offline') || typeof v.instanceId !== 'string' || typeof v.priority !== 'number') return null;
    const role: HaRole = v.role === 'active' || v.role === 'standby' || v.role === 'starting' ? v.role : 'standby';
    const time = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : 0);
    return { state: v.state, instanceId: v.instanceId, priority: v.priority, role, at: time(v.at), startedAt: time(v.startedAt) };
  } catch {
    return null;
  }
}

/** How long after a takeover the copies of released messages are counted (duplicates). */
const DUPLICATE_WATCH_MS = 60_000;

/**
 * A standby that restarted publishes the alerts of its earlier run created before the active's
 * process started, plus this allowance: for a difference between the two machines' clocks and for the
 * time between an input's arrival and its alert's commit. Alerts inside it are published twice at
 * worst (the active's earlier run may have had them too); outside it they may be lost.
 */
const INHERITED_ALLOWANCE_MS = 60_000;

/** Emits 'role' (HaRole) after every role change. */
export class HaCoordinator extends EventEmitter {
  private roleValue: HaRole = 'starting';
  private readonly peers = new Map<string, PeerState>();
  private timer: NodeJS.Timeout | null = null;
  private discoveryTimer: NodeJS.Timeout | null = null;
  private subscriptions: Subscription[] = [];
  private running = false;
  private roleSince = Date.now();
  /** After a takeover: released message keys → copies seen, to count duplicates. */
  private released = new Map<string, number>();
  private releasedUntil = 0;
  /** Heartbeat period, ms. */
  readonly heartbeatMs: number;
  private lastTick = Date.now();
  /** When this process started taking inputs (set by start(): the sources start before it). */
  private startedAt = Date.now();
  /** The active whose start time decides which inherited alerts are published, and whether that was logged. */
  private inheritedFrom: { instanceId: string; cutoff: number; logged: boolean } | null = null;

  constructor(
    readonly options: HaOptions,
    private readonly deps: { connection: BrokerConnection; publisher: Publisher; logger: Logger; metrics: Metrics },
  ) {
    super();
    this.heartbeatMs = options.heartbeatMs ?? Math.max(100, Math.floor(options.failoverMs / 4));
    deps.publisher.on('matched', (n: number) => deps.metrics.haMatched.inc(n));
    deps.publisher.on('held-expired', (n: number) => deps.metrics.haHeldExpired.inc(n));
    deps.publisher.on('inherited', (n: number) => this.onInherited(n));
    deps.metrics.sampleOnCollect('haHeld', () => deps.publisher.heldCount);
    this.setRoleMetric();
  }

  get role(): HaRole {
    return this.roleValue;
  }

  get since(): number {
    return this.roleSince;
  }

  /** Other instances heard from, for the status page. */
  peerList(): (PeerState & { live: boolean })[] {
    const now = Date.now();
    return [...this.peers.values()].map((p) => ({ ...p, live: this.isLive(p, now) }));
  }

  get heldCount(): number {
    return this.deps.publisher.heldCount;
  }

  /** Whether this instance may act on inputs only one instance should act on (task start commands). */
  isActive(): boolean {
    // A process that did not run for failoverSeconds (see tick()) may have been replaced meanwhile:
    // until its timer has run again it does not act as the active.
    return this.roleValue === 'active' && Date.now() - this.lastTick <= this.options.failoverMs;
  }

  start(): void {
    const { connection } = this.deps;
    const { group } = this.options;
    this.running = true;
    this.startedAt = Date.now();
    connection.on('connect', this.onConnect);
    connection.on('disconnect', this.onDisconnect);
    this.subscriptions.push(
      connection.subscribe(`${group}/instances/+`, { qos: 1, purpose: 'for the instances of the pair' }, (topic, payload) => this.onPeerMessage(topic, payload)),
      connection.subscribe(`${group}/heartbeat/+`, { qos: 0, purpose: 'for the heartbeats of the pair' }, (topic, payload) => this.onPeerMessage(topic, payload)),
      ...this.options.watchFilters.map((filter) => connection.subscribe(filter, { qos: 1, purpose: "to watch the active's alerts" }, (topic, payload) => this.onWatched(topic, payload))),
    );
    this.timer = setInterval(() => this.tick(), this.heartbeatMs);
    this.timer.unref();
    if (connection.connected) this.onConnect();
  }

  /** Announces "offline" (a graceful stop sends no will) and stops. Call after the Publisher flushed. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    const { connection, publisher } = this.deps;
    connection.off('connect', this.onConnect);
    connection.off('disconnect', this.onDisconnect);
    if (this.timer) clearInterval(this.timer);
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    for (const s of this.subscriptions) connection.unsubscribe(s);
    this.subscriptions = [];
    const will = offlineWill(this.options);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      publisher.publishCoordination(will, () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.deps.logger.info({ instanceId: this.options.instanceId }, `high availability: instance ${this.options.instanceId} announced offline`);
  }

  private readonly onConnect = (): void => {
    if (!this.running) return;
    // Roles are decided afresh after every connect: what happened while disconnected is unknown.
    // Until then this instance holds (it may have been replaced while it was away).
    this.setRole('starting', 'connected to the broker; looking for the other instance');
    this.announce();
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    // Retained announcements arrive right after the subscription; heartbeats within heartbeatMs.
    this.discoveryTimer = setTimeout(() => {
      this.discoveryTimer = null;
      this.decide();
    }, Math.min(this.options.failoverMs, this.heartbeatMs * 2));
    this.discoveryTimer.unref();
  };

  private readonly onDisconnect = (): void => {
    // Nothing is published while disconnected; after the reconnect the instance holds until it knows
    // whether another took over.
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    this.discoveryTimer = null;
    this.deps.publisher.hold();
  };

  private announce(): void {
    const payload: Announcement = { state: 'online', instanceId: this.options.instanceId, priority: this.options.priority, role: this.roleValue, at: Date.now(), startedAt: this.startedAt };
    this.deps.publisher.publishCoordination({ topic: instanceTopic(this.options.group, this.options.instanceId), payload: JSON.stringify(payload), qos: this.options.qos, retain: this.options.retain });
  }

  private heartbeat(): void {
    const payload: Announcement = { state: 'online', instanceId: this.options.instanceId, priority: this.options.priority, role: this.roleValue, at: Date.now(), startedAt: this.startedAt };
    this.deps.publisher.publishCoordination({ topic: heartbeatTopic(this.options.group, this.options.instanceId), payload: JSON.stringify(payload), qos: 0, retain: false });
  }

  private tick(): void {
    const now = Date.now();
    const gap = now - this.lastTick;
    this.lastTick = now;
    if (!this.running || !this.deps.connection.connected) return;
    if (gap > this.options.failoverMs && this.discoveryTimer === null) {
      // This process did not run for longer than failoverSeconds (suspended, stopped, starved): the
      // other instance may have taken over meanwhile. Decide again, holding, as after a reconnect.
      this.deps.logger.warn({ pausedMs: gap }, `high availability: this instance did not run for ${Math.round(gap / 100) / 10} s (more than failoverSeconds); deciding the role again`);
      this.onConnect();
      return;
    }
    this.heartbeat();
    this.deps.metrics.haPeers.set(this.peerList().filter((p) => p.live).length);
    if (this.releasedUntil > 0 && Date.now() > this.releasedUntil) {
      this.released.clear();
      this.releasedUntil = 0;
    }
    // Decided after the messages that are waiting have been read: timers run before I/O, so a tick
    // that comes late (this process was starved) would otherwise find the other instance silent when
    // its heartbeats are only still unread, and take over from a live active.
    setImmediate(() => {
      if (this.discoveryTimer === null) this.decide();
    });
  }

  private onPeerMessage(topic: string, payload: Buffer): void {
    const a = parseAnnouncement(payload);
    if (!a) {
      this.deps.metrics.eventsRejected.inc({ source: 'ha', reason: 'bad_announcement' });
      this.deps.logger.warn({ topic }, `high availability: unreadable message on ${topic} ignored (expected JSON with state, instanceId, priority)`);
      return;
    }
    if (a.instanceId === this.options.instanceId) return;
    const known = this.peers.get(a.instanceId);
    const wasLive = known ? this.isLive(known, Date.now()) : false;
    // An offline will carries no start time: the one last announced is kept.
    this.peers.set(a.instanceId, { instanceId: a.instanceId, priority: a.priority, role: a.state === 'offline' ? 'standby' : a.role, online: a.state === 'online', lastHeard: Date.now(), startedAt: a.startedAt || (known?.startedAt ?? 0) });
    if (a.state === 'offline' && wasLive) this.deps.logger.warn({ peer: a.instanceId }, `high availability: instance ${a.instanceId} is offline`);
    else if (a.state === 'online' && !wasLive) this.deps.logger.info({ peer: a.instanceId, role: a.role, priority: a.priority }, `high availability: instance ${a.instanceId} is online (${a.role}, priority ${a.priority})`);
    if (this.discoveryTimer === null) this.decide();
  }

  private onWatched(topic: string, payload: Buffer): void {
    if (topic.startsWith(`${this.options.group}/`)) return;
    if (this.roleValue !== 'active') {
      this.deps.publisher.deliveredElsewhere(topic, payload);
      return;
    }
    if (this.released.size === 0) return;
    const key = messageKey(topic, payload);
    const copies = this.released.get(key);
    if (copies === undefined) return;
    this.released.set(key, copies + 1);
    if (copies + 1 >= 2) this.deps.metrics.haDuplicates.inc();
  }

  private isLive(p: PeerState, now: number): boolean {
    return p.online && now - p.lastHeard <= this.options.failoverMs;
  }

  /**
   * The active stays active while it lives (no handover when a better instance comes back: that
   * would only cause duplicates). With no live active, the live instance that outranks the others
   * becomes active. Two actives (after a network split heals): the outranked one steps down.
   */
  private decide(): void {
    if (!this.running || !this.deps.connection.connected) return;
    const now = Date.now();
    const me = { instanceId: this.options.instanceId, priority: this.options.priority };
    const live = [...this.peers.values()].filter((p) => this.isLive(p, now));
    const activePeers = live.filter((p) => p.role === 'active');
    if (activePeers.length > 0) {
      const best = activePeers.reduce((a, b) => (outranks(a, b) ? a : b));
      if (this.roleValue === 'active' && outranks(me, best)) return;
      this.setRole('standby', `instance ${best.instanceId} is active`);
      this.publishInherited(best);
      return;
    }
    // The active stays active: a better instance that comes back waits for the next failover.
    if (this.roleValue === 'active') return;
    const better = live.find((p) => outranks(p, me));
    if (better) {
      this.setRole('standby', `instance ${better.instanceId} outranks this one and is about to become active`);
      return;
    }
    const gone = [...this.peers.values()].find((p) => p.role === 'active' && !this.isLive(p, now));
    const why = gone ? `instance ${gone.instanceId} ${gone.online ? `sent no heartbeat for ${Math.round((now - gone.lastHeard) / 100) / 10} s` : 'went offline'}` : live.length === 0 ? 'no other instance is live' : 'no instance is active and this one ranks first';
    if (gone) gone.role = 'standby';
    this.setRole('active', why);
  }

  /**
   * Standby beside `active`: what this instance wrote before its restart and created before the
   * active's process started taking inputs, the active cannot have; it is published from here.
   */
  private publishInherited(active: PeerState): void {
    if (active.startedAt <= 0) return;
    const cutoff = active.startedAt + INHERITED_ALLOWANCE_MS;
    if (this.inheritedFrom && this.inheritedFrom.cutoff >= cutoff) return;
    this.inheritedFrom = { instanceId: active.instanceId, cutoff, logged: false };
    this.deps.publisher.publishInherited(cutoff);
  }

  /** The Publisher sent an inherited alert (held ones at once, the others as they are read or made). */
  private onInherited(n: number): void {
    this.deps.metrics.haReleased.inc(n);
    const from = this.inheritedFrom;
    if (!from || from.logged) return;
    from.logged = true;
    this.deps.logger.warn(
      { instanceId: this.options.instanceId, active: from.instanceId },
      `high availability: publishing, as the standby, the alerts of inputs this instance accepted before its restart: instance ${from.instanceId} was not running yet when they arrived, so it cannot publish them (counted in butler_mqtt_ha_released_total)`,
    );
  }

  private setRole(role: HaRole, why: string): void {
    const previous = this.roleValue;
    if (role === previous) return;
    this.roleValue = role;
    this.roleSince = Date.now();
    const { publisher, logger, metrics } = this.deps;
    if (role === 'active') {
      const heldKeys = publisher.heldKeys();
      const released = publisher.release();
      this.released = new Map(heldKeys.map((k) => [k, 0]));
      this.releasedUntil = Date.now() + DUPLICATE_WATCH_MS;
      metrics.haReleased.inc(released);
      logger.warn({ instanceId: this.options.instanceId, role, previous, released, reason: why }, `high availability: this instance (${this.options.instanceId}) is now ACTIVE: ${why}; publishing ${released} held message(s)`);
    } else {
      publisher.hold();
      logger[previous === 'active' ? 'warn' : 'info']({ instanceId: this.options.instanceId, role, previous, held: publisher.heldCount, reason: why }, `high availability: this instance (${this.options.instanceId}) is now ${role}: ${why}`);
    }
    metrics.haRoleChanges.inc({ role });
    this.setRoleMetric();
    this.emit('role', role);
    if (this.deps.connection.connected) {
      this.announce();
      this.heartbeat();
    }
  }

  private setRoleMetric(): void {
    for (const r of ['starting', 'active', 'standby'] as const) this.deps.metrics.haRole.set({ role: r }, r === this.roleValue ? 1 : 0);
  }
}
