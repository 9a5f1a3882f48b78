// Storm: N distinct reload failures through the whole pipeline (UDP → inbox → QRS-enriched alert →
// outbox → broker → subscriber), compared with the raw limit measured in the same run on the same
// broker: MQTT.js publishing the same 2N payloads at QoS 1 with the same in-flight window.
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from '../test/support/wait.ts';
import { busyPercent, cpuReading, launchBridge, sumMetric, type BridgeTuning, type Resources, type Stack } from './lib/stack.ts';
import { DatagramSender, DeliveryCounter, failureEvent, round, warmUp } from './lib/traffic.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface StormOptions {
  events: number;
  /** Datagrams per second; null = as fast as the pipeline takes them (a window of events in flight). */
  rate: number | null;
  /** Events between sent and delivered when `rate` is null. */
  window: number;
  qrsLatencyMs: number;
  /** The bridge's in-flight window (delivery.inFlightWindow), also used by the raw publisher. */
  inFlightWindow: number;
  /**
   * true: mqttConfig.subscribeWholeRoot, Butler's subscription to all of qliksense/#, so the broker sends
   * every alert back to the bridge; false: the default, the task start topic alone.
   */
  loopbackSubscription: boolean;
  /** Extra Node.js flags for this bridge (e.g. --cpu-prof). */
  nodeArgs: string[];
  timeoutMs: number;
}

export interface StormResult {
  events: number;
  pacing: string;
  loopbackSubscription: boolean;
  seconds: number;
  eventsPerSecond: number;
  messagesPerSecond: number;
  delivered: { basic: number; full: number; distinctFull: number; duplicates: number; lost: number };
  bridge: {
    received: number;
    accepted: number;
    rejected: Record<string, number>;
    messagesDelivered: number;
    cpuSeconds: number;
    cpuMsPerEvent: number;
    rssIdleMB: number;
    rssAfterMB: number;
    rssPeakMB: number;
    readyMs: number;
  };
  qrs: { calls: number; callsPerEvent: number; latencyMs: number };
  /** Share of all CPUs busy during the storm (every process), and the CPU seconds of the benchmark process itself (sender, subscriber, QRS simulator). */
  machine: { cpuBusyPercent: number; benchProcessCpuSeconds: number };
  /** Inbox events and outbox messages during the storm, sampled every 250 ms through /metrics. */
  backlog: { inboxMean: number; inboxMax: number; outboxMean: number; outboxMax: number };
  complete: boolean;
}

const MB = 1024 * 1024;
const mean = (v: number[]) => (v.length === 0 ? 0 : v.reduce((a, b) => a + b, 0) / v.length);

