// A Qlik Cloud REST API stand-in for tests: HTTPS with the test server certificate, Bearer token
// check, the app / reload / reload-log endpoints with realistic shapes, plus the same fault controls
// and request log as the QRS simulator.
import type { ServerResponse } from 'node:http';
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
  errorCode?: string;
  errorMessage?: string;
  log?: string;
}

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
    errorCode: spec.errorCode ?? 'EngineScriptError',
    errorMessage: spec.errorMessage ?? 'Field not found: <Regionn>',
    partial: false,
    creationTime: '2026-11-20T06:00:27.901Z',
    startTime: '2026-11-20T06:00:28.114Z',
    endTime: '2026-11-20T06:01:09.377Z',
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

export class CloudSimulator extends HttpsSimulatorCore {
  readonly apps = new Map<string, CloudApp>();
  readonly reloads = new Map<string, CloudReload>();
  /** Script logs by `<appId>/<reloadId>`. */
  readonly logs = new Map<string, string>();
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

  protected handle(req: RecordedRequest, res: ServerResponse): void {
    if (req.headers['authorization'] !== `Bearer ${this.token}`) {
      return this.send(res, 401, apiError(401, 'Unauthorized'));
    }
    if (req.method !== 'GET') return this.send(res, 405, apiError(405, 'Method Not Allowed'));
    const segments = req.path.split('/').map((s) => decodeURIComponent(s));
    // ['', 'api', 'v1', ...]
    const [, api, v1, kind, id, sub, sub2, reloadId, extra] = segments;
    if (api !== 'api' || v1 !== 'v1') return this.send(res, 404, apiError(404, 'Not Found'));
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
