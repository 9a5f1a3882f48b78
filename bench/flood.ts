// Flood: reload failures from one sender as fast as its socket goes, nothing paced — 20,000 (every one
// must be delivered, none dropped by the kernel) and 100,000 (each either delivered or refused by a
// documented limit and counted; none dropped unseen). The raw limit of the same run is a bare Node.js
// receiver that only reads the same kind of socket, flooded the same way.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sleep } from '../test/support/wait.ts';
import { freeUdpPort } from '../test/support/udp.ts';
import { parseUdpDrops } from '../src/sense/udp-drops.ts';
import { launchBridge, sumMetric, type BridgeTuning, type Resources, type Stack } from './lib/stack.ts';
import { DatagramSender, DeliveryCounter, round, sendUnpaced, warmUp } from './lib/traffic.ts';

export interface RawReceiverResult {
  sent: number;
  received: number;
  kernelDrops: number;
  /** Datagrams per second the sender handed to its socket. */
  sendRate: number;
}

export interface FloodResult {
  sent: number;
  sendMs: number;
  sendRate: number;
  /** Drops on the bridge's socket (its metric, else /proc/net/udp read by the benchmark). */
  kernelDrops: number;
  received: number;
  accepted: number;
  refused: Record<string, number>;
  delivered: number;
  duplicates: number;
  /** sent − delivered − refused (counted) − kernel drops: dropped without a trace. */
  unseen: number;
  drainSeconds: number;
  raw: RawReceiverResult;
}

function procDrops(port: number): number {
  let drops = 0;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    try {
      drops += parseUdpDrops(readFileSync(file, 'latin1'), port);
    } catch {
      // absent
    }
  }
  return drops;
}

const RAW_RECEIVER = `
const dgram = require('node:dgram');
const [port, bytes] = process.argv.slice(1).map(Number);
const s = dgram.createSocket('udp4');
let n = 0;
s.on('message', () => { n++; });
s.bind(port, '127.0.0.1', () => { s.setRecvBufferSize(bytes); process.stdout.write('ready\\n'); });
process.stdin.on('data', () => { process.stdout.write(JSON.stringify({ received: n }) + '\\n'); });
`;

/** A bare receiver in its own process, flooded with `count` datagrams: the socket's own limit here. */
export async function runRawReceiver(res: Resources, count: number, receiveBufferBytes: number): Promise<RawReceiverResult> {
  const port = await freeUdpPort();
  const child = spawn(process.execPath, ['-e', RAW_RECEIVER, String(port), String(receiveBufferBytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  res.add('raw receiver', () => {
    child.kill('SIGKILL');
  });
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    lines.push(...d.split('\n').filter(Boolean));
    wake?.();
  });
  const nextLine = async () => {
    while (lines.length === 0) await new Promise<void>((r) => (wake = r));
    return lines.shift()!;
  };
  await nextLine(); // ready
  const sender = new DatagramSender(port);
  const { sendMs } = await sendUnpaced(sender, count);
  let received = 0;
  // Counted once the count stops moving (the receiver is idle for 300 ms).
  for (let last = -1; received !== last; ) {
    last = received;
    await sleep(300);
    child.stdin.write('?');
    received = (JSON.parse(await nextLine()) as { received: number }).received;
  }
  const kernelDrops = procDrops(port);
  await sender.close();
  child.kill('SIGKILL');
  return { sent: count, received, kernelDrops, sendRate: Math.round(count / (sendMs / 1000)) };
}

export async function runFlood(stack: Stack, res: Resources, tuning: BridgeTuning, o: { datagrams: number; qrsLatencyMs: number; timeoutMs: number }): Promise<FloodResult> {
  stack.qrs.resetFaults();
  stack.qrs.setLatency(o.qrsLatencyMs);
  const receiveBufferBytes = 8 * 1024 * 1024;
  const raw = await runRawReceiver(res, o.datagrams, receiveBufferBytes);
  const bridge = await launchBridge(stack, res, `flood-${o.datagrams}`, tuning);
  await bridge.waitReady();
  const counter = await DeliveryCounter.connect(stack.broker.url);
  const sender = new DatagramSender(bridge.ports.udp);
  try {
    await warmUp(sender, counter);
    const t0 = performance.now();
    const { events, sendMs } = await sendUnpaced(sender, o.datagrams);
    // Done when every datagram is delivered, refused or dropped by the kernel (or at the timeout).
    const deadline = performance.now() + o.timeoutMs;
    // Refusals and kernel drops as the bridge counts them (its drops metric), else /proc/net/udp.
    const lostNow = async () => {
      const s = await bridge.metrics();
      const drops = s.some((x) => x.name === 'butler_mqtt_udp_kernel_drops') ? sumMetric(s, 'butler_mqtt_udp_kernel_drops') : procDrops(bridge.ports.udp);
      return sumMetric(s, 'butler_mqtt_events_rejected_total', { source: 'udp_task' }) + drops;
    };
    for (;;) {
      // The warm-up event is in neither figure (the counter was reset after it; it was not refused).
      const accounted = counter.fullAt.size + (await lostNow());
      if (accounted >= o.datagrams || performance.now() > deadline) break;
      await counter.progress(500);
    }
    const drainSeconds = (performance.now() - t0) / 1000;
    await sleep(300);
    const samples = await bridge.metrics();
    const metricDrops = samples.some((s) => s.name === 'butler_mqtt_udp_kernel_drops') ? sumMetric(samples, 'butler_mqtt_udp_kernel_drops') : null;
    const kernelDrops = metricDrops ?? procDrops(bridge.ports.udp);
    const refused: Record<string, number> = {};
    for (const s of samples) if (s.name === 'butler_mqtt_events_rejected_total' && s.labels['source'] === 'udp_task' && s.value > 0) refused[s.labels['reason'] ?? '?'] = s.value;
    const refusedTotal = Object.values(refused).reduce((a, b) => a + b, 0);
    const delivered = events.filter((e) => counter.fullAt.has(e.executionId)).length;
    return {
      sent: o.datagrams,
      sendMs: round(sendMs),
      sendRate: Math.round(o.datagrams / (sendMs / 1000)),
      kernelDrops,
      received: sumMetric(samples, 'butler_mqtt_events_received_total', { source: 'udp_task' }) - 1,
      accepted: sumMetric(samples, 'butler_mqtt_events_accepted_total', { source: 'udp_task' }) - 1,
      refused,
      delivered,
      duplicates: counter.duplicates,
      unseen: o.datagrams - delivered - refusedTotal - kernelDrops,
      drainSeconds: round(drainSeconds, 2),
      raw,
    };
  } finally {
    await sender.close();
    await counter.close();
    await bridge.stop();
    stack.qrs.setLatency(0);
  }
}
