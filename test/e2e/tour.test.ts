// The README, as a new user follows it: `butler-mqtt run` on the shipped config (through the package's
// bin, as `npm start` and a service run it), the start-up summary it prints, then the quick tour's
// steps in a real headless Chromium — the status page as the README describes it, the "Send test event"
// button — with `butler-mqtt watch` seeing the messages and a REST publish showing up; Ctrl-C exits 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { request } from 'undici';
import { REPO_ROOT, collectLines, tempDir } from '../support/bridge.ts';
import { freeUdpPort } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';

const tmp = tempDir('bm-tour-');
after(() => tmp.cleanup());

/** The shipped config with only its ports (which may be taken on a test host) and the outbox moved. */
async function shippedConfig(): Promise<{ file: string; mqtt: number; http: number; udp: number }> {
  const [mqtt, http, udp] = [await freePort(), await freePort(), await freeUdpPort()];
  const text = readFileSync(path.join(REPO_ROOT, 'config/butler-mqtt.yaml'), 'utf8')
    .replaceAll('port: 1883', `port: ${mqtt}`)
    .replaceAll('brokerPort: 1883', `brokerPort: ${mqtt}`)
    .replace('serverPort: 8080', `serverPort: ${http}`)
    .replace('portTaskFailure: 9998', `portTaskFailure: ${udp}`)
    .replace('outboxFile: ../data/butler-mqtt.sqlite', 'outboxFile: data/butler-mqtt.sqlite');
  assert.ok(text.includes(`brokerPort: ${mqtt}`) && text.includes(`serverPort: ${http}`) && text.includes(`portTaskFailure: ${udp}`), 'ports replaced');
  assert.ok(text.includes('testEventButton: true'), 'the shipped config shows the test button');
  const file = path.join(tmp.dir, 'butler-mqtt.yaml');
  writeFileSync(file, text);
  return { file, mqtt, http, udp };
}

const children: ChildProcess[] = [];
// Even when the test times out (its finally does not run then), nothing it started keeps running.
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function butlerMqtt(args: string[]) {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/butler-mqtt.js'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines = collectLines(child);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return { child, lines, exit };
}

/** The first activity row whose event text includes `text` (and, when given, that has a message on `topic`). */
async function rowState(page: Page, text: string, topic?: string): Promise<{ state: string; delivered: string[] } | null> {
  return page.evaluate(([t, tp]) => {
    const row = [...document.querySelectorAll('#activity-body tr')].find(
      (r) => r.querySelector('.c-event')?.textContent?.includes(t) && (!tp || [...r.querySelectorAll('.msg .topic')].some((m) => m.textContent === tp)),
    );
    if (!row) return null;
    return {
      state: (row as HTMLElement).dataset.state ?? '',
      delivered: [...row.querySelectorAll('.msg')].map((m) => `${m.querySelector('.topic')?.textContent}=${(m as HTMLElement).dataset.delivered}`),
    };
  }, [text, topic ?? ''] as const);
}

