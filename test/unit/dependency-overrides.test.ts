// package.json overrides two transitive dependencies with the previous major, whose engines include Node 20
// (the newer majors are the same API but declare Node >= 22, so `npm ci` on Node 20 warned EBADENGINE).
// These tests call each one the way the package that depends on it does, resolved from that package.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import Fastify from 'fastify';

const require = createRequire(import.meta.url);

describe('overridden dependencies', () => {
  it('cookie: fastify.inject (light-my-request) encodes request cookies', async () => {
    const app = Fastify();
    app.get('/echo', async (req) => ({ cookie: req.headers.cookie ?? null }));
    try {
      const res = await app.inject({ method: 'GET', url: '/echo', cookies: { session: 'a b', lang: 'sv' } });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { cookie: 'session=a%20b; lang=sv' });
    } finally {
      await app.close();
    }
  });

  it('content-disposition: the create() that @fastify/static calls for downloads', () => {
    const fromSwaggerUi = createRequire(require.resolve('@fastify/swagger-ui'));
    const fromStatic = createRequire(fromSwaggerUi.resolve('@fastify/static'));
    const { create } = fromStatic('content-disposition') as { create: (name: string) => string };
    assert.equal(create('report.pdf'), 'attachment; filename=report.pdf');
    assert.equal(create('annual report.pdf'), 'attachment; filename="annual report.pdf"');
    assert.equal(create('€ rates.txt'), `attachment; filename="? rates.txt"; filename*=UTF-8''%E2%82%AC%20rates.txt`);
  });
});
