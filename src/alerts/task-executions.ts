// Task outcomes read from QRS (change notifications and catch-up, src/sense/qrs-notifications.ts):
// one finished ExecutionResult → a JSON message on `<root>/<taskId>/execution`, the retained last
// outcome on `<root>/<taskId>/state`, and for reload tasks that failed or were aborted Butler's alert
// messages with the same payloads as the log-appender source builds (src/alerts/payloads.ts).
//
// Once per result and once per alert, whichever source or path came first: the completion step claims
// the result's key (a callback and a catch-up read may both name it) and the execution id, the dedup key
// the UDP task source uses, so with both sources on an execution is alerted once. The per-task state
// (consecutive failures, last success) moves in the same transaction.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { HandledEvent } from '../pipeline/lane.ts';
import type { QrsClient } from '../sense/qrs-client.ts';
import type { SchedulerEvent } from '../sense/datagram.ts';
import {
  EMPTY_GUID,
  FINAL_STATUSES,
  executionResultKey,
  executionStatusName,
  readExecutionResult,
  type ExecutionInput,
  type ExecutionResult,
} from '../sense/qrs-notifications.ts';
import type { Inbox } from '../store/inbox.ts';
import { KeyValueTable } from '../store/kv.ts';
import type { Db } from '../store/sqlite.ts';
import type { OutgoingMessage } from '../store/types.ts';
import { taskAbortedFullPayload, taskFailureFullPayload } from './payloads.ts';

export const QRS_NOTIFICATION_SOURCE = 'qrs_notification';

export interface TaskExecutionTopics {
  failure: string;
  /** null: taskFailureSendFull is false. */
  failureFull: string | null;
  aborted: string;
  abortedFull: string | null;
  /** Retain the state topic (off in Azure Event Grid mode, like every retained message but availability). */
  retainState?: boolean;
  /** mqttConfig.taskEventsTopicRoot */
  root: string;
}

export interface TaskExecutionDeps {
  qrs: Pick<QrsClient, 'getExecutionResult' | 'getTaskFull' | 'getAppFull'>;
  inbox: Pick<Inbox, 'claimInTransaction' | 'isDuplicate'>;
  db: Db;
  logger: Logger;
  metrics?: Metrics;
  /** How long a result and an execution id are remembered as handled (default: the inbox's TTL). */
  dedupTtlMs?: number;
}

/** QRS taskType → the task's type name (the schemaPath of its typed collection). */
export const TASK_TYPE_NAMES: Record<number, string> = { 0: 'ReloadTask', 1: 'ExternalProgramTask', 2: 'UserSyncTask', 3: 'DistributionTask', 4: 'PreloadTask' };

/** Statuses counted as a failure in `consecutiveFailures`: Aborted, FinishedFail, Error. */
const FAILURE_STATUSES: ReadonlySet<number> = new Set([6, 8, 11]);
const STATUS_SUCCESS = 7;
const STATUS_FAILED = 8;
const STATUS_ABORTED = 6;

/** The retained per-task state (also kept in the kv table under `task-state:<taskId>`). */
export interface TaskState {
  taskId: string;
  taskName: string;
  taskType: string | null;
  status: string;
  executionId: string;
  startTime: string;
  stopTime: string;
  duration: number;
  executingNodeName: string;
  consecutiveFailures: number;
  lastSuccessTime: string | null;
}

export const TASK_STATE_PREFIX = 'task-state:';
/** Outcomes per hour of stopTime (`task-hour:2026-12-06T18` → {success, failure, other}), for the status page. */
const HOUR_PREFIX = 'task-hour:';
/** Failure stopTimes of a task within the last day (`task-failures:<taskId>` → [...]), for the status page. */
const FAILURES_PREFIX = 'task-failures:';
const DAY_MS = 24 * 3600_000;
/** Hours of counts kept. */
const HOURS_KEPT = 48;

export interface HourCounts {
  success: number;
  failure: number;
  other: number;
}

/** The status page's task-health view. */
export interface TaskHealth {
  tasks: (TaskState & { failuresLast24h: number })[];
  /** The last 24 hours, oldest first: `hour` is the start of the hour (ISO, UTC). */
  hours: ({ hour: string } & HourCounts)[];
}

/** One task's last outcome for the status page, read from the kv table. */
export function readTaskStates(kv: KeyValueTable): TaskState[] {
  const out: TaskState[] = [];
  for (const { value } of kv.entries(TASK_STATE_PREFIX)) {
    try {
      out.push(JSON.parse(value) as TaskState);
    } catch {
      // an unreadable row is skipped
    }
  }
  return out;
}

