// Finished Qlik Cloud reloads received straight from Qlik Cloud (signed webhook deliveries and the
// reloads API poller), for any number of tenants, through one pipeline lane:
// - every finished reload → JSON on <root>/<tenant>/app/<appId>/reload, and the app's retained state on
//   <root>/<tenant>/app/<appId>/state (status, times, consecutive failures, last success);
// - a failed one also → the existing cloud reload-failure alerts (same topics and payloads).
// The same reload may arrive twice (a webhook delivery and the poller; or two deliveries of the older
// per-attempt event): the completion step records the reload id in the kv table and publishes nothing
// for a reload it has already seen, in the same transaction, so it is reported once whatever the order.
import { parseReloadFinishedEvent, parseReloadRecord, type FinishedReload, type FinishedReloadResult } from '../cloud/cloud-event.ts';
import { cloudDedupKey, type CloudReloadHandler } from './cloud-reload-alerts.ts';
import type { CloudClient } from '../cloud/cloud-client.ts';
import type { ParseResult, HandledEvent } from '../pipeline/lane.ts';
import type { CompletionStep } from '../store/inbox.ts';
import { KeyValueTable } from '../store/kv.ts';
import type { Db } from '../store/sqlite.ts';
import type { OutgoingMessage } from '../store/types.ts';
import type { Logger } from '../observability/logger.ts';

/** Inbox source and metric label of the direct Qlik Cloud intakes. */
export const CLOUD_DIRECT_SOURCE = 'cloud_direct';
export const KIND_CLOUD_RELOAD = 'cloud_reload';
export const KIND_CLOUD_STATE = 'cloud_app_state';

export type CloudIntake = 'webhook' | 'poller';

export interface CloudDirectEvent {
  tenant: string;
  intake: CloudIntake;
  reload: FinishedReload;
}

/** The lane's meta for one input: which intake of which tenant. */
export function cloudInputMeta(intake: CloudIntake, tenant: string): string {
  return `${intake}:${tenant}`;
}

/** The dedup key of a reload record from the reloads API (an event carries its own id instead). */
export function cloudReloadDedupKey(tenantId: string, reloadId: string): string {
  return `cloud-reload:${tenantId}:${reloadId}`;
}

const SEEN_PREFIX = 'cloud-reload-seen:';

interface Seen {
  at: number;
  /** The failure alerts went out (by any intake). */
  alerted: boolean;
  /** The reload and state topics went out (direct intakes only). */
  published: boolean;
}

function seenKeyOf(tenantId: string, reloadId: string): string {
  return `${SEEN_PREFIX}${tenantId}:${reloadId}`;
}

function parseSeen(value: string | undefined): Seen | null {
  if (value === undefined) return null;
  try {
    const v = JSON.parse(value) as Partial<Seen>;
    return { at: Number(v.at) || 0, alerted: v.alerted === true, published: v.published === true };
  } catch {
    return null;
  }
}

/**
 * For the MQTT-forward intake: a completion step that commits its failure alerts only if no intake has
 * alerted this reload yet, and records that they went out. Without a reload id the alerts go out as
 * they are (nothing to match them by).
 */
export function alertOncePerReload(tenantId: string, reloadId: string, alerts: OutgoingMessage[], logger: Logger): CompletionStep {
  return (db) => {
    if (reloadId === '') return { messages: alerts };
    const kv = new KeyValueTable(db);
    const key = seenKeyOf(tenantId, reloadId);
    const seen = parseSeen(kv.get(key));
    if (seen?.alerted) {
      logger.info({ reloadId }, `Qlik Cloud reload ${reloadId} was already alerted; the forwarded event publishes nothing`);
      return {};
    }
    kv.put(key, JSON.stringify({ at: Date.now(), alerted: true, published: seen?.published ?? false }));
    return { messages: alerts };
  };
}
const STATE_PREFIX = 'cloud-app-state:';

