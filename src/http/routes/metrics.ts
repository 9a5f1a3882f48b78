// GET /metrics: the Prometheus text exposition of every metric of this bridge (one registry per App,
// no global one). Read-only and secret-free, so it needs no token, like /health.
import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../../observability/metrics.ts';

export interface MetricsRouteOptions extends Record<string, unknown> {
  metrics: Metrics;
}

export const metricsRoutes: FastifyPluginAsync<MetricsRouteOptions> = async (scope, o) => {
  const registry = o.metrics.registry;
  scope.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format 0.0.4).',
        tags: ['operations'],
        produces: ['text/plain'],
      },
    },
    async (_request, reply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    },
  );
};