/** The execution message: everything QRS says about the finished execution. */
export function executionPayload(r: ExecutionResult, task: { name: string; type: string | null }): string {
  return JSON.stringify({
    taskId: r.taskID,
    taskName: task.name,
    taskType: task.type,
    status: executionStatusName(r.status),
    statusCode: r.status,
    executionId: r.executionID,
    executionResultId: r.id,
    appId: r.appID === EMPTY_GUID ? null : r.appID,
    executingNodeName: r.executingNodeName,
    startTime: r.startTime,
    stopTime: r.stopTime,
    duration: r.duration,
    scriptLogAvailable: r.scriptLogAvailable,
    fileReferenceId: r.fileReferenceID,
    details: r.details,
  });
}

/** `2026-11-20T02:03:12.345Z` → `2026-11-20 02:03:12,345` (the log appender's layout, in UTC). */
export function appenderTimestamp(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,3}))?/.exec(iso);
  if (!m) return iso;
  return `${m[1]} ${m[2]},${(m[3] ?? '0').padEnd(3, '0')}`;
}

export class TaskExecutionHandler {
  private readonly kv: KeyValueTable;

  constructor(
    private readonly topics: TaskExecutionTopics,
    private readonly deps: TaskExecutionDeps,
  ) {
    this.kv = new KeyValueTable(deps.db);
  }

  /** The kept per-task states (status page). */
  states(): TaskState[] {
    return readTaskStates(this.kv);
  }

  /** Every task seen, its last outcome, failures in the last 24 h, and outcomes per hour. */
  health(now = Date.now()): TaskHealth {
    const since = new Date(now - DAY_MS).toISOString();
    const tasks = this.states()
      .map((state) => ({ ...state, failuresLast24h: this.failureTimes(state.taskId).filter((t) => t >= since).length }))
      .sort((a, b) => (a.stopTime < b.stopTime ? 1 : a.stopTime > b.stopTime ? -1 : 0));
    const counts = new Map(this.kv.entries(HOUR_PREFIX).map((e) => [e.key.slice(HOUR_PREFIX.length), parseCounts(e.value)]));
    const hours: TaskHealth['hours'] = [];
    const current = Math.floor(now / 3600_000) * 3600_000;
    for (let h = current - 23 * 3600_000; h <= current; h += 3600_000) {
      const hour = new Date(h).toISOString();
      hours.push({ hour, ...(counts.get(hour.slice(0, 13)) ?? { success: 0, failure: 0, other: 0 }) });
    }
    return { tasks, hours };
  }

  private failureTimes(taskId: string): string[] {
    const text = this.kv.get(FAILURES_PREFIX + taskId.toLowerCase());
    if (text === undefined) return [];
    try {
      const value: unknown = JSON.parse(text);
      return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
    } catch {
      return [];
    }
  }

