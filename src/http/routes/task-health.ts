// The status page's task-health view (GET /status/tasks): every task whose outcome was read from QRS,
// its last outcome and time, failures in the last 24 h, and a chart of outcomes per hour drawn with
// uPlot. Static files come from this server only (the page's strict content security policy).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { assetDir } from '../../package-root.ts';
import { JSON_UTF8 } from '../server.ts';

export interface TaskHealthRouteOptions extends Record<string, unknown> {
  /** The view's data (src/alerts/task-executions.ts TaskHealth). */
  health: () => unknown;
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const asset = (name: string) => readFileSync(path.join(assetDir('src/http/status'), name), 'utf8');

/** uPlot's files as the package ships them (a runtime dependency, beside the build too). */
function uplotFile(name: string): string {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve(`uplot/dist/${name}`), 'utf8');
}

export const taskHealthRoutes: FastifyPluginAsync<TaskHealthRouteOptions> = async (scope, o) => {
  const html = asset('tasks.html');
  const css = asset('tasks.css');
  const js = asset('tasks.js');
  const uplotJs = uplotFile('uPlot.iife.min.js');
  const uplotCss = uplotFile('uPlot.min.css');
  const hidden = { schema: { hide: true } };
  scope.get('/status/tasks', { schema: { summary: 'Task health: every task outcome read from QRS (HTML).', tags: ['operations'] } }, async (_req, reply) =>
    reply.header('content-security-policy', CSP).header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(html),
  );
  scope.get('/status/tasks.css', hidden, async (_req, reply) => reply.header('cache-control', 'no-cache').type('text/css; charset=utf-8').send(css));
  scope.get('/status/tasks.js', hidden, async (_req, reply) => reply.header('cache-control', 'no-cache').type('text/javascript; charset=utf-8').send(js));
  scope.get('/status/uplot.iife.min.js', hidden, async (_req, reply) => reply.header('cache-control', 'max-age=86400').type('text/javascript; charset=utf-8').send(uplotJs));
  scope.get('/status/uplot.min.css', hidden, async (_req, reply) => reply.header('cache-control', 'max-age=86400').type('text/css; charset=utf-8').send(uplotCss));
  scope.get('/status/tasks/api', { schema: { summary: 'Task health data: tasks with their last outcome, outcomes per hour.', tags: ['operations'] } }, async (_req, reply) =>
    reply.header('cache-control', 'no-store').type(JSON_UTF8).send(JSON.stringify(o.health())),
  );
};
