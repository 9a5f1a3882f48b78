// Butler's REST publish for Sense load scripts (PUT /v4/mqttpublishmessage), on the HTTP server. The
// caller waits for its answer, so a refusal (full outbox, bad topic) is its status code, not a wait.
import type { Feature } from './feature.ts';
import { publishRoutes } from '../http/routes/publish.ts';

export const restPublish: Feature = {
  name: 'REST publish',
  enabled: (b) => b.restServerConfig.enable && b.restServerEndpointsEnable.mqttPublishMessage,
  build(ctx) {
    const http = ctx.http;
    if (!http) return [];
    const r = ctx.config.butler.restServerConfig;
    http.register(publishRoutes, {
      outbox: ctx.delivery?.outbox ?? null,
      delivery: ctx.delivery?.publisher ?? null,
      allowedTopicPrefixes: r.publishAllowedTopicPrefixes,
      waitTimeoutMs: r.waitTimeoutMs,
      tokenRequired: Boolean(r.apiToken),
      hooks: { rateLimit: http.rateLimit, requireToken: http.requireToken },
      logger: ctx.logger,
      metrics: ctx.metrics,
      activity: ctx.activity,
    });
    return [];
  },
};
