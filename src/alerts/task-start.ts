// Starts a Qlik Sense task for an accepted start command: applies Butler's startTaskFilter
// (task ids, tags, custom properties — the last two resolved through QRS and re-checked here) and
// calls `POST /qrs/task/<id>/start`. Every outcome is a value with a one-line detail, never a throw.
import type { Logger } from '../observability/logger.ts';
import type { QrsClient } from '../sense/qrs-client.ts';
import { quoteFilterValue } from '../sense/qrs-client.ts';

export interface StartTaskFilter {
  enable: boolean;
  taskIds: string[];
  tags: string[];
  customProperties: { name: string; value: string }[];
}

/** `invalid` is decided before a command reaches the starter (by the parser); the rest here. */
export type TaskStartStatus = 'started' | 'denied' | 'invalid' | 'failed';

export interface TaskStartOutcome {
  status: Exclude<TaskStartStatus, 'invalid'>;
  detail: string;
}

export type FilterDecision = { kind: 'allowed'; why: string } | { kind: 'denied'; why: string } | { kind: 'error'; why: string };

/** The part of the QRS client the starter uses. */
export type TaskStartQrs = Pick<QrsClient, 'startTask' | 'findTasksFull'>;

/** The result-topic payload: key order taskId, correlationId, status, detail; compact JSON. */
export function taskStartResultPayload(taskId: string | null, correlationId: string | null, status: TaskStartStatus, detail: string): string {
  return JSON.stringify({ taskId, correlationId, status, detail });
}

/**
 * The QRS filter that finds the task when it carries one of the allowed tags or custom property
 * values, in Butler's syntax (`tags.name eq '…'`, `(customProperties.definition.name eq '…') and
 * (customProperties.value eq '…')`), narrowed to the one task id so the answer stays small. The id
 * is a validated UUID, so it needs no quoting.
 */
export function taskFilterQuery(taskId: string, tags: string[], customProperties: { name: string; value: string }[]): string {
  const alternatives = [
    ...tags.map((t) => `(tags.name eq ${quoteFilterValue(t)})`),
    ...customProperties.map((cp) => `((customProperties.definition.name eq ${quoteFilterValue(cp.name)}) and (customProperties.value eq ${quoteFilterValue(cp.value)}))`),
  ];
  return `(id eq ${taskId}) and (${alternatives.join(' or ')})`;
}

const sameText = (a: unknown, b: string) => typeof a === 'string' && a.toLowerCase() === b.toLowerCase();

function tagNames(task: Record<string, unknown>): unknown[] {
  const tags = task['tags'];
  return Array.isArray(tags) ? tags.map((t) => (t && typeof t === 'object' ? (t as Record<string, unknown>)['name'] : undefined)) : [];
}

function customPropertyPairs(task: Record<string, unknown>): { name: unknown; value: unknown }[] {
  const cps = task['customProperties'];
  if (!Array.isArray(cps)) return [];
  return cps.map((cp) => {
    const o = cp && typeof cp === 'object' ? (cp as Record<string, unknown>) : {};
    const def = o['definition'] && typeof o['definition'] === 'object' ? (o['definition'] as Record<string, unknown>) : {};
    return { name: def['name'], value: o['value'] };
  });
}

export const QRS_MISSING_DETAIL = 'task start is unavailable: Butler.configQRS.host is empty, so there is no connection to the Qlik Sense repository';

export class TaskStarter {
  constructor(
    private readonly filter: StartTaskFilter,
    private readonly deps: { qrs: TaskStartQrs | null; logger: Logger },
  ) {}

  /** Checks the filter, then starts the task. No existence check before the start (as Butler). */
  async start(taskId: string): Promise<TaskStartOutcome> {
    const qrs = this.deps.qrs;
    if (!qrs) return { status: 'failed', detail: QRS_MISSING_DETAIL };
    const decision = await this.checkFilter(taskId);
    if (decision.kind === 'denied') return { status: 'denied', detail: decision.why };
    if (decision.kind === 'error') return { status: 'failed', detail: decision.why };
    const result = await qrs.startTask(taskId);
    if (result.ok) return { status: 'started', detail: `task ${taskId} started (${decision.why})` };
    return { status: 'failed', detail: `task ${taskId} could not be started: ${result.error.message}` };
  }

  /**
   * Additive, as Butler: a task passes when its id is listed, or it has one of the tags, or one of
   * the custom property name/value pairs. QRS matches `definition.name` and `value` on any custom
   * property each, so the pair is re-checked on one property of the returned object. Names and
   * values compare case-insensitively, as QRS compares them.
   */
  async checkFilter(taskId: string): Promise<FilterDecision> {
    const f = this.filter;
    if (!f.enable) return { kind: 'allowed', why: 'no start filter' };
    if (f.taskIds.some((id) => id.toLowerCase() === taskId.toLowerCase())) return { kind: 'allowed', why: 'task id is in startTaskFilter.allowTask.taskId' };
    const denied: FilterDecision = { kind: 'denied', why: `task ${taskId} is not allowed by startTaskFilter (not a listed task id, and no allowed tag or custom property value)` };
    if (f.tags.length === 0 && f.customProperties.length === 0) return denied;
    const qrs = this.deps.qrs;
    if (!qrs) return { kind: 'error', why: QRS_MISSING_DETAIL };

    const found = await qrs.findTasksFull(taskFilterQuery(taskId, f.tags, f.customProperties));
    if (!found.ok) return { kind: 'error', why: `could not check startTaskFilter for task ${taskId}: ${found.error.message}` };
    const task = found.value.find((t) => sameText(t['id'], taskId));
    if (!task) return denied;
    const tag = f.tags.find((t) => tagNames(task).some((n) => sameText(n, t)));
    if (tag !== undefined) return { kind: 'allowed', why: `task has the allowed tag ${JSON.stringify(tag)}` };
    const pairs = customPropertyPairs(task);
    const cp = f.customProperties.find((want) => pairs.some((p) => sameText(p.name, want.name) && sameText(p.value, want.value)));
    if (cp) return { kind: 'allowed', why: `task has the allowed custom property ${cp.name}=${cp.value}` };
    this.deps.logger.debug({ taskId }, 'QRS matched the start filter only across different custom properties; denied');
    return denied;
  }
}
