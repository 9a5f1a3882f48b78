// PUT /v4/mqttpublishmessage: Butler's REST publish for Sense load scripts, also reachable
// as POST with `X-HTTP-Method-Override: PUT`. Answers 201 with the body echoed once the message is
// durably in the outbox (or, with ?wait=true, acknowledged by the broker); every refusal is a clear status.
import Type from 'typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { checkDeliverableTopic } from '../../mqtt/topics.ts';
import { MessageRejectedError, OutboxFullError, type OutgoingMessage } from '../../store/types.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ActivityLog } from '../../observability/activity.ts';
import { JSON_UTF8, sendError, type RequestHook } from '../server.ts';

export const PUBLISH_PATH = '/v4/mqttpublishmessage';
const SOURCE = 'rest';

export interface PublishRouteOptions extends Record<string, unknown> {
  /** null when MQTT is disabled: every publish answers 503. */
  outbox: { enqueue(messages: OutgoingMessage[]): Promise<number[]> } | null;
  delivery: { waitForDelivery(ids: number[], timeoutMs: number): Promise<void> } | null;
  /** Empty = any topic. */
  allowedTopicPrefixes: string[];
  waitTimeoutMs: number;
  /** Only for the OpenAPI document. */
  tokenRequired: boolean;
  hooks: { rateLimit: RequestHook; requireToken: RequestHook };
  logger: Logger;
  metrics: Metrics;
  /** The status page's recent activity (optional). */
  activity?: ActivityLog;
}

// Butler's body schema (topic and message strings, both required). Validation is Fastify's default
// Ajv, as in Butler: coerceTypes turns a number or null message into a string; extra keys are kept.
const PublishBody = Type.Object(
  {
    topic: Type.String({ description: 'Topic to which the message is published. No wildcards (+, #).', examples: ['qliksense/new_data_notification/sales'] }),
    message: Type.String({
      description: 'The message: any text (JSON, key=value pairs, plain text …), published as UTF-8 bytes.',
      examples: ['dt=20201028'],
    }),
  },
  { additionalProperties: true },
);

const PublishQuery = Type.Object(
  {
    wait: Type.Optional(
      Type.Boolean({ default: false, description: 'true: answer only once the broker acknowledged the message (504 when it did not within restServerConfig.waitTimeoutMs).' }),
    ),
  },
  { additionalProperties: true },
);

const ErrorBody = (description: string) =>
  Type.Object({ statusCode: Type.Integer(), code: Type.String(), error: Type.String(), message: Type.String() }, { description });

type Body = { topic: string; message: string } & Record<string, unknown>;
type Query = { wait?: boolean };

/** The refusal for a topic the broker would not take: [metric reason, message], or null. */
function topicProblem(topic: string): [string, string] | null {
  const check = checkDeliverableTopic(topic);
  if (check.ok) return null;
  if (topic.length === 0) return ['invalid_topic', 'body/topic must not be empty'];
  if (topic.includes('+') || topic.includes('#')) return ['invalid_topic', 'body/topic must not contain the MQTT wildcards + or #'];
  if (topic.startsWith('$')) return ['reserved_topic', `body/topic must not start with "$": ${check.reason}`];
  return ['invalid_topic', `body/topic is not a topic a message can be published to: ${check.reason}`];
}

