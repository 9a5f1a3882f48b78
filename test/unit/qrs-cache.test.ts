// The QRS lookup cache on its own: TTL, the entry bound, coalescing of identical lookups in flight,
// what is not kept, the frozen shared answers, and the synchronous peek.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QrsCache, type QrsObjects } from '../../src/sense/qrs-cache.ts';
import type { UpstreamResult } from '../../src/net/upstream-errors.ts';
import { waitFor } from '../support/wait.ts';

const TASK = '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f';

/** A loader that answers when told to, counting calls. */
function deferredLoader() {
  const calls: ((r: UpstreamResult<QrsObjects>) => void)[] = [];
  const load = () => new Promise<UpstreamResult<QrsObjects>>((resolve) => calls.push(resolve));
  return { load, calls };
}

const found = (id: string): UpstreamResult<QrsObjects> => ({ ok: true, value: [{ id, name: `Task ${id}`, tags: [{ name: 'Finance' }] }] });

test('identical lookups in flight share one load; the answer is then served from the cache', async () => {
  const cache = new QrsCache({ ttlMs: 60_000, maxEntries: 10 });
  const { load, calls } = deferredLoader();
  const pending = [cache.get('task/full', TASK, load), cache.get('task/full', TASK, load), cache.get('task/full', TASK, load)];
  assert.equal(calls.length, 1);
  assert.equal(cache.peek('task/full', TASK), undefined, 'nothing to peek at while the load runs');
  calls[0]!(found(TASK));
  const results = await Promise.all(pending);
  for (const r of results) assert.deepEqual(r, { ok: true, value: [{ id: TASK, name: `Task ${TASK}`, tags: [{ name: 'Finance' }] }] });
  const peeked = cache.peek('task/full', TASK);
  assert.ok(peeked);
  assert.equal(results[0]!.ok && results[0]!.value, peeked, 'every caller and the peek get the one shared object');
  const again = await cache.get('task/full', TASK, load);
  assert.equal(again.ok && again.value, peeked);
  assert.equal(calls.length, 1, 'no second load');
  assert.equal(cache.peek('task', TASK), undefined, 'another endpoint is another entry');
});

test('shared answers are frozen all the way down', async () => {
  const cache = new QrsCache({ ttlMs: 60_000, maxEntries: 10 });
  const result = await cache.get('app/full', 'a1', async () => found('a1'));
  assert.ok(result.ok);
  assert.throws(() => {
    result.value[0]!['name'] = 'changed';
  }, TypeError);
  assert.throws(() => {
    (result.value[0]!['tags'] as { name: string }[])[0]!.name = 'changed';
  }, TypeError);
  assert.throws(() => {
    result.value.push({});
  }, TypeError);
});

test('failures and empty answers are not kept', async () => {
  const cache = new QrsCache({ ttlMs: 60_000, maxEntries: 10 });
  let loads = 0;
  const failing = async (): Promise<UpstreamResult<QrsObjects>> => {
    loads++;
    return { ok: false, error: { kind: 'http', status: 500, message: 'QRS GET task answered HTTP 500' } };
  };
  assert.equal((await cache.get('task', TASK, failing)).ok, false);
  assert.equal((await cache.get('task', TASK, failing)).ok, false);
  const empty = async (): Promise<UpstreamResult<QrsObjects>> => {
    loads++;
    return { ok: true, value: [] };
  };
  assert.deepEqual(await cache.get('task', TASK, empty), { ok: true, value: [] });
  assert.deepEqual(await cache.get('task', TASK, empty), { ok: true, value: [] });
  assert.equal(loads, 4);
  assert.equal(cache.size, 0);
});

test('a rejected load is not stuck in flight', async () => {
  const cache = new QrsCache({ ttlMs: 60_000, maxEntries: 10 });
  await assert.rejects(cache.get('task', TASK, () => Promise.reject(new Error('boom'))), /boom/);
  assert.deepEqual(await cache.get('task', TASK, async () => found(TASK)), found(TASK));
});

test('an entry expires after the TTL', async () => {
  const cache = new QrsCache({ ttlMs: 100, maxEntries: 10 });
  const stored = Date.now();
  await cache.get('task', TASK, async () => found(TASK));
  assert.ok(cache.peek('task', TASK), 'kept right after the load');
  await waitFor(() => cache.peek('task', TASK) === undefined, 2_000, 'the entry to expire');
  assert.ok(Date.now() - stored >= 100, 'not before the TTL');
  assert.equal(cache.size, 0, 'an expired entry found by a peek is removed');
});

test('at most maxEntries are kept, the oldest stored goes first', async () => {
  const cache = new QrsCache({ ttlMs: 60_000, maxEntries: 2 });
  for (const id of ['a', 'b', 'c']) await cache.get('app/full', id, async () => found(id));
  assert.equal(cache.size, 2);
  assert.equal(cache.peek('app/full', 'a'), undefined);
  assert.ok(cache.peek('app/full', 'b'));
  assert.ok(cache.peek('app/full', 'c'));
});

test('a TTL of 0 keeps nothing but still coalesces', async () => {
  const cache = new QrsCache({ ttlMs: 0, maxEntries: 10 });
  const { load, calls } = deferredLoader();
  const both = [cache.get('task', TASK, load), cache.get('task', TASK, load)];
  assert.equal(calls.length, 1);
  calls[0]!(found(TASK));
  await Promise.all(both);
  assert.equal(cache.peek('task', TASK), undefined);
  assert.equal(cache.size, 0);
});
