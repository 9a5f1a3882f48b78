// Start-up order: every listener binds before the bridge connects and announces itself. A port that is
// taken stops the start-up with the part named, and nothing reaches the broker: no connect status, no
// "online", no UDP server status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { startBroker } from '../support/broker.ts';
import { collect } from '../support/mqtt.ts';
import { baseButler, deepMerge, startInProcess, tempDir, writeConfig } from '../support/bridge.ts';
import { freeUdpPort } from '../support/udp.ts';
import { sleep } from '../support/wait.ts';

test('the HTTP port is taken: the start-up fails naming the HTTP server, and the broker never hears of the bridge', async () => {
  const tmp = tempDir('bm-start-order-');
  const broker = await startBroker();
  const sub = await collect(broker.url, '#');
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()));
  const httpPort = (squatter.address() as net.AddressInfo).port;
  try {
    const file = writeConfig(
      tmp.dir,
      deepMerge(baseButler(broker.port), {
        mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'outbox.sqlite') }, availability: { enable: true } },
        udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: await freeUdpPort() },
        restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort },
      }),
    );
    await assert.rejects(startInProcess(file), /could not start HTTP server/);
    // The failed start has stopped every part it started, so nothing can publish from here on; a
    // message sent before the failure would have reached this loopback subscriber within
    // milliseconds. One second of silence is therefore the whole story.
    await sleep(1000);
    assert.deepEqual(sub.messages.map((m) => m.topic), []);
  } finally {
    await new Promise<void>((r) => squatter.close(() => r()));
    await sub.close();
    await broker.stop();
    tmp.cleanup();
  }
});

test('a second bridge on the store of a running bridge does not start (it would execute and publish what the first accepted); it starts once the first has stopped', async () => {
  const tmp = tempDir('bm-start-order-');
  const broker = await startBroker();
  const outboxFile = path.join(tmp.dir, 'shared', 'outbox.sqlite');
  const config = (name: string) => writeConfig(tmp.dir, deepMerge(baseButler(broker.port), { mqttConfig: { delivery: { outboxFile } } }), `${name}.yaml`);
  const first = await startInProcess(config('first'));
  let second: Awaited<ReturnType<typeof startInProcess>> | null = null;
  try {
    await assert.rejects(startInProcess(config('second')), /could not start store: another butler-mqtt is running on the store/);
    await first.stop();
    second = await startInProcess(config('second'));
  } finally {
    await first.stop();
    await second?.stop();
    await broker.stop();
    tmp.cleanup();
  }
});