export const publishRoutes: FastifyPluginAsync<PublishRouteOptions> = async (scope, o) => {
  const { metrics, logger } = o;

  const schema = (method: 'PUT' | 'POST') => ({
    summary: method === 'PUT' ? 'Publish a message to an MQTT topic.' : 'Publish a message to an MQTT topic (POST with X-HTTP-Method-Override: PUT).',
    description:
      method === 'PUT'
        ? 'Stores the message in the durable outbox and answers 201 with the request body. Compatible with Butler\'s endpoint.'
        : 'The same as PUT, for clients that can only send POST (Qlik Sense load scripts through the REST connector). Without the header the route answers 404.',
    tags: ['mqtt'],
    ...(method === 'POST'
      ? { headers: Type.Object({ 'x-http-method-override': Type.Optional(Type.String({ description: 'Must be PUT.' })) }, { additionalProperties: true }) }
      : {}),
    body: PublishBody,
    querystring: PublishQuery,
    ...(o.tokenRequired ? { security: [{ bearerToken: [] as string[] }, { apiTokenHeader: [] as string[] }] as Record<string, string[]>[] } : {}),
    response: {
      201: { ...PublishBody, description: 'Stored (or, with wait=true, delivered); the request body is echoed.' },
      400: ErrorBody('Invalid body or topic: the topic must be a string, with no wildcards, not starting with "$", at most 100 levels and 65,535 bytes.'),
      401: ErrorBody('API token missing or wrong.'),
      403: ErrorBody('Topic outside restServerConfig.publishAllowedTopicPrefixes.'),
      415: ErrorBody('Content-Type is not application/json (FST_ERR_CTP_INVALID_MEDIA_TYPE).'),
      421: ErrorBody('The Host header is not in restServerConfig.allowedHosts.'),
      429: Type.Object({ statusCode: Type.Integer(), error: Type.String(), message: Type.String() }, { description: 'Rate limit exceeded.' }),
      503: ErrorBody('MQTT is disabled.'),
      504: ErrorBody('wait=true: not acknowledged by the broker in time (the message stays queued and will be delivered).'),
      507: ErrorBody('The outbox is full; the message was not stored.'),
    },
  });

  const handler = async (request: FastifyRequest<{ Body: Body; Querystring: Query }>, reply: FastifyReply) => {
    const body = request.body;
    metrics.eventsReceived.inc({ source: SOURCE });
    const reject = (status: number, code: string, reason: string, message: string) => {
      metrics.eventsRejected.inc({ source: SOURCE, reason });
      logger.info({ status, topic: body.topic }, `REST publish refused (${status}): ${message}`);
      o.activity?.event({ source: SOURCE, summary: `publish to ${body.topic}`, rejected: `${status}: ${message}` });
      return sendError(reply, status, code, message);
    };

    if (!o.outbox) return reject(503, 'BUTLER_MQTT_DISABLED', 'mqtt_disabled', 'MQTT is disabled (Butler.mqttConfig.enable is false): nothing can be published');
    const problem = topicProblem(body.topic);
    if (problem) return reject(400, 'FST_ERR_VALIDATION', problem[0], problem[1]);
    if (o.allowedTopicPrefixes.length > 0 && !o.allowedTopicPrefixes.some((p) => body.topic.startsWith(p))) {
      return reject(403, 'BUTLER_MQTT_TOPIC_NOT_ALLOWED', 'topic_not_allowed', `topic ${JSON.stringify(body.topic)} is not under any of restServerConfig.publishAllowedTopicPrefixes`);
    }

    let ids: number[];
    try {
      ids = await o.outbox.enqueue([{ topic: body.topic, payload: body.message, kind: SOURCE }]);
    } catch (err) {
      if (err instanceof OutboxFullError) return reject(507, 'BUTLER_MQTT_OUTBOX_FULL', 'outbox_full', err.message);
      if (err instanceof MessageRejectedError) return reject(400, 'BUTLER_MQTT_MESSAGE_REJECTED', err.reason, err.message);
      throw err;
    }
    metrics.eventsAccepted.inc({ source: SOURCE });
    o.activity?.messages(o.activity.event({ source: SOURCE, summary: `publish to ${body.topic}` }), ids, [body.topic]);
    logger.debug({ topic: body.topic, bytes: Buffer.byteLength(body.message), id: ids[0] }, 'REST publish stored');

    if (request.query.wait === true && o.delivery) {
      try {
        await o.delivery.waitForDelivery(ids, o.waitTimeoutMs);
      } catch {
        logger.info({ topic: body.topic, id: ids[0] }, `REST publish (wait=true): not acknowledged within ${o.waitTimeoutMs} ms; it stays queued`);
        return sendError(
          reply,
          504,
          'BUTLER_MQTT_DELIVERY_TIMEOUT',
          `the message is stored but the broker did not acknowledge it within ${o.waitTimeoutMs} ms; it stays queued and will be delivered when the broker takes it`,
        );
      }
    }
    // As Butler: the validated body, re-serialised (a string is sent as is, not through the 201 schema).
    return reply.code(201).type(JSON_UTF8).send(JSON.stringify(body));
  };

  const requireOverride: RequestHook = async (request, reply) => {
    const v = request.headers['x-http-method-override'];
    if (typeof v === 'string' && v.trim().toUpperCase() === 'PUT') return;
    reply.callNotFound();
    return reply;
  };

  // Schema validation coerces a number or boolean topic to a string ({"topic": 42} would publish to "42");
  // a topic must be written as a string, so this runs before the coercion. (null becomes "" and is refused
  // as an empty topic.)
  const requireStringTopic = async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as Record<string, unknown> | null | undefined;
    if (body === null || typeof body !== 'object' || Array.isArray(body) || !('topic' in body) || typeof body.topic === 'string' || body.topic === null) return;
    metrics.eventsReceived.inc({ source: SOURCE });
    metrics.eventsRejected.inc({ source: SOURCE, reason: 'invalid_topic' });
    const message = `body/topic must be a string, got ${Array.isArray(body.topic) ? 'a list' : typeof body.topic === 'object' ? 'an object' : typeof body.topic}`;
    logger.info({ status: 400 }, `REST publish refused (400): ${message}`);
    o.activity?.event({ source: SOURCE, summary: 'publish', rejected: `400: ${message}` });
    return sendError(reply, 400, 'FST_ERR_VALIDATION', message);
  };

  // Bodies Fastify itself refuses (parsing, schema, size) never reach the handler; count them here.
  scope.addHook('onError', async (_request, _reply, error) => {
    const code = (error as { code?: string }).code ?? '';
    if (!code.startsWith('FST_ERR_CTP_') && code !== 'FST_ERR_VALIDATION') return;
    metrics.eventsReceived.inc({ source: SOURCE });
    metrics.eventsRejected.inc({ source: SOURCE, reason: code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large' : 'invalid_body' });
  });

  scope.route<{ Body: Body; Querystring: Query }>({ method: 'PUT', url: PUBLISH_PATH, schema: schema('PUT'), onRequest: [o.hooks.rateLimit, o.hooks.requireToken], preValidation: requireStringTopic, handler });
  scope.route<{ Body: Body; Querystring: Query }>({
    method: 'POST',
    url: PUBLISH_PATH,
    schema: schema('POST'),
    onRequest: [requireOverride, o.hooks.rateLimit, o.hooks.requireToken],
    preValidation: requireStringTopic,
    handler,
  });
};
