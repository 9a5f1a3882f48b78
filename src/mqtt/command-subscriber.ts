// Task-start commands from the main broker (SPEC §5): subscribes to the subscription root on every
// connect, takes messages on exactly taskStartTopic, refuses bad payloads and redeliveries, records
// each accepted command in the durable inbox, has it started, and answers on the optional result topic.
import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { BrokerConnection, Subscription } from './connection.ts';
import { parseTaskStartCommand, type TaskStartCommand } from './task-start-command.ts';
import { InboxFullError, type Inbox, type InboxRow } from '../store/inbox.ts';
import { OutboxFullError, type MessageSink, type OutgoingMessage } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ActivityLog } from '../observability/activity.ts';

/** Inbox source and metrics label. */
export const COMMAND_SOURCE = 'mqtt_command';
export const RESULT_KIND = 'task_start_result';

export type CommandStatus = 'started' | 'denied' | 'invalid' | 'failed';

/** What starts a task (alerts/task-start.ts); null when there is no Sense connection. */
export interface TaskStartHandler {
  start(taskId: string): Promise<{ status: 'started' | 'denied' | 'failed'; detail: string }>;
}

export interface CommandSubscriberOptions {
  subscriptionRootTopic: string;
  taskStartTopic: string;
  /** '' = no result messages. */
  resultTopic: string;
  /** A repeated command (same packet, or same task and correlationId) within this window starts once. Default 60 s. */
  dedupWindowMs?: number;
  /** Commands handled at once. Default 4. */
  concurrency?: number;
  /** Builds the result payload (alerts/task-start.ts owns its shape). */
  resultPayload: (taskId: string | null, correlationId: string | null, status: CommandStatus, detail: string) => string;
}

export interface CommandSubscriberDeps {
  connection: BrokerConnection;
  inbox: Inbox;
  /** For answers to commands that never reach the inbox (invalid, duplicate-free refusals). */
  sink: MessageSink;
  /** null: task start unavailable (no QRS host); commands are answered with `failed`. */
  starter: TaskStartHandler | null;
  unavailableDetail?: string;
  logger: Logger;
  metrics: Metrics;
  /** The status page's recent activity (optional). */
  activity?: ActivityLog;
}

const DEFAULT_WINDOW_MS = 60_000;

export class CommandSubscriber {
  private readonly windowMs: number;
  private readonly concurrency: number;
  /** messageId → payload hash and expiry, for broker redeliveries (DUP flag). */
  private readonly recentPackets = new Map<number, { hash: string; expires: number }>();
  /** taskId|correlationId → expiry, for commands resent by their publisher. */
  private readonly recentCommands = new Map<string, number>();
  private lastSweep = 0;
  private readonly queue: InboxRow[] = [];
  private readonly active = new Set<Promise<void>>();
  private running = false;
  private readonly resultTopic: string;
  private subscription: Subscription | null = null;

  constructor(
    private readonly options: CommandSubscriberOptions,
    private readonly deps: CommandSubscriberDeps,
  ) {
    this.windowMs = options.dedupWindowMs ?? DEFAULT_WINDOW_MS;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.resultTopic = options.resultTopic;
    if (this.resultTopic && this.resultTopic === options.taskStartTopic) {
      // A result on the command topic would come back as a command: never answer there.
      deps.logger.error({ topic: this.resultTopic }, 'mqttConfig.taskStartResultTopic equals taskStartTopic: results are not published');
      this.resultTopic = '';
    }
  }

