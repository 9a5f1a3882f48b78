// Browser-facing protections of the HTTP server, as Fastify hooks on the root instance: the Host
// allow-list (a page on another site that re-points its DNS name at this machine — DNS rebinding — sends
// its own name as Host and is refused), `X-Content-Type-Options: nosniff` on every answer, and a
// Content-Security-Policy on the API documentation page (the status page sets its own).
import os from 'node:os';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { STATUS_CODES } from 'node:http';

export interface HttpSecurityOptions {
  /** The address the server listens on (restServerConfig.serverHost). */
  bindHost: string;
  /** restServerConfig.allowedHosts: extra host names; "*" switches the check off. */
  allowedHosts: string[];
  logger: Logger;
  metrics: Metrics;
}

/** Swagger UI loads its scripts and styles from its own static folder; React sets inline styles. */
export const DOCUMENTATION_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

const WILDCARD_BIND = new Set(['0.0.0.0', '::', '']);

/** Lower-case host name without port and brackets; null when the header is not a plausible host. */
export function hostOf(header: string): string | null {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    return h.slice(1, end);
  }
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(h);
  if (!m || m[1] === '') return null;
  return (m[1] as string).replace(/\.$/, '');
}

/**
 * The host names a request may carry: localhost and the loopback addresses, the bind address, and what
 * the configuration adds. A server bound to every interface (0.0.0.0 or ::) also answers to this
 * machine's host name and its interface addresses, which is how other machines reach it.
 */
export function allowedHostSet(bindHost: string, configured: string[]): Set<string> | null {
  if (configured.includes('*')) return null;
  const set = new Set(['localhost', '127.0.0.1', '::1']);
  const bind = bindHost.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (WILDCARD_BIND.has(bind)) {
    set.add(os.hostname().toLowerCase());
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) set.add(a.address.toLowerCase().replace(/%.*$/, ''));
  } else {
    set.add(bind);
  }
  for (const h of configured) {
    const host = hostOf(h);
    if (host) set.add(host);
  }
  return set;
}

function refuse(reply: FastifyReply, statusCode: number, code: string, message: string): FastifyReply {
  return reply
    .code(statusCode)
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }));
}

export function registerHttpSecurity(f: FastifyInstance, o: HttpSecurityOptions): void {
  const allowed = allowedHostSet(o.bindHost, o.allowedHosts);
  const warned = new Set<string>();
  if (allowed) {
    f.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const header = request.headers.host;
      // HTTP/1.0 clients may send no Host; browsers always do, so there is nothing to rebind.
      if (header === undefined) return;
      const host = hostOf(header);
      if (host !== null && allowed.has(host)) return;
      o.metrics.eventsRejected.inc({ source: 'http', reason: 'host_not_allowed' });
      const shown = header.length > 100 ? `${header.slice(0, 97)}...` : header;
      if (!warned.has(shown) && warned.size < 100) {
        warned.add(shown);
        o.logger.warn({ host: shown, url: request.url }, `HTTP request refused: Host ${JSON.stringify(shown)} is not in restServerConfig.allowedHosts (logged once per host)`);
      }
      return refuse(
        reply,
        421,
        'BUTLER_MQTT_HOST_NOT_ALLOWED',
        `the Host ${JSON.stringify(shown)} is not one this server answers to; add it to restServerConfig.allowedHosts`,
      );
    });
  }
  f.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    const url = request.url;
    if ((url === '/documentation' || url.startsWith('/documentation/') || url.startsWith('/documentation?')) && !reply.hasHeader('content-security-policy')) {
      reply.header('content-security-policy', DOCUMENTATION_CSP);
    }
    return payload;
  });
}