test('the README: run on the shipped config, the start-up summary, the tour on the status page, watch, REST, Ctrl-C', { timeout: 120_000 }, async () => {
  const cfg = await shippedConfig();
  const bridge = butlerMqtt(['run', '--config', cfg.file]);
  const profile = mkdtempSync(path.join(os.tmpdir(), 'bm-chromium-'));
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  let watch: ReturnType<typeof butlerMqtt> | null = null;
  try {
    // 1. The start-up summary: logged once the bridge has started, as JSON lines (stdout is not a terminal).
    await waitFor(() => bridge.lines.some((l) => l.includes('"msg":"Next step: ')) || bridge.child.exitCode !== null, 30_000, 'the start-up summary');
    const summary = bridge.lines
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; summary?: boolean; level: string })
      .filter((l) => l.summary)
      .map((l) => `${l.level}: ${l.msg}`);
    assert.deepEqual(summary, [
      `info: MQTT: embedded broker on 127.0.0.1:${cfg.mqtt}, the bridge publishes to it as butler-mqtt-${os.hostname()}`,
      `info: UDP: reload task events on 127.0.0.1:${cfg.udp}`,
      `info: HTTP: 127.0.0.1:${cfg.http}, PUT /v4/mqttpublishmessage on, API documentation at http://127.0.0.1:${cfg.http}/documentation`,
      `info: Status page: http://127.0.0.1:${cfg.http}/`,
      'info: Not configured: Qlik Sense repository (Butler.configQRS.host is empty): reload alerts carry "enrichmentError":"QRS not configured", task starts via MQTT are refused',
      'info: Next step: try it from the status page ("Send test event"), then connect it to your Sense site: docs/connect-to-sense.md',
    ]);
    // The first screen: one line per thing, no line said twice.
    const messages = bridge.lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string }).msg);
    const started = messages.indexOf(messages.find((m) => m.startsWith('butler-mqtt started on '))!);
    assert.equal(messages[started], `butler-mqtt started on ${os.hostname()} with config ${cfg.file}`);
    assert.ok(messages[started + 1]?.startsWith('MQTT: '), 'the summary follows the start line');
    assert.equal(messages.filter((m) => m.includes('connecting to MQTT broker')).length, 0, 'the connect attempt is not on the first screen');
    assert.equal(messages.filter((m) => m.includes('embedded MQTT broker listening')).length, 0, 'the summary names the embedded broker');

    // 2. `butler-mqtt watch` in a second terminal: the retained messages at once, then what the tour publishes.
    watch = butlerMqtt(['watch', '--config', cfg.file]);
    await waitFor(() => watch!.lines.some((l) => l.startsWith('qliksense/butler/mqtt/availability')), 20_000, 'watch to show the retained availability');

    // 3. The status page, as the README's tour step 1 describes it.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 860 },
    });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    const response = await page.goto(`http://127.0.0.1:${cfg.http}/`);
    assert.equal(response?.status(), 200);
    await page.waitForSelector('#live[data-state="open"]', { timeout: 5000 });
    await page.waitForSelector('#readiness[data-state="ok"]', { timeout: 5000 });
    assert.equal(await page.textContent('#readiness'), 'Ready');
    assert.equal(await page.textContent('#live'), 'live');
    assert.equal(await page.textContent('#card-broker .state'), 'Connected');
    assert.equal(await page.textContent('#card-qrs .state'), 'Not configured');
    assert.equal(await page.textContent('#card-outbox .state'), 'Empty');
    // The shipped config also publishes the bridge's own info and health topics: rows of their own.
    const udpStatus = 'qliksense/butler/task_failure_server';
    await waitFor(async () => (await rowState(page, 'message without an input event', udpStatus))?.state === 'delivered', 5000, 'the UDP start message delivered on the page');
    assert.deepEqual((await rowState(page, 'message without an input event', udpStatus))?.delivered, ['qliksense/butler/task_failure_server=yes']);

    // Step 2: "Send test event" — a row with both messages, each acknowledged, within a second or two.
    assert.equal(await page.textContent('#test-button'), 'Send test event');
    await page.click('#test-button');
    const row = `reload failed: "butler-mqtt test event" on ${os.hostname()}`;
    await waitFor(async () => (await rowState(page, row))?.state === 'delivered', 3000, 'the test event delivered on the page');
    assert.deepEqual((await rowState(page, row))?.delivered, ['qliksense/task_failure=yes', 'qliksense/task_failure_full=yes']);
    assert.equal(await page.textContent(`#activity-body tr[data-state="delivered"] .c-state`), 'Delivered');

    // Step 5: a REST publish, shown on the page as "publish to qliksense/hello".
    const put = await request(`http://127.0.0.1:${cfg.http}/v4/mqttpublishmessage`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"topic":"qliksense/hello","message":"from curl"}' });
    assert.equal(put.statusCode, 201);
    assert.equal(await put.body.text(), '{"topic":"qliksense/hello","message":"from curl"}');
    await waitFor(async () => (await rowState(page, 'publish to qliksense/hello'))?.state === 'delivered', 3000, 'the REST publish on the page');
    assert.deepEqual(problems, []);

    // What watch printed: the two retained status messages, the test event's two messages, the REST
    // message (and the UDP input's "start", when it was published after watch subscribed). Ctrl-C ends it.
    await waitFor(() => watch!.lines.some((l) => l.startsWith('qliksense/hello ')), 5000, 'watch to show the REST message');
    watch.child.kill('SIGINT');
    assert.deepEqual(await watch.exit, { code: 0, signal: null });
    // The UDP status and the periodic bridge health can come before or after watch subscribed.
    const out = watch.lines.filter((l) => !l.startsWith('watching ') && !l.startsWith('qliksense/butler/task_failure_server ') && !l.startsWith('qliksense/butler/mqtt/bridge/health '));
    assert.deepEqual(
      out.map((l) => l.replace(/ \{.*$/, ' {…}').replace(/with client ID .*/, 'with client ID …')),
      [
        'qliksense/butler/mqtt/availability [retained] online',
        `qliksense/butler/mqtt/status [retained] Connected to MQTT broker 127.0.0.1:${cfg.mqtt} with client ID …`,
        'qliksense/butler/mqtt/bridge/info [retained] {…}',
        'qliksense/task_failure butler-mqtt test event',
        'qliksense/task_failure_full {…}',
        'qliksense/hello from curl',
      ],
    );
    const full = out.find((l) => l.startsWith('qliksense/task_failure_full '))!.slice('qliksense/task_failure_full '.length);
    const payload = JSON.parse(full) as Record<string, unknown>;
    assert.equal(payload['taskName'], 'butler-mqtt test event');
    assert.equal(payload['enrichmentError'], 'QRS not configured');

    // Ctrl-C: a clean stop.
    bridge.child.kill('SIGINT');
    assert.deepEqual(await bridge.exit, { code: 0, signal: null });
  } finally {
    await browser?.close();
    rmSync(profile, { recursive: true, force: true });
    watch?.child.kill('SIGKILL');
    bridge.child.kill('SIGKILL');
  }
});