  start(): void {
    const { connection, logger } = this.deps;
    this.running = true;
    this.subscription = connection.subscribe(this.options.subscriptionRootTopic, { qos: 1, purpose: `for task start commands on ${this.options.taskStartTopic}` }, this.onMessage);
    connection.on('connect', this.onConnect);
    if (connection.connected) this.onConnect();
    if (!this.deps.starter) {
      logger.warn(
        { topic: this.options.taskStartTopic },
        `task start via MQTT is unavailable: ${this.deps.unavailableDetail ?? 'no task starter'}; commands on ${this.options.taskStartTopic} are refused${this.resultTopic ? ` and answered with status "failed" on ${this.resultTopic}` : ''}`,
      );
    }
    // Commands accepted before a crash or shutdown and not yet handled.
    let afterId = 0;
    let resumed = 0;
    for (;;) {
      const rows = this.deps.inbox.pending(COMMAND_SOURCE, afterId, 500);
      if (rows.length === 0) break;
      this.queue.push(...rows);
      resumed += rows.length;
      afterId = (rows[rows.length - 1] as InboxRow).id;
    }
    if (resumed > 0) logger.info({ count: resumed }, `resuming ${resumed} task start command(s) accepted before the last stop`);
    this.drain();
  }

  /** Stops intake and waits for commands being handled; queued ones stay in the inbox. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.subscription) this.deps.connection.unsubscribe(this.subscription);
    this.subscription = null;
    this.deps.connection.off('connect', this.onConnect);
    this.queue.length = 0;
    await Promise.allSettled([...this.active]);
  }

  private readonly onConnect = (): void => {
    const { connection } = this.deps;
    // A clean session starts with fresh packet ids: what was seen before cannot be redelivered.
    if (connection.options.clean) this.recentPackets.clear();
    // The subscription itself is made again by the connection on every connect.
  };

  /** Public for tests that hand a packet straight to the subscriber (e.g. a broker redelivery). */
  readonly onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    if (!this.running || topic !== this.options.taskStartTopic) return;
    const { metrics, logger } = this.deps;
    metrics.eventsReceived.inc({ source: COMMAND_SOURCE });
    const now = Date.now();
    this.sweep(now);

