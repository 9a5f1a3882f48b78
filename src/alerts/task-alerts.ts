// Reload task alerts: turns a Sense scheduler event into the messages Butler publishes (the basic
// text alert and the full JSON one), enriched through QRS. When QRS cannot be asked, the alert still
// goes out, marked with `enrichmentError`, instead of being lost.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { CachedEndpoint, QrsClient, QrsError, QrsResult } from '../sense/qrs-client.ts';
import { parseDatagram, type SchedulerEvent } from '../sense/datagram.ts';
import type { ParseResult } from '../pipeline/lane.ts';
import type { OutgoingMessage } from '../store/types.ts';
import { taskAbortedFullPayload, taskBasicPayload, taskFailureFullPayload, type TaskEnrichment } from './payloads.ts';

/** `enrichmentError` when no QRS host is configured (configQRS.host empty). */
export const QRS_NOT_CONFIGURED = 'QRS not configured';

export interface TaskAlertTopics {
  failure: string;
  /** null: taskFailureSendFull is false. */
  failureFull: string | null;
  aborted: string;
  /** null: taskAbortedSendFull is false. */
  abortedFull: string | null;
  /** null: no success alerts (taskSuccessTopic empty). */
  success: string | null;
  successFull: string | null;
}

/** The part of the QRS client the alerts use. */
export type TaskLookup = Pick<QrsClient, 'getTask' | 'getTaskFull' | 'getAppFull'> & Partial<Pick<QrsClient, 'peekCached'>>;

/** One QRS question of the enrichment. */
interface LookupStep {
  endpoint: CachedEndpoint;
  id: string;
}

export interface TaskAlertDeps {
  /** null when configQRS.host is empty. */
  qrs: TaskLookup | null;
  logger: Logger;
  metrics?: Metrics;
}

type Enrichment =
  | { kind: 'enriched'; data: TaskEnrichment }
  /** QRS could not be asked (or did not answer usefully): publish with what is known. */
  | { kind: 'degraded'; data: TaskEnrichment; error: string }
  /** As Butler: nothing is published (task unknown, not a reload task, no app). */
  | { kind: 'skip'; reason: string };

/** Short text for `enrichmentError`: what went wrong, not where (the log line has the detail). */
export function enrichmentErrorText(error: QrsError): string {
  switch (error.kind) {
    case 'timeout':
      return 'QRS timeout';
    case 'network':
      return 'QRS unreachable';
    case 'http':
      return `QRS answered HTTP ${error.status ?? 'error'}`;
    case 'parse':
      return 'QRS answer not understood';
  }
}

export class TaskAlertHandler {
  constructor(
    private readonly topics: TaskAlertTopics,
    private readonly deps: TaskAlertDeps,
  ) {}

  /** The messages for one scheduler event (empty when nothing is to be published). Never throws for QRS trouble. */
  async handle(event: SchedulerEvent): Promise<OutgoingMessage[]> {
    const early = this.withoutLookups(event);
    if (early) return early;
    return this.finish(event, await this.enrich(event));
  }

  /**
   * The same messages as handle(), at once, when every QRS answer the event needs is in the cache;
   * null when one would take a call.
   */
  handleNow(event: SchedulerEvent): OutgoingMessage[] | null {
    const early = this.withoutLookups(event);
    if (early) return early;
    const enrichment = this.enrichFromCache(event);
    return enrichment === null ? null : this.finish(event, enrichment);
  }

  /** Events that need no QRS lookup: their (empty) result; null for the others. */
  private withoutLookups(event: SchedulerEvent): OutgoingMessage[] | null {
    const log = this.deps.logger;
    const ctx = { type: event.type, taskId: event.taskId, executionId: event.executionId };
    if (event.type === 'distribute' || event.type === 'engine-reload-failed') {
      log.info({ ...ctx, appId: event.appId }, `${event.rawType} event received from ${event.hostName}: logged, nothing published (as Butler)`);
      return [];
    }
    if (event.type === 'success' && this.topics.success === null && this.topics.successFull === null) {
      log.debug(ctx, `reload task "${event.taskName}" succeeded; no success topic is configured`);
      return [];
    }
    return null;
  }

  private finish(event: SchedulerEvent, enrichment: Enrichment): OutgoingMessage[] {
    const log = this.deps.logger;
    const ctx = { type: event.type, taskId: event.taskId, executionId: event.executionId };
    if (enrichment.kind === 'skip') {
      log.warn(ctx, `reload task event for "${event.taskName}" not alerted: ${enrichment.reason}`);
      return [];
    }
    const error = enrichment.kind === 'degraded' ? enrichment.error : undefined;
    const messages = this.build(event, enrichment.data, error);
    const what = event.type === 'failed' ? 'failed' : event.type === 'aborted' ? 'was aborted' : 'succeeded';
    log.info(
      { ...ctx, messages: messages.length, ...(error ? { enrichmentError: error } : {}) },
      `reload task "${event.taskName}" ${what}: ${messages.length} message(s) queued${error ? ` without QRS details (${error})` : ''}`,
    );
    return messages;
  }

