// The Windows service monitor end to end below the outbox: a stand-in sc.exe on the runner's PATH
// replays scripted service states, and the monitor's real spawn → parse → state → sink path turns
// them into P9/P10/P11 messages; outages and configuration errors are logged once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServiceMonitor, type ServiceMonitorOptions } from '../../src/alerts/service-monitor.ts';
import { parseSchedule } from '../../src/alerts/schedule.ts';
import { createScRunner } from '../../src/sense/windows-services.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { OutboxFullError, type MessageSink, type OutgoingMessage } from '../../src/store/types.ts';

const standinDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'sc-standin');

const TOPICS = { running: 'qliksense/service_running', stopped: 'qliksense/service_stopped', status: 'qliksense/service_status' };

interface Rig {
  monitor: ServiceMonitor;
  sent: { topic: string; payload: string; kind: string | undefined }[];
  logs: Record<string, unknown>[];
  metrics: Metrics;
  calls: () => string[][];
  cleanup: () => void;
}

function rig(script: unknown, hosts: ServiceMonitorOptions['hosts'], extra: Partial<ServiceMonitorOptions> & { sink?: MessageSink } = {}): Rig {
  const dir = mkdtempSync(join(tmpdir(), 'svc-monitor-'));
  const scriptPath = join(dir, 'script.json');
  writeFileSync(scriptPath, JSON.stringify(script));
  const sent: Rig['sent'] = [];
  const logs: Record<string, unknown>[] = [];
  const sink: MessageSink = extra.sink ?? {
    async enqueue(messages: OutgoingMessage[]) {
      for (const m of messages) sent.push({ topic: m.topic, payload: String(m.payload), kind: m.kind });
    },
  };
  const schedule = parseSchedule('every 24 hours');
  if (!schedule.ok) throw new Error(schedule.error);
  const metrics = new Metrics({ processMetrics: false });
  const logger = createLogger({ level: 'debug', pretty: false, destination: { write: (l: string) => logs.push(JSON.parse(l) as Record<string, unknown>) } });
  const runner = createScRunner({ env: { ...process.env, PATH: `${standinDir}${delimiter}${process.env['PATH'] ?? ''}`, SC_STANDIN_SCRIPT: scriptPath } });
  const monitor = new ServiceMonitor(
    { hosts, schedule: schedule.value, topics: TOPICS, timeoutMs: 10_000, platform: 'linux', runner, localHostname: 'butlerbox', ...extra },
    { sink, logger, metrics },
  );
  const calls = () =>
    readFileSync(`${scriptPath}.calls.log`, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as string[]);
  return { monitor, sent, logs, metrics, calls, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const SCRIPT = {
  hosts: {
    sense1: {
      services: {
        QlikSenseEngineService: {
          states: ['RUNNING', 'STOPPED', 'START_PENDING', 'RUNNING'],
          config: {
            displayName: 'Qlik Sense Engine Service',
            startType: 2,
            binaryPath: '"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe" -service',
            dependencies: ['QlikSenseRepositoryService', 'QlikSenseServiceDispatcher'],
          },
        },
        QlikSenseProxyService: {
          states: ['STOPPED', 'STOPPED', 'RUNNING', 'RUNNING'],
          config: { displayName: 'Qlik Sense Proxy Service', startType: 2, delayed: true, binaryPath: 'C:\\Qlik\\Proxy.exe', dependencies: ['QlikSenseRepositoryService'] },
        },
      },
    },
    sense2: {
      services: {
        QlikSenseRepositoryService: {
          states: ['RUNNING', 'STOPPED', 'START_PENDING', 'RUNNING'],
          config: { displayName: 'Qlik Sense Repository Service', startType: 3, binaryPath: 'C:\\Qlik\\Repository.exe', dependencies: [] },
        },
        QlikSenseSchedulerService: {
          states: ['RUNNING', 'RUNNING', 'STOP_PENDING', 'STOPPED'],
          config: { displayName: 'Qlik Sense Scheduler Service', startType: 4, binaryPath: 'C:\\Qlik\\Scheduler.exe', dependencies: ['QlikSenseRepositoryService'] },
        },
      },
    },
  },
};

const HOSTS = [
  {
    host: 'sense1',
    services: [
      { name: 'QlikSenseEngineService', friendlyName: 'Engine' },
      { name: 'QlikSenseProxyService', friendlyName: 'Proxy' },
    ],
  },
  {
    host: 'sense2',
    services: [
      { name: 'QlikSenseRepositoryService', friendlyName: 'Repository' },
      { name: 'QlikSenseSchedulerService', friendlyName: 'Scheduler' },
    ],
  },
];

// Hosts are checked in parallel, so messages are compared host by host, each in order.
const forHost = (sent: Rig['sent'], host: string) => sent.filter((m) => m.topic.split('/')[2] === host).map(({ topic, payload }) => ({ topic, payload }));

test('RUNNING → STOPPED → START_PENDING → RUNNING on two hosts gives exactly the expected P9/P10/P11', async () => {
  const r = rig(SCRIPT, HOSTS);
  try {
    for (let i = 0; i < 4; i++) await r.monitor.check();

    assert.deepEqual(forHost(r.sent, 'sense1'), [
      // check 1: Engine running (silent apart from status); Proxy already stopped at start → P9
      { topic: 'qliksense/service_status/sense1/QlikSenseEngineService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"RUNNING"}` },
      { topic: 'qliksense/service_stopped/sense1/QlikSenseProxyService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseProxyService","serviceFriendlyName":"Proxy","serviceDisplayName":"Qlik Sense Proxy Service","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Proxy.exe","serviceStatus":"STOPPED","servicePrevStatus":"PAUSED","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense1/QlikSenseProxyService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseProxyService","serviceDisplayName":"Qlik Sense Proxy Service","serviceFriendlyName":"Proxy","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Proxy.exe","serviceStatus":"STOPPED"}` },
      // check 2: Engine stopped → P9; Proxy still stopped
      { topic: 'qliksense/service_stopped/sense1/QlikSenseEngineService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceFriendlyName":"Engine","serviceDisplayName":"Qlik Sense Engine Service","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"STOPPED","servicePrevStatus":"RUNNING","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense1/QlikSenseEngineService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"STOPPED"}` },
      { topic: 'qliksense/service_status/sense1/QlikSenseProxyService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseProxyService","serviceDisplayName":"Qlik Sense Proxy Service","serviceFriendlyName":"Proxy","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Proxy.exe","serviceStatus":"STOPPED"}` },
      // check 3: Engine START_PENDING counts as running → P10; Proxy running → P10
      { topic: 'qliksense/service_running/sense1/QlikSenseEngineService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"RUNNING","servicePrevStatus":"STOPPED","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense1/QlikSenseEngineService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"RUNNING"}` },
      { topic: 'qliksense/service_running/sense1/QlikSenseProxyService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseProxyService","serviceDisplayName":"Qlik Sense Proxy Service","serviceFriendlyName":"Proxy","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Proxy.exe","serviceStatus":"RUNNING","servicePrevStatus":"STOPPED","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense1/QlikSenseProxyService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseProxyService","serviceDisplayName":"Qlik Sense Proxy Service","serviceFriendlyName":"Proxy","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Proxy.exe","serviceStatus":"RUNNING"}` },
      // check 4: both running, no change
      { topic: 'qliksense/service_status/sense1/QlikSenseEngineService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"RUNNING"}` },
      { topic: 'qliksense/service_status/sense1/QlikSenseProxyService', payload: String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseProxyService","serviceDisplayName":"Qlik Sense Proxy Service","serviceFriendlyName":"Proxy","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Proxy.exe","serviceStatus":"RUNNING"}` },
    ]);

    assert.deepEqual(forHost(r.sent, 'sense2'), [
      // check 1: both running at start → status only
      { topic: 'qliksense/service_status/sense2/QlikSenseRepositoryService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseRepositoryService","serviceDisplayName":"Qlik Sense Repository Service","serviceFriendlyName":"Repository","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\Qlik\\Repository.exe","serviceStatus":"RUNNING"}` },
      { topic: 'qliksense/service_status/sense2/QlikSenseSchedulerService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseSchedulerService","serviceDisplayName":"Qlik Sense Scheduler Service","serviceFriendlyName":"Scheduler","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Disabled","serviceExePath":"C:\\Qlik\\Scheduler.exe","serviceStatus":"RUNNING"}` },
      // check 2: Repository stopped → P9
      { topic: 'qliksense/service_stopped/sense2/QlikSenseRepositoryService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseRepositoryService","serviceFriendlyName":"Repository","serviceDisplayName":"Qlik Sense Repository Service","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\Qlik\\Repository.exe","serviceStatus":"STOPPED","servicePrevStatus":"RUNNING","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense2/QlikSenseRepositoryService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseRepositoryService","serviceDisplayName":"Qlik Sense Repository Service","serviceFriendlyName":"Repository","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\Qlik\\Repository.exe","serviceStatus":"STOPPED"}` },
      { topic: 'qliksense/service_status/sense2/QlikSenseSchedulerService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseSchedulerService","serviceDisplayName":"Qlik Sense Scheduler Service","serviceFriendlyName":"Scheduler","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Disabled","serviceExePath":"C:\\Qlik\\Scheduler.exe","serviceStatus":"RUNNING"}` },
      // check 3: Repository START_PENDING → P10; Scheduler STOP_PENDING still counts as running
      { topic: 'qliksense/service_running/sense2/QlikSenseRepositoryService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseRepositoryService","serviceDisplayName":"Qlik Sense Repository Service","serviceFriendlyName":"Repository","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\Qlik\\Repository.exe","serviceStatus":"RUNNING","servicePrevStatus":"STOPPED","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense2/QlikSenseRepositoryService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseRepositoryService","serviceDisplayName":"Qlik Sense Repository Service","serviceFriendlyName":"Repository","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\Qlik\\Repository.exe","serviceStatus":"RUNNING"}` },
      { topic: 'qliksense/service_status/sense2/QlikSenseSchedulerService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseSchedulerService","serviceDisplayName":"Qlik Sense Scheduler Service","serviceFriendlyName":"Scheduler","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Disabled","serviceExePath":"C:\\Qlik\\Scheduler.exe","serviceStatus":"RUNNING"}` },
      // check 4: Scheduler stopped → P9
      { topic: 'qliksense/service_status/sense2/QlikSenseRepositoryService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseRepositoryService","serviceDisplayName":"Qlik Sense Repository Service","serviceFriendlyName":"Repository","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\Qlik\\Repository.exe","serviceStatus":"RUNNING"}` },
      { topic: 'qliksense/service_stopped/sense2/QlikSenseSchedulerService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseSchedulerService","serviceFriendlyName":"Scheduler","serviceDisplayName":"Qlik Sense Scheduler Service","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Disabled","serviceExePath":"C:\\Qlik\\Scheduler.exe","serviceStatus":"STOPPED","servicePrevStatus":"RUNNING","serviceStatusChanged":true}` },
      { topic: 'qliksense/service_status/sense2/QlikSenseSchedulerService', payload: String.raw`{"serviceHost":"sense2","serviceName":"QlikSenseSchedulerService","serviceDisplayName":"Qlik Sense Scheduler Service","serviceFriendlyName":"Scheduler","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Disabled","serviceExePath":"C:\\Qlik\\Scheduler.exe","serviceStatus":"STOPPED"}` },
    ]);

    assert.equal(r.sent.length, 23, 'nothing else was sent');
    const kinds = new Set(r.sent.map((m) => `${m.topic.split('/')[1]}=${m.kind}`));
    assert.deepEqual([...kinds].sort(), ['service_running=service_running', 'service_status=service_status', 'service_stopped=service_stopped']);
    // Every call names the remote host; per service, query comes before qc.
    assert.deepEqual(r.calls().filter((c) => c[0] === '\\\\sense1').slice(0, 4), [
      ['\\\\sense1', 'query', 'QlikSenseEngineService'],
      ['\\\\sense1', 'qc', 'QlikSenseEngineService'],
      ['\\\\sense1', 'query', 'QlikSenseProxyService'],
      ['\\\\sense1', 'qc', 'QlikSenseProxyService'],
    ]);
    assert.equal(r.calls().length, 4 * 4 * 2);
    assert.equal(r.calls().filter((c) => c[0] === '\\\\sense1' || c[0] === '\\\\sense2').length, 4 * 4 * 2);
  } finally {
    r.cleanup();
  }
});

test('outages and configuration errors are logged once each', async () => {
  const script = {
    hosts: {
      sense3: { services: { QlikSenseEngineService: { states: ['RUNNING', { fail: 1722 }, { fail: 1722 }, { hang: true }, 'RUNNING', { fail: 1722 }, 'RUNNING'], config: { displayName: 'Qlik Sense Engine Service', startType: 2, binaryPath: 'C:\\e.exe', dependencies: [] } } } },
      sense4: { services: {} },
      sense5: { fail: 5 },
    },
  };
  const hosts = [
    { host: 'sense3', services: [{ name: 'QlikSenseEngineService', friendlyName: 'Engine' }] },
    { host: 'sense4', services: [{ name: 'QlikSenseEngineServce', friendlyName: 'Engine (typo)' }] },
    { host: 'sense5', services: [{ name: 'QlikSenseEngineService', friendlyName: 'Engine' }] },
    { host: 'sense9', services: [{ name: 'QlikSenseEngineService', friendlyName: 'Engine' }] },
  ];
  const r = rig(script, hosts, { timeoutMs: 1000 });
  try {
    for (let i = 0; i < 7; i++) await r.monitor.check();

    const about = (host: string, level: string) => r.logs.filter((l) => l['host'] === host && l['level'] === level).map((l) => l['msg']);

    assert.deepEqual(about('sense3', 'warn'), [
      'Windows service host sense3 cannot be reached (The RPC server is unavailable.); retrying at each check',
      'Windows service host sense3 cannot be reached (The RPC server is unavailable.); retrying at each check',
    ]);
    assert.deepEqual(about('sense3', 'info'), [
      'Windows service "Qlik Sense Engine Service" on host sense3 is running',
      'Windows service host sense3 answers again',
      'Windows service host sense3 answers again',
    ]);
    // checks 3 (RPC again) and 4 (timeout) fall in the same outage: debug only
    assert.equal(about('sense3', 'debug').filter((m) => String(m).startsWith('Windows service host sense3 still not answering')).length, 2);

    assert.deepEqual(about('sense4', 'error'), [
      'configuration error: Windows service "QlikSenseEngineServce" ("Engine (typo)") does not exist on host sense4 (sc.exe error 1060); check Butler.serviceMonitor.monitor',
    ]);
    assert.deepEqual(about('sense4', 'warn'), []);

    assert.deepEqual(about('sense5', 'warn'), [
      'access denied when querying Windows services on host sense5 (sc.exe error 5): the account running butler-mqtt needs the right to query services there; retrying at each check',
    ]);
    assert.deepEqual(about('sense9', 'warn'), ['Windows service host sense9 cannot be reached (The RPC server is unavailable.); retrying at each check']);

    // Only the readings that succeeded produced messages (no change, so status only).
    assert.deepEqual(r.sent.map((m) => m.topic), [
      'qliksense/service_status/sense3/QlikSenseEngineService',
      'qliksense/service_status/sense3/QlikSenseEngineService',
      'qliksense/service_status/sense3/QlikSenseEngineService',
    ]);
    assert.equal(await r.metrics.total('butler_mqtt_upstream_errors_total', { service: 'sc', reason: 'unreachable' }), 3 + 7);
    assert.equal(await r.metrics.total('butler_mqtt_upstream_errors_total', { service: 'sc', reason: 'timeout' }), 1);
    assert.equal(await r.metrics.total('butler_mqtt_upstream_errors_total', { service: 'sc', reason: 'not_found' }), 7);
    assert.equal(await r.metrics.total('butler_mqtt_upstream_errors_total', { service: 'sc', reason: 'access_denied' }), 7);
  } finally {
    r.cleanup();
  }
});

test('a refused enqueue leaves the change pending, so the next check sends the alert', async () => {
  let refuse = true;
  const sent: string[] = [];
  const sink: MessageSink = {
    async enqueue(messages) {
      if (refuse) throw new OutboxFullError('messages', 10, 10);
      for (const m of messages) sent.push(`${m.topic} ${String(m.payload)}`);
    },
  };
  const script = { hosts: { sense1: { services: { Svc: { states: ['RUNNING', 'STOPPED', 'STOPPED'], config: { displayName: 'Svc', startType: 3, binaryPath: 'C:\\svc.exe', dependencies: [] } } } } } };
  const r = rig(script, [{ host: 'sense1', services: [{ name: 'Svc', friendlyName: 'S' }] }], { sink });
  try {
    refuse = false;
    await r.monitor.check(); // RUNNING, stored
    refuse = true;
    await r.monitor.check(); // STOPPED, refused
    refuse = false;
    await r.monitor.check(); // STOPPED again: the change is still new
    assert.deepEqual(sent, [
      'qliksense/service_status/sense1/Svc {"serviceHost":"sense1","serviceName":"Svc","serviceDisplayName":"Svc","serviceFriendlyName":"S","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\\\svc.exe","serviceStatus":"RUNNING"}',
      'qliksense/service_stopped/sense1/Svc {"serviceHost":"sense1","serviceName":"Svc","serviceFriendlyName":"S","serviceDisplayName":"Svc","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\\\svc.exe","serviceStatus":"STOPPED","servicePrevStatus":"RUNNING","serviceStatusChanged":true}',
      'qliksense/service_status/sense1/Svc {"serviceHost":"sense1","serviceName":"Svc","serviceDisplayName":"Svc","serviceFriendlyName":"S","serviceDependencies":[],"serviceStartType":"Manual","serviceExePath":"C:\\\\svc.exe","serviceStatus":"STOPPED"}',
    ]);
    // Counting a refusal is the sink's job (the outbox, or the pipeline's timer sink): the monitor
    // itself counts nothing, so a refusal is counted once, not twice.
    assert.equal(await r.metrics.total('butler_mqtt_messages_refused_total'), 0);
    assert.equal(r.logs.filter((l) => l['level'] === 'error').length, 1);
  } finally {
    r.cleanup();
  }
});

test('start() checks at once; a local host is queried without \\\\host', async () => {
  const script = { hosts: { '': { services: { Svc: { states: ['STOPPED'], config: { displayName: 'Local Svc', startType: 2, binaryPath: 'C:\\svc.exe', dependencies: [] } } } } } };
  const r = rig(script, [{ host: 'localhost', services: [{ name: 'Svc', friendlyName: 'S' }] }]);
  try {
    r.monitor.start();
    const end = Date.now() + 10_000;
    while (!r.logs.some((l) => l['level'] === 'warn') && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
    await r.monitor.stop();
    assert.deepEqual(
      r.logs.filter((l) => l['level'] === 'warn').map((l) => l['msg']),
      ['Windows service "Local Svc" on host localhost is stopped'],
    );
    assert.deepEqual(r.calls(), [
      ['query', 'Svc'],
      ['qc', 'Svc'],
    ]);
  } finally {
    r.cleanup();
  }
});

test('off Windows without an explicit runner: one clear line, then nothing', async () => {
  const logs: Record<string, unknown>[] = [];
  const sent: OutgoingMessage[] = [];
  const schedule = parseSchedule('every 30 seconds');
  if (!schedule.ok) throw new Error(schedule.error);
  const monitor = new ServiceMonitor(
    { hosts: HOSTS, schedule: schedule.value, topics: TOPICS, platform: 'linux' },
    {
      sink: { enqueue: async (m) => void sent.push(...m) },
      logger: createLogger({ level: 'debug', pretty: false, destination: { write: (l: string) => logs.push(JSON.parse(l) as Record<string, unknown>) } }),
      metrics: new Metrics({ processMetrics: false }),
    },
  );
  monitor.start();
  await monitor.check();
  await monitor.stop();
  assert.deepEqual(
    logs.map((l) => [l['level'], l['msg']]),
    [['warn', 'Windows service monitoring is enabled but cannot run on this platform (linux): it needs sc.exe on Windows; the service monitor stays off']],
  );
  assert.deepEqual(sent, []);
});
