// The service monitor through the whole bridge: a stand-in sc.exe (serviceMonitor.scCommand) replays
// RUNNING → STOPPED → RUNNING, and a subscriber on a real broker receives Butler's P9 and P10 bytes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, spawnBridge, tempDir, writeConfig } from '../support/bridge.ts';

const tmp = tempDir('bm-svc-e2e-');
after(() => tmp.cleanup());

test('a service that stops and starts again: P9 then P10 on the broker, exact bytes', async () => {
  const script = path.join(tmp.dir, 'script.json');
  writeFileSync(
    script,
    JSON.stringify({
      hosts: {
        sense1: {
          services: {
            QlikSenseEngineService: {
              states: ['RUNNING', 'STOPPED', 'RUNNING'],
              config: { displayName: 'Qlik Sense Engine Service', startType: 2, binaryPath: 'C:\\Qlik\\Engine.exe', dependencies: ['QlikSenseRepositoryService'] },
            },
          },
        },
      },
    }),
  );
  const broker = await startBroker();
  const sub = await collect(broker.url, ['qliksense/service_stopped/#', 'qliksense/service_running/#']);
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') } },
      serviceMonitor: {
        enable: true,
        frequency: 'every 1 seconds',
        scCommand: path.join(REPO_ROOT, 'test/support/sc-standin/sc.exe'),
        monitor: [{ host: 'sense1', services: [{ name: 'QlikSenseEngineService', friendlyName: 'Engine' }] }],
        alertDestination: { mqtt: { enable: true } },
      },
    }),
  );
  const bridge = await spawnBridge(file, ['run'], { SC_STANDIN_SCRIPT: script });
  try {
    await sub.waitForCount(2, 20_000);
    assert.deepEqual(
      sub.messages.map((m) => [m.topic, m.text]),
      [
        [
          'qliksense/service_stopped/sense1/QlikSenseEngineService',
          String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceFriendlyName":"Engine","serviceDisplayName":"Qlik Sense Engine Service","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Engine.exe","serviceStatus":"STOPPED","servicePrevStatus":"RUNNING","serviceStatusChanged":true}`,
        ],
        [
          'qliksense/service_running/sense1/QlikSenseEngineService',
          String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService"],"serviceStartType":"Automatic","serviceExePath":"C:\\Qlik\\Engine.exe","serviceStatus":"RUNNING","servicePrevStatus":"STOPPED","serviceStatusChanged":true}`,
        ],
      ],
    );
  } finally {
    await bridge.kill('SIGTERM');
    await sub.close();
    await broker.stop();
  }
});
