// GET /asyncapi.json: the AsyncAPI 3 document of this bridge's MQTT topics, built from the message
// contract (src/contract/) with the running config, so its addresses are the topics really used.
// Secret-free (topics, broker address, QoS), so it needs no token, like /health.
import type { FastifyPluginAsync } from 'fastify';
import { JSON_UTF8 } from '../server.ts';

export interface AsyncApiRouteOptions extends Record<string, unknown> {
  /** Builds the document; called at the first request (the config does not change while running). */
  document: () => Record<string, unknown>;
}

export const asyncApiRoutes: FastifyPluginAsync<AsyncApiRouteOptions> = async (scope, o) => {
  let body: string | null = null;
  scope.get(
    '/asyncapi.json',
    { schema: { summary: 'AsyncAPI 3.0.0 document of the MQTT topics this bridge publishes and reads.', tags: ['operations'] } },
    async (_request, reply) => reply.type(JSON_UTF8).send((body ??= JSON.stringify(o.document()))),
  );
};
