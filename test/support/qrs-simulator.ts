// A Qlik Sense Repository Service (QRS) stand-in for tests: real HTTPS on 127.0.0.1 that requires a
// client certificate from the test CA and enforces the xrfkey / X-Qlik-User rules, serves realistic
// task, app and license objects, can be made slow, failing, hanging or absent, and logs every request.
import { createServer, type Server } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TestPki } from './certs.ts';

// ---------------------------------------------------------------------------------------------------
// Fixture builders. Tests build expected payloads from the very objects the simulator serves.

type Privileges = null;
export type QrsTag = { id: string; name: string; privileges: Privileges };
export type QrsCustomPropertyValue = {
  id: string;
  createdDate: string;
  modifiedDate: string;
  modifiedByUserName: string;
  value: string;
  definition: { id: string; name: string; valueType: string; choiceValues: string[]; privileges: Privileges };
  schemaPath: 'CustomPropertyValue';
};
export type QrsStreamRef = { id: string; name: string; privileges: Privileges };
export type QrsAppFull = {
  id: string;
  createdDate: string;
  modifiedDate: string;
  modifiedByUserName: string;
  customProperties: QrsCustomPropertyValue[];
  owner: { id: string; userId: string; userDirectory: string; name: string; privileges: Privileges };
  name: string;
  appId: string;
  sourceAppId: string;
  targetAppId: string;
  publishTime: string;
  published: boolean;
  tags: QrsTag[];
  description: string;
  version: string;
  lastReloadTime: string;
  thumbnail: string;
  savedInProductVersion: string;
  migrationHash: string;
  dynamicColor: string;
  availabilityStatus: number;
  stream: QrsStreamRef | null;
  fileSize: number;
  privileges: Privileges;
  schemaPath: 'App';
};
export type QrsExecutionResult = {
  id: string;
  executingNodeName: string;
  status: number;
  startTime: string;
  stopTime: string;
  duration: number;
  fileReferenceID: string;
  scriptLogAvailable: boolean;
  details: { id: string; detailsType: number; message: string; detailCreatedDate: string; privileges: Privileges }[];
  scriptLogLocation: string;
  scriptLogSize: number;
  privileges: Privileges;
};
export type QrsTaskFull = {
  id: string;
  createdDate: string;
  modifiedDate: string;
  modifiedByUserName: string;
  customProperties: QrsCustomPropertyValue[];
  app: {
    id: string;
    name: string;
    appId: string;
    publishTime: string;
    published: boolean;
    stream: QrsStreamRef | null;
    savedInProductVersion: string;
    migrationHash: string;
    availabilityStatus: number;
    privileges: Privileges;
  } | null;
  isManuallyTriggered: boolean;
  operational: { id: string; lastExecutionResult: QrsExecutionResult; nextExecution: string; privileges: Privileges };
  name: string;
  taskType: number;
  enabled: boolean;
  taskSessionTimeout: number;
  maxRetries: number;
  tags: QrsTag[];
  privileges: Privileges;
  schemaPath: string;
};
export type QrsTaskCondensed = {
  id: string;
  operational: { id: string; lastExecutionResult: { id: string; status: number }; nextExecution: string };
  name: string;
  taskType: number;
  enabled: boolean;
  taskSessionTimeout: number;
  maxRetries: number;
  privileges: Privileges;
};
export type QrsLicense = Record<string, unknown> & { isExpired: boolean; keyDetails: string };


/**
 * An ExecutionResult as `GET /qrs/executionresult/full` and `GET /qrs/executionresult/{id}` answer
 * it (QRS API reference, ExecutionResult entity; the order of the fields as a QRS answer has them).
 */
export type QrsExecutionResultFull = {
  id: string;
  createdDate: string;
  modifiedDate: string;
  modifiedByUserName: string;
  executionID: string;
  appID: string;
  taskID: string;
  executingNodeName: string;
  status: number;
  startTime: string;
  stopTime: string;
  duration: number;
  fileReferenceID: string;
  scriptLogAvailable: boolean;
  details: { id: string; detailsType: number; message: string; detailCreatedDate: string; privileges: Privileges }[];
  scriptLogLocation: string;
  scriptLogSize: number;
  privileges: Privileges;
  schemaPath: 'ExecutionResult';
};

/** TaskExecutionStatus, by number. */
export const EXECUTION_STATUS = [
  'NeverStarted', 'Triggered', 'Started', 'Queued', 'AbortInitiated', 'Aborting', 'Aborted', 'FinishedSuccess',
  'FinishedFail', 'Skipped', 'Retry', 'Error', 'Reset', 'DistributionQueue', 'DistributionRunning',
] as const;

/** The time a task that has not stopped reports as its stopTime. */
export const QRS_NO_TIME = '1753-01-01T00:00:00.000Z';
export const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';

/** One change subscription (`POST /qrs/notification`). */
export interface NotificationSubscription {
  handle: string;
  name: string;
  changeType: string;
  filter: string | null;
  url: string;
}

