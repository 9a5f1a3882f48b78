// CloudClient.listAll against a real local HTTPS server serving a paged list the way Qlik Cloud does
// (`data` and `links.next.href`, an absolute URL): every page followed, the API key sent on each,
// and next links that lead elsewhere, repeat or never end refused.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudClient } from '../../src/cloud/cloud-client.ts';
import { silentLogger } from '../../src/observability/logger.ts';

const TOKEN = 'paging-test-api-key-4f2a';

let pki: TestPki;
let tenant: Server;
let other: Server;
let tenantPort = 0;
let otherPort = 0;
const sockets = new Set<Socket>();
let seen: { url: string; authorization: string | undefined }[] = [];
let otherRequests = 0;
/** Answers by request target (path and query). */
let pages = new Map<string, unknown>();
const clients: CloudClient[] = [];

function client(tenantUrl = `https://localhost:${tenantPort}`): CloudClient {
  const c = new CloudClient({ tenantUrl, token: TOKEN, ca: pki.caCert, retries: 0, timeoutMs: 2_000 }, { logger: silentLogger() });
  clients.push(c);
  return c;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

const reload = (n: number) => ({ id: `r${n}`, appId: 'a1', status: 'FAILED' });

before(async () => {
  pki = await createTestPki();
  ({ server: tenant, port: tenantPort } = await listen((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers['authorization'] });
    const body = pages.get(req.url ?? '');
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"title":"Not Found","code":"HTTP-404"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }));
  ({ server: other, port: otherPort } = await listen((_req, res) => {
    otherRequests++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"data":[]}');
  }));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const s of sockets) s.destroy();
  await Promise.all([tenant, other].map((s) => new Promise((r) => s.close(r))));
  await pki.cleanup();
});

beforeEach(() => {
  seen = [];
  otherRequests = 0;
  pages = new Map();
});

test('every page is followed by links.next.href, with the API key on each request', async () => {
  const base = `https://localhost:${tenantPort}`;
  pages.set('/api/v1/reloads?appId=a1&limit=2', { data: [reload(1), reload(2)], links: { self: { href: `${base}/api/v1/reloads?appId=a1&limit=2` }, next: { href: `${base}/api/v1/reloads?appId=a1&limit=2&next=c2` } } });
  pages.set('/api/v1/reloads?appId=a1&limit=2&next=c2', { data: [reload(3), reload(4)], links: { next: { href: '/api/v1/reloads?appId=a1&limit=2&next=c4' } } });
  pages.set('/api/v1/reloads?appId=a1&limit=2&next=c4', { data: [reload(5)], links: { self: { href: `${base}/api/v1/reloads?appId=a1&limit=2&next=c4` } } });
  const result = await client().listAll('/api/v1/reloads?appId=a1&limit=2', 'reloads');
  assert.deepEqual(result, { ok: true, value: [reload(1), reload(2), reload(3), reload(4), reload(5)] });
  assert.deepEqual(seen, [
    { url: '/api/v1/reloads?appId=a1&limit=2', authorization: `Bearer ${TOKEN}` },
    { url: '/api/v1/reloads?appId=a1&limit=2&next=c2', authorization: `Bearer ${TOKEN}` },
    { url: '/api/v1/reloads?appId=a1&limit=2&next=c4', authorization: `Bearer ${TOKEN}` },
  ]);
});

test('a tenant URL with a path prefix is kept on the first page; next links are taken as given', async () => {
  pages.set('/gw/api/v1/reloads', { data: [reload(1)], links: { next: { href: `https://localhost:${tenantPort}/gw/api/v1/reloads?next=x` } } });
  pages.set('/gw/api/v1/reloads?next=x', { data: [reload(2)], links: { next: null } });
  const result = await client(`https://localhost:${tenantPort}/gw/`).listAll('/api/v1/reloads', 'reloads');
  assert.deepEqual(result, { ok: true, value: [reload(1), reload(2)] });
});

test('a next link to another origin is refused and the API key is not sent there', async () => {
  pages.set('/api/v1/reloads', { data: [reload(1)], links: { next: { href: `https://localhost:${otherPort}/api/v1/reloads?next=x` } } });
  const cloud = client();
  const result = await cloud.listAll('/api/v1/reloads', 'reloads');
  assert.deepEqual(result, {
    ok: false,
    error: { kind: 'parse', message: `Qlik Cloud GET reloads: unexpected answer, links.next.href leads to another origin (https://localhost:${otherPort})` },
  });
  assert.equal(otherRequests, 0);
  assert.equal(cloud.health().reachable, true);
});

test('a next link that repeats a page, too many pages, or a page without data is an error', async () => {
  pages.set('/api/v1/reloads', { data: [reload(1)], links: { next: { href: '/api/v1/reloads?next=b' } } });
  pages.set('/api/v1/reloads?next=b', { data: [reload(2)], links: { next: { href: '/api/v1/reloads' } } });
  const loop = await client().listAll('/api/v1/reloads', 'reloads');
  assert.deepEqual(loop, { ok: false, error: { kind: 'parse', message: 'Qlik Cloud GET reloads: unexpected answer, links.next.href repeats a page already read' } });
  assert.equal(seen.length, 2);

  seen = [];
  const bounded = await client().listAll('/api/v1/reloads', 'reloads', 1);
  assert.deepEqual(bounded, { ok: false, error: { kind: 'parse', message: 'Qlik Cloud GET reloads: unexpected answer, more than 1 pages' } });
  assert.equal(seen.length, 1);

  pages.set('/api/v1/webhooks', { items: [] });
  const noData = await client().listAll('/api/v1/webhooks', 'webhooks');
  assert.deepEqual(noData, { ok: false, error: { kind: 'parse', message: 'Qlik Cloud GET webhooks: unexpected answer, expected "data" to be an array of objects' } });
});

test('an error answer on a later page is the result, with the page\'s status', async () => {
  pages.set('/api/v1/reloads', { data: [reload(1)], links: { next: { href: '/api/v1/reloads?next=gone' } } });
  const result = await client().listAll('/api/v1/reloads', 'reloads');
  assert.deepEqual(result, { ok: false, error: { kind: 'http', status: 404, message: 'Qlik Cloud GET reloads answered HTTP 404: Not Found (HTTP-404)' } });
});