export async function runStorm(stack: Stack, res: Resources, tuning: BridgeTuning, o: StormOptions): Promise<StormResult> {
  stack.qrs.resetFaults();
  stack.qrs.setLatency(o.qrsLatencyMs);
  const own = {
    mqttConfig: {
      delivery: { inFlightWindow: o.inFlightWindow },
      ...(o.loopbackSubscription ? { subscribeWholeRoot: true } : {}),
    },
  };
  const bridge = await launchBridge(stack, res, `storm-${o.loopbackSubscription ? 'wholeroot' : 'default'}`, tuning, own, o.nodeArgs);
  const ports = bridge.ports;
  const readyMs = await bridge.waitReady();
  await sleep(1000);
  const rssIdle = bridge.rssBytes();
  const counter = await DeliveryCounter.connect(stack.broker.url);
  const sender = new DatagramSender(ports.udp);
  try {
    // Warm the QRS cache: one event for the same task and app, then the storm.
    await warmUp(sender, counter);
    const qrsBefore = stack.qrs.requests.length;
    const events = Array.from({ length: o.events }, (_, i) => failureEvent(i));
    const cpu0 = bridge.cpuSeconds();
    const machine0 = cpuReading();
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    // Where the backlog sits while the storm runs: waiting to be handled (inbox) or to be delivered (outbox).
    const depth = { inbox: [] as number[], outbox: [] as number[] };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = await bridge.metrics().catch(() => []);
        depth.inbox.push(sumMetric(m, 'butler_mqtt_inbox_events'));
        depth.outbox.push(sumMetric(m, 'butler_mqtt_outbox_messages'));
        await sleep(250);
      }
    })();
    if (o.rate === null) await sender.sendWindowed(events, o.window, counter, 0);
    else await sender.sendAtRate(events, o.rate);
    const complete = await counter.waitFor(o.events, o.timeoutMs);
    sampling = false;
    await sampler;
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = bridge.cpuSeconds() - cpu0;
    const machineBusy = busyPercent(machine0, cpuReading());
    const own = process.cpuUsage(own0);
    const qrsCalls = stack.qrs.requests.length - qrsBefore;
    await sleep(500); // late duplicates, if any, are counted too
    const samples = await bridge.metrics();
    await sleep(1500);
    const rssAfter = bridge.rssBytes();
    const rejected: Record<string, number> = {};
    for (const s of samples) if (s.name === 'butler_mqtt_events_rejected_total' && s.labels['source'] === 'udp_task') rejected[s.labels['reason'] ?? '?'] = s.value;
    const distinct = events.filter((e) => counter.fullAt.has(e.executionId)).length;
    return {
      events: o.events,
      pacing: o.rate === null ? `window of ${o.window} events` : `${o.rate}/s`,
      loopbackSubscription: o.loopbackSubscription,
      seconds: round(seconds, 3),
      eventsPerSecond: Math.round(o.events / seconds),
      messagesPerSecond: Math.round((2 * o.events) / seconds),
      delivered: { basic: counter.basic, full: counter.full, distinctFull: distinct, duplicates: counter.duplicates, lost: o.events - distinct },
      bridge: {
        received: sumMetric(samples, 'butler_mqtt_events_received_total', { source: 'udp_task' }) - 1,
        accepted: sumMetric(samples, 'butler_mqtt_events_accepted_total', { source: 'udp_task' }) - 1,
        rejected,
        messagesDelivered: sumMetric(samples, 'butler_mqtt_messages_delivered_total', { kind: 'task_failure' }) + sumMetric(samples, 'butler_mqtt_messages_delivered_total', { kind: 'task_failure_full' }) - 2,
        cpuSeconds: round(cpuSeconds, 2),
        cpuMsPerEvent: round((cpuSeconds * 1000) / o.events, 3),
        rssIdleMB: round(rssIdle / MB),
        rssAfterMB: round(rssAfter / MB),
        rssPeakMB: round(bridge.peakRssBytes() / MB),
        readyMs: Math.round(readyMs),
      },
      qrs: { calls: qrsCalls, callsPerEvent: round(qrsCalls / o.events, 4), latencyMs: o.qrsLatencyMs },
      machine: { cpuBusyPercent: machineBusy, benchProcessCpuSeconds: round((own.user + own.system) / 1e6, 2) },
      backlog: { inboxMean: Math.round(mean(depth.inbox)), inboxMax: Math.max(0, ...depth.inbox), outboxMean: Math.round(mean(depth.outbox)), outboxMax: Math.max(0, ...depth.outbox) },
      complete,
    };
  } finally {
    await sender.close();
    await counter.close();
    await bridge.stop();
    stack.qrs.setLatency(0);
  }
}

export interface RawResult {
  messages: number;
  payloadMB: number;
  seconds: number;
  /** Events (pairs of messages) per second. */
  eventsPerSecond: number;
  messagesPerSecond: number;
  received: number;
  complete: boolean;
}

/** The raw limit: the same 2N payloads from MQTT.js in a child process (as the bridge is), no bridge. */
export async function runRaw(stack: Stack, res: Resources, o: { events: number; inFlightWindow: number; timeoutMs: number }): Promise<RawResult> {
  const counter = await DeliveryCounter.connect(stack.broker.url);
  const child = fork(path.join(HERE, 'raw-publisher.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  res.add(`raw publisher ${child.pid}`, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  type Msg = { type: 'ready'; bytes: number } | { type: 'done'; publishMs: number } | { type: 'error'; message: string };
  const next = () =>
    new Promise<Msg>((resolve, reject) => {
      child.once('message', (m: Msg) => (m.type === 'error' ? reject(new Error(`raw publisher: ${m.message}`)) : resolve(m)));
      child.once('exit', (code) => reject(new Error(`raw publisher exited (${code})`)));
    });
  try {
    const ready = next();
    child.send({ url: stack.broker.url, events: o.events, window: o.inFlightWindow, qos: 1 });
    const r = (await ready) as { type: 'ready'; bytes: number };
    const t0 = performance.now();
    const done = next();
    child.send('go');
    await done;
    const complete = await counter.waitFor(o.events, o.timeoutMs);
    const seconds = (performance.now() - t0) / 1000;
    return {
      messages: 2 * o.events,
      payloadMB: round(r.bytes / MB),
      seconds: round(seconds, 3),
      eventsPerSecond: Math.round(o.events / seconds),
      messagesPerSecond: Math.round((2 * o.events) / seconds),
      received: counter.basic + counter.full,
      complete,
    };
  } finally {
    await counter.close();
    await exited;
  }
}
