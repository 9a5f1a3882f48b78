// The raw limit, run as a child process of the benchmark: plain MQTT.js publishing the very payloads
// the bridge would publish for N reload failures (basic + full, same topics, QoS 1), with the same
// in-flight window as the Publisher, no bridge in between. Driven over IPC: ready → go → done.
import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { parseDatagram } from '../src/sense/datagram.ts';
import { taskBasicPayload, taskFailureFullPayload } from '../src/alerts/payloads.ts';
import { sampleApp, sampleTask } from '../test/support/qrs-simulator.ts';
import { failureEvent, FAILED, FAILED_FULL } from './lib/traffic.ts';

interface Job {
  url: string;
  events: number;
  window: number;
  qos: 0 | 1 | 2;
}

function send(message: unknown): void {
  process.send?.(message);
}

async function run(job: Job): Promise<void> {
  // The enrichment as the bridge receives it: the simulator's objects after a JSON round trip.
  const enrichment = { taskFull: JSON.parse(JSON.stringify(sampleTask())) as Record<string, unknown>, appFull: JSON.parse(JSON.stringify(sampleApp())) as Record<string, unknown> };
  const messages: { topic: string; payload: string }[] = [];
  for (let i = 0; i < job.events; i++) {
    const parsed = parseDatagram(failureEvent(i).datagram);
    if (!parsed.ok) throw new Error(`generated datagram does not parse: ${parsed.error.detail}`);
    messages.push({ topic: FAILED, payload: taskBasicPayload(parsed.value) }, { topic: FAILED_FULL, payload: taskFailureFullPayload(parsed.value, enrichment) });
  }
  const client = await mqtt.connectAsync(job.url, { clientId: `bench-raw-${randomUUID().slice(0, 8)}`, clean: true, reconnectPeriod: 0 });
  send({ type: 'ready', bytes: messages.reduce((s, m) => s + Buffer.byteLength(m.payload), 0) });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    let next = 0;
    let acked = 0;
    let inFlight = 0;
    const pump = () => {
      while (inFlight < job.window && next < messages.length) {
        const m = messages[next++]!;
        inFlight++;
        client.publish(m.topic, m.payload, { qos: job.qos }, (err) => {
          if (err) return reject(err);
          inFlight--;
          acked++;
          if (acked === messages.length) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  send({ type: 'done', publishMs: performance.now() - started });
  await client.endAsync();
}

process.once('message', (job: Job) => {
  run(job).then(
    () => process.exit(0),
    (err: Error) => {
      send({ type: 'error', message: err.message });
      process.exit(1);
    },
  );
});
