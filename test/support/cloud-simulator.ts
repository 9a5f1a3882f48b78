// A Qlik Cloud REST API stand-in for tests: HTTPS with the test server certificate, Bearer token
// check, the app / reload / reload-log endpoints with realistic shapes, plus the same fault controls
// and request log as the QRS simulator.
import type { ServerResponse } from 'node:http';
import { createHmac, randomUUID } from 'node:crypto';
import type { TestPki } from './certs.ts';
import { HttpsSimulatorCore, guidFor, type RecordedRequest } from './qrs-simulator.ts';

export const CLOUD_TENANT_ID = 'Xq3bN7kLm2PqR8sT1vW4yZ6aC9dE0fGh';
export const CLOUD_USER_ID = '6601a2b3c4d5e6f7a8b9c0d1';

export type CloudApp = {
  attributes: {
    id: string;
    name: string;
    description: string;
    thumbnail: string;
    lastReloadTime: string;
    createdDate: string;
    modifiedDate: string;
    owner: string;
    ownerId: string;
    dynamicColor: string;
    published: boolean;
    publishTime: string;
    custom: Record<string, unknown>;
    hasSectionAccess: boolean;
    encrypted: boolean;
    originAppId: string;
    isDirectQueryMode: boolean;
    usage: string;
    spaceId: string;
    resourceType: string;
    _resourcetype: string;
  };
  privileges: string[];
  create: { resource: string; canCreate: boolean }[];
};

export type CloudReload = {
  id: string;
  appId: string;
  tenantId: string;
  userId: string;
  type: string;
  status: string;
  log: string;
  errorCode: string;
  errorMessage: string;
  partial: boolean;
  creationTime: string;
  startTime: string;
  endTime: string;
  duration: string;
  engineTime: string;
  weight: number;
  links: { self: { href: string } };
};

export interface CloudAppSpec {
  id?: string;
  name?: string;
  description?: string;
  spaceId?: string;
}

export function buildCloudApp(spec: CloudAppSpec = {}): CloudApp {
  const name = spec.name ?? 'Sales forecast';
  const id = spec.id ?? guidFor(`cloud-app:${name}`);
  return {
    attributes: {
      id,
      name,
      description: spec.description ?? 'Weekly forecast per region – “EMEA” included',
      thumbnail: '',
      lastReloadTime: '2026-11-20T06:01:09.412Z',
      createdDate: '2025-05-12T09:14:03.118Z',
      modifiedDate: '2026-11-20T06:01:10.005Z',
      owner: `auth0|${CLOUD_USER_ID}`,
      ownerId: CLOUD_USER_ID,
      dynamicColor: '',
      published: false,
      publishTime: '',
      custom: {},
      hasSectionAccess: false,
      encrypted: true,
      originAppId: '',
      isDirectQueryMode: false,
      usage: 'ANALYTICS',
      spaceId: spec.spaceId ?? '65f0c1d2e3a4b5c6d7e8f901',
      resourceType: 'app',
      _resourcetype: 'app',
    },
    privileges: ['read', 'update', 'delete', 'reload', 'export', 'duplicate', 'change_owner', 'change_space', 'exportappdata'],
    create: [{ resource: 'sheet', canCreate: true }, { resource: 'bookmark', canCreate: true }],
  };
}

export interface CloudReloadSpec {
  id?: string;
  appId: string;
  status?: string;
  creationTime?: string;
  startTime?: string;
  endTime?: string;
  errorCode?: string;
  errorMessage?: string;
  log?: string;
}

const failedStatus = (s: string | undefined) => s === undefined || s === 'FAILED' || s === 'EXCEEDED_LIMIT';

export function buildCloudReload(spec: CloudReloadSpec): CloudReload {
  const id = spec.id ?? '6735a1b2c3d4e5f6a7b8c9d0';
  return {
    id,
    appId: spec.appId,
    tenantId: CLOUD_TENANT_ID,
    userId: CLOUD_USER_ID,
    type: 'chronos',
    status: spec.status ?? 'FAILED',
    log: spec.log ?? 'The following error occurred:\nField not found: <Regionn>\nThe error occurred here:\nLOAD Regionn FROM [lib://Data/sales.qvd] (qvd)',
    errorCode: spec.errorCode ?? (failedStatus(spec.status) ? 'EngineScriptError' : ''),
    errorMessage: spec.errorMessage ?? (failedStatus(spec.status) ? 'Field not found: <Regionn>' : ''),
    partial: false,
    creationTime: spec.creationTime ?? '2026-11-20T06:00:27.901Z',
    startTime: spec.startTime ?? '2026-11-20T06:00:28.114Z',
    endTime: spec.endTime ?? '2026-11-20T06:01:09.377Z',
    duration: 'PT41.263S',
    engineTime: '2026-11-20T06:00:28.402Z',
    weight: 1,
    links: { self: { href: `https://tenant.eu.qlikcloud.com/api/v1/reloads/${id}` } },
  };
}

