// Task-start commands, the handler side: a parsed command → the task started (through the start
// filter and QRS) → the answer on the optional result topic. The deduplication key is the task and
// its correlationId, so a command resent with the same correlationId starts the task once, also
// across restarts (the pipeline keeps the key durably for the configured time).
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ParseResult } from '../pipeline/lane.ts';
import { parseTaskStartCommand, type TaskStartCommand } from '../mqtt/task-start-command.ts';
import type { OutgoingMessage } from '../store/types.ts';
import type { TaskStartStatus } from './task-start.ts';

export const COMMAND_SOURCE = 'mqtt_command';
export const RESULT_KIND = 'task_start_result';

/** What starts a task (TaskStarter); null when there is no Sense connection. */
export interface TaskStartHandler {
  start(taskId: string): Promise<{ status: 'started' | 'denied' | 'failed'; detail: string }>;
}

/** The command's key for deduplication; null without a correlationId (every such command is new). */
export function commandDedupKey(cmd: Pick<TaskStartCommand, 'taskId' | 'correlationId'>): string | null {
  return cmd.correlationId === undefined ? null : `cmd:${cmd.taskId.toLowerCase()}|${cmd.correlationId}`;
}

export function parseCommandInput(payload: Buffer): ParseResult<TaskStartCommand> {
  const parsed = parseTaskStartCommand(payload);
  if (!parsed.ok) return { ok: false, reason: parsed.error.reason, detail: parsed.error.detail };
  return { ok: true, event: parsed.value, dedupKey: commandDedupKey(parsed.value) };
}

export class TaskCommandHandler {
  constructor(
    private readonly options: {
      /** '' = no result messages. */
      resultTopic: string;
      resultPayload: (taskId: string | null, correlationId: string | null, status: TaskStartStatus, detail: string) => string;
      unavailableDetail: string;
    },
    private readonly deps: { starter: TaskStartHandler | null; logger: Logger; metrics: Metrics },
  ) {}

  async handle(cmd: TaskStartCommand): Promise<OutgoingMessage[]> {
    const { logger, metrics, starter } = this.deps;
    const { taskId, correlationId } = cmd;
    // No starter: a command stored while QRS was configured, resumed after QRS was removed.
    const outcome = starter ? await starter.start(taskId) : { status: 'failed' as const, detail: this.options.unavailableDetail };
    const ctx = { taskId, correlationId, status: outcome.status };
    if (outcome.status === 'started') logger.info(ctx, `task start command: ${outcome.detail}`);
    else if (outcome.status === 'denied') {
      metrics.eventsRejected.inc({ source: COMMAND_SOURCE, reason: 'denied' });
      logger.warn(ctx, `task start command denied: ${outcome.detail}`);
    } else logger.warn(ctx, `task start command failed: ${outcome.detail}`);
    return this.result(taskId, correlationId ?? null, outcome.status, outcome.detail);
  }

  /** The answer on the result topic (none when it is not configured). */
  result(taskId: string | null, correlationId: string | null, status: TaskStartStatus, detail: string): OutgoingMessage[] {
    if (!this.options.resultTopic) return [];
    return [{ topic: this.options.resultTopic, payload: this.options.resultPayload(taskId, correlationId, status, detail), kind: RESULT_KIND }];
  }
}

export function describeCommand(cmd: TaskStartCommand): string {
  return `start task ${cmd.taskId}${cmd.correlationId !== undefined ? ` (correlationId ${JSON.stringify(cmd.correlationId.slice(0, 40))})` : ''}`;
}