/** Parses webhook bodies and reloads API records; `tenantIds` maps tenant name → configured id ('' = any). */
export function parseCloudDirect(tenantIds: ReadonlyMap<string, string>): (payload: Buffer, meta: string | null) => ParseResult<CloudDirectEvent> {
  return (payload, meta) => {
    const colon = (meta ?? '').indexOf(':');
    const intake = (meta ?? '').slice(0, colon);
    const tenant = (meta ?? '').slice(colon + 1);
    const tenantId = tenantIds.get(tenant);
    if (colon < 0 || (intake !== 'webhook' && intake !== 'poller') || tenantId === undefined) {
      return { ok: false, reason: 'unknown_tenant', detail: `input for ${JSON.stringify(meta)}, not a configured tenant and intake` };
    }
    const parsed: FinishedReloadResult = intake === 'webhook' ? parseReloadFinishedEvent(payload, tenantId) : parseReloadRecord(payload, tenantId);
    if (!parsed.ok) return { ok: false, reason: parsed.error.reason, detail: parsed.error.detail };
    const r = parsed.value;
    const dedupKey = intake === 'webhook' ? cloudDedupKey(r.event.eventId) : cloudReloadDedupKey(r.tenantId, r.reloadId);
    return { ok: true, event: { tenant, intake, reload: r }, dedupKey };
  };
}

export interface AppState {
  status: string;
  startTime: string;
  stopTime: string;
  consecutiveFailures: number;
  lastSuccessTime: string;
}

/** The retained state after this reload, or null when the stored state is about a later reload (kept). */
export function nextAppState(previous: AppState | null, r: FinishedReload): AppState | null {
  if (previous && r.stopTime && previous.stopTime && Date.parse(r.stopTime) < Date.parse(previous.stopTime)) return null;
  const succeeded = r.status === 'SUCCEEDED';
  return {
    status: r.status,
    startTime: r.startTime,
    stopTime: r.stopTime,
    // A cancelled reload is neither: the count stays.
    consecutiveFailures: r.failed ? (previous?.consecutiveFailures ?? 0) + 1 : succeeded ? 0 : (previous?.consecutiveFailures ?? 0),
    lastSuccessTime: succeeded ? r.stopTime : (previous?.lastSuccessTime ?? ''),
  };
}

export interface CloudTopics {
  root: string;
}

export function reloadTopic(root: string, tenant: string, appId: string): string {
  return `${root}/${tenant}/app/${appId}/reload`;
}

export function stateTopic(root: string, tenant: string, appId: string): string {
  return `${root}/${tenant}/app/${appId}/state`;
}

/** The JSON of one finished reload (…/reload). */
export function reloadPayload(ev: CloudDirectEvent, appName: string): string {
  const r = ev.reload;
  return JSON.stringify({
    tenant: ev.tenant,
    tenantId: r.tenantId,
    appId: r.appId,
    appName,
    reloadId: r.reloadId,
    status: r.status,
    startTime: r.startTime,
    stopTime: r.stopTime,
    duration: r.durationMs,
    errors: r.event.errors,
    intake: ev.intake,
    eventId: r.event.eventId,
    eventType: r.event.eventType,
  });
}

/** The retained state JSON (…/state). */
export function statePayload(ev: CloudDirectEvent, appName: string, state: AppState, durationMs: number | null): string {
  const r = ev.reload;
  return JSON.stringify({
    tenant: ev.tenant,
    tenantId: r.tenantId,
    appId: r.appId,
    appName,
    reloadId: r.reloadId,
    status: state.status,
    startTime: state.startTime,
    stopTime: state.stopTime,
    duration: durationMs,
    consecutiveFailures: state.consecutiveFailures,
    lastSuccessTime: state.lastSuccessTime,
  });
}

export interface CloudDirectHandlerDeps {
  /** Per tenant name: the failure alert handler (with or without enrichment) and an app-name lookup client. */
  tenants: ReadonlyMap<string, { alerts: CloudReloadHandler; cloud: Pick<CloudClient, 'getApp'> | null }>;
  topicRoot: string;
  logger: Logger;
}

