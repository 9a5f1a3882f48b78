// Burst: 2,000 reload failures from one sender as fast as its socket goes, nothing paced. What the
// kernel drops before the bridge reads it never reaches `received`; the rest must all be delivered.
import { sleep } from '../test/support/wait.ts';
import { launchBridge, sumMetric, type BridgeTuning, type Resources, type Stack } from './lib/stack.ts';
import { DatagramSender, DeliveryCounter, round, sendUnpaced, warmUp } from './lib/traffic.ts';

export interface BurstResult {
  sent: number;
  sendMs: number;
  received: number;
  accepted: number;
  delivered: number;
  lost: number;
  drainSeconds: number;
  receiveBuffer: string;
  complete: boolean;
}

export async function runBurst(stack: Stack, res: Resources, tuning: BridgeTuning, o: { datagrams: number; qrsLatencyMs: number; timeoutMs: number }): Promise<BurstResult> {
  stack.qrs.resetFaults();
  stack.qrs.setLatency(o.qrsLatencyMs);
  const bridge = await launchBridge(stack, res, 'burst', tuning);
  const ports = bridge.ports;
  await bridge.waitReady();
  const counter = await DeliveryCounter.connect(stack.broker.url);
  const sender = new DatagramSender(ports.udp);
  try {
    await warmUp(sender, counter);
    const t0 = performance.now();
    const { events, sendMs } = await sendUnpaced(sender, o.datagrams);
    const complete = await counter.waitFor(o.datagrams, o.timeoutMs);
    const drainSeconds = (performance.now() - t0) / 1000;
    await sleep(300);
    const samples = await bridge.metrics();
    const delivered = events.filter((e) => counter.fullAt.has(e.executionId)).length;
    const bufferLine = bridge.lines.find((l) => l.includes('receive buffer'));
    let receiveBuffer = 'unknown';
    if (bufferLine) {
      try {
        const j = JSON.parse(bufferLine) as { grantedBytes?: number; requestedBytes?: number };
        receiveBuffer = `${j.grantedBytes} bytes granted (${j.requestedBytes} requested)`;
      } catch {
        receiveBuffer = bufferLine;
      }
    }
    return {
      sent: o.datagrams,
      sendMs: round(sendMs),
      received: sumMetric(samples, 'butler_mqtt_events_received_total', { source: 'udp_task' }) - 1,
      accepted: sumMetric(samples, 'butler_mqtt_events_accepted_total', { source: 'udp_task' }) - 1,
      delivered,
      lost: o.datagrams - delivered,
      drainSeconds: round(drainSeconds, 2),
      receiveBuffer,
      complete,
    };
  } finally {
    await sender.close();
    await counter.close();
    await bridge.stop();
    stack.qrs.setLatency(0);
  }
}
