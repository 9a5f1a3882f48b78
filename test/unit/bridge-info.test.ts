// The bridge's own topics: what <root>/bridge/info and <root>/bridge/health carry, built from a config
// file on disk and statistics read at each tick; each payload fits the contract's schema.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BridgeInfo, enabledFeatures, type BridgeStats } from '../../src/alerts/bridge-info.ts';
import { BridgeHealth, BridgeInfo as BridgeInfoSchema } from '../../src/contract/schemas.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { OutboxFullError, type OutgoingMessage } from '../../src/store/types.ts';
import Value from 'typebox/value';
import { tempDir } from '../support/bridge.ts';
import { waitFor } from '../support/wait.ts';

const tmp = tempDir();
after(() => tmp.cleanup());

const logs: string[] = [];
const logger = createLogger({ level: 'info', secrets: [], pretty: false, destination: { write: (l: string) => logs.push(l) } });

function recordingSink() {
  const sent: OutgoingMessage[] = [];
  return { sent, enqueue: async (messages: OutgoingMessage[]) => void sent.push(...messages) };
}

const stats: BridgeStats = {
  outboxDepth: 7,
  outboxOldestAgeSeconds: 2.5,
  inboxDepth: 3,
  refused: 1,
  qrs: { reachable: false, lastError: 'QRS GET /qrs/task: connect ECONNREFUSED' },
  qlikCloud: null,
};

test('info: version, client id, features, SHA-256 of the config file bytes and start time; retained, at <root>/bridge/info', async () => {
  const file = path.join(tmp.dir, 'hash.yaml');
  writeFileSync(file, 'Butler:\n  logLevel: info\n');
  const sink = recordingSink();
  const part = new BridgeInfo(
    { topicRoot: 'site/a', healthIntervalSeconds: 0, retainInfo: true, version: '1.2.3', clientId: 'bridge-1', features: ['task_alerts', 'rest_publish'], configFile: file },
    { sink, stats: () => stats, logger, now: () => Date.parse('2026-05-01T10:00:00.000Z') },
  );
  await part.start();
  await part.stop();
  assert.deepEqual(
    sink.sent.map((m) => [m.topic, m.retain ?? false]),
    [
      ['site/a/bridge/info', true],
      ['site/a/bridge/health', false],
    ],
  );
  const info = JSON.parse(String(sink.sent[0]?.payload));
  assert.deepEqual(info, {
    version: '1.2.3',
    clientId: 'bridge-1',
    features: ['task_alerts', 'rest_publish'],
    // sha256sum of the bytes "Butler:\n  logLevel: info\n"
    configSha256: '611fe9dc45a7f86def00b110c0083aa9a73ce98e31602d1fd1c7d067eeb62428',
    startedAt: '2026-05-01T10:00:00.000Z',
  });
  assert.ok(Value.Check(BridgeInfoSchema, info), 'info fits the contract');
});

test('health: outbox, inbox, refusals, QRS and Qlik Cloud as read at the tick, uptime from the start', async () => {
  let now = Date.parse('2026-05-01T10:00:00.000Z');
  const file = path.join(tmp.dir, 'h.yaml');
  writeFileSync(file, 'Butler: {}\n');
  const sink = recordingSink();
  const part = new BridgeInfo(
    { topicRoot: 'r', healthIntervalSeconds: 0, retainInfo: true, version: '1', clientId: 'c', features: [], configFile: file },
    { sink, stats: () => stats, logger, now: () => now },
  );
  await part.start();
  now += 90_500;
  const health = await part.health();
  await part.stop();
  assert.deepEqual(health, {
    at: '2026-05-01T10:01:30.500Z',
    uptimeSeconds: 90,
    outbox: { depth: 7, oldestAgeSeconds: 2.5 },
    inbox: { depth: 3 },
    refused: 1,
    qrs: { reachable: false, lastError: 'QRS GET /qrs/task: connect ECONNREFUSED' },
    qlikCloud: null,
  });
  assert.ok(Value.Check(BridgeHealth, health), 'health fits the contract');
  assert.ok(Value.Check(BridgeHealth, JSON.parse(String(sink.sent[1]?.payload))));
});

test('health is sent again every interval until stop', async () => {
  const file = path.join(tmp.dir, 'i.yaml');
  writeFileSync(file, 'Butler: {}\n');
  const sink = recordingSink();
  const part = new BridgeInfo({ topicRoot: 'r', healthIntervalSeconds: 0.05, retainInfo: false, version: '1', clientId: 'c', features: [], configFile: file }, { sink, stats: () => stats, logger });
  await part.start();
  await waitFor(() => sink.sent.filter((m) => m.topic === 'r/bridge/health').length >= 3, 5000, 'three health messages');
  await part.stop();
  const count = sink.sent.length;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(sink.sent.length, count, 'nothing after stop');
  assert.equal(sink.sent[0]?.retain, false, 'info not retained when told so (Event Grid)');
});

test('an unreadable config file gives configSha256 null and one warning; a refused message is logged, not thrown', async () => {
  logs.length = 0;
  const part = new BridgeInfo(
    { topicRoot: 'r', healthIntervalSeconds: 0, retainInfo: true, version: '1', clientId: 'c', features: [], configFile: path.join(tmp.dir, 'missing.yaml') },
    { sink: { enqueue: async () => Promise.reject(new OutboxFullError('messages', 10, 10)) }, stats: () => stats, logger },
  );
  assert.equal(JSON.parse(JSON.stringify(part.info(null))).configSha256, null);
  await part.start();
  await part.stop();
  assert.equal(logs.filter((l) => l.includes('cannot read the config file')).length, 1);
  assert.equal(logs.filter((l) => l.includes('bridge info not queued: outbox full')).length, 1);
  assert.equal(logs.filter((l) => l.includes('bridge health not queued: outbox full')).length, 1);
});

test('enabled features follow the config switches', () => {
  const config = (yaml: string) => parseConfigText(`Butler:\n${yaml}`, '/etc/b.yaml').butler;
  assert.deepEqual(enabledFeatures(config('  logLevel: info\n')), []);
  assert.deepEqual(
    enabledFeatures(
      config(
        [
          '  mqttConfig: { enable: true, brokerHost: b, homeAssistant: { enable: true } }',
          '  udpServerConfig: { enable: true, sessionConnectionEvents: { enable: true } }',
          '  restServerConfig: { enable: true }',
          '  restServerEndpointsEnable: { mqttPublishMessage: true }',
          '',
        ].join('\n'),
      ),
    ),
    ['task_alerts', 'user_events', 'task_start_commands', 'rest_publish', 'home_assistant'],
  );
});
