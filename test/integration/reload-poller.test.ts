// The reloads API poller against the Qlik Cloud simulator through the real client: the bounded lookback
// of a first poll, paging newest first down to the cursor, oldest-first hand-over, and a cursor that
// does not move past a reload the pipeline refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki, type TestPki } from '../support/certs.ts';
import { CloudSimulator, buildCloudReload } from '../support/cloud-simulator.ts';
import { CloudClient } from '../../src/cloud/cloud-client.ts';
import { ReloadPoller } from '../../src/cloud/reload-poller.ts';
import { createLogger } from '../../src/observability/logger.ts';

const TOKEN = 'eyJhbGciOiJFUzM4NCJ9.poller-key.c2lnbmF0dXJl';
const NOW = Date.parse('2026-11-20T12:00:00.000Z');
const MIN = 60_000;
let pki: TestPki;
let sim: CloudSimulator;
let client: CloudClient;

const at = (minutesBefore: number) => new Date(NOW - minutesBefore * MIN).toISOString();

function add(id: string, endedMinutesAgo: number, status = 'SUCCEEDED'): void {
  sim.addReload(buildCloudReload({ id, appId: 'app-1', status, creationTime: at(endedMinutesAgo + 1), startTime: at(endedMinutesAgo + 0.5), endTime: at(endedMinutesAgo) }));
}

function rig(outcome: (id: string) => string = () => 'accepted') {
  let cursor: number | null = null;
  const handed: string[] = [];
  const poller = new ReloadPoller(
    { tenant: 'acme', intervalMs: 60_000, lookbackMs: 60 * MIN, overlapMs: 10 * MIN, pageSize: 5 },
    {
      client,
      cursor: { get: () => cursor, set: async (ms) => void (cursor = ms) },
      handOver: async (record) => {
        const id = (JSON.parse(record.toString()) as { id: string }).id;
        const status = outcome(id);
        if (status !== 'refused') handed.push(id);
        return status === 'refused' ? { status, reason: 'inbox_full', detail: 'the inbox holds 100 events' } : { status };
      },
      logger: createLogger({ level: 'error' }),
    },
  );
  return { poller, handed, cursor: () => cursor };
}

before(async () => {
  pki = await createTestPki();
  sim = await CloudSimulator.start({ pki, token: TOKEN });
  client = new CloudClient({ tenantUrl: sim.url, token: TOKEN, ca: pki.caCert, retries: 0 }, { logger: createLogger({ level: 'error' }) });
});

after(async () => {
  await client.close();
  await sim.stop();
  await pki.cleanup();
});

test('first poll: only reloads that ended within the lookback, oldest first, over several pages; the cursor is the latest end; the next poll stops at the first page older than the overlap', async () => {
  sim.reloads.clear();
  add('old-1', 300);
  add('old-2', 61);
  for (let i = 1; i <= 12; i++) add(`new-${String(i).padStart(2, '0')}`, 60 - i * 4);
  sim.addReload(buildCloudReload({ id: 'running', appId: 'app-1', status: 'RELOADING', creationTime: at(1), startTime: at(0.5), endTime: '' }));
  const r = rig();
  const result = await r.poller.pollOnce(NOW);
  assert.deepEqual(r.handed, ['new-01', 'new-02', 'new-03', 'new-04', 'new-05', 'new-06', 'new-07', 'new-08', 'new-09', 'new-10', 'new-11', 'new-12']);
  assert.deepEqual([result.ok, result.accepted], [true, 12]);
  assert.equal(r.cursor(), NOW - 12 * MIN);
  // 15 reloads, 5 per page, newest first: the old ones are on page 3, which ends the walk.
  assert.equal(sim.requestsTo('/api/v1/reloads', 'GET').length, 3);
  assert.deepEqual(sim.requestsTo('/api/v1/reloads', 'GET')[0]?.query, { limit: '5', log: 'false' });

  sim.clearRequests();
  add('later', 2, 'FAILED');
  r.handed.length = 0;
  await r.poller.pollOnce(NOW);
  // The overlap (10 minutes before the cursor) re-reads new-10..new-12; the pipeline sees them as duplicates.
  assert.deepEqual(r.handed, ['new-10', 'new-11', 'new-12', 'later']);
  assert.equal(r.cursor(), NOW - 2 * MIN);
  // Floor 22 minutes back: page 1 (running, later, new-12..new-10) reaches it; page 2 (new-09..new-05,
  // all created before it) ends the walk; page 3 is not read.
  assert.equal(sim.requestsTo('/api/v1/reloads', 'GET').length, 2);
});

test('a refused hand-over stops the poll and keeps the cursor at the last reload taken; the next poll hands over the rest', async () => {
  sim.reloads.clear();
  for (let i = 1; i <= 4; i++) add(`r${i}`, 50 - i * 10);
  let refuse = true;
  const r = rig((id) => (id === 'r3' && refuse ? 'refused' : 'accepted'));
  const first = await r.poller.pollOnce(NOW);
  assert.deepEqual([first.ok, r.handed], [false, ['r1', 'r2']]);
  assert.equal(r.cursor(), NOW - 30 * MIN);
  refuse = false;
  r.handed.length = 0;
  const second = await r.poller.pollOnce(NOW);
  assert.equal(second.ok, true);
  assert.deepEqual(r.handed, ['r1', 'r2', 'r3', 'r4']);
  assert.equal(r.cursor(), NOW - 10 * MIN);
});

test('Qlik Cloud answering 401 (a revoked key): the poll reports it and the cursor stays', async () => {
  sim.reloads.clear();
  add('r1', 5);
  const r = rig();
  sim.token = 'another-key';
  try {
    const result = await r.poller.pollOnce(NOW);
    assert.equal(result.ok, false);
    assert.match(result.error ?? '', /401/);
    assert.equal(r.cursor(), null);
  } finally {
    sim.token = TOKEN;
  }
});
