// Task-start commands from the main broker, the source side: subscribes to taskStartTopic (or the
// subscription root, see commandFilter()), takes messages on exactly taskStartTopic and hands them to
// the command lane. Refused here, each counted and logged: broker redeliveries of a packet already
// taken, retained commands (they would start their task again at every restart of the bridge, unless
// allowed), unreadable payloads (answered with "invalid"), and commands while task start is
// unavailable (answered with "failed").
import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { BrokerConnection, Subscription } from './connection.ts';
import { parseTaskStartCommand } from './task-start-command.ts';
import type { Lane } from '../pipeline/lane.ts';
import type { TaskStartCommand } from './task-start-command.ts';
import type { MessageSink, OutgoingMessage } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * What the command source subscribes to. The bridge acts only on messages on taskStartTopic, and the
 * subscription root (qliksense/# by default) also matches every alert the bridge publishes, which the
 * broker would send straight back to it (about a tenth of its throughput in a storm of alerts). So it
 * subscribes to taskStartTopic itself, unless the config asks for the whole root, the root is a shared
 * subscription (`$share/<group>/…`: the group decides which subscriber gets a command), or the
 * instance is one of an active/standby pair (the standby watches the root for the active's alerts,
 * and one filter keeps the broker from delivering a command twice).
 */
export function commandFilter(root: string, taskStartTopic: string, options: { wholeRoot: boolean; pair: boolean }): string {
  if (options.wholeRoot || options.pair || root.startsWith('$')) return root;
  return taskStartTopic;
}

export interface CommandSourceOptions {
  /** The filter subscribed to (commandFilter()). */
  subscriptionFilter: string;
  taskStartTopic: string;
  /** Take retained messages on the command topic as commands (default false: ignored, counted). */
  acceptRetained: boolean;
  /** null: task start is unavailable; commands are answered with `failed` and this detail. */
  unavailable: string | null;
  /** A packet redelivered by the broker (DUP flag, same id and payload) within this window is taken once. */
  redeliveryWindowMs?: number;
  /**
   * In an active/standby pair: whether this instance executes commands now (only the active does);
   * a command arriving while it returns false is ignored and counted (reason "standby").
   */
  executes?: () => boolean;
  /**
   * With `executes`: commands a standby ignored are kept this long, ms; when the instance becomes active
   * (takeOver()) those still within it are executed unless the active was seen answering them on
   * `resultTopic` (same correlation id). Covers a command sent while the active was dying.
   */
  deferWindowMs?: number;
  /** The result topic (empty = off): a result seen there marks the command as handled by the active. */
  resultTopic?: string;
  /**
   * With `executes`: after takeOver(), how long to wait before executing the kept commands, ms
   * (default 0). An old active that took a command just before it stopped answering may still be
   * answering it; its answer arriving meanwhile cancels the command here.
   */
  takeOverGraceMs?: number;
}

export interface CommandSourceDeps {
  connection: BrokerConnection;
  lane: Pick<Lane<TaskStartCommand>, 'submit' | 'reject'>;
  /** The answer to a command that never entered the lane. */
  answer: (taskId: string | null, correlationId: string | null, status: 'invalid' | 'failed', detail: string) => OutgoingMessage[];
  /** Where such answers are stored. */
  sink: MessageSink;
  /**
   * With `executes`: called for every "started" answer seen on the result topic (this instance's own
   * and the other instance's), so the command's correlation id is refused here too from now on (a
   * command redelivered or resent to this instance after the other one started it).
   */
  startedElsewhere?: (taskId: string, correlationId: string) => void;
  logger: Logger;
  metrics: Metrics;
}

const SOURCE = 'mqtt_command';

export class CommandSource {
  private subscription: Subscription | null = null;
  /** messageId → payload hash and expiry, for broker redeliveries (DUP flag). */
  private readonly recentPackets = new Map<number, { hash: string; expires: number }>();
  private lastSweep = 0;
  private readonly windowMs: number;
  /** Commands ignored as standby, for takeOver(). */
  private deferred: { payload: Buffer; topic: string; correlationId: string | null; at: number }[] = [];
  private takeOverTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: CommandSourceOptions,
    private readonly deps: CommandSourceDeps,
  ) {
    this.windowMs = options.redeliveryWindowMs ?? 60_000;
  }

  start(): void {
    const { connection, logger } = this.deps;
    connection.on('connect', this.onConnect);
    this.subscription = connection.subscribe(this.options.subscriptionFilter, { qos: 1, purpose: `for task start commands on ${this.options.taskStartTopic}` }, this.onMessage);
    if (this.options.unavailable !== null) logger.warn({ topic: this.options.taskStartTopic }, `task start commands on ${this.options.taskStartTopic} are answered with status "failed": ${this.options.unavailable}`);
  }

  stop(): void {
    if (this.takeOverTimer) clearTimeout(this.takeOverTimer);
    this.takeOverTimer = null;
    this.deps.connection.off('connect', this.onConnect);
    if (this.subscription) this.deps.connection.unsubscribe(this.subscription);
    this.subscription = null;
  }

  private readonly onConnect = (): void => {
    // A clean session starts with fresh packet ids: what was seen before cannot be redelivered.
    if (this.deps.connection.options.clean) this.recentPackets.clear();
  };

  /** Public for tests that hand a packet straight to the source (e.g. a broker redelivery). */
  readonly onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    if (this.options.resultTopic && topic === this.options.resultTopic && (this.options.executes !== undefined || this.deferred.length > 0)) {
      this.resultSeen(payload);
      return;
    }
    if (topic !== this.options.taskStartTopic) return;
    const { metrics, logger, lane } = this.deps;
    const now = Date.now();
    this.sweep(now);
    if (packet.retain && !this.options.acceptRetained) {
      metrics.eventsReceived.inc({ source: SOURCE });
      lane.reject('retained', `a retained message on ${topic} is not a command (it would start the task again at every restart); publish commands without the retain flag, or set mqttConfig.taskStartAcceptRetained`, '');
      return;
    }
    if (this.options.executes && !this.options.executes()) {
      metrics.eventsReceived.inc({ source: SOURCE });
      metrics.eventsRejected.inc({ source: SOURCE, reason: 'standby' });
      logger.debug({ topic }, 'task start command ignored: this instance is not the active one of the pair (the active starts the task)');
      if (!packet.retain) this.defer(topic, payload, now);
      return;
    }
    if (this.isRedelivery(packet, payload, now)) {
      metrics.eventsReceived.inc({ source: SOURCE });
      metrics.eventsRejected.inc({ source: SOURCE, reason: 'duplicate' });
      logger.info({ messageId: packet.messageId }, 'task start command redelivered by the broker (same packet); started once, ignored');
      return;
    }
    const parsed = parseTaskStartCommand(payload);
    if (!parsed.ok) {
      // The lane counts and logs it; the sender gets an answer when the result topic is set.
      void lane.submit(payload, null);
      this.answer(parsed.error.taskId ?? null, parsed.error.correlationId ?? null, 'invalid', parsed.error.detail);
      return;
    }
    const cmd = parsed.value;
    if (this.options.unavailable !== null) {
      metrics.eventsReceived.inc({ source: SOURCE });
      lane.reject('unavailable', this.options.unavailable, '');
      this.answer(cmd.taskId, cmd.correlationId ?? null, 'failed', this.options.unavailable);
      return;
    }
    void lane.submit(payload, JSON.stringify({ topic })).then((outcome) => {
      if (outcome.status === 'refused') this.answer(cmd.taskId, cmd.correlationId ?? null, 'failed', `command not accepted: ${outcome.detail}`);
    });
  };

  private defer(topic: string, payload: Buffer, now: number): void {
    const windowMs = this.options.deferWindowMs ?? 0;
    if (windowMs <= 0) return;
    this.deferred = this.deferred.filter((d) => now - d.at <= windowMs);
    const parsed = parseTaskStartCommand(payload);
    const correlationId = parsed.ok ? (parsed.value.correlationId ?? null) : null;
    // Only a command whose answer can be recognised: without it the old active may have started the
    // task already, and starting it again is worse than asking the sender to retry.
    if (!this.options.resultTopic || correlationId === null) return;
    this.deferred.push({ payload, topic, correlationId, at: now });
    // Bounded: a standby is not a queue of commands.
    if (this.deferred.length > 1000) this.deferred.splice(0, this.deferred.length - 1000);
  }

  private resultSeen(payload: Buffer): void {
    let answer: { taskId?: unknown; correlationId?: unknown; status?: unknown };
    try {
      answer = JSON.parse(payload.toString('utf8')) as typeof answer;
    } catch {
      return;
    }
    const { taskId, correlationId, status } = answer ?? {};
    if (typeof correlationId !== 'string') return;
    this.deferred = this.deferred.filter((d) => d.correlationId !== correlationId);
    if (status === 'started' && typeof taskId === 'string') this.deps.startedElsewhere?.(taskId, correlationId);
  }

  /**
   * This instance became the active one: after takeOverGraceMs, commands it ignored as standby within
   * the defer window before now, and not seen answered by the old active (by then), are executed (a
   * command sent while the active was dying would otherwise start nothing).
   */
  takeOver(): void {
    const takenAt = Date.now();
    if (this.takeOverTimer) clearTimeout(this.takeOverTimer);
    this.takeOverTimer = setTimeout(() => {
      this.takeOverTimer = null;
      this.executeDeferred(takenAt);
    }, this.options.takeOverGraceMs ?? 0);
    this.takeOverTimer.unref();
  }

  /** Public for tests: executes what takeOver() found (commands kept at `takenAt`, not answered since). */
  executeDeferred(takenAt: number): number {
    // Lost the role again during the grace (the old active was alive after all): keep them for the
    // next takeover, within their window.
    if (this.options.executes && !this.options.executes()) return 0;
    const now = Date.now();
    const windowMs = this.options.deferWindowMs ?? 0;
    const due = this.deferred.filter((d) => takenAt - d.at <= windowMs);
    this.deferred = [];
    for (const d of due) {
      this.deps.logger.warn(
        { correlationId: d.correlationId, ageMs: now - d.at },
        `task start command received ${takenAt - d.at} ms before this instance became active, not answered by the old active: executing it now`,
      );
      // The lane refuses it if its correlation id was answered "started" meanwhile (startedElsewhere).
      void this.deps.lane.submit(d.payload, JSON.stringify({ topic: d.topic }));
    }
    return due.length;
  }

  private isRedelivery(packet: IPublishPacket, payload: Buffer, now: number): boolean {
    if (packet.qos === 0 || packet.messageId === undefined) return false;
    const hash = createHash('sha256').update(payload).digest('base64');
    const seen = this.recentPackets.get(packet.messageId);
    if (packet.dup && seen && seen.expires > now && seen.hash === hash) return true;
    this.recentPackets.set(packet.messageId, { hash, expires: now + this.windowMs });
    return false;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < this.windowMs) return;
    this.lastSweep = now;
    for (const [k, v] of this.recentPackets) if (v.expires <= now) this.recentPackets.delete(k);
  }

  private answer(taskId: string | null, correlationId: string | null, status: 'invalid' | 'failed', detail: string): void {
    const messages = this.deps.answer(taskId, correlationId, status, detail);
    if (messages.length === 0) return;
    this.deps.sink.enqueue(messages).catch((err: Error) => {
      this.deps.logger.error({ taskId, status, err: err.message }, `result of a task start command not published: ${err.message}`);
    });
  }
}