/** One callback the simulator made to a subscriber. */
export interface CallbackDelivery {
  url: string;
  body: string;
  status: number | null;
  error: string | null;
  at: number;
}

/** A stable, valid (version 4, RFC variant) GUID derived from a seed, so fixtures are reproducible. */
export function guidFor(seed: string): string {
  const h = createHash('sha1').update(seed).digest('hex');
  const variant = ((parseInt(h[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function buildTag(name: string): QrsTag {
  return { id: guidFor(`tag:${name}`), name, privileges: null };
}

export function buildCustomProperty(name: string, value: string, choiceValues: string[] = [value]): QrsCustomPropertyValue {
  return {
    id: guidFor(`cpv:${name}:${value}`),
    createdDate: '2025-02-11T09:30:12.512Z',
    modifiedDate: '2025-02-11T09:30:12.512Z',
    modifiedByUserName: 'CORP\\qlikadmin',
    value,
    definition: { id: guidFor(`cpdef:${name}`), name, valueType: 'Text', choiceValues, privileges: null },
    schemaPath: 'CustomPropertyValue',
  };
}

export interface AppSpec {
  id?: string;
  name?: string;
  tags?: string[];
  customProperties?: { name: string; value: string }[];
  stream?: string | null;
  owner?: { userDirectory: string; userId: string; name: string };
  description?: string;
}

export function buildApp(spec: AppSpec = {}): QrsAppFull {
  const name = spec.name ?? 'Finance dashboard';
  const id = spec.id ?? guidFor(`app:${name}`);
  const owner = spec.owner ?? { userDirectory: 'CORP', userId: 'anna', name: 'Anna Berg' };
  const stream = spec.stream === undefined ? 'Finance' : spec.stream;
  return {
    id,
    createdDate: '2025-03-04T08:15:00.000Z',
    modifiedDate: '2026-11-19T02:03:10.000Z',
    modifiedByUserName: `${owner.userDirectory}\\${owner.userId}`,
    customProperties: (spec.customProperties ?? [{ name: 'ServiceLevel', value: 'Gold' }]).map((cp) => buildCustomProperty(cp.name, cp.value)),
    owner: { id: guidFor(`user:${owner.userDirectory}\\${owner.userId}`), userId: owner.userId, userDirectory: owner.userDirectory, name: owner.name, privileges: null },
    name,
    appId: '',
    sourceAppId: '00000000-0000-0000-0000-000000000000',
    targetAppId: '00000000-0000-0000-0000-000000000000',
    publishTime: stream ? '2025-03-04T08:20:00.000Z' : '1753-01-01T00:00:00.000Z',
    published: stream !== null,
    tags: (spec.tags ?? ['Finance']).map(buildTag),
    description: spec.description ?? 'Monthly and year-to-date finance figures, “Q4” view included.',
    version: '3',
    lastReloadTime: '2026-11-19T02:03:10.000Z',
    thumbnail: '/appcontent/' + id + '/finance.png',
    savedInProductVersion: '14.187.4',
    migrationHash: 'a5c3f1e0d9b8a7c6e5f4d3c2b1a09f8e7d6c5b4a',
    dynamicColor: '',
    availabilityStatus: 0,
    stream: stream ? { id: guidFor(`stream:${stream}`), name: stream, privileges: null } : null,
    fileSize: 1048576,
    privileges: null,
    schemaPath: 'App',
  };
}

export interface TaskSpec {
  id?: string;
  name?: string;
  /** 0 reload, 1 external program, 2 user sync, 3 distribute, 4 preload. */
  taskType?: number;
  enabled?: boolean;
  /** The app the task reloads; null for tasks without one. */
  app?: QrsAppFull | { id: string; name: string } | null;
  tags?: string[];
  customProperties?: { name: string; value: string }[];
  /** Execution status of the last run (8 = FinishedFail). */
  lastStatus?: number;
  maxRetries?: number;
}

const SCHEMA_BY_TYPE = ['ReloadTask', 'ExternalProgramTask', 'UserSyncTask', 'DistributionTask', 'PreloadTask'];

export function buildTask(spec: TaskSpec = {}): QrsTaskFull {
  const name = spec.name ?? 'Nightly finance reload';
  const id = spec.id ?? guidFor(`task:${name}`);
  const app = spec.app === undefined ? buildApp() : spec.app;
  const taskType = spec.taskType ?? 0;
  const status = spec.lastStatus ?? 8;
  const stream: QrsStreamRef | null = app && 'stream' in app ? (app as QrsAppFull).stream : null;
  return {
    id,
    createdDate: '2025-03-04T08:15:00.000Z',
    modifiedDate: '2026-10-01T12:00:00.000Z',
    modifiedByUserName: 'CORP\\anna',
    customProperties: (spec.customProperties ?? [{ name: 'CostCenter', value: 'Finance' }]).map((cp) => buildCustomProperty(cp.name, cp.value, [cp.value, 'Sales'])),
    app: app
      ? {
          id: app.id,
          name: app.name,
          appId: '',
          publishTime: stream ? '2025-03-04T08:20:00.000Z' : '1753-01-01T00:00:00.000Z',
          published: Boolean(stream),
          stream: stream ?? null,
          savedInProductVersion: '14.187.4',
          migrationHash: 'a5c3f1e0d9b8a7c6e5f4d3c2b1a09f8e7d6c5b4a',
          availabilityStatus: 0,
          privileges: null,
        }
      : null,
    isManuallyTriggered: false,
    operational: {
      id: guidFor(`operational:${id}`),
      lastExecutionResult: {
        id: guidFor(`execution:${id}`),
        executingNodeName: 'sense-sched-1',
        status,
        startTime: '2026-11-20T02:00:01.000Z',
        stopTime: '2026-11-20T02:03:12.000Z',
        duration: 191000,
        fileReferenceID: '00000000-0000-0000-0000-000000000000',
        scriptLogAvailable: false,
        details: [
          { id: guidFor(`detail1:${id}`), detailsType: 2, message: 'Changing task state from NeverStarted to Triggered', detailCreatedDate: '2026-11-20T02:00:00.412Z', privileges: null },
          { id: guidFor(`detail2:${id}`), detailsType: 1, message: status === 8 ? 'Task finished with state FinishedFail' : 'Task finished', detailCreatedDate: '2026-11-20T02:03:12.001Z', privileges: null },
        ],
        scriptLogLocation: '',
        scriptLogSize: 0,
        privileges: null,
      },
      nextExecution: '2026-11-21T02:00:00.000Z',
      privileges: null,
    },
    name,
    taskType,
    enabled: spec.enabled ?? true,
    taskSessionTimeout: 1440,
    maxRetries: spec.maxRetries ?? 0,
    tags: (spec.tags ?? ['Nightly', 'Finance']).map(buildTag),
    privileges: null,
    schemaPath: SCHEMA_BY_TYPE[taskType] ?? 'Task',
  };
}

/** What `GET /qrs/task` answers for a task: the condensed form. */
export function condensedTask(task: QrsTaskFull): QrsTaskCondensed {
  return {
    id: task.id,
    operational: {
      id: task.operational.id,
      lastExecutionResult: { id: task.operational.lastExecutionResult.id, status: task.operational.lastExecutionResult.status },
      nextExecution: task.operational.nextExecution,
    },
    name: task.name,
    taskType: task.taskType,
    enabled: task.enabled,
    taskSessionTimeout: task.taskSessionTimeout,
    maxRetries: task.maxRetries,
    privileges: null,
  };
}

export interface LicenseSpec {
  validFrom?: string;
  /** The text after `Valid To:`; null leaves the line out. */
  validTo?: string | null;
  isExpired?: boolean;
  keyDetails?: string;
}

export function buildLicense(spec: LicenseSpec = {}): QrsLicense {
  const validTo = spec.validTo === undefined ? '2027-01-31' : spec.validTo;
  const keyDetails = spec.keyDetails ??
    `Valid From: ${spec.validFrom ?? '2025-01-01'}\n` + (validTo === null ? '' : `Valid To: ${validTo}\n`) + 'Product: Qlik Sense Enterprise\nCores: 8\n';
  return {
    id: guidFor('license'),
    createdDate: '2025-01-01T10:00:00.000Z',
    modifiedDate: '2026-06-01T10:00:00.000Z',
    modifiedByUserName: 'INTERNAL\\sa_repository',
    lef: 'QlikTech Sense;;;\nPRODUCTLEVEL;50;;\nTIMELIMIT;;;2027-01-31\nOVERAGE;-1;;',
    serial: '9999 0000 1111 2222',
    check: '4711',
    key: '',
    name: 'CORP',
    organization: 'CORP',
    product: 0,
    numberOfCores: 8,
    isExpired: spec.isExpired ?? false,
    expiredReason: '',
    isBlacklisted: false,
    isInvalid: false,
    isSubscription: true,
    isCloudServices: false,
    isElastic: false,
    keyDetails,
    privileges: null,
    schemaPath: 'License',
  };
}

/** The sample objects of the shape fixtures: one failing reload task, its app, a license. */
export const SAMPLE_TASK_ID = '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f';
export const SAMPLE_APP_ID = '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f';
export function sampleApp(): QrsAppFull {
  return buildApp({ id: SAMPLE_APP_ID, name: 'Finance dashboard', tags: ['Finance'], customProperties: [{ name: 'ServiceLevel', value: 'Gold' }] });
}
export function sampleTask(): QrsTaskFull {
  return buildTask({ id: SAMPLE_TASK_ID, name: 'Nightly finance reload', app: sampleApp(), tags: ['Nightly', 'Finance'], customProperties: [{ name: 'CostCenter', value: 'Finance' }] });
}

// ---------------------------------------------------------------------------------------------------
// QRS filter expressions: `path eq value`, `ne`, `and` / `or`, parentheses. A path walks through
// arrays, and a comparison holds when any reached value matches — so in
// `(customProperties.definition.name eq 'A') and (customProperties.value eq 'B')` each side may be
// met by a different custom property (the looser reading; clients should re-check pairs).
// GUIDs compare case-insensitively (QRS parses them); strings compare exactly.

type FilterNode =
  | { kind: 'cmp'; path: string[]; op: 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le'; value: string | number | boolean | null }
  | { kind: 'and' | 'or'; left: FilterNode; right: FilterNode };

export class FilterSyntaxError extends Error {}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parseFilter(text: string): FilterNode {
  const tokens: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ') { i++; continue; }
    if (c === '(' || c === ')') { tokens.push(c); i++; continue; }
    if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new FilterSyntaxError('unterminated string');
        if (text[i] === "'") {
          if (text[i + 1] === "'") { s += "'"; i += 2; continue; }
          i++;
          break;
        }
        s += text[i];
        i++;
      }
      tokens.push("'" + s);
      continue;
    }
    const m = /^[^\s()']+/.exec(text.slice(i));
    if (!m) throw new FilterSyntaxError(`unexpected character at ${i}`);
    tokens.push(m[0]);
    i += m[0].length;
  }
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => {
    const t = tokens[pos++];
    if (t === undefined) throw new FilterSyntaxError('unexpected end of filter');
    return t;
  };
  const literal = (t: string): string | number | boolean | null => {
    if (t.startsWith("'")) return t.slice(1);
    if (GUID_RE.test(t)) return t;
    if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
    if (t === 'true' || t === 'false') return t === 'true';
    if (t === 'null') return null;
    throw new FilterSyntaxError(`bad value ${t}`);
  };
  const primary = (): FilterNode => {
    const t = next();
    if (t === '(') {
      const e = expr();
      if (next() !== ')') throw new FilterSyntaxError('missing )');
      return e;
    }
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(t)) throw new FilterSyntaxError(`bad property ${t}`);
    const op = next().toLowerCase();
    if (op !== 'eq' && op !== 'ne' && op !== 'gt' && op !== 'ge' && op !== 'lt' && op !== 'le') throw new FilterSyntaxError(`unsupported operator ${op}`);
    return { kind: 'cmp', path: t.split('.'), op, value: literal(next()) };
  };
  const conj = (): FilterNode => {
    let left = primary();
    while (peek()?.toLowerCase() === 'and') { pos++; left = { kind: 'and', left, right: primary() }; }
    return left;
  };
  const expr = (): FilterNode => {
    let left = conj();
    while (peek()?.toLowerCase() === 'or') { pos++; left = { kind: 'or', left, right: conj() }; }
    return left;
  };
  const tree = expr();
  if (pos !== tokens.length) throw new FilterSyntaxError(`unexpected ${tokens[pos]}`);
  return tree;
}

function valuesAt(obj: unknown, path: string[]): unknown[] {
  let current: unknown[] = [obj];
  for (const key of path) {
    const nextValues: unknown[] = [];
    for (const v of current) {
      const items = Array.isArray(v) ? v : [v];
      for (const item of items) {
        if (item && typeof item === 'object' && key in item) nextValues.push((item as Record<string, unknown>)[key]);
      }
    }
    current = nextValues.flatMap((v) => (Array.isArray(v) ? v : [v]));
  }
  return current;
}

function same(a: unknown, b: string | number | boolean | null): boolean {
  if (typeof a === 'string' && typeof b === 'string' && GUID_RE.test(a) && GUID_RE.test(b)) return a.toLowerCase() === b.toLowerCase();
  return a === b;
}

export function matchesFilter(obj: unknown, node: FilterNode): boolean {
  switch (node.kind) {
    case 'and': return matchesFilter(obj, node.left) && matchesFilter(obj, node.right);
    case 'or': return matchesFilter(obj, node.left) || matchesFilter(obj, node.right);
    case 'cmp': {
      if (node.op === 'eq' || node.op === 'ne') {
        const hit = valuesAt(obj, node.path).some((v) => same(v, node.value));
        return node.op === 'eq' ? hit : !hit;
      }
      // Ordering: numbers as numbers; strings (ISO 8601 dates in QRS's one format) as text.
      const op = node.op;
      const b = node.value;
      return valuesAt(obj, node.path).some((a) => {
        if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string'))) return false;
        return op === 'gt' ? a > b : op === 'ge' ? a >= b : op === 'lt' ? a < b : a <= b;
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The HTTPS server core shared by the QRS and Qlik Cloud simulators: lifecycle on a fixed port,
// request log, connection counting, and fault injection.

export interface RecordedRequest {
  method: string;
  /** The path as sent, still percent-encoded, without the query string. */
  path: string;
  /** The request target exactly as sent (path and raw query string). */
  rawUrl: string;
  /** Decoded query parameters. */
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  body: string;
  /** Common name of the client certificate, when one was presented and verified. */
  clientCertCN: string | null;
  at: number;
}

export type FailureMode = number | 'reset';

export interface SimulatorTls {
  cert: string;
  key: string;
  /** CA that client certificates must chain to; omit to not ask for client certificates. */
  clientCa?: string;
}

export abstract class HttpsSimulatorCore {
  readonly requests: RecordedRequest[] = [];
  /** TLS sessions established (one per connection; keep-alive reuse does not add). */
  tlsConnections = 0;
  /** Connections refused during the TLS handshake (e.g. missing or foreign client certificate). */
  tlsFailures = 0;
  port = 0;

  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly hanging = new Set<ServerResponse>();
  private latencyMs = 0;
  private hang = false;
  private failing: FailureMode | null = null;
  private failures: { remaining: number; mode: FailureMode; pathPrefix?: string }[] = [];

  protected constructor(private readonly tls: SimulatorTls) {}

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== null;
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  /** Requests whose path (without query) equals or starts with the given text. */
  requestsTo(pathPrefix: string, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(pathPrefix) && (!method || r.method === method));
  }

  /** Delay before every answer. */
  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  /** Accept requests (and record them) but never answer them, until switched off or stopped. */
  setHang(on: boolean): void {
    this.hang = on;
    if (!on) for (const res of this.hanging) res.destroy();
    if (!on) this.hanging.clear();
  }

  /**
   * The next n requests (optionally only those whose path starts with pathPrefix) fail with this
   * status (plain-text body, so a 200 here makes an unparseable answer) or a connection reset.
   */
  failNext(n: number, mode: FailureMode = 503, pathPrefix?: string): void {
    this.failures.push({ remaining: n, mode, ...(pathPrefix === undefined ? {} : { pathPrefix }) });
  }

  /** Every request fails with this status or a reset until called with null. */
  setFailing(mode: FailureMode | null): void {
    this.failing = mode;
  }

  /** Clears latency, hang and failure settings. */
  resetFaults(): void {
    this.latencyMs = 0;
    this.setHang(false);
    this.failing = null;
    this.failures = [];
  }

  /** Listens again (on the same port after a stop; on a free port the first time). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer({
      cert: readFileSync(this.tls.cert),
      key: readFileSync(this.tls.key),
      ...(this.tls.clientCa ? { ca: readFileSync(this.tls.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
    });
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.on('secureConnection', () => { this.tlsConnections++; });
    server.on('tlsClientError', () => { this.tlsFailures++; });
    server.on('request', (req, res) => { this.receive(req, res).catch(() => res.destroy()); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address && typeof address === 'object') this.port = address.port;
    this.server = server;
  }

  /** Goes away: closes the listener and every open connection (the port then refuses connections). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  protected abstract handle(req: RecordedRequest, res: ServerResponse): void;

  protected send(res: ServerResponse, status: number, body?: unknown, contentType = 'application/json; charset=utf-8'): void {
    if (body === undefined) {
      res.writeHead(status);
      res.end();
      return;
    }
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private takeFailure(path: string): FailureMode | null {
    if (this.failing !== null) return this.failing;
    const index = this.failures.findIndex((f) => f.remaining > 0 && (f.pathPrefix === undefined || path.startsWith(f.pathPrefix)));
    const failure = this.failures[index];
    if (!failure) return null;
    failure.remaining--;
    if (failure.remaining === 0) this.failures.splice(index, 1);
    return failure.mode;
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const query: Record<string, string> = {};
    if (q !== -1) {
      try {
        for (const [k, v] of new URLSearchParams(rawUrl.slice(q + 1))) query[k] = v;
      } catch {
        // leave the query empty; the handler answers 400
      }
    }
    const socket = req.socket as TLSSocket;
    const peer = socket.authorized ? socket.getPeerCertificate() : null;
    const cn = peer && peer.subject ? peer.subject.CN : undefined;
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path,
      rawUrl,
      query,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      clientCertCN: typeof cn === 'string' ? cn : null,
      at: Date.now(),
    };
    this.requests.push(record);

    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    if (this.hang) {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    const failure = this.takeFailure(path);
    if (failure === 'reset') {
      req.socket.destroy();
      return;
    }
    if (failure !== null) {
      this.send(res, failure, failure >= 500 ? 'Internal server error' : 'Request failed', 'text/plain; charset=utf-8');
      return;
    }
    try {
      this.handle(record, res);
    } catch (err) {
      this.send(res, 500, String(err), 'text/plain; charset=utf-8');
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The QRS simulator proper.

const XRF_RE = /^[A-Za-z0-9]{16}$/;

export interface QrsSimulatorOptions {
  pki: TestPki;
  /** Start without the sample task, app and license. */
  empty?: boolean;
}

export class QrsSimulator extends HttpsSimulatorCore {
  readonly tasks = new Map<string, QrsTaskFull>();
  readonly apps = new Map<string, QrsAppFull>();
  license: QrsLicense | null = null;
  /** Task ids from successful `POST /qrs/task/<id>/start` calls, as they appeared in the path. */
  readonly startedTasks: string[] = [];
  readonly executionResults = new Map<string, QrsExecutionResultFull>();
  readonly notifications = new Map<string, NotificationSubscription>();
  /** Every callback made to a subscriber, in order. */
  readonly callbacks: CallbackDelivery[] = [];
  /** false: changes are made without calling any subscriber (a lost callback). */
  callbacksOn = true;
  private lastModified = 0;
  private executionCounter = 0;
  private readonly pendingCallbacks = new Set<Promise<void>>();

  private constructor(pki: TestPki) {
    super({ cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert });
  }

  static async start(options: QrsSimulatorOptions): Promise<QrsSimulator> {
    const sim = new QrsSimulator(options.pki);
    if (!options.empty) {
      sim.addApp(sampleApp());
      sim.addTask(sampleTask());
      sim.setLicense(buildLicense());
    }
    await sim.start();
    return sim;
  }

  /** Adds (or replaces) a task; a spec is built into a reload task unless it says otherwise. */
  addTask(task: QrsTaskFull | TaskSpec): QrsTaskFull {
    const full = 'schemaPath' in task && 'operational' in task ? (task as QrsTaskFull) : buildTask(task as TaskSpec);
    this.tasks.set(full.id.toLowerCase(), full);
    return full;
  }

  addReloadTask(spec: TaskSpec | QrsTaskFull = {}): QrsTaskFull {
    return this.addTask('schemaPath' in spec ? spec : { ...spec, taskType: 0 });
  }

  addApp(app: QrsAppFull | AppSpec): QrsAppFull {
    const full = 'schemaPath' in app ? (app as QrsAppFull) : buildApp(app as AppSpec);
    this.apps.set(full.id.toLowerCase(), full);
    return full;
  }

  /** Changes fields of a stored task in place and returns it. */
  updateTask(id: string, patch: Partial<QrsTaskFull>): QrsTaskFull {
    const task = this.tasks.get(id.toLowerCase());
    if (!task) throw new Error(`no task ${id}`);
    Object.assign(task, patch);
    return task;
  }

  updateApp(id: string, patch: Partial<QrsAppFull>): QrsAppFull {
    const app = this.apps.get(id.toLowerCase());
    if (!app) throw new Error(`no app ${id}`);
    Object.assign(app, patch);
    return app;
  }

  removeTask(id: string): void {
    this.tasks.delete(id.toLowerCase());
  }

  removeApp(id: string): void {
    this.apps.delete(id.toLowerCase());
  }

  /** The license `GET /qrs/license` answers; null makes it answer 404. */
  setLicense(license: QrsLicense | LicenseSpec | null): QrsLicense | null {
    this.license = license === null ? null : 'schemaPath' in license ? (license as QrsLicense) : buildLicense(license as LicenseSpec);
    return this.license;
  }

  /**
   * The scenario driver: one execution of a task, from Triggered through Started to `finalStatus`
   * (a TaskExecutionStatus number or name), each step a change of the ExecutionResult (a newer
   * modifiedDate) announced to every subscriber of ExecutionResult updates. Resolves when the
   * callbacks were answered (or failed).
   */
  async runExecution(taskId: string, finalStatus: number | (typeof EXECUTION_STATUS)[number], options: { node?: string; message?: string; steps?: boolean; executionId?: string } = {}): Promise<QrsExecutionResultFull> {
    const status = typeof finalStatus === 'number' ? finalStatus : EXECUTION_STATUS.indexOf(finalStatus);
    const task = this.tasks.get(taskId.toLowerCase());
    this.executionCounter += 1;
    const seed = `${taskId}:${this.executionCounter}:${Date.now()}`;
    const start = this.nextModified();
    const result: QrsExecutionResultFull = {
      id: guidFor(`executionresult:${seed}`),
      createdDate: start,
      modifiedDate: start,
      modifiedByUserName: 'INTERNAL\\sa_scheduler',
      executionID: options.executionId ?? guidFor(`executionsession:${seed}`),
      // External program and user sync tasks have no app: the empty GUID.
      appID: task?.app?.id ?? EMPTY_GUID,
      taskID: task?.id ?? taskId,
      executingNodeName: options.node ?? 'sense-sched-1.corp.example',
      status: 1,
      startTime: QRS_NO_TIME,
      stopTime: QRS_NO_TIME,
      duration: 0,
      fileReferenceID: EMPTY_GUID,
      scriptLogAvailable: false,
      details: [{ id: guidFor(`detail:${seed}:1`), detailsType: 2, message: 'Changing task state from NeverStarted to Triggered', detailCreatedDate: start, privileges: null }],
      scriptLogLocation: '',
      scriptLogSize: 0,
      privileges: null,
      schemaPath: 'ExecutionResult',
    };
    this.executionResults.set(result.id.toLowerCase(), result);
    if (options.steps !== false) {
      await this.announce(result, ['status']);
      this.changeExecution(result.id, 2);
      await this.announce(result, ['status', 'startTime']);
    } else {
      result.status = 2;
      result.startTime = start;
    }
    this.changeExecution(result.id, status, options.message);
    await this.announce(result, ['status', 'stopTime', 'duration']);
    return result;
  }

  /** Moves an ExecutionResult to another status (a newer modifiedDate), without any callback. */
  changeExecution(id: string, status: number, message?: string): QrsExecutionResultFull {
    const result = this.executionResults.get(id.toLowerCase());
    if (!result) throw new Error(`no execution result ${id}`);
    const now = this.nextModified();
    const before = EXECUTION_STATUS[result.status] ?? String(result.status);
    result.status = status;
    result.modifiedDate = now;
    if (status === 2) result.startTime = now;
    if (result.startTime === QRS_NO_TIME) result.startTime = result.createdDate;
    if ([6, 7, 8, 9, 11, 12].includes(status)) {
      result.stopTime = now;
      result.duration = Date.parse(now) - Date.parse(result.startTime);
      if (result.appID !== EMPTY_GUID) {
        result.fileReferenceID = guidFor(`scriptlog:${result.id}`);
        result.scriptLogAvailable = true;
        result.scriptLogLocation = `${result.executingNodeName}\\Script\\${result.taskID}.${result.id}.log`;
        result.scriptLogSize = 4711;
      }
    }
    result.details.push({
      id: guidFor(`detail:${result.id}:${result.details.length + 1}`),
      detailsType: status === 8 || status === 11 ? 3 : 2,
      message: message ?? `Changing task state from ${before} to ${EXECUTION_STATUS[status] ?? status}`,
      detailCreatedDate: now,
      privileges: null,
    });
    const task = this.tasks.get(result.taskID.toLowerCase());
    if (task) {
      const { createdDate: _c, modifiedDate: _m, modifiedByUserName: _u, executionID: _e, appID: _a, taskID: _t, schemaPath: _s, ...condensed } = result;
      task.operational.lastExecutionResult = { ...condensed, details: condensed.details.map((d) => ({ ...d })) };
    }
    return result;
  }

  /**
   * Calls every subscriber of ExecutionResult updates for this result, as QRS does: a POST of a JSON
   * array of changes to the registered URL. The reference names the callback body only as a list of
   * change objects; the members here are those clients in the field read (objectType, objectID) and
   * changeType / changedProperties, nothing more.
   */
  async announce(result: QrsExecutionResultFull, changedProperties: string[]): Promise<void> {
    if (!this.callbacksOn) return;
    const body = JSON.stringify([{ objectType: 'ExecutionResult', objectID: result.id, changeType: 2, changedProperties }]);
    const calls = [...this.notifications.values()]
      .filter((n) => n.name.toLowerCase() === 'executionresult' && (n.changeType === '2' || n.changeType.toLowerCase() === 'update') && (n.filter === null || matchesFilter(result, parseFilter(n.filter))))
      .map((n) => this.callback(n.url, body));
    await Promise.all(calls);
  }

  /** Posts a callback body to a URL (e.g. a forged one in a test) and records the outcome. */
  async callback(url: string, body: string): Promise<CallbackDelivery> {
    const delivery: CallbackDelivery = { url, body, status: null, error: null, at: Date.now() };
    this.callbacks.push(delivery);
    const run = (async () => {
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        delivery.status = res.status;
      } catch (err) {
        delivery.error = (err as Error).message;
      }
    })();
    this.pendingCallbacks.add(run);
    await run;
    this.pendingCallbacks.delete(run);
    return delivery;
  }

  /** A modifiedDate later than every one given before (QRS's format, millisecond precision). */
  private nextModified(): string {
    this.lastModified = Math.max(Date.now(), this.lastModified + 1);
    return new Date(this.lastModified).toISOString();
  }

  /** `orderBy` (one property, optional `desc`), `skip`, `take`, as every QRS collection takes them. */
  private page<T extends Record<string, unknown>>(items: T[], query: Record<string, string>): T[] {
    let out = items;
    const orderBy = query['orderBy'] ?? query['orderby'];
    if (orderBy) {
      const [key, dir] = orderBy.trim().split(/\s+/);
      const sign = dir?.toLowerCase() === 'desc' ? -1 : 1;
      // Ties keep a stable order by id.
      out = [...out].sort((a, b) => {
        const x = a[key!] as string | number;
        const y = b[key!] as string | number;
        return x < y ? -sign : x > y ? sign : String(a['id']) < String(b['id']) ? -1 : 1;
      });
    }
    const skip = Number(query['skip'] ?? 0);
    const take = query['take'] === undefined ? Infinity : Number(query['take']);
    return out.slice(skip, skip + take);
  }

  protected handle(req: RecordedRequest, res: ServerResponse): void {
    // A real QRS refuses a request whose xrfkey is missing, malformed or differs from the header.
    const xrfQuery = req.query['xrfkey'];
    const xrfHeader = req.headers['x-qlik-xrfkey'];
    if (!xrfQuery || !XRF_RE.test(xrfQuery) || xrfHeader !== xrfQuery) {
      this.send(res, 403, 'XSRF prevention check failed. Possible XSRF discovered.', 'text/plain; charset=utf-8');
      return;
    }
    const user = req.headers['x-qlik-user'];
    if (typeof user !== 'string' || !/UserDirectory=[^;]+;\s*UserId=.+/i.test(user)) {
      this.send(res, 403, 'Forbidden: missing or malformed X-Qlik-User header', 'text/plain; charset=utf-8');
      return;
    }

    let filter: FilterNode | null = null;
    if (req.query['filter'] !== undefined) {
      try {
        filter = parseFilter(req.query['filter']);
      } catch (err) {
        this.send(res, 400, `Invalid filter: ${(err as Error).message}`, 'text/plain; charset=utf-8');
        return;
      }
    }
    const pick = <T>(items: Iterable<T>): T[] => [...items].filter((o) => !filter || matchesFilter(o, filter));
    const path = req.path.replace(/\/+$/, '').toLowerCase();

    if (req.method === 'GET') {
      switch (path) {
        case '/qrs/task': return this.send(res, 200, pick(this.tasks.values()).map(condensedTask));
        case '/qrs/task/full': return this.send(res, 200, pick(this.tasks.values()));
        case '/qrs/reloadtask': return this.send(res, 200, pick([...this.tasks.values()].filter((t) => t.taskType === 0)).map(condensedTask));
        case '/qrs/reloadtask/full': return this.send(res, 200, pick([...this.tasks.values()].filter((t) => t.taskType === 0)));
        case '/qrs/app': return this.send(res, 200, pick(this.apps.values()).map((a) => ({ id: a.id, name: a.name, appId: a.appId, publishTime: a.publishTime, published: a.published, stream: a.stream, savedInProductVersion: a.savedInProductVersion, migrationHash: a.migrationHash, availabilityStatus: a.availabilityStatus, privileges: null })));
        case '/qrs/app/full': return this.send(res, 200, pick(this.apps.values()));
        case '/qrs/license': return this.license ? this.send(res, 200, this.license) : this.send(res, 404);
        case '/qrs/externalprogramtask': return this.send(res, 200, pick([...this.tasks.values()].filter((t) => t.taskType === 1)).map(condensedTask));
        case '/qrs/externalprogramtask/full': return this.send(res, 200, pick([...this.tasks.values()].filter((t) => t.taskType === 1)));
        case '/qrs/usersynctask': return this.send(res, 200, pick([...this.tasks.values()].filter((t) => t.taskType === 2)).map(condensedTask));
        case '/qrs/usersynctask/full': return this.send(res, 200, pick([...this.tasks.values()].filter((t) => t.taskType === 2)));
        case '/qrs/executionresult/full': return this.send(res, 200, this.page(pick(this.executionResults.values()), req.query));
        case '/qrs/executionresult/count': return this.send(res, 200, { value: pick(this.executionResults.values()).length });
        case '/qrs/about': return this.send(res, 200, { buildVersion: '14.187.4.0', buildDate: '9/20/2013 10:09:00 AM', databaseProvider: 'Devart.Data.PostgreSql', nodeType: 1, sharedPersistence: true, requiresBootstrap: false, singleNodeOnly: false, schemaPath: 'About' });
      }
    }
    const executionResult = /^\/qrs\/executionresult\/([^/]+)$/i.exec(req.path);
    if (req.method === 'GET' && executionResult && executionResult[1] !== 'full' && executionResult[1] !== 'count') {
      const found = this.executionResults.get(decodeURIComponent(executionResult[1]!).toLowerCase());
      return found ? this.send(res, 200, found) : this.send(res, 404);
    }
    if (path === '/qrs/notification' && req.method === 'POST') {
      // The body is the URL to call, as a JSON string.
      let url: unknown;
      try {
        url = JSON.parse(req.body);
      } catch {
        url = undefined;
      }
      const name = req.query['name'];
      if (typeof url !== 'string' || !/^https?:\/\//.test(url) || !name) return this.send(res, 400, 'Bad request', 'text/plain; charset=utf-8');
      const handle = guidFor(`notification:${this.notifications.size}:${Date.now()}:${Math.random()}`);
      this.notifications.set(handle, { handle, name, changeType: req.query['changetype'] ?? 'Undefined', filter: req.query['filter'] ?? null, url });
      // QRS wraps a single value as {"value": …}; the reference says only "GUID".
      return this.send(res, 201, { value: handle });
    }
    if (path === '/qrs/notification' && req.method === 'DELETE') {
      const handle = req.query['handle'] ?? '';
      return this.notifications.delete(handle) ? this.send(res, 204) : this.send(res, 404);
    }
    const start = /^\/qrs\/task\/([^/]+)\/start$/.exec(req.path);
    if (req.method === 'POST' && start) {
      const id = decodeURIComponent(start[1]!);
      if (GUID_RE.test(id) && this.tasks.has(id.toLowerCase())) {
        this.startedTasks.push(id);
        return this.send(res, 204);
      }
      return this.send(res, 404);
    }
    this.send(res, 404);
  }
}
