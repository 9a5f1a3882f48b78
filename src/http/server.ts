// The HTTP server (Fastify): liveness and readiness, the OpenAPI document and UI, plain or TLS. The
// composition root builds it when restServerConfig.enable is on (also when MQTT is off: health, 503s);
// features add their routes with `http.register(plugin, opts)` (a Fastify plugin, encapsulated) before
// it listens, reusing `http.rateLimit` / `http.requireToken` as onRequest hooks where they need them.
import { packageVersion } from '../package-root.ts';
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { registerHttpSecurity } from './security.ts';
import { readPem } from '../mqtt/connection.ts';

export const JSON_UTF8 = 'application/json; charset=utf-8';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** File paths (already resolved); null = plain HTTP. */
  tls: { cert: string; key: string; ca: string } | null;
  bodyLimitBytes: number;
  rateLimitPerMinute: number;
  /** '' = no token needed. */
  apiToken: string;
  /** restServerConfig.allowedHosts (Host header allow-list additions). */
  allowedHosts?: string[];
}

export interface HttpServerDeps {
  logger: Logger;
  metrics: Metrics;
  readiness: () => { ready: boolean; reasons: string[] };
}

export type RequestHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** Sends an error in Fastify's own shape: statusCode, code, error, message. */
export function sendError(reply: FastifyReply, statusCode: number, code: string, message: string): FastifyReply {
  const body = JSON.stringify({ statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message });
  return reply.code(statusCode).type(JSON_UTF8).send(body);
}

/**
 * Per-client fixed one-minute windows (the counting @fastify/rate-limit does by default): a window
 * opens at a client's first request and allows `max` requests until it closes.
 */
export class FixedWindowLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private lastSweep = 0;

  constructor(
    readonly max: number,
    readonly windowMs: number,
  ) {}

  hit(key: string, now = Date.now()): { allowed: boolean; remaining: number; resetSeconds: number } {
    if (now - this.lastSweep >= this.windowMs) {
      this.lastSweep = now;
      for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
    }
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + this.windowMs };
      this.windows.set(key, w);
    }
    w.count += 1;
    return { allowed: w.count <= this.max, remaining: Math.max(0, this.max - w.count), resetSeconds: Math.ceil((w.resetAt - now) / 1000) };
  }
}

/** Per-request lines at debug (a load script may call many times a minute); errors keep Fastify's levels. */
class QuietRequestLog extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ method: request.method, url: request.url }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) super.requestCompleted(error, request, reply);
    else reply.log.debug({ statusCode: reply.statusCode, responseTime: reply.elapsedTime }, 'request completed');
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.debug({ method: request.method, url: request.url }, 'route not found');
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}


export class HttpServer {
  readonly fastify: FastifyInstance;
  /** onRequest hook: per-client rate limit (restServerConfig.rateLimitPerMinute), 429 as @fastify/rate-limit answers. */
  readonly rateLimit: RequestHook;
  /** onRequest hook: restServerConfig.apiToken, when set (401 otherwise). */
  readonly requireToken: RequestHook;
  private readonly limiter: FixedWindowLimiter;
  private listening = false;