/** A script log in the form the API sends it: CRLF line ends. */
export function buildReloadLog(lines?: string[]): string {
  const body = lines ?? [
    '2026-11-20 06:00:28 0000 Started loading data',
    '2026-11-20 06:00:29 0003 Sales:',
    '2026-11-20 06:00:29 0004 LOAD Regionn FROM [lib://Data/sales.qvd] (qvd)',
    '2026-11-20 06:01:09      Error: Field not found: <Regionn>',
    '2026-11-20 06:01:09      Execution Failed',
    '2026-11-20 06:01:09      Execution finished.',
  ];
  return body.join('\r\n') + '\r\n';
}

export interface CloudSimulatorOptions {
  pki: TestPki;
  token: string;
}

function apiError(status: number, title: string): { errors: { code: string; title: string; status: string }[]; traceId: string } {
  return { errors: [{ code: `HTTP-${status}`, title, status: String(status) }], traceId: '3f1a2b3c4d5e6f70' };
}

/** A webhook as the webhooks API keeps it (the secret is never answered). */
export interface SimWebhook {
  id: string;
  name: string;
  description: string;
  url: string;
  eventTypes: string[];
  level: string;
  enabled: boolean;
  secret: string;
  headers: Record<string, string>;
  checkCertificateRevocation: boolean;
  origin: string;
  createdAt: string;
  updatedAt: string;
  createdByUserId: string;
  ownerId: string;
  disabledReason: string;
}

export interface DeliveryAttempt {
  webhookId: string;
  eventId: string;
  attempt: number;
  /** HTTP status, or 0 when the connection failed. */
  status: number;
  body: string;
  signature: string;
}

function publicWebhook(w: SimWebhook): Record<string, unknown> {
  const { secret: _secret, ...rest } = w;
  return rest;
}

