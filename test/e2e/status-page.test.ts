// The status page in a real headless Chromium: loads without console errors, shows a datagram sent
// over UDP within a second together with its delivery state, shows a rejected datagram with its
// reason, and the "send test event" button walks the whole path. Leaves a screenshot in
// test-artifacts/status-page.png.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { request } from 'undici';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { REPO_ROOT, baseButler, deepMerge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { freeUdpPort, schedulerDatagram, sendDatagram } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';

const CHROMIUM = '/usr/bin/chromium';
const tmp = tempDir('bm-status-page-');
after(() => tmp.cleanup());

async function launch(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  // A fresh profile every run; launchPersistentContext is how Playwright takes a user-data-dir.
  const profile = mkdtempSync(path.join(os.tmpdir(), 'bm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The state of the activity row whose event text contains `text`, or null while there is none. */
async function rowState(page: Page, text: string): Promise<{ state: string; delivered: string[]; reason: string } | null> {
  return page.evaluate((t) => {
    const row = [...document.querySelectorAll('#activity-body tr')].find((r) => r.querySelector('.c-event')?.textContent?.includes(t));
    if (!row) return null;
    return {
      state: (row as HTMLElement).dataset.state ?? '',
      delivered: [...row.querySelectorAll('.msg')].map((m) => `${m.querySelector('.topic')?.textContent}=${(m as HTMLElement).dataset.delivered}`),
      reason: row.querySelector('.reason')?.textContent ?? '',
    };
  }, text);
}

test('status page: live connection state, a UDP datagram with its delivery state within a second, the test button', async () => {
  const broker = await startBroker();
  const sub = await collect(broker.url, 'qliksense/#');
  const udpPort = await freeUdpPort();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort, testEventButton: true },
      restServerEndpointsEnable: { mqttPublishMessage: true },
    }),
  );
  const bridge = await startInProcess(file);
  const browser = await launch();
  const problems: string[] = [];
  try {
    await bridge.app.connection!.waitConnected(5000);
    const page = await browser.context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => {
      // The event stream is cut when the page closes; anything else failing is a problem.
      if (!req.url().endsWith('/status/events')) problems.push(`request failed: ${req.url()}`);
    });

    const response = await page.goto(`http://127.0.0.1:${httpPort}/`);
    assert.equal(response?.status(), 200);
    assert.equal(await page.title(), 'butler-mqtt status');
    await page.waitForSelector('#live[data-state="open"]', { timeout: 5000 });
    await page.waitForSelector('#readiness[data-state="ok"]', { timeout: 5000 });
    assert.equal(await page.textContent('#card-broker .state'), 'Connected');
    assert.equal(await page.textContent('#card-qrs .state'), 'Not configured');
    assert.equal(await page.textContent('#card-cloud .state'), 'Not configured');
    assert.equal(await page.textContent('#card-outbox .state'), 'Empty');

    // A reload failure over real UDP: on the page within a second, with both messages acknowledged.
    const taskName = 'Quarterly forecast reload';
    const sent = Date.now();
    await sendDatagram(udpPort, schedulerDatagram({ taskName, executionId: 'c0ffee00-0000-4000-8000-000000000001' }));
    let seen: Awaited<ReturnType<typeof rowState>> = null;
    await waitFor(
      async () => {
        seen = await rowState(page, taskName);
        return seen?.state === 'delivered';
      },
      1000,
      `the datagram shown as delivered within a second of sending it (last seen: ${JSON.stringify(seen)})`,
      25,
    );
    const elapsed = Date.now() - sent;
    assert.deepEqual(seen, {
      state: 'delivered',
      delivered: ['qliksense/task_failure=yes', 'qliksense/task_failure_full=yes'],
      reason: '',
    });
    assert.equal(await page.textContent(`#activity-body tr[data-state="delivered"] .c-source`), 'udp_task');
    // What the page calls delivered really reached a subscriber.
    await sub.waitForCount(1, 2000, 'qliksense/task_failure');
    assert.deepEqual(sub.texts('qliksense/task_failure'), [taskName]);

    // A datagram that does not parse: shown as rejected, with the reason.
    await sendDatagram(udpPort, '/scheduler-reload-failed/;too;few;fields');
    await waitFor(async () => (await rowState(page, 'datagram from 127.0.0.1'))?.state === 'rejected', 2000, 'the rejected datagram on the page');
    const rejected = await rowState(page, 'datagram from 127.0.0.1');
    assert.match(rejected?.reason ?? '', /^field_count: /);

    // The test button sends a reload-failed datagram through the UDP input.
    await page.click('#test-button');
    await waitFor(async () => (await rowState(page, 'butler-mqtt test event'))?.state === 'delivered', 3000, 'the test event delivered on the page');
    assert.match((await page.textContent('#test-result')) ?? '', /^test reload-failed datagram sent to 127\.0\.0\.1:\d+$/);
    await sub.waitForCount(2, 2000, 'qliksense/task_failure');
    assert.deepEqual(sub.texts('qliksense/task_failure'), [taskName, 'butler-mqtt test event']);

    // A REST publish shows up the same way.
    const put = await request(`http://127.0.0.1:${httpPort}/v4/mqttpublishmessage`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'qliksense/from/rest', message: 'hi' }) });
    assert.equal(put.statusCode, 201);
    await put.body.text();
    await waitFor(async () => (await rowState(page, 'publish to qliksense/from/rest'))?.state === 'delivered', 2000, 'the REST publish delivered on the page');
    assert.deepEqual((await rowState(page, 'publish to qliksense/from/rest'))?.delivered, ['qliksense/from/rest=yes']);

    // Totals follow the metrics: 3 datagrams + 1 REST call received, 3 accepted, 1 rejected; 4 alert
    // messages, the REST message and the UDP "start" delivered.
    await waitFor(async () => (await page.textContent('#t-delivered')) === '6', 3000, 'delivered total on the page');
    assert.equal(await page.textContent('#t-received'), '4');
    assert.equal(await page.textContent('#t-accepted'), '3');
    assert.equal(await page.textContent('#t-rejected'), '1');

    mkdirSync(path.join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(REPO_ROOT, 'test-artifacts/status-page.png'), fullPage: true });
    assert.deepEqual(problems, [], `no console errors or failed requests (first datagram shown after ${elapsed} ms)`);
    await page.close();
  } finally {
    await browser.close();
    await bridge.stop();
    await sub.close();
    await broker.stop();
  }
});

