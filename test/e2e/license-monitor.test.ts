// The license monitor through the whole bridge: QRS simulator over HTTPS with client certificates,
// real broker, exact P12 and P13 bytes at a subscriber.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki } from '../support/certs.ts';
import { QrsSimulator } from '../support/qrs-simulator.ts';

const tmp = tempDir('bm-license-e2e-');
after(() => tmp.cleanup());

/** The UTC calendar date `days` after today, as QRS writes it in keyDetails. */
function dateInDays(days: number): string {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

test('license expiring in 10 days: P12 status and P13 alert on the broker; the license call runs as sa_repository', async () => {
  const pki = await createTestPki();
  const sim = await QrsSimulator.start({ pki });
  const validTo = dateInDays(10);
  sim.setLicense({ validTo });
  const broker = await startBroker();
  const sub = await collect(broker.url, ['qliksense/qliksense_server_license', 'qliksense/qliksense_server_license_expire']);
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') } },
      ...senseConnection(sim.port, pki),
      qlikSenseLicense: {
        serverLicenseMonitor: { enable: true, frequency: 'every 24 hours', alert: { thresholdDays: 60 }, destination: { mqtt: { enable: true } } },
      },
    }),
  );
  const bridge = await startInProcess(file);
  try {
    await sub.waitForCount(2, 15_000);
    assert.deepEqual(sub.texts('qliksense/qliksense_server_license'), [`{"licenseExpired":false,"expiryDateStr":"${validTo}","daysUntilExpiry":10}`]);
    assert.deepEqual(sub.texts('qliksense/qliksense_server_license_expire'), [`Qlik Sense server license is about to expire in 10 days, on ${validTo}`]);
    const licenseCalls = sim.requests.filter((r) => r.path === '/qrs/license');
    assert.equal(licenseCalls.length, 1);
    assert.equal(licenseCalls[0]?.headers['x-qlik-user'], 'UserDirectory=Internal; UserId=sa_repository');
  } finally {
    await bridge.stop();
    await sub.close();
    await broker.stop();
    await sim.stop();
    await pki.cleanup();
  }
});
