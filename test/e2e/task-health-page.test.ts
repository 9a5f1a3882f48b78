// The task-health view in a real headless Chromium: outcomes read from the QRS simulator (through
// change notifications) appear in the task table with their failure counts, and uPlot draws the
// outcomes per hour without console errors or blocked requests. Leaves a screenshot in
// test-artifacts/task-health.png.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startBroker } from '../support/broker.ts';
import { REPO_ROOT, baseButler, deepMerge, senseConnection, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { createTestPki } from '../support/certs.ts';
import { QrsSimulator, SAMPLE_TASK_ID, buildTask, guidFor } from '../support/qrs-simulator.ts';
import { freePort, waitFor } from '../support/wait.ts';

const CHROMIUM = '/usr/bin/chromium';
const tmp = tempDir('bm-task-health-');
after(() => tmp.cleanup());

test('task health: every task seen, its last outcome, failures in 24 h, and a uPlot chart per hour', async () => {
  const pki = await createTestPki();
  const sim = await QrsSimulator.start({ pki });
  const syncId = guidFor('task:health-sync');
  sim.addTask(buildTask({ id: syncId, name: 'Sync CORP directory', taskType: 2, app: null }));
  const broker = await startBroker();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') } },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
      qrsChangeNotifications: { enable: true, callbackUrl: `http://127.0.0.1:${httpPort}/v4/qrs/notification`, catchUpIntervalSeconds: 60 },
      ...senseConnection(sim.port, pki, { cacheTtlSeconds: 0 }),
    }),
  );
  const bridge = await startInProcess(file);
  const profile = mkdtempSync(path.join(os.tmpdir(), 'bm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
  });
  const problems: string[] = [];
  try {
    await bridge.app.connection!.waitConnected(5000);
    await waitFor(() => sim.notifications.size === 1, 10_000, 'the subscription');
    await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail');
    await sim.runExecution(SAMPLE_TASK_ID, 'FinishedFail');
    await sim.runExecution(syncId, 'FinishedSuccess');
    await waitFor(() => bridge.app.inbox!.depth === 0 && bridge.app.metrics !== null, 10_000, 'the outcomes to be handled');
    await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${httpPort}/status/tasks/api`);
      const body = (await res.json()) as { tasks: unknown[] };
      return body.tasks.length === 2;
    }, 10_000, 'both tasks in the health data');

    const page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
    await page.goto(`http://127.0.0.1:${httpPort}/status/tasks`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 10_000 });
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('#task-rows tr')].map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')),
    );
    const finance = rows.find((r) => r[0] === 'Nightly finance reload');
    const sync = rows.find((r) => r[0] === 'Sync CORP directory');
    assert.ok(finance, JSON.stringify(rows));
    assert.ok(sync, JSON.stringify(rows));
    assert.equal(finance[1], 'ReloadTask');
    assert.equal(finance[2], 'FinishedFail');
    assert.equal(finance[4], '2');
    assert.equal(finance[5], '2');
    assert.equal(sync[1], 'UserSyncTask');
    assert.equal(sync[2], 'FinishedSuccess');
    assert.equal(sync[4], '0');
    // uPlot drew its canvas and its legend names the three series.
    const chart = await page.evaluate(() => ({
      canvas: document.querySelectorAll('#chart canvas').length,
      legend: [...document.querySelectorAll('#chart .u-legend .u-label')].map((e) => e.textContent),
    }));
    assert.equal(chart.canvas, 1);
    const sourceLine = await page.textContent('#source-line');
    assert.match(sourceLine ?? '', new RegExp(`^subscribed, callbacks to http://127\\.0\\.0\\.1:${httpPort}/v4/qrs/notification · last catch-up: `));
    assert.deepEqual(chart.legend.slice(-3), ['success', 'failure', 'other']);
    mkdirSync(path.join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(REPO_ROOT, 'test-artifacts', 'task-health.png'), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    await bridge.stop();
    await broker.stop();
    await sim.stop();
    await pki.cleanup();
  }
});
