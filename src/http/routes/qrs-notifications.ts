// POST /v4/qrs/notification: where QRS calls the bridge when an ExecutionResult changed (the change
// subscription of src/sense/qrs-notifications.ts). The body is trusted for nothing but the ids it
// names: each becomes pipeline input whose handler fetches the result from QRS itself. Answers 204
// once every id is durably accepted, 503 when one was refused (so the caller may try again).
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { FixedWindowLimiter, sendError } from '../server.ts';

export const QRS_CALLBACK_PATH = '/v4/qrs/notification';

export interface QrsCallbackRouteOptions extends Record<string, unknown> {
  /** Body → ids, or why the body is refused. */
  parse: (body: unknown) => { ok: true; ids: string[]; skipped: number } | { ok: false; reason: string; detail: string };
  /** Hands one id to the pipeline; `refused` when it could not be accepted durably. */
  submit: (id: string, from: string) => Promise<'accepted' | 'refused'>;
  /** Counts a refusal made here (bad body, rate limit) on the source's metrics. */
  reject: (reason: string, detail: string, from: string) => void;
  bodyLimitBytes: number;
  /** Callbacks per client address and minute. */
  ratePerMinute: number;
  logger: Logger;
  metrics: Metrics;
}

export const qrsCallbackRoutes: FastifyPluginAsync<QrsCallbackRouteOptions> = async (scope, o) => {
  const limiter = new FixedWindowLimiter(o.ratePerMinute, 60_000);
  // The reference does not say which content type QRS sends with a callback: any body is read as JSON
  // text here (in this route's scope only); what is not JSON is refused by parse() below.
  scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    done(null, jsonOrUndefined(body as string));
  });
  scope.post(
    QRS_CALLBACK_PATH,
    {
      bodyLimit: o.bodyLimitBytes,
      schema: {
        summary: 'Change callback of the QRS (ExecutionResult updates).',
        description: 'Registered by the bridge as a QRS change subscription. Takes the JSON array of changes QRS posts; only the objectID of ExecutionResult changes is used, each result is then read from QRS.',
        tags: ['sense'],
      },
    },
    async (request, reply) => {
      const from = request.ip;
      if (!limiter.hit(from).allowed) {
        o.reject('rate_limited', `more than ${o.ratePerMinute} callbacks a minute from ${from}`, from);
        reply.header('retry-after', 60);
        return sendError(reply, 429, 'BUTLER_MQTT_RATE_LIMITED', 'too many callbacks; try again later');
      }
      // text/plain arrives as a string (Fastify's own parser): read it as JSON text too.
      const parsed = o.parse(typeof request.body === 'string' ? jsonOrUndefined(request.body) : request.body);
      if (!parsed.ok) {
        o.reject(parsed.reason, parsed.detail, from);
        return sendError(reply, parsed.reason === 'too_many_changes' ? 413 : 400, 'BUTLER_MQTT_BAD_CALLBACK', parsed.detail);
      }
      if (parsed.skipped > 0) o.reject('not_an_execution_result', `${parsed.skipped} change(s) not naming an ExecutionResult id were skipped`, from);
      const outcomes = await Promise.all(parsed.ids.map((id) => o.submit(id, from)));
      if (outcomes.includes('refused')) return sendError(reply, 503, 'BUTLER_MQTT_NOT_ACCEPTED', 'the changes could not be stored; send them again');
      return reply.code(204).send();
    },
  );
};

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