  /** In the completing transaction: the hour's counts and the task's recent failures. */
  private recordHistory(r: ExecutionResult): void {
    const hour = r.stopTime.slice(0, 13);
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}$/.test(hour)) return;
    const key = HOUR_PREFIX + hour;
    const counts = parseCounts(this.kv.get(key));
    if (r.status === STATUS_SUCCESS) counts.success += 1;
    else if (FAILURE_STATUSES.has(r.status)) counts.failure += 1;
    else counts.other += 1;
    this.kv.put(key, JSON.stringify(counts));
    const oldest = new Date(Date.parse(`${hour}:00:00.000Z`) - HOURS_KEPT * 3600_000).toISOString().slice(0, 13);
    for (const e of this.kv.entries(HOUR_PREFIX)) if (e.key.slice(HOUR_PREFIX.length) < oldest) this.kv.delete(e.key);
    if (FAILURE_STATUSES.has(r.status)) {
      const since = new Date(Date.parse(r.stopTime) - DAY_MS).toISOString();
      const times = [...this.failureTimes(r.taskID).filter((t) => t >= since), r.stopTime].sort().slice(-1000);
      this.kv.put(FAILURES_PREFIX + r.taskID.toLowerCase(), JSON.stringify(times));
    }
  }

  /**
   * One input → its messages, built in the completion step. A QRS failure throws (the lane retries
   * with backoff, so nothing is lost); a result QRS does not know, or one not finished, publishes nothing.
   */
  async handle(input: ExecutionInput): Promise<HandledEvent> {
    const { qrs, logger } = this.deps;
    let raw: Record<string, unknown>;
    if (input.kind === 'changed') {
      const fetched = await qrs.getExecutionResult(input.id);
      if (!fetched.ok) throw new Error(`QRS executionresult/${input.id}: ${fetched.error.message}`);
      if (fetched.value === null) {
        this.deps.metrics?.eventsRejected.inc({ source: QRS_NOTIFICATION_SOURCE, reason: 'unknown_execution_result' });
        logger.warn({ executionResultId: input.id }, `a callback named ExecutionResult ${input.id}, which QRS does not know: nothing published`);
        return { messages: [] };
      }
      raw = fetched.value;
    } else {
      raw = input.result;
    }
    const result = readExecutionResult(raw);
    if (typeof result === 'string') {
      this.deps.metrics?.eventsRejected.inc({ source: QRS_NOTIFICATION_SOURCE, reason: 'invalid_execution_result' });
      logger.warn(`ExecutionResult not usable (${result}): nothing published`);
      return { messages: [] };
    }
    if (!FINAL_STATUSES.has(result.status)) {
      logger.debug({ executionResultId: result.id, status: executionStatusName(result.status) }, 'execution not finished: nothing published');
      return { messages: [] };
    }
    // Handled already (another callback or a catch-up read): spare the lookups. The step decides for good.
    if (input.kind === 'changed' && this.deps.inbox.isDuplicate(executionResultKey(result.id))) return { messages: [] };

    const taskAnswer = await qrs.getTaskFull(result.taskID);
    if (!taskAnswer.ok) throw new Error(`QRS task/full ${result.taskID}: ${taskAnswer.error.message}`);
    const taskFull = taskAnswer.value[0];
    const taskType = typeof taskFull?.['taskType'] === 'number' ? (taskFull['taskType'] as number) : null;
    const task = { name: typeof taskFull?.['name'] === 'string' ? (taskFull['name'] as string) : '', type: taskType === null ? null : (TASK_TYPE_NAMES[taskType] ?? `Task${taskType}`) };
    if (!taskFull) logger.warn({ taskId: result.taskID, executionResultId: result.id }, `task ${result.taskID} of a finished execution is not in QRS: published without task name or type`);

    let alerts: OutgoingMessage[] = [];
    if (taskType === 0 && taskFull && (result.status === STATUS_FAILED || result.status === STATUS_ABORTED)) {
      let appFull: Record<string, unknown> | undefined;
      if (result.appID !== EMPTY_GUID) {
        const appAnswer = await qrs.getAppFull(result.appID);
        if (!appAnswer.ok) throw new Error(`QRS app/full ${result.appID}: ${appAnswer.error.message}`);
        appFull = appAnswer.value[0];
      }
      alerts = this.alerts(result, taskFull, appFull);
    }
    const execution: OutgoingMessage = { topic: `${this.topics.root}/${result.taskID}/execution`, payload: executionPayload(result, task), kind: 'task_execution' };
    return { messages: [], step: (db) => this.complete(db, input, result, task, alerts, execution) };
  }

  /** Butler's reload failure / aborted messages, with the fields a log appender would give filled from QRS. */
  private alerts(r: ExecutionResult, taskFull: Record<string, unknown>, appFull: Record<string, unknown> | undefined): OutgoingMessage[] {
    const t = this.topics;
    const failed = r.status === STATUS_FAILED;
    const last = r.details.at(-1);
    const event: SchedulerEvent = {
      type: failed ? 'failed' : 'aborted',
      rawType: '',
      hostName: r.executingNodeName,
      taskName: typeof taskFull['name'] === 'string' ? taskFull['name'] : '',
      appName: typeof appFull?.['name'] === 'string' ? appFull['name'] : '',
      user: r.modifiedByUserName,
      taskId: r.taskID,
      appId: r.appID === EMPTY_GUID ? '' : r.appID,
      logTimeStamp: appenderTimestamp(r.stopTime),
      logLevel: failed ? 'ERROR' : 'INFO',
      executionId: r.executionID,
      logMessage: last?.message ?? '',
      fields: [],
    };
    const enrichment = { taskFull, ...(appFull ? { appFull } : {}) };
    const out: OutgoingMessage[] = [];
    if (failed) {
      out.push({ topic: t.failure, payload: event.taskName, kind: 'task_failure' });
      if (t.failureFull) out.push({ topic: t.failureFull, payload: taskFailureFullPayload(event, enrichment), kind: 'task_failure_full' });
    } else {
      out.push({ topic: t.aborted, payload: event.taskName, kind: 'task_aborted' });
      if (t.abortedFull) out.push({ topic: t.abortedFull, payload: taskAbortedFullPayload(event, enrichment), kind: 'task_aborted_full' });
    }
    return out;
  }

  /** Runs inside the completing transaction: claims, state, messages. */
  private complete(db: Db, input: ExecutionInput, r: ExecutionResult, task: { name: string; type: string | null }, alerts: OutgoingMessage[], execution: OutgoingMessage) {
    void db;
    const { inbox, logger } = this.deps;
    const notes: (() => void)[] = [];
    // A catch-up input carries the result's key as its own dedup key (claimed by the lane already).
    if (input.kind === 'changed') {
      const note = inbox.claimInTransaction(executionResultKey(r.id), this.deps.dedupTtlMs);
      if (note === null) {
        logger.debug({ executionResultId: r.id }, 'execution result handled already (callback and catch-up both named it)');
        return;
      }
      notes.push(note);
    }
    const messages: OutgoingMessage[] = [];
    if (alerts.length > 0) {
      // The key the UDP task source dedups by: the execution id.
      const note = r.executionID === '' ? () => undefined : inbox.claimInTransaction(r.executionID, this.deps.dedupTtlMs);
      if (note === null) {
        logger.info({ taskId: r.taskID, executionId: r.executionID }, `reload task "${task.name}" ${executionStatusName(r.status)}: alerted already by the log appender source; execution and state published`);
      } else {
        notes.push(note);
        messages.push(...alerts);
        logger.info({ taskId: r.taskID, executionId: r.executionID, messages: alerts.length }, `reload task "${task.name}" ${r.status === STATUS_FAILED ? 'failed' : 'was aborted'} (from QRS): ${alerts.length} alert message(s) queued`);
      }
    }
    messages.push(execution);
    this.recordHistory(r);
    const state = this.nextState(r, task);
    if (state) {
      this.kv.put(TASK_STATE_PREFIX + r.taskID.toLowerCase(), JSON.stringify(state));
      messages.push({ topic: `${this.topics.root}/${r.taskID}/state`, payload: JSON.stringify(state), retain: this.topics.retainState ?? true, kind: 'task_state' });
    }
    return { messages, applied: () => notes.forEach((n) => n()) };
  }

  /** The task's state after this outcome; null when the kept state is of a later execution already. */
  private nextState(r: ExecutionResult, task: { name: string; type: string | null }): TaskState | null {
    let previous: TaskState | null = null;
    const text = this.kv.get(TASK_STATE_PREFIX + r.taskID.toLowerCase());
    if (text !== undefined) {
      try {
        previous = JSON.parse(text) as TaskState;
      } catch {
        previous = null;
      }
    }
    if (previous && previous.stopTime > r.stopTime) return null;
    const failures = previous?.consecutiveFailures ?? 0;
    return {
      taskId: r.taskID,
      taskName: task.name,
      taskType: task.type,
      status: executionStatusName(r.status),
      executionId: r.executionID,
      startTime: r.startTime,
      stopTime: r.stopTime,
      duration: r.duration,
      executingNodeName: r.executingNodeName,
      consecutiveFailures: r.status === STATUS_SUCCESS ? 0 : FAILURE_STATUSES.has(r.status) ? failures + 1 : failures,
      lastSuccessTime: r.status === STATUS_SUCCESS ? r.stopTime : (previous?.lastSuccessTime ?? null),
    };
  }
}

function parseCounts(text: string | undefined): HourCounts {
  try {
    const v = text === undefined ? null : (JSON.parse(text) as Partial<HourCounts>);
    return { success: Number(v?.success) || 0, failure: Number(v?.failure) || 0, other: Number(v?.other) || 0 };
  } catch {
    return { success: 0, failure: 0, other: 0 };
  }
}

/** One line for the status page. */
export function describeExecutionInput(input: ExecutionInput): string {
  if (input.kind === 'changed') return `QRS callback: ExecutionResult ${input.id}`;
  const status = typeof input.result['status'] === 'number' ? executionStatusName(input.result['status']) : '?';
  return `QRS catch-up: ExecutionResult ${String(input.result['id'])} ${status}`;
}
