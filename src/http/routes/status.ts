// The status page for people: GET / (static HTML, CSS and a plain JS file), GET /status/api (one JSON
// snapshot), GET /status/events (server-sent events: the snapshot, then every activity change and the
// connection state each second) and, only when enabled, POST /status/test-event.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { assetDir } from '../../package-root.ts';
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { ActivityEntry, ActivityLog } from '../../observability/activity.ts';
import type { Logger } from '../../observability/logger.ts';
import { JSON_UTF8, sendError, type RequestHook } from '../server.ts';

/** What the page shows besides the activity list; built by the caller (src/features/operations.ts). */
export type StatusSnapshot = Record<string, unknown>;

export interface TestEventResult {
  ok: boolean;
  /** One line for the page. */
  message: string;
}

export interface StatusRouteOptions extends Record<string, unknown> {
  snapshot: () => Promise<StatusSnapshot>;
  activity: ActivityLog;
  /** null: the button is off (restServerConfig.testEventButton false). */
  testEvent: { send: () => Promise<TestEventResult> } | null;
  hooks: { rateLimit: RequestHook; requireToken: RequestHook };
  logger: Logger;
  /** How often connected pages get the connection state, ms. Default 1000. */
  statusIntervalMs?: number;
}

const asset = (name: string) => readFileSync(path.join(assetDir('src/http/status'), name), 'utf8');

// Everything the page loads comes from this server; nothing inline, so a strict policy fits.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const statusRoutes: FastifyPluginAsync<StatusRouteOptions> = async (scope, o) => {
  const html = asset('index.html');
  const css = asset('status.css');
  const js = asset('status.js');
  const clients = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | null = null;

  const send = (res: ServerResponse, event: string, data: unknown) => {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: unknown) => {
    for (const res of clients) send(res, event, data);
  };
  // Changes are sent in batches every 100 ms: a burst of thousands of datagrams must not become
  // thousands of writes to every open page.
  const pending = new Map<number, ActivityEntry>();
  const removed = new Set<number>();
  let flushTimer: NodeJS.Timeout | null = null;
  const flush = () => {
    flushTimer = null;
    if (removed.size > 0) broadcast('remove', { ids: [...removed] });
    if (pending.size > 0) broadcast('entries', [...pending.values()]);
    pending.clear();
    removed.clear();
  };
  const schedule = () => {
    if (!flushTimer) flushTimer = setTimeout(flush, 100);
  };
  const onChange = (entry: ActivityEntry) => {
    pending.set(entry.id, entry);
    removed.delete(entry.id);
    schedule();
  };
  const onRemove = (id: number) => {
    pending.delete(id);
    removed.add(id);
    schedule();
  };
  const tick = () => {
    o.snapshot().then(
      (s) => broadcast('status', s),
      (err: Error) => o.logger.warn({ err: err.message }, 'status page: could not build the status'),
    );
  };
  const addClient = (res: ServerResponse) => {
    clients.add(res);
    if (clients.size === 1) {
      o.activity.on('change', onChange);
      o.activity.on('remove', onRemove);
      timer = setInterval(tick, o.statusIntervalMs ?? 1000);
      timer.unref();
    }
  };
  const dropClient = (res: ServerResponse) => {
    if (!clients.delete(res) || clients.size > 0) return;
    o.activity.off('change', onChange);
    o.activity.off('remove', onRemove);
    if (timer) clearInterval(timer);
    timer = null;
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    pending.clear();
    removed.clear();
  };
  // Open event streams would keep the server from closing.
  scope.addHook('preClose', async () => {
    for (const res of [...clients]) {
      res.end();
      dropClient(res);
    }
  });

  const hidden = { schema: { hide: true } };
  scope.get('/', { schema: { summary: 'The status page (HTML).', tags: ['operations'] } }, async (_req, reply) =>
    reply.header('content-security-policy', CSP).header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(html),
  );
  scope.get('/status/status.css', hidden, async (_req, reply) => reply.header('cache-control', 'no-cache').type('text/css; charset=utf-8').send(css));
  scope.get('/status/status.js', hidden, async (_req, reply) => reply.header('cache-control', 'no-cache').type('text/javascript; charset=utf-8').send(js));

  scope.get('/status/api', { schema: { summary: 'The status page data: connections, queues, recent activity.', tags: ['operations'] } }, async (_req, reply) => {
    const body = { status: await o.snapshot(), activity: o.activity.recent() };
    return reply.header('cache-control', 'no-store').type(JSON_UTF8).send(JSON.stringify(body));
  });

  scope.get('/status/events', { schema: { summary: 'Server-sent events: snapshot, then activity changes and the status each second.', tags: ['operations'] } }, async (request, reply) => {
    const status = await o.snapshot();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Proxies (nginx) must not buffer the stream.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    send(res, 'snapshot', { status, activity: o.activity.recent() });
    addClient(res);
    request.raw.on('close', () => dropClient(res));
  });

  if (o.testEvent) {
    const testEvent = o.testEvent;
    scope.post(
      '/status/test-event',
      {
        schema: { summary: 'Send a test event through the pipeline (restServerConfig.testEventButton).', tags: ['operations'] },
        onRequest: [
          o.hooks.rateLimit,
          // A plain HTML form from another site cannot set this header (no CSRF through the browser).
          async (request, reply) => {
            if (request.headers['x-butler-mqtt-page'] === '1') return;
            return sendError(reply, 403, 'BUTLER_MQTT_FORBIDDEN', 'send the header "X-Butler-Mqtt-Page: 1"');
          },
          o.hooks.requireToken,
        ],
      },
      async (_req, reply) => {
        const result = await testEvent.send();
        return reply.code(result.ok ? 202 : 500).type(JSON_UTF8).send(JSON.stringify(result));
      },
    );
  }
};
