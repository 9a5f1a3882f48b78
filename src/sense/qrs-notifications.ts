// Task outcomes from the QRS itself: a change subscription on ExecutionResult updates (QRS calls the
// bridge's callback endpoint with the ids of the results that changed) and a periodic catch-up read of
// every ExecutionResult modified since the last one handled, kept durably as a cursor, so nothing is
// missed while the bridge is down, restarting, or a callback is lost.
//
// This is the source: it turns callbacks and catch-up pages into pipeline input and never waits for
// enrichment. A callback is trusted for nothing but the ids it names (the handler fetches each result
// from QRS); a catch-up page comes from QRS itself, so its results are handed over whole.
import { Counter } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ParseResult, SubmitOutcome } from '../pipeline/lane.ts';
import { KeyValueTable } from '../store/kv.ts';
import type { Store } from '../store/sqlite.ts';
import type { QrsClient } from './qrs-client.ts';

/** TaskExecutionStatus of the QRS API, by number. */
export const EXECUTION_STATUS_NAMES = [
  'NeverStarted',
  'Triggered',
  'Started',
  'Queued',
  'AbortInitiated',
  'Aborting',
  'Aborted',
  'FinishedSuccess',
  'FinishedFail',
  'Skipped',
  'Retry',
  'Error',
  'Reset',
  'DistributionQueue',
  'DistributionRunning',
] as const;

/** Statuses after which an execution changes no more: Aborted, FinishedSuccess, FinishedFail, Skipped, Error, Reset. */
export const FINAL_STATUSES: ReadonlySet<number> = new Set([6, 7, 8, 9, 11, 12]);

/**
 * The subscription's filter: only changes that leave a result in a final status are called back, so
 * an execution costs one callback (and one lookup), not one per intermediate status.
 */
export const FINISHED_FILTER = [...FINAL_STATUSES].map((s) => `status eq ${s}`).join(' or ');

export const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function executionStatusName(status: number): string {
  return EXECUTION_STATUS_NAMES[status] ?? `Unknown(${status})`;
}

// ---------------------------------------------------------------------------------------------------
// Pipeline input: what the source hands to the lane, and the pure parser of it.

/** A callback named this ExecutionResult id (nothing else is believed), or a catch-up read returned this result. */
export type ExecutionInput = { kind: 'changed'; id: string } | { kind: 'result'; result: Record<string, unknown> };

/** The lane's dedup key of a finished ExecutionResult (one set of messages per result). */
export function executionResultKey(id: string): string {
  return `qrs-executionresult:${id.toLowerCase()}`;
}

export function encodeChanged(id: string): Buffer {
  return Buffer.from(JSON.stringify({ kind: 'changed', id }));
}

export function encodeResult(result: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ kind: 'result', result }));
}

/** Stored input → event. A callback id has no dedup key (its status is unknown until fetched). */
export function parseExecutionInput(payload: Buffer): ParseResult<ExecutionInput> {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not_json', detail: 'stored input is not JSON' };
  }
  if (!isObject(value)) return { ok: false, reason: 'invalid_input', detail: 'stored input is not an object' };
  if (value['kind'] === 'changed') {
    const id = value['id'];
    if (typeof id !== 'string' || !GUID_RE.test(id)) return { ok: false, reason: 'invalid_id', detail: `not an ExecutionResult id: ${JSON.stringify(id)}` };
    return { ok: true, event: { kind: 'changed', id }, dedupKey: null };
  }
  if (value['kind'] === 'result' && isObject(value['result'])) {
    const id = value['result']['id'];
    if (typeof id !== 'string' || !GUID_RE.test(id)) return { ok: false, reason: 'invalid_execution_result', detail: 'ExecutionResult without a valid id' };
    return { ok: true, event: { kind: 'result', result: value['result'] }, dedupKey: executionResultKey(id) };
  }
  return { ok: false, reason: 'invalid_input', detail: 'unknown input kind' };
}