/** Qlik Cloud's signature: HMAC-SHA256 of the body with the webhook secret, lower-case hex. */
export function qlikSignature(body: string | Buffer, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

export interface ReloadFinishedSpec {
  reloadId: string;
  appId: string;
  status?: 'SUCCEEDED' | 'FAILED' | 'CANCELED' | 'EXCEEDED_LIMIT';
  tenantId?: string;
  eventId?: string;
  time?: string;
  startTime?: string;
  endTime?: string;
  errorCode?: string;
  errorMessage?: string;
}

/** A com.qlik.v1.reload.finished event in CloudEvents 1.0 form, as a webhook delivers it. */
export function buildReloadFinishedEvent(spec: ReloadFinishedSpec): Record<string, unknown> {
  const status = spec.status ?? 'FAILED';
  const failed = status === 'FAILED' || status === 'EXCEEDED_LIMIT';
  const time = spec.time ?? spec.endTime ?? '2026-11-20T06:01:09.377Z';
  return {
    specversion: '1.0',
    id: spec.eventId ?? randomUUID(),
    source: 'com.qlik/reloads',
    type: 'com.qlik.v1.reload.finished',
    time,
    datacontenttype: 'application/json',
    tenantid: spec.tenantId ?? CLOUD_TENANT_ID,
    userid: CLOUD_USER_ID,
    ownerid: CLOUD_USER_ID,
    toplevelresourceid: spec.appId,
    data: {
      id: spec.reloadId,
      appId: spec.appId,
      tenantId: spec.tenantId ?? CLOUD_TENANT_ID,
      userId: CLOUD_USER_ID,
      type: 'chronos',
      status,
      succeeded: !failed && status === 'SUCCEEDED',
      ...(failed ? { errorCode: spec.errorCode ?? 'EngineScriptError', errorMessage: spec.errorMessage ?? 'Field not found: <Regionn>' } : {}),
      ...(spec.startTime ? { startTime: spec.startTime } : {}),
      ...(spec.endTime ? { endTime: spec.endTime } : {}),
    },
  };
}

export class CloudSimulator extends HttpsSimulatorCore {
  readonly apps = new Map<string, CloudApp>();
  readonly reloads = new Map<string, CloudReload>();
  /** Script logs by `<appId>/<reloadId>`. */
  readonly logs = new Map<string, string>();
  readonly webhooks = new Map<string, SimWebhook>();
  /** Every delivery attempt made to a webhook URL, in order. */
  readonly deliveries: DeliveryAttempt[] = [];
  /** Delivery retries: attempts per event and the first wait (doubles per attempt). */
  deliveryAttempts = 5;
  deliveryRetryBaseMs = 100;
  token: string;

  private constructor(options: CloudSimulatorOptions) {
    super({ cert: options.pki.serverCert, key: options.pki.serverKey });
    this.token = options.token;
  }

  static async start(options: CloudSimulatorOptions): Promise<CloudSimulator> {
    const sim = new CloudSimulator(options);
    await sim.start();
    return sim;
  }

  addApp(app: CloudApp | CloudAppSpec = {}): CloudApp {
    const full = 'attributes' in app ? (app as CloudApp) : buildCloudApp(app as CloudAppSpec);
    this.apps.set(full.attributes.id, full);
    return full;
  }

  addReload(reload: CloudReload | CloudReloadSpec): CloudReload {
    const full = 'tenantId' in reload ? (reload as CloudReload) : buildCloudReload(reload as CloudReloadSpec);
    this.reloads.set(full.id, full);
    return full;
  }

  setReloadLog(appId: string, reloadId: string, text: string): void {
    this.logs.set(`${appId}/${reloadId}`, text);
  }

  /**
   * What Qlik Cloud does when an event happens: every enabled webhook subscribed to its type gets a POST
   * of the JSON body with `Qlik-Signature` (when the webhook has a secret); a non-2xx answer or a failed
   * connection is retried with the same body and signature, with a growing wait, up to deliveryAttempts.
   * Resolves with the last status per webhook (0 = never reached).
   */
  async emit(event: Record<string, unknown>, options: { body?: string } = {}): Promise<number[]> {
    const body = options.body ?? JSON.stringify(event);
    const type = String(event['type'] ?? event['eventType'] ?? '');
    const results: number[] = [];
    for (const w of this.webhooks.values()) {
      if (!w.enabled || !w.eventTypes.includes(type)) continue;
      results.push(await this.deliver(w, String(event['id'] ?? event['eventId'] ?? ''), body));
    }
    return results;
  }

  /** A webhook as if created in the console. */
  addWebhook(spec: { url: string; secret?: string; eventTypes?: string[]; name?: string }): SimWebhook {
    const now = new Date().toISOString();
    const w: SimWebhook = {
      id: randomUUID(),
      name: spec.name ?? 'bridge',
      description: '',
      url: spec.url,
      eventTypes: spec.eventTypes ?? ['com.qlik.v1.reload.finished'],
      level: 'tenant',
      enabled: true,
      secret: spec.secret ?? '',
      headers: {},
      checkCertificateRevocation: false,
      origin: 'management-console',
      createdAt: now,
      updatedAt: now,
      createdByUserId: CLOUD_USER_ID,
      ownerId: CLOUD_USER_ID,
      disabledReason: '',
    };
    this.webhooks.set(w.id, w);
    return w;
  }

  private async deliver(w: SimWebhook, eventId: string, body: string): Promise<number> {
    const signature = w.secret ? qlikSignature(body, w.secret) : '';
    let status = 0;
    for (let attempt = 1; attempt <= this.deliveryAttempts; attempt++) {
      try {
        const res = await fetch(w.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'Qlik Webhook', ...(signature ? { 'qlik-signature': signature } : {}), ...w.headers },
          body,
        });
        status = res.status;
        await res.arrayBuffer();
      } catch {
        status = 0;
      }
      this.deliveries.push({ webhookId: w.id, eventId, attempt, status, body, signature });
      if (status >= 200 && status < 300) return status;
      if (attempt < this.deliveryAttempts) await new Promise((r) => setTimeout(r, this.deliveryRetryBaseMs * 2 ** (attempt - 1)));
    }
    return status;
  }

  private handleWebhooks(req: RecordedRequest, res: ServerResponse, id: string | undefined, sub: string | undefined): void {
    if (sub !== undefined) return this.send(res, 404, apiError(404, 'Not Found'));
    if (id === undefined && req.method === 'GET') {
      return this.send(res, 200, { data: [...this.webhooks.values()].map(publicWebhook), links: { self: { href: `${this.url}${req.rawUrl}` } } });
    }
    if (id === undefined && req.method === 'POST') {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        return this.send(res, 400, apiError(400, 'Bad Request'));
      }
      const url = body['url'];
      const name = body['name'];
      const eventTypes = body['eventTypes'];
      const secret = typeof body['secret'] === 'string' ? body['secret'] : '';
      if (typeof url !== 'string' || typeof name !== 'string' || !Array.isArray(eventTypes)) return this.send(res, 400, apiError(400, 'name, url and eventTypes are required'));
      if (secret !== '' && (secret.length < 32 || secret.length > 64)) return this.send(res, 400, apiError(400, 'secret must be 32-64 characters'));
      const now = new Date().toISOString();
      const w: SimWebhook = {
        id: randomUUID(),
        name,
        description: typeof body['description'] === 'string' ? body['description'] : '',
        url,
        eventTypes: eventTypes.map(String),
        level: typeof body['level'] === 'string' ? body['level'] : 'tenant',
        enabled: body['enabled'] === true,
        secret,
        headers: {},
        checkCertificateRevocation: body['checkCertificateRevocation'] === true,
        origin: 'api',
        createdAt: now,
        updatedAt: now,
        createdByUserId: CLOUD_USER_ID,
        ownerId: CLOUD_USER_ID,
        disabledReason: '',
      };
      this.webhooks.set(w.id, w);
      return this.send(res, 201, publicWebhook(w));
    }
    if (id !== undefined && req.method === 'GET') {
      const w = this.webhooks.get(id);
      return w ? this.send(res, 200, publicWebhook(w)) : this.send(res, 404, apiError(404, 'Webhook not found'));
    }
    if (id !== undefined && req.method === 'DELETE') {
      return this.webhooks.delete(id) ? this.send(res, 204) : this.send(res, 404, apiError(404, 'Webhook not found'));
    }
    this.send(res, 405, apiError(405, 'Method Not Allowed'));
  }

  /**
   * `GET /api/v1/reloads`: newest first (by creationTime), `appId` (required unless the key is a tenant
   * admin's, which the simulator assumes), `filter` with `status eq "…"` terms joined by `or`, `partial`,
   * `limit` (1-100, default 10) and an opaque `next` cursor; `links.next.href` while more remain.
   */
  private listReloads(req: RecordedRequest, res: ServerResponse): void {
    let all = [...this.reloads.values()].sort((a, b) => (a.creationTime < b.creationTime ? 1 : a.creationTime > b.creationTime ? -1 : a.id < b.id ? 1 : -1));
    const q = req.query;
    if (q['appId']) all = all.filter((r) => r.appId === q['appId']);
    if (q['partial'] !== undefined) all = all.filter((r) => String(r.partial) === q['partial']);
    if (q['filter']) {
      const wanted = [...q['filter'].matchAll(/status\s+eq\s+"([A-Z_]+)"/gi)].map((m) => (m[1] ?? '').toUpperCase());
      if (wanted.length === 0) return this.send(res, 400, apiError(400, 'unsupported filter'));
      all = all.filter((r) => wanted.includes(r.status));
    }
    const limit = q['limit'] === undefined ? 10 : Number(q['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) return this.send(res, 400, apiError(400, 'limit must be 1-100'));
    const offset = q['next'] ? Number(Buffer.from(q['next'], 'base64url').toString()) : 0;
    const page = all.slice(offset, offset + limit).map((r) => (q['log'] === 'true' ? r : (({ log: _log, ...rest }) => rest)(r)));
    const links: Record<string, { href: string }> = { self: { href: `${this.url}${req.rawUrl}` } };
    if (offset + limit < all.length) {
      const params = new URLSearchParams(Object.entries(q).filter(([k]) => k !== 'next'));
      params.set('next', Buffer.from(String(offset + limit)).toString('base64url'));
      links['next'] = { href: `${this.url}/api/v1/reloads?${params.toString()}` };
    }
    this.send(res, 200, { data: page, links });
  }

  protected handle(req: RecordedRequest, res: ServerResponse): void {
    if (req.headers['authorization'] !== `Bearer ${this.token}`) {
      return this.send(res, 401, apiError(401, 'Unauthorized'));
    }
    const segments = req.path.split('/').map((s) => decodeURIComponent(s));
    // ['', 'api', 'v1', ...]
    const [, api, v1, kind, id, sub, sub2, reloadId, extra] = segments;
    if (api === 'api' && (v1 === 'v1' || v1 === 'core') && kind === 'webhooks') return this.handleWebhooks(req, res, id, sub);
    if (req.method !== 'GET') return this.send(res, 405, apiError(405, 'Method Not Allowed'));
    if (api !== 'api' || v1 !== 'v1') return this.send(res, 404, apiError(404, 'Not Found'));
    if (kind === 'reloads' && id === undefined) return this.listReloads(req, res);
    if (kind === 'apps' && id && sub === undefined) {
      const app = this.apps.get(id);
      return app ? this.send(res, 200, app) : this.send(res, 404, apiError(404, 'App not found'));
    }
    if (kind === 'reloads' && id && sub === undefined) {
      const reload = this.reloads.get(id);
      return reload ? this.send(res, 200, reload) : this.send(res, 404, apiError(404, 'Reload not found'));
    }
    if (kind === 'apps' && id && sub === 'reloads' && sub2 === 'logs' && reloadId && extra === undefined) {
      const log = this.logs.get(`${id}/${reloadId}`);
      return log !== undefined ? this.send(res, 200, log, 'text/plain; charset=utf-8') : this.send(res, 404, apiError(404, 'Reload log not found'));
    }
    this.send(res, 404, apiError(404, 'Not Found'));
  }
}