    if (this.isRedelivery(packet, payload, now)) {
      metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: 'duplicate' });
      logger.info({ messageId: packet.messageId }, 'task start command redelivered by the broker (same packet); started once, ignored');
      return;
    }

    const parsed = parseTaskStartCommand(payload);
    if (!parsed.ok) {
      const e = parsed.error;
      metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: e.reason });
      logger.warn({ reason: e.reason, topic }, `task start command refused (${e.reason}): ${e.detail}`);
      this.answerDirectly(e.taskId ?? null, e.correlationId ?? null, 'invalid', e.detail);
      return;
    }
    const cmd = parsed.value;

    if (cmd.correlationId !== undefined) {
      const key = `${cmd.taskId.toLowerCase()}|${cmd.correlationId}`;
      const until = this.recentCommands.get(key);
      if (until !== undefined && until > now) {
        metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: 'duplicate' });
        logger.info({ taskId: cmd.taskId, correlationId: cmd.correlationId }, `task start command for ${cmd.taskId} repeated with the same correlationId within ${this.windowMs / 1000} s; started once, ignored`);
        return;
      }
      this.recentCommands.set(key, now + this.windowMs);
    }

    if (!this.deps.starter) {
      metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: 'unavailable' });
      logger.debug({ taskId: cmd.taskId }, 'task start command refused: task start is unavailable');
      this.answerDirectly(cmd.taskId, cmd.correlationId ?? null, 'failed', this.deps.unavailableDetail ?? 'task start is unavailable');
      return;
    }
    void this.accept(cmd, payload);
  };

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
    for (const [k, v] of this.recentCommands) if (v <= now) this.recentCommands.delete(k);
  }

  private async accept(cmd: TaskStartCommand, payload: Buffer): Promise<void> {
    const { inbox, metrics, logger } = this.deps;
    try {
      const outcome = await inbox.accept(COMMAND_SOURCE, payload, null, JSON.stringify({ topic: this.options.taskStartTopic }));
      if (outcome.status !== 'accepted') return; // no dedup key given, so not reached
      metrics.eventsAccepted.inc({ source: COMMAND_SOURCE });
      if (!this.running) return; // handled after the next start
      this.queue.push({ id: outcome.id, source: COMMAND_SOURCE, payload, dedupKey: null, meta: null, receivedAt: Date.now() });
      this.drain();
    } catch (err) {
      const full = err instanceof InboxFullError;
      metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: full ? 'inbox_full' : 'store_error' });
      logger.error({ taskId: cmd.taskId, err: (err as Error).message }, `task start command for ${cmd.taskId} refused: ${(err as Error).message}`);
      this.answerDirectly(cmd.taskId, cmd.correlationId ?? null, 'failed', `command not accepted: ${(err as Error).message}`);
    }
  }

  private drain(): void {
    while (this.running && this.active.size < this.concurrency && this.queue.length > 0) {
      const row = this.queue.shift() as InboxRow;
      const work = this.handle(row).catch((err: Error) => {
        // Unexpected (store failure): the row stays in the inbox and is tried again after a restart.
        this.deps.logger.error({ id: row.id, err: err.message }, `task start command could not be completed: ${err.message}`);
      });
      this.active.add(work);
      void work.finally(() => {
        this.active.delete(work);
        this.drain();
      });
    }
  }

  private async handle(row: InboxRow): Promise<void> {
    const { inbox, logger, metrics } = this.deps;
    const parsed = parseTaskStartCommand(row.payload);
    if (!parsed.ok) {
      // Only a row written by another version could fail here; it was accepted, so say so.
      logger.warn({ id: row.id, reason: parsed.error.reason }, `a stored task start command could not be read and was removed: ${parsed.error.detail}`);
      await inbox.discard(row);
      return;
    }
    const { taskId, correlationId } = parsed.value;
    // No starter: a command stored while QRS was configured, resumed after QRS was removed.
    const outcome = this.deps.starter
      ? await this.deps.starter.start(taskId)
      : { status: 'failed' as const, detail: this.deps.unavailableDetail ?? 'task start is unavailable' };
    const ctx = { taskId, correlationId, status: outcome.status };
    if (outcome.status === 'started') logger.info(ctx, `task start command: ${outcome.detail}`);
    else if (outcome.status === 'denied') {
      metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: 'denied' });
      logger.warn(ctx, `task start command denied: ${outcome.detail}`);
    } else logger.warn(ctx, `task start command failed: ${outcome.detail}`);

    const messages = this.resultMessages(taskId, correlationId ?? null, outcome.status, outcome.detail);
    const activity = this.deps.activity;
    const activityId = activity?.event({ source: COMMAND_SOURCE, summary: `start task ${taskId}: ${outcome.status}` });
    try {
      const ids = await inbox.complete(row, messages);
      if (activityId !== undefined) activity?.messages(activityId, ids, messages.map((m) => m.topic));
    } catch (err) {
      if (!(err instanceof OutboxFullError) || messages.length === 0) throw err;
      // The start happened; it must not be repeated just because its answer has no room.
      logger.error({ ...ctx, topic: this.resultTopic }, `result of the task start command not published: ${err.message}`);
      await inbox.complete(row, []);
      if (activityId !== undefined) activity?.messages(activityId, [], []);
    }
  }

  private resultMessages(taskId: string | null, correlationId: string | null, status: CommandStatus, detail: string): OutgoingMessage[] {
    if (!this.resultTopic) return [];
    return [{ topic: this.resultTopic, payload: this.options.resultPayload(taskId, correlationId, status, detail), kind: RESULT_KIND }];
  }

  private answerDirectly(taskId: string | null, correlationId: string | null, status: CommandStatus, detail: string): void {
    const messages = this.resultMessages(taskId, correlationId, status, detail);
    if (messages.length === 0) return;
    this.deps.sink.enqueue(messages).catch((err: Error) => {
      this.deps.logger.error({ taskId, status, err: err.message }, `result of a task start command not published: ${err.message}`);
    });
  }
}