/** The fields of an ExecutionResult the bridge reads (QRS API: ExecutionResult entity). */
export interface ExecutionResult {
  id: string;
  executionID: string;
  taskID: string;
  /** The empty GUID for tasks without an app (external program, user sync). */
  appID: string;
  executingNodeName: string;
  status: number;
  startTime: string;
  stopTime: string;
  duration: number;
  fileReferenceID: string;
  scriptLogAvailable: boolean;
  details: { detailsType: number | null; message: string; detailCreatedDate: string }[];
  modifiedDate: string;
  modifiedByUserName: string;
}

/** Reads an ExecutionResult object defensively; a text saying what is wrong when it cannot be used. */
export function readExecutionResult(raw: Record<string, unknown>): ExecutionResult | string {
  const str = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string) : '');
  const id = str('id');
  const taskID = str('taskID');
  if (!GUID_RE.test(id)) return 'no valid id';
  if (!GUID_RE.test(taskID)) return `ExecutionResult ${id} names no valid taskID`;
  const status = raw['status'];
  if (typeof status !== 'number' || !Number.isInteger(status)) return `ExecutionResult ${id} has no numeric status`;
  const details = Array.isArray(raw['details'])
    ? raw['details'].filter(isObject).map((d) => ({
        detailsType: typeof d['detailsType'] === 'number' ? d['detailsType'] : null,
        message: typeof d['message'] === 'string' ? d['message'] : '',
        detailCreatedDate: typeof d['detailCreatedDate'] === 'string' ? d['detailCreatedDate'] : '',
      }))
    : [];
  return {
    id,
    executionID: str('executionID'),
    taskID,
    appID: GUID_RE.test(str('appID')) ? str('appID') : EMPTY_GUID,
    executingNodeName: str('executingNodeName'),
    status,
    startTime: str('startTime'),
    stopTime: str('stopTime'),
    duration: typeof raw['duration'] === 'number' ? raw['duration'] : 0,
    fileReferenceID: str('fileReferenceID'),
    scriptLogAvailable: raw['scriptLogAvailable'] === true,
    details,
    modifiedDate: str('modifiedDate'),
    modifiedByUserName: str('modifiedByUserName'),
  };
}

/** Most ids one callback may name; a longer list is refused (413). */
export const MAX_CALLBACK_IDS = 1000;

/**
 * A callback body → the ExecutionResult ids it names. QRS posts a JSON array of change objects, each
 * with `objectType` and `objectID`; entries of another type or without a GUID are skipped and counted.
 */
export function parseCallbackBody(body: unknown): { ok: true; ids: string[]; skipped: number } | { ok: false; reason: string; detail: string } {
  if (!Array.isArray(body)) return { ok: false, reason: 'invalid_callback', detail: 'the body is not a JSON array of changes' };
  if (body.length > MAX_CALLBACK_IDS) return { ok: false, reason: 'too_many_changes', detail: `${body.length} changes in one callback; at most ${MAX_CALLBACK_IDS}` };
  const ids = new Set<string>();
  let skipped = 0;
  for (const change of body) {
    const type = isObject(change) ? change['objectType'] : undefined;
    const id = isObject(change) ? change['objectID'] : undefined;
    if (typeof type === 'string' && type.toLowerCase() === 'executionresult' && typeof id === 'string' && GUID_RE.test(id)) ids.add(id.toLowerCase());
    else skipped += 1;
  }
  return { ok: true, ids: [...ids], skipped };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------
// The source: subscription and catch-up.

/** The lane the source feeds. */
export interface ExecutionLane {
  submit(payload: Buffer, meta: string | null, from?: string): Promise<SubmitOutcome>;
  reject(reason: string, detail: string, from: string): void;
}

export interface QrsNotificationOptions {
  /** '' = no subscription (catch-up only). */
  callbackUrl: string;
  catchUpIntervalMs: number;
  /** How far back the very first catch-up reads. */
  lookbackMs: number;
  /** ExecutionResults per catch-up page (default 200). */
  pageSize?: number;
  /** Backoff of registration and of a failed catch-up (defaults 1 s doubling to 60 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** On stop, how long deleting the subscription may take (default 3 s). */
  stopTimeoutMs?: number;
}

export type NotificationQrs = Pick<QrsClient, 'addNotification' | 'deleteNotification' | 'listExecutionResults'>;

/** Where the catch-up stands: the modifiedDate of the last result handled, and the ids handled at exactly that time. */
interface Cursor {
  t: string;
  ids: string[];
}

export interface NotificationStatus {
  callbackUrl: string;
  subscribed: boolean;
  /** Why the subscription is not in place (last registration error), or null. */
  registrationError: string | null;
  registrationAttempts: number;
  cursor: string | null;
  lastCatchUpAt: number | null;
  lastCatchUpError: string | null;
  /** Results handed to the pipeline by catch-up reads since the start. */
  caughtUp: number;
}

const HANDLE_KEY = 'qrs-notification:handle';
const CURSOR_KEY = 'qrs-notification:cursor';
const PAGE_ORDER = 'modifiedDate';

const sleepMs = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });

