// Latency: a steady stream (default 100 events/s for 30 s); for each event the time from the datagram
// leaving the sender to the subscriber receiving its full message. Warm: every event names the same,
// cached task. Cold: every event names a task (and app) QRS has not been asked about, so each costs
// the three QRS lookups.
import { guidFor } from '../test/support/qrs-simulator.ts';
import { sleep } from '../test/support/wait.ts';
import { launchBridge, type BridgeTuning, type Resources, type Stack } from './lib/stack.ts';
import { DatagramSender, DeliveryCounter, failureEvent, percentile, round, warmUp, type BenchEvent } from './lib/traffic.ts';

export interface LatencyResult {
  mode: 'warm' | 'cold';
  events: number;
  ratePerSecond: number;
  delivered: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  qrsCallsPerEvent: number;
  qrsLatencyMs: number;
}

export async function runLatency(
  stack: Stack,
  res: Resources,
  tuning: BridgeTuning,
  o: { mode: 'warm' | 'cold'; ratePerSecond: number; seconds: number; qrsLatencyMs: number },
): Promise<LatencyResult> {
  const sim = stack.qrs;
  sim.resetFaults();
  sim.setLatency(o.qrsLatencyMs);
  const bridge = await launchBridge(stack, res, `latency-${o.mode}`, tuning);
  const ports = bridge.ports;
  await bridge.waitReady();
  const counter = await DeliveryCounter.connect(stack.broker.url);
  const sender = new DatagramSender(ports.udp);
  const added: { executionId: string; ids: string[] }[] = [];
  const forget = (entries: typeof added) => {
    for (const a of entries) {
      added.splice(added.indexOf(a), 1);
      for (const id of a.ids) {
        sim.removeTask(id);
        sim.removeApp(id);
      }
    }
  };
  try {
    // Warm-up (both modes): TLS connections to QRS open, the sample task cached.
    await warmUp(sender, counter);
    const total = o.ratePerSecond * o.seconds;
    const run = `${Date.now()}`;
    const make = (i: number): BenchEvent => {
      if (o.mode === 'warm') return failureEvent(i);
      // A task and app QRS knows but the bridge never asked about; added just in time and removed once
      // alerted, so the simulator's filter scans stay small and do not slow the benchmark itself.
      const app = sim.addApp({ id: guidFor(`bench-app-${run}-${i}`), name: `Bench app ${i}` });
      const task = sim.addReloadTask({ id: guidFor(`bench-task-${run}-${i}`), name: `Bench reload ${i}`, app });
      const e = failureEvent(i, { taskId: task.id, appId: app.id, taskName: task.name });
      added.push({ executionId: e.executionId, ids: [task.id, app.id] });
      return e;
    };
    const qrsBefore = sim.requests.length;
    const start = performance.now();
    const sent: BenchEvent[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / o.ratePerSecond;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const e = make(i);
      sent.push(e);
      sender.send(e);
      if (o.mode === 'cold' && i % 100 === 99) forget(added.filter((a) => counter.fullAt.has(a.executionId)));
    }
    await sender.flush();
    await counter.waitFor(total, 30_000);
    const qrsCalls = sim.requests.length - qrsBefore;
    const latencies = sent
      .map((e) => {
        const at = counter.fullAt.get(e.executionId);
        const from = sender.sentAt.get(e.executionId);
        return at === undefined || from === undefined ? NaN : at - from;
      })
      .filter((v) => !Number.isNaN(v))
      .sort((a, b) => a - b);
    await sleep(200);
    return {
      mode: o.mode,
      events: total,
      ratePerSecond: o.ratePerSecond,
      delivered: latencies.length,
      p50Ms: round(percentile(latencies, 50), 2),
      p90Ms: round(percentile(latencies, 90), 2),
      p99Ms: round(percentile(latencies, 99), 2),
      maxMs: round(latencies[latencies.length - 1] ?? NaN, 2),
      qrsCallsPerEvent: round(qrsCalls / total, 3),
      qrsLatencyMs: o.qrsLatencyMs,
    };
  } finally {
    forget([...added]);
    await sender.close();
    await counter.close();
    await bridge.stop();
    sim.setLatency(0);
  }
}
