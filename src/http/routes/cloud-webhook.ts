// POST /qlik-cloud/webhook/:tenant — Qlik Cloud webhook deliveries. The body is kept as raw bytes (the
// signature is over them), checked against the tenant's secret in constant time before anything
// parses it, and handed to the pipeline. The answer waits for the pipeline: 200 once the delivery is
// durably accepted (or was already), 503 when it could not be stored (Qlik Cloud delivers it again),
// 401 for a missing or wrong signature. Nothing here calls Qlik Cloud: enrichment comes later.
import type { FastifyPluginAsync } from 'fastify';
import { SIGNATURE_HEADER, verifySignature } from '../../cloud/webhook-signature.ts';
import type { Logger } from '../../observability/logger.ts';
import { JSON_UTF8, sendError } from '../server.ts';

export const CLOUD_WEBHOOK_PATH = '/qlik-cloud/webhook';

type Outcome = { status: 'accepted'; id: number | null } | { status: 'duplicate' } | { status: 'invalid'; reason: string; detail: string } | { status: 'refused'; reason: string; detail: string };

export interface CloudWebhookRouteOptions extends Record<string, unknown> {
  /** Tenant name → its webhook secret ('' = unsigned deliveries accepted). Only tenants with the webhook intake on. */
  secrets: ReadonlyMap<string, string>;
  bodyLimitBytes: number;
  submit(tenant: string, body: Buffer, from: string): Promise<Outcome>;
  /** Counts and logs a delivery the route refused before the pipeline saw it. */
  reject(reason: string, detail: string, from: string): void;
  logger: Logger;
}

/** Invalid inputs that are still a correctly signed delivery of the tenant: answered 202 so Qlik Cloud does not retry them. */
const IGNORED = new Set(['other_event_type', 'other_tenant']);

export const cloudWebhookRoutes: FastifyPluginAsync<CloudWebhookRouteOptions> = async (scope, o) => {
  // Raw bytes for every content type, in this plugin only (Fastify content-type parsers are encapsulated).
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: o.bodyLimitBytes }, (_req, body, done) => done(null, body));

  scope.post<{ Params: { tenant: string } }>(
    `${CLOUD_WEBHOOK_PATH}/:tenant`,
    {
      bodyLimit: o.bodyLimitBytes,
      schema: {
        summary: 'Qlik Cloud webhook delivery (reload finished events).',
        description: 'Target URL of a Qlik Cloud webhook. Verifies the Qlik-Signature header (HMAC-SHA256 of the body, hex) when the tenant has a webhookSecret; answers 200 once the event is durably accepted, 503 when it could not be stored (Qlik Cloud retries).',
        tags: ['qlik-cloud'],
        params: { type: 'object', properties: { tenant: { type: 'string', description: 'Butler.qlikSenseCloud.tenants[].name' } } },
      },
    },
    async (request, reply) => {
      const tenant = request.params.tenant;
      const from = `${request.ip} (${tenant})`;
      const secret = o.secrets.get(tenant);
      if (secret === undefined) {
        o.reject('unknown_tenant', `webhook delivery for "${tenant.slice(0, 64)}", not a tenant with the webhook intake on`, request.ip);
        return sendError(reply, 404, 'BUTLER_MQTT_UNKNOWN_TENANT', 'no Qlik Cloud tenant with the webhook intake on has this name');
      }
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      if (secret !== '') {
        const check = verifySignature(body, request.headers[SIGNATURE_HEADER], secret);
        if (!check.ok) {
          o.reject(check.reason, check.detail, from);
          return sendError(reply, 401, 'BUTLER_MQTT_BAD_SIGNATURE', check.detail);
        }
      }
      if (body.length === 0) {
        o.reject('empty_body', 'webhook delivery without a body', from);
        return sendError(reply, 400, 'BUTLER_MQTT_EMPTY_BODY', 'the delivery has no body');
      }
      const outcome = await o.submit(tenant, body, from);
      switch (outcome.status) {
        case 'accepted':
        case 'duplicate':
          return reply.code(200).type(JSON_UTF8).send(JSON.stringify({ status: outcome.status }));
        case 'invalid':
          if (IGNORED.has(outcome.reason)) return reply.code(202).type(JSON_UTF8).send(JSON.stringify({ status: 'ignored', reason: outcome.reason, detail: outcome.detail }));
          return sendError(reply, 400, 'BUTLER_MQTT_INVALID_EVENT', `${outcome.reason}: ${outcome.detail}`);
        case 'refused':
          reply.header('retry-after', '30');
          return sendError(reply, 503, 'BUTLER_MQTT_NOT_ACCEPTED', `the event could not be stored (${outcome.reason}); deliver it again`);
      }
    },
  );
};