function appNameOf(app: Record<string, unknown>): string {
  const attributes = app['attributes'];
  const name = attributes && typeof attributes === 'object' ? (attributes as Record<string, unknown>)['name'] : undefined;
  return typeof name === 'string' ? name : '';
}

export class CloudDirectHandler {
  private readonly kvByDb = new WeakMap<Db, KeyValueTable>();

  constructor(private readonly deps: CloudDirectHandlerDeps) {}

  async handle(ev: CloudDirectEvent): Promise<HandledEvent> {
    const t = this.deps.tenants.get(ev.tenant);
    if (!t) throw new Error(`tenant "${ev.tenant}" is no longer configured`);
    const r = ev.reload;
    let alerts: OutgoingMessage[] = [];
    let appName = r.appName;
    if (r.failed) {
      alerts = await t.alerts.handle(r.event);
      // The basic alert is the app name (or the id when it could not be looked up).
      const basic = alerts[0]?.payload;
      if (!appName && typeof basic === 'string' && basic !== r.appId) appName = basic;
    } else if (!appName && t.cloud) {
      const app = await t.cloud.getApp(r.appId);
      if (app.ok) appName = appNameOf(app.value);
    }
    return { messages: [], step: this.step(ev, appName, alerts) };
  }

  private step(ev: CloudDirectEvent, appName: string, alerts: OutgoingMessage[]): CompletionStep {
    const r = ev.reload;
    const root = this.deps.topicRoot;
    return (db) => {
      let kv = this.kvByDb.get(db);
      if (!kv) {
        kv = new KeyValueTable(db);
        this.kvByDb.set(db, kv);
      }
      let alertsNow = alerts;
      if (r.reloadId !== '') {
        const seenKey = seenKeyOf(r.tenantId, r.reloadId);
        const seen = parseSeen(kv.get(seenKey));
        if (seen?.published) {
          this.deps.logger.info({ tenant: ev.tenant, reloadId: r.reloadId, intake: ev.intake }, `Qlik Cloud reload ${r.reloadId} of app ${r.appId} was already reported; nothing published again`);
          return {};
        }
        // Alerted already by the MQTT-forward intake: the reload and state topics still follow, the alerts not again.
        if (seen?.alerted) alertsNow = [];
        kv.put(seenKey, JSON.stringify({ at: Date.now(), alerted: true, published: true }));
      }
      const messages: OutgoingMessage[] = [...alertsNow, { topic: reloadTopic(root, ev.tenant, r.appId), payload: reloadPayload(ev, appName), kind: KIND_CLOUD_RELOAD }];
      const stateKey = `${STATE_PREFIX}${ev.tenant}:${r.appId}`;
      const stored = kv.get(stateKey);
      const previous = stored === undefined ? null : (JSON.parse(stored) as AppState);
      const next = nextAppState(previous, r);
      if (next) {
        kv.put(stateKey, JSON.stringify(next));
        messages.push({ topic: stateTopic(root, ev.tenant, r.appId), payload: statePayload(ev, appName, next, r.durationMs), retain: true, kind: KIND_CLOUD_STATE });
      }
      return { messages };
    };
  }

  /** Forgets reload ids seen more than `maxAgeMs` ago (they cannot come back through the poller's window). */
  static prune(db: Db, maxAgeMs: number, now = Date.now()): number {
    const kv = new KeyValueTable(db);
    let removed = 0;
    for (const e of kv.entries(SEEN_PREFIX)) {
      if (now - (parseSeen(e.value)?.at ?? 0) > maxAgeMs) {
        kv.delete(e.key);
        removed += 1;
      }
    }
    return removed;
  }
}

export function describeCloudDirect(ev: CloudDirectEvent): string {
  const r = ev.reload;
  return `Qlik Cloud reload ${r.status.toLowerCase()} (${ev.tenant}, app ${r.appName || r.appId}, via ${ev.intake})`;
}