test('status page: the broker going away shows as disconnected and the outbox fills, live', async () => {
  const broker = await startBroker();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'down', 'outbox.sqlite') } },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
    }),
    'down.yaml',
  );
  const bridge = await startInProcess(file);
  const browser = await launch();
  try {
    await bridge.app.connection!.waitConnected(5000);
    const page = await browser.context.newPage();
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    await page.waitForSelector('#card-broker .state[data-state="ok"]', { timeout: 5000 });
    assert.equal(await page.isVisible('#test-actions'), false, 'no test button unless restServerConfig.testEventButton');
    await broker.stop();
    await page.waitForSelector('#card-broker .state[data-state="bad"]', { timeout: 5000 });
    assert.equal(await page.textContent('#card-broker .state'), 'Disconnected');
    await bridge.app.outbox!.enqueue([
      { topic: 'status/a', payload: '1', kind: 'test' },
      { topic: 'status/b', payload: '2', kind: 'test' },
    ]);
    await waitFor(async () => (await page.textContent('#card-outbox .state')) === '2 waiting', 3000, 'outbox depth on the page');
    await page.waitForSelector('#readiness[data-state="bad"]', { timeout: 3000 });
    await page.close();
  } finally {
    await browser.close();
    await bridge.stop();
    await broker.stop().catch(() => undefined);
  }
});