  constructor(
    private readonly options: HttpServerOptions,
    private readonly deps: HttpServerDeps,
  ) {
    const tls = options.tls;
    const https = tls
      ? { cert: readPem(tls.cert, 'HTTPS server certificate'), key: readPem(tls.key, 'HTTPS server key'), ...(tls.ca ? { ca: readPem(tls.ca, 'HTTPS CA certificate') } : {}) }
      : null;
    this.fastify = Fastify({
      ...(https ? { https } : {}),
      bodyLimit: options.bodyLimitBytes,
      loggerInstance: deps.logger.child({ part: 'http' }),
      logController: new QuietRequestLog(),
    }) as unknown as FastifyInstance;

    this.limiter = new FixedWindowLimiter(options.rateLimitPerMinute, 60_000);
    this.rateLimit = async (request, reply) => {
      const r = this.limiter.hit(request.ip);
      reply.header('x-ratelimit-limit', this.limiter.max).header('x-ratelimit-remaining', r.remaining).header('x-ratelimit-reset', r.resetSeconds);
      if (r.allowed) return;
      deps.metrics.eventsRejected.inc({ source: 'rest', reason: 'rate_limited' });
      reply.header('retry-after', r.resetSeconds);
      // No `code`: @fastify/rate-limit throws a plain Error with statusCode 429.
      const body = JSON.stringify({ statusCode: 429, error: 'Too Many Requests', message: 'Rate limit exceeded, retry in 1 minute' });
      return reply.code(429).type(JSON_UTF8).send(body);
    };
    const token = options.apiToken;
    this.requireToken = async (request, reply) => {
      if (!token) return;
      const auth = request.headers.authorization;
      const bearer = typeof auth === 'string' && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() : undefined;
      const header = request.headers['x-api-token'];
      const given = bearer ?? (typeof header === 'string' ? header : undefined);
      if (given !== undefined && tokenMatches(given, token)) return;
      deps.metrics.eventsRejected.inc({ source: 'rest', reason: 'unauthorized' });
      reply.header('www-authenticate', 'Bearer');
      return sendError(reply, 401, 'BUTLER_MQTT_UNAUTHORIZED', given === undefined ? 'an API token is required: send "Authorization: Bearer <token>" or "X-Api-Token: <token>"' : 'the API token is wrong');
    };

    const f = this.fastify;
    registerHttpSecurity(f, { bindHost: options.host, allowedHosts: options.allowedHosts ?? [], logger: deps.logger, metrics: deps.metrics });
    f.addHook('onResponse', async (request, reply) => {
      deps.metrics.restRequests.inc({ route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
    });
    void f.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'butler-mqtt REST API',
          description: 'Publish MQTT messages from Qlik Sense load scripts, and check the health of butler-mqtt.',
          version: packageVersion(),
        },
        components: {
          securitySchemes: {
            bearerToken: { type: 'http', scheme: 'bearer', description: 'restServerConfig.apiToken, when set' },
            apiTokenHeader: { type: 'apiKey', in: 'header', name: 'X-Api-Token', description: 'restServerConfig.apiToken, when set' },
          },
        },
      },
    });
    void f.register(swaggerUi, { routePrefix: '/documentation' });
    void f.register(async (scope) => {
      scope.get('/health', { schema: { summary: 'Liveness: the process answers.', tags: ['operations'], response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, async (_req, reply) =>
        reply.type(JSON_UTF8).send(JSON.stringify({ status: 'ok' })),
      );
      scope.get(
        '/ready',
        {
          schema: {
            summary: 'Readiness: connected to the MQTT broker and the outbox below its high-water mark.',
            tags: ['operations'],
            response: {
              200: { type: 'object', properties: { ready: { type: 'boolean' }, reasons: { type: 'array', items: { type: 'string' } } } },
              503: { type: 'object', properties: { ready: { type: 'boolean' }, reasons: { type: 'array', items: { type: 'string' } } } },
            },
          },
        },
        async (_req, reply) => {
          const r = deps.readiness();
          return reply.code(r.ready ? 200 : 503).type(JSON_UTF8).send(JSON.stringify({ ready: r.ready, reasons: r.reasons }));
        },
      );
    });
  }

  /** Adds routes (a Fastify plugin) before the server listens. */
  register<O extends Record<string, unknown>>(plugin: FastifyPluginAsync<O>, opts: O): void {
    if (this.listening) throw new Error('routes must be added before the HTTP server starts');
    void this.fastify.register(plugin, opts);
  }

  /** The port listened on (the configured one, or the one the OS chose for port 0). */
  get port(): number {
    const a = this.fastify.server.address();
    return a && typeof a === 'object' ? a.port : this.options.port;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${this.port}`;
  }

  async start(): Promise<void> {
    this.listening = true;
    // One line, in Fastify's own log call (its default text would come in addition to ours).
    await this.fastify.listen({ host: this.options.host, port: this.options.port, listenTextResolver: (address) => `HTTP server listening on ${address} (API documentation at ${address}/documentation)` });
  }

  async stop(): Promise<void> {
    await this.fastify.close();
  }
}