export class QrsNotificationSource {
  private readonly kv: KeyValueTable;
  private readonly pageSize: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private handle: string | null = null;
  private cursor: Cursor | null = null;
  private abort = new AbortController();
  private loops: Promise<void>[] = [];
  private catchUpRun: Promise<void> | null = null;
  private wakeCatchUp: (() => void) | null = null;
  private readonly state: NotificationStatus;
  private readonly registrationFailures: Counter<'reason'>;
  private readonly catchUpFailures: Counter<'reason'>;

  constructor(
    private readonly options: QrsNotificationOptions,
    private readonly lane: ExecutionLane,
    private readonly deps: { qrs: NotificationQrs; store: Store; logger: Logger; metrics: Metrics },
  ) {
    this.kv = new KeyValueTable(deps.store.db);
    this.pageSize = options.pageSize ?? 200;
    this.retryBaseMs = options.retryBaseMs ?? 1000;
    this.retryMaxMs = options.retryMaxMs ?? 60_000;
    this.state = { callbackUrl: options.callbackUrl, subscribed: false, registrationError: null, registrationAttempts: 0, cursor: null, lastCatchUpAt: null, lastCatchUpError: null, caughtUp: 0 };
    this.registrationFailures = new Counter({
      name: 'butler_mqtt_qrs_notification_registration_failures_total',
      help: 'Failed attempts to register (or delete) the QRS change subscription, by reason',
      labelNames: ['reason'] as const,
      registers: [deps.metrics.registry],
    });
    this.catchUpFailures = new Counter({
      name: 'butler_mqtt_qrs_catchup_failures_total',
      help: 'Catch-up reads of QRS execution results that failed (retried with backoff), by reason',
      labelNames: ['reason'] as const,
      registers: [deps.metrics.registry],
    });
  }

  status(): NotificationStatus {
    return { ...this.state, cursor: this.cursor?.t ?? null };
  }

  /** Why the bridge is not ready on this source's account, or null. */
  readinessReason(): string | null {
    if (this.options.callbackUrl === '' || this.state.subscribed) return null;
    return `QRS change subscription not registered${this.state.registrationError ? `: ${this.state.registrationError}` : ' yet'}`;
  }

  /** Loads the kept handle and cursor, then registers and catches up in the background (never throws). */
  start(): void {
    this.abort = new AbortController();
    const keptHandle = this.kv.get(HANDLE_KEY);
    this.cursor = this.loadCursor();
    this.loops = [this.catchUpLoop()];
    if (this.options.callbackUrl !== '') this.loops.push(this.registrationLoop(keptHandle ?? null));
    else if (keptHandle) this.loops.push(this.deleteKept(keptHandle));
  }