  private build(event: SchedulerEvent, data: TaskEnrichment, error: string | undefined): OutgoingMessage[] {
    const t = this.topics;
    const out: OutgoingMessage[] = [];
    if (event.type === 'failed') {
      out.push({ topic: t.failure, payload: taskBasicPayload(event), kind: 'task_failure' });
      if (t.failureFull) out.push({ topic: t.failureFull, payload: taskFailureFullPayload(event, data, error), kind: 'task_failure_full' });
    } else if (event.type === 'aborted') {
      out.push({ topic: t.aborted, payload: taskBasicPayload(event), kind: 'task_aborted' });
      if (t.abortedFull) out.push({ topic: t.abortedFull, payload: taskAbortedFullPayload(event, data, error), kind: 'task_aborted_full' });
    } else if (event.type === 'success') {
      if (t.success) out.push({ topic: t.success, payload: taskBasicPayload(event), kind: 'task_success' });
      // Same keys as the failure JSON (P6).
      if (t.successFull) out.push({ topic: t.successFull, payload: taskFailureFullPayload(event, data, error), kind: 'task_success_full' });
    }
    return out;
  }

  /** Asks QRS each question of enrichSteps(), waiting for the answers. */
  private async enrich(event: SchedulerEvent): Promise<Enrichment> {
    const steps = this.enrichSteps(event);
    let step = steps.next();
    while (!step.done) {
      // enrichSteps() asks nothing when QRS is not configured.
      const qrs = this.deps.qrs as TaskLookup;
      const { endpoint, id } = step.value;
      step = steps.next(await (endpoint === 'task' ? qrs.getTask(id) : endpoint === 'task/full' ? qrs.getTaskFull(id) : qrs.getAppFull(id)));
    }
    return step.value;
  }

  /** enrich() from cached answers only; null as soon as one question is not cached. */
  private enrichFromCache(event: SchedulerEvent): Enrichment | null {
    const steps = this.enrichSteps(event);
    let step = steps.next();
    while (!step.done) {
      const cached = this.deps.qrs?.peekCached?.(step.value.endpoint, step.value.id);
      if (cached === undefined) return null;
      step = steps.next({ ok: true, value: cached });
    }
    return step.value;
  }

  /**
   * The rules: the task must exist (`task`), be a reload task (`task/full`, taskType 0), name an app
   * that exists (`app/full`). A QRS failure (after the client's own retries) degrades the alert
   * instead of suppressing it. Written once as a sequence of questions (yield) and answers, so the
   * waiting and the cache-only drivers above cannot disagree on a rule.
   */
  private *enrichSteps(event: SchedulerEvent): Generator<LookupStep, Enrichment, QrsResult<Record<string, unknown>[]>> {
    if (this.deps.qrs === null) return { kind: 'degraded', data: {}, error: QRS_NOT_CONFIGURED };
    if (event.taskId === '') return { kind: 'skip', reason: 'the datagram has no task id' };

    const task = yield { endpoint: 'task', id: event.taskId };
    // Degraded alerts carry none of the QRS fields, even those fetched before the failure, so a
    // consumer sees one shape: datagram fields, empty QRS fields, enrichmentError.
    const degrade = (result: QrsResult<unknown> & { ok: false }, step: string): Enrichment => {
      this.deps.logger.warn({ taskId: event.taskId, appId: event.appId, err: result.error.message }, `QRS ${step} lookup failed: ${result.error.message}`);
      return { kind: 'degraded', data: {}, error: enrichmentErrorText(result.error) };
    };
    if (!task.ok) return degrade(task, 'task');
    if (task.value.length === 0) return { kind: 'skip', reason: `task ${event.taskId} not found in QRS` };

    const taskFull = yield { endpoint: 'task/full', id: event.taskId };
    if (!taskFull.ok) return degrade(taskFull, 'task/full');
    const taskObject = taskFull.value[0];
    if (taskObject === undefined) return { kind: 'skip', reason: `task ${event.taskId} not found in QRS (task/full)` };
    const taskType = taskObject['taskType'];
    if (taskType !== 0) return { kind: 'skip', reason: `task ${event.taskId} is not a reload task (taskType ${JSON.stringify(taskType)})` };

    if (event.appId === '') return { kind: 'skip', reason: 'the datagram has no app id' };
    const app = yield { endpoint: 'app/full', id: event.appId };
    if (!app.ok) return degrade(app, 'app/full');
    const appObject = app.value[0];
    if (appObject === undefined) return { kind: 'skip', reason: `app ${event.appId} not found in QRS` };
    return { kind: 'enriched', data: { taskFull: taskObject, appFull: appObject } };
  }
}

/** The parser of scheduler datagrams for the pipeline: dedup by executionId when present. */
export function parseSchedulerDatagram(datagram: Buffer): ParseResult<SchedulerEvent> {
  const parsed = parseDatagram(datagram);
  if (!parsed.ok) return { ok: false, reason: parsed.error.reason, detail: parsed.error.detail };
  return { ok: true, event: parsed.value, dedupKey: parsed.value.executionId === '' ? null : parsed.value.executionId };
}

const EVENT_WORDS: Record<SchedulerEvent['type'], string> = {
  failed: 'reload failed',
  aborted: 'reload aborted',
  success: 'reload succeeded',
  distribute: 'distribute',
  'engine-reload-failed': 'engine reload failed',
};

/** One line for the status page. */
export function describeSchedulerEvent(event: SchedulerEvent): string {
  return `${EVENT_WORDS[event.type]}: "${event.taskName}" on ${event.hostName}`;
}