  /** Stops the loops, lets a catch-up in progress end, and deletes the subscription (bounded wait). */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wakeCatchUp?.();
    const timeoutMs = this.options.stopTimeoutMs ?? 3000;
    let timer: NodeJS.Timeout | undefined;
    // A QRS call in flight (a hanging QRS) may not hold the stop longer than the timeout.
    await Promise.race([
      Promise.allSettled(this.loops),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.loops = [];
    const handle = this.handle;
    if (!handle) return;
    const outcome = await Promise.race([
      this.deps.qrs.deleteNotification(handle),
      new Promise<null>((r) => {
        timer = setTimeout(() => r(null), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (outcome?.ok) {
      this.handle = null;
      this.state.subscribed = false;
      await this.deps.store.write(() => this.kv.delete(HANDLE_KEY)).catch(() => undefined);
      this.deps.logger.info({ handle }, 'QRS change subscription deleted');
    } else {
      this.registrationFailures.inc({ reason: 'delete_failed' });
      // Kept on disk: the next start deletes it before registering a new one.
      this.deps.logger.warn({ handle, err: outcome ? outcome.error.message : `no answer within ${timeoutMs} ms` }, 'could not delete the QRS change subscription; the next start deletes it');
    }
  }

  /** Runs a catch-up now (and waits for it); used after a callback gap and by tests. */
  async catchUpNow(): Promise<void> {
    if (this.catchUpRun) await this.catchUpRun.catch(() => undefined);
    await this.runCatchUp();
  }

  // -------------------------------------------------------------------------------------------------

  private async registrationLoop(kept: string | null): Promise<void> {
    const { qrs, logger, store } = this.deps;
    const signal = this.abort.signal;
    let stale = kept;
    let attempt = 0;
    let filter: string | undefined = FINISHED_FILTER;
    while (!signal.aborted) {
      attempt += 1;
      this.state.registrationAttempts = attempt;
      if (stale) {
        // The subscription a previous run left: QRS would otherwise keep calling for it.
        const removed = await qrs.deleteNotification(stale);
        if (!removed.ok) {
          this.noteRegistrationFailure(`deleting the previous subscription failed: ${removed.error.message}`, 'delete_failed', attempt);
          await sleepMs(this.backoff(attempt), signal);
          continue;
        }
        logger.info({ handle: stale }, 'QRS change subscription of the previous run deleted');
        stale = null;
        await store.write(() => this.kv.delete(HANDLE_KEY)).catch(() => undefined);
      }
      const added = await qrs.addNotification('ExecutionResult', 'Update', this.options.callbackUrl, filter);
      if (signal.aborted) {
        // Stopping meanwhile: keep the handle so stop() deletes it.
        if (added.ok) this.handle = added.value;
        return;
      }
      if (!added.ok && filter !== undefined && added.error.kind === 'http' && added.error.status === 400) {
        // A QRS that does not take the status filter: subscribe to every update (each callback then
        // costs a lookup of a result that may not be finished; the outcome is the same).
        logger.warn({ err: added.error.message }, 'QRS refused the change subscription filter on final statuses; subscribing to every ExecutionResult update instead');
        filter = undefined;
        continue;
      }
      if (!added.ok) {
        this.noteRegistrationFailure(added.error.message, added.error.kind, attempt);
        await sleepMs(this.backoff(attempt), signal);
        continue;
      }
      this.handle = added.value;
      try {
        await store.write(() => this.kv.put(HANDLE_KEY, added.value));
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'could not keep the QRS subscription handle on disk; a crash would leave it registered');
      }
      this.state.subscribed = true;
      this.state.registrationError = null;
      logger.info({ handle: added.value, callbackUrl: this.options.callbackUrl, attempts: attempt }, 'QRS change subscription registered for ExecutionResult updates');
      // Results that changed while no subscription was in place are found by a catch-up now.
      this.wakeCatchUp?.();
      return;
    }
  }

  private noteRegistrationFailure(message: string, reason: string, attempt: number): void {
    this.state.registrationError = message;
    this.registrationFailures.inc({ reason });
    const wait = this.backoff(attempt);
    const log = attempt === 1 || attempt % 10 === 0 ? this.deps.logger.warn.bind(this.deps.logger) : this.deps.logger.debug.bind(this.deps.logger);
    log({ attempt, err: message }, `QRS change subscription not registered (attempt ${attempt}): ${message}; retrying in about ${Math.round(wait / 1000)} s`);
  }

  private async deleteKept(handle: string): Promise<void> {
    const removed = await this.deps.qrs.deleteNotification(handle);
    if (removed.ok) await this.deps.store.write(() => this.kv.delete(HANDLE_KEY)).catch(() => undefined);
  }

  private async catchUpLoop(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.runCatchUp();
        failures = 0;
      } catch {
        failures += 1;
      }
      if (signal.aborted) return;
      const wait = failures === 0 ? this.options.catchUpIntervalMs : Math.min(this.options.catchUpIntervalMs, this.backoff(failures));
      await new Promise<void>((resolve) => {
        this.wakeCatchUp = resolve;
        void sleepMs(wait, signal).then(resolve);
      });
      this.wakeCatchUp = null;
    }
  }

  private runCatchUp(): Promise<void> {
    if (this.catchUpRun) return this.catchUpRun;
    const run = this.catchUp()
      .then(
        () => {
          this.state.lastCatchUpAt = Date.now();
          this.state.lastCatchUpError = null;
        },
        (err: Error) => {
          this.state.lastCatchUpError = err.message;
          this.catchUpFailures.inc({ reason: err.name === 'RefusedError' ? 'refused' : 'qrs' });
          this.deps.logger.warn({ err: err.message, cursor: this.cursor?.t }, `QRS catch-up failed: ${err.message}; retried with backoff, from the same position`);
          throw err;
        },
      )
      .finally(() => {
        this.catchUpRun = null;
      });
    this.catchUpRun = run;
    return run;
  }

  /**
   * Reads every ExecutionResult modified at or after the cursor, oldest first, page by page; hands each
   * finished one to the lane and moves the cursor only once a page is durably accepted. Results with the
   * cursor's exact time that were handled already are skipped (the cursor keeps their ids).
   */
  private async catchUp(): Promise<void> {
    const { qrs, store } = this.deps;
    let cursor = this.cursor ?? { t: new Date(Date.now() - this.options.lookbackMs).toISOString(), ids: [] };
    let skip = 0;
    for (;;) {
      if (this.abort.signal.aborted) return;
      const page = await qrs.listExecutionResults(`modifiedDate ge '${cursor.t}'`, { orderBy: PAGE_ORDER, skip, take: this.pageSize });
      if (!page.ok) throw new Error(page.error.message);
      const seen = new Set(cursor.ids);
      const next: Cursor = { t: cursor.t, ids: [...cursor.ids] };
      const submits: Promise<SubmitOutcome>[] = [];
      for (const raw of page.value) {
        const id = typeof raw['id'] === 'string' ? raw['id'].toLowerCase() : '';
        const modified = typeof raw['modifiedDate'] === 'string' ? raw['modifiedDate'] : '';
        if (id === '' || modified === '') {
          this.lane.reject('invalid_execution_result', 'an ExecutionResult without id or modifiedDate in a catch-up page', 'QRS catch-up');
          continue;
        }
        if (modified < next.t || (modified === cursor.t && seen.has(id))) continue;
        if (typeof raw['status'] === 'number' && FINAL_STATUSES.has(raw['status'])) submits.push(this.lane.submit(encodeResult(raw), 'catch-up', 'QRS catch-up'));
        // An unfinished result is passed by: its finishing is a later modification, read then.
        if (modified > next.t) {
          next.t = modified;
          next.ids = [id];
        } else next.ids.push(id);
      }
      const outcomes = await Promise.all(submits);
      const refused = outcomes.find((o) => o.status === 'refused');
      if (refused && refused.status === 'refused') {
        const err = new Error(`the pipeline refused a result (${refused.reason}: ${refused.detail})`);
        err.name = 'RefusedError';
        throw err;
      }
      this.state.caughtUp += outcomes.filter((o) => o.status === 'accepted').length;
      const advanced = next.t !== cursor.t;
      cursor = next;
      this.cursor = next;
      await store.write(() => this.kv.put(CURSOR_KEY, JSON.stringify(next)));
      if (page.value.length < this.pageSize) return;
      // A full page all at one time: the next page must skip past it.
      skip = advanced ? 0 : skip + this.pageSize;
    }
  }

  private loadCursor(): Cursor | null {
    const text = this.kv.get(CURSOR_KEY);
    if (text === undefined) return null;
    try {
      const value: unknown = JSON.parse(text);
      if (isObject(value) && typeof value['t'] === 'string' && Array.isArray(value['ids'])) return { t: value['t'], ids: value['ids'].filter((i): i is string => typeof i === 'string') };
    } catch {
      // below
    }
    this.deps.logger.warn('the kept QRS catch-up position is unreadable; reading from lookbackMinutes back');
    return null;
  }

  private backoff(attempt: number): number {
    const ceiling = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }
}
