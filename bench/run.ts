// `npm run bench`: footprint, storm (against the raw MQTT.js limit measured in the same run, on the
// same broker), the cost of the bridge's own qliksense/# subscription, burst and latency. Writes the
// figures as JSON to bench/results/ and prints one screen of summary. Reports; never fails on a miss.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { Resources, startStack, type BridgeTuning } from './lib/stack.ts';
import { describeMachine, type MachineInfo } from './lib/machine.ts';
import { round } from './lib/traffic.ts';
import { runRaw, runStorm, type RawResult, type StormResult } from './storm.ts';
import { runBurst, type BurstResult } from './burst.ts';
import { runFlood, type FloodResult } from './flood.ts';
import { runLatency, type LatencyResult } from './latency.ts';
import { runFootprint, type FootprintResult } from './footprint.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ALL = ['footprint', 'storm', 'wholeroot', 'burst', 'flood', 'latency'] as const;
type Bench = (typeof ALL)[number];

interface Options {
  only: string;
  events: number;
  rate?: number;
  window: number;
  qrsLatency: number;
  inFlight: number;
  burst: number;
  flood: string;
  latencyRate: number;
  latencySeconds: number;
  starts: number;
  repeat: number;
  sources: boolean;
  idleSeconds: number;
  logLevel: string;
  bridgeJson?: string;
  nodeArgs?: string;
  profile: boolean;
  profileDir: string;
  reference: boolean;
  out?: string;
}

interface StormRound {
  eventsPerSecond: number;
  rawEventsPerSecond: number;
  ratioToRaw: number;
  /** The same storm with the subscription root moved off qliksense/ (null: not measured). */
  wholeRootEventsPerSecond: number | null;
  lost: number;
  duplicates: number;
  cpuMsPerEvent: number;
  machineCpuBusyPercent: number;
}

interface StormSummary {
  rounds: StormRound[];
  /** Medians over the rounds (each figure on its own). */
  median: { eventsPerSecond: number; rawEventsPerSecond: number; ratioToRaw: number; wholeRootEventsPerSecond: number | null; loopbackCostPercent: number | null; cpuMsPerEvent: number };
  lost: number;
  duplicates: number;
  qrsCallsPerEvent: number;
  /** Full figures of the first round. */
  first: StormResult & { raw: RawResult; wholeRoot: StormResult | null };
}

interface Results {
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  options: Omit<Options, 'out' | 'reference' | 'profileDir'>;
  footprint?: FootprintResult;
  storm?: StormSummary;
  burst?: BurstResult;
  flood?: FloodResult[];
  latency?: { warm: LatencyResult; cold: LatencyResult };
  targets: { name: string; target: string; measured: string; met: boolean }[];
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`expected a positive integer, got ${v}`);
  return n;
};

const program = new Command('bench')
  .description('butler-mqtt benchmarks; results in bench/results/')
  .option('--only <list>', `comma-separated subset of ${ALL.join(',')}`, ALL.join(','))
  .option('--events <n>', 'storm: reload failures', int, 20_000)
  .option('--rate <n>', 'storm: datagrams per second (default: as fast as the pipeline takes them)', int)
  .option('--window <n>', 'storm without --rate: events between sent and delivered, at most', int, 2000)
  .option('--qrs-latency <ms>', 'QRS simulator delay per call', (v) => Number(v), 5)
  .option('--in-flight <n>', 'delivery.inFlightWindow of the bridge and window of the raw publisher', int, 100)
  .option('--burst <n>', 'burst: datagrams', int, 2000)
  .option('--flood <list>', 'flood: datagram counts, comma-separated (each against the bridge and a bare receiver)', '20000,100000')
  .option('--latency-rate <n>', 'latency: events per second', int, 100)
  .option('--latency-seconds <n>', 'latency: seconds per mode (warm, cold)', int, 30)
  .option('--starts <n>', 'footprint: cold starts', int, 3)
  .option('--idle-seconds <n>', 'footprint: idle RSS is read this long after ready', int, 20)
  .option('--no-sources', 'footprint: skip the comparison with the TypeScript sources run through tsx')
  .option('--repeat <n>', 'storm: rounds of storm, raw limit (and the whole-root storm); medians are reported', int, 3)
  .addOption(new Option('--log-level <level>', 'Butler.logLevel of the bridge').choices(['error', 'warn', 'info', 'verbose', 'debug']).default('info'))
  .option('--bridge-json <json>', 'JSON merged into the Butler config of every bridge, e.g. \'{"udpServerConfig":{"messageQueue":{"maxConcurrent":50}}}\'')
  .option('--node-args <args>', 'extra Node.js flags for every bridge process, e.g. "--max-semi-space-size=1"')
  .option('--profile', 'first storm: run the bridge with --cpu-prof; the .cpuprofile file goes to --profile-dir', false)
  .option('--profile-dir <dir>', 'where --profile writes (open the file in Chrome DevTools or VS Code)', path.join(os.tmpdir(), 'butler-mqtt-profiles'))
  .option('--reference', 'write bench/results/reference-<date>.json (committed) instead of a timestamped file', false)
  .option('--out <file>', 'result file');

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Options>();
  const selected = new Set(o.only.split(',').map((s) => s.trim()) as Bench[]);
  for (const s of selected) if (!ALL.includes(s)) throw new Error(`unknown benchmark ${s}; choose from ${ALL.join(', ')}`);
  const res = new Resources();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nbench: interrupted, stopping every process started\n');
    void res.closeAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const began = Date.now();
  const log = (s: string) => process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
  const results: Results = {
    startedAt: new Date(began).toISOString(),
    durationSeconds: 0,
    machine: describeMachine('pending'),
    options: { only: o.only, events: o.events, rate: o.rate, window: o.window, qrsLatency: o.qrsLatency, inFlight: o.inFlight, burst: o.burst, flood: o.flood, latencyRate: o.latencyRate, latencySeconds: o.latencySeconds, starts: o.starts, idleSeconds: o.idleSeconds, repeat: o.repeat, sources: o.sources, logLevel: o.logLevel, bridgeJson: o.bridgeJson, nodeArgs: o.nodeArgs, profile: o.profile },
    targets: [],
  };
  try {
    // Every bridge runs as the package's command does: the JavaScript build, made fresh here.
    execFileSync(process.execPath, [path.join(HERE, '..', 'scripts', 'build.mjs')], { stdio: 'inherit' });
    const stack = await startStack(res);
    results.machine = describeMachine(stack.broker.kind);
    const profileDir = path.resolve(o.profileDir);
    if (o.profile) {
      mkdirSync(profileDir, { recursive: true });
      log(`CPU profile of the first storm's bridge: ${profileDir}`);
    }
    const tuning: BridgeTuning = {
      logLevel: o.logLevel,
      over: o.bridgeJson ? (JSON.parse(o.bridgeJson) as Record<string, unknown>) : {},
      nodeArgs: o.nodeArgs ? o.nodeArgs.split(/\s+/).filter(Boolean) : [],
    };
    const stormOptions = {
      events: o.events,
      rate: o.rate ?? null,
      window: o.window,
      qrsLatencyMs: o.qrsLatency,
      inFlightWindow: o.inFlight,
      timeoutMs: 120_000,
    };

    if (selected.has('footprint')) {
      log(`footprint: ${o.starts} cold starts`);
      results.footprint = await runFootprint(stack, res, tuning, { starts: o.starts, idleSeconds: o.idleSeconds, compareSources: o.sources });
    }
    if (selected.has('storm') || selected.has('wholeroot')) {
      const rounds: StormRound[] = [];
      let first: StormSummary['first'] | null = null;
      let qrsCalls = 0;
      for (let r = 1; r <= o.repeat; r++) {
        log(`storm ${r}/${o.repeat}: ${o.events} reload failures, QRS ${o.qrsLatency} ms per call, warm cache`);
        const storm = await runStorm(stack, res, tuning, { ...stormOptions, loopbackSubscription: false, nodeArgs: o.profile && r === 1 ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [] });
        log(`raw limit ${r}/${o.repeat}: MQTT.js, ${2 * o.events} messages, QoS 1, window ${o.inFlight}`);
        const raw = await runRaw(stack, res, { events: o.events, inFlightWindow: o.inFlight, timeoutMs: 120_000 });
        let wholeRoot: StormResult | null = null;
        if (selected.has('wholeroot')) {
          log(`storm ${r}/${o.repeat} subscribed to all of qliksense/# as Butler is (the cost of receiving our own messages)`);
          wholeRoot = await runStorm(stack, res, tuning, { ...stormOptions, loopbackSubscription: true, nodeArgs: [] });
        }
        first ??= { ...storm, raw, wholeRoot };
        qrsCalls = Math.max(qrsCalls, storm.qrs.callsPerEvent);
        rounds.push({
          eventsPerSecond: storm.eventsPerSecond,
          rawEventsPerSecond: raw.eventsPerSecond,
          ratioToRaw: round(storm.eventsPerSecond / raw.eventsPerSecond, 3),
          wholeRootEventsPerSecond: wholeRoot?.eventsPerSecond ?? null,
          lost: storm.delivered.lost + (wholeRoot?.delivered.lost ?? 0),
          duplicates: storm.delivered.duplicates + (wholeRoot?.delivered.duplicates ?? 0),
          cpuMsPerEvent: storm.bridge.cpuMsPerEvent,
          machineCpuBusyPercent: storm.machine.cpuBusyPercent,
        });
      }
      const med = (f: (x: StormRound) => number) => median(rounds.map(f));
      const wholeRootMedian = selected.has('wholeroot') ? med((x) => x.wholeRootEventsPerSecond ?? NaN) : null;
      const stormMedian = med((x) => x.eventsPerSecond);
      results.storm = {
        rounds,
        median: {
          eventsPerSecond: stormMedian,
          rawEventsPerSecond: med((x) => x.rawEventsPerSecond),
          ratioToRaw: med((x) => x.ratioToRaw),
          wholeRootEventsPerSecond: wholeRootMedian,
          loopbackCostPercent: wholeRootMedian ? round((1 - wholeRootMedian / stormMedian) * 100, 1) : null,
          cpuMsPerEvent: med((x) => x.cpuMsPerEvent),
        },
        lost: rounds.reduce((a, x) => a + x.lost, 0),
        duplicates: rounds.reduce((a, x) => a + x.duplicates, 0),
        qrsCallsPerEvent: qrsCalls,
        first: first!,
      };
    }
    if (selected.has('burst')) {
      log(`burst: ${o.burst} datagrams, unpaced`);
      results.burst = await runBurst(stack, res, tuning, { datagrams: o.burst, qrsLatencyMs: o.qrsLatency, timeoutMs: 60_000 });
    }
    if (selected.has('flood')) {
      results.flood = [];
      for (const n of o.flood.split(',').map((x) => int(x.trim()))) {
        log(`flood: ${n} datagrams, unpaced, against a bare receiver and the bridge`);
        results.flood.push(await runFlood(stack, res, tuning, { datagrams: n, qrsLatencyMs: o.qrsLatency, timeoutMs: 180_000 }));
      }
    }
    if (selected.has('latency')) {
      const l = { ratePerSecond: o.latencyRate, seconds: o.latencySeconds, qrsLatencyMs: o.qrsLatency };
      log(`latency (warm): ${o.latencyRate}/s for ${o.latencySeconds} s`);
      const warm = await runLatency(stack, res, tuning, { ...l, mode: 'warm' });
      log(`latency (cold): ${o.latencyRate}/s for ${o.latencySeconds} s, a new task per event`);
      const cold = await runLatency(stack, res, tuning, { ...l, mode: 'cold' });
      results.latency = { warm, cold };
    }
  } finally {
    await res.closeAll();
  }
  results.durationSeconds = Math.round((Date.now() - began) / 1000);
  results.targets = targets(results);
  const dir = path.join(HERE, 'results');
  mkdirSync(dir, { recursive: true });
  const file = o.out ?? path.join(dir, o.reference ? `reference-${results.startedAt.slice(0, 10)}.json` : `bench-${results.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(summary(results, file));
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : round((v[mid - 1]! + v[mid]!) / 2, 3);
}

function targets(r: Results): Results['targets'] {
  const t: Results['targets'] = [];
  if (r.storm) {
    const s = r.storm;
    const m = s.median;
    t.push({ name: 'storm throughput', target: '≥ 10,000 events/s', measured: `${m.eventsPerSecond.toLocaleString('en')} events/s (median of ${s.rounds.length})`, met: m.eventsPerSecond >= 10_000 });
    t.push({ name: 'storm vs raw limit', target: '≥ 40%', measured: `${(m.ratioToRaw * 100).toFixed(1)}% (raw ${m.rawEventsPerSecond.toLocaleString('en')} events/s)`, met: m.ratioToRaw >= 0.4 });
    t.push({ name: 'storm loss', target: '0', measured: `${s.lost} lost, ${s.duplicates} duplicates`, met: s.lost === 0 && s.first.complete });
    t.push({ name: 'QRS calls per event (warm)', target: '≤ 1', measured: String(s.qrsCallsPerEvent), met: s.qrsCallsPerEvent <= 1 });
  }
  if (r.burst) t.push({ name: 'burst delivered', target: `all ${r.burst.sent}`, measured: `${r.burst.delivered} (received ${r.burst.received})`, met: r.burst.delivered === r.burst.sent });
  for (const f of r.flood ?? []) {
    if (f.sent <= 20_000) {
      t.push({ name: `flood ${f.sent} delivered`, target: `all, 0 kernel drops`, measured: `${f.delivered} delivered, ${f.kernelDrops} kernel drops`, met: f.delivered === f.sent && f.kernelDrops === 0 });
    } else {
      const refused = Object.values(f.refused).reduce((a, b) => a + b, 0);
      t.push({ name: `flood ${f.sent} accounted for`, target: '0 unseen', measured: `${f.delivered} delivered, ${refused} refused, ${f.kernelDrops} kernel drops, ${f.unseen} unseen`, met: f.unseen === 0 });
    }
  }
  if (r.latency) t.push({ name: 'latency p99 (warm)', target: '≤ 10 ms', measured: `${r.latency.warm.p99Ms} ms`, met: r.latency.warm.p99Ms <= 10 && r.latency.warm.delivered === r.latency.warm.events });
  if (r.footprint) {
    t.push({ name: 'idle RSS', target: '≤ 100 MB', measured: `${r.footprint.rssIdleMaxMB} MB (max, ${r.footprint.idleSeconds} s after ready)`, met: r.footprint.rssIdleMaxMB <= 100 });
    const startMax = Math.max(...r.footprint.rssStartMB);
    t.push({ name: 'RSS 2 s after ready', target: '≤ 100 MB', measured: `${startMax} MB (max)`, met: startMax <= 100 });
    t.push({ name: 'start to ready', target: '≤ 1 s', measured: `${r.footprint.readyMedianMs} ms (median)`, met: r.footprint.readyMedianMs <= 1000 });
  }
  return t;
}

function summary(r: Results, file: string): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push('');
  lines.push(`butler-mqtt benchmarks — ${r.startedAt}, ${r.durationSeconds} s`);
  lines.push(`machine: ${m.nproc} cores (${m.cpuModel}), ${m.os}, Node ${m.node} (V8 ${m.v8}), ${m.broker}`);
  lines.push('');
  if (r.storm) {
    const s = r.storm;
    const f = s.first;
    const med = s.median;
    lines.push(`storm    ${f.events} events (${f.pacing}), QRS ${f.qrs.latencyMs} ms/call, ${s.rounds.length} rounds: ${s.rounds.map((x) => x.eventsPerSecond).join(' / ')} events/s → median ${med.eventsPerSecond} (${2 * med.eventsPerSecond} msg/s)`);
    lines.push(`         raw MQTT.js ${s.rounds.map((x) => x.rawEventsPerSecond).join(' / ')} events/s → median ${med.rawEventsPerSecond}; ratio per round ${s.rounds.map((x) => `${(x.ratioToRaw * 100).toFixed(0)}%`).join(' / ')} → median ${(med.ratioToRaw * 100).toFixed(1)}%`);
    lines.push(`         lost ${s.lost}, duplicates ${s.duplicates}; bridge CPU ${med.cpuMsPerEvent} ms/event; machine ${s.rounds.map((x) => `${x.machineCpuBusyPercent}%`).join(' / ')} busy; QRS calls/event ${s.qrsCallsPerEvent}`);
    lines.push(`         backlog during the first storm: inbox mean ${f.backlog.inboxMean} (max ${f.backlog.inboxMax}) events, outbox mean ${f.backlog.outboxMean} (max ${f.backlog.outboxMax}) messages`);
    if (med.wholeRootEventsPerSecond !== null) {
      lines.push(`         subscribed to all of qliksense/# (subscribeWholeRoot, as Butler): ${s.rounds.map((x) => x.wholeRootEventsPerSecond).join(' / ')} events/s → median ${med.wholeRootEventsPerSecond}; receiving our own messages costs ${med.loopbackCostPercent}%`);
    }
  }
  if (r.burst) {
    const b = r.burst;
    lines.push(`burst    ${b.sent} sent in ${b.sendMs} ms: received ${b.received}, delivered ${b.delivered}, lost ${b.lost} (drained in ${b.drainSeconds} s)`);
  }
  for (const f of r.flood ?? []) {
    lines.push(`flood    ${f.sent} sent in ${f.sendMs} ms (${f.sendRate}/s): kernel drops ${f.kernelDrops}, received ${f.received}, accepted ${f.accepted}, refused ${JSON.stringify(f.refused)}, delivered ${f.delivered}, unseen ${f.unseen} (drained in ${f.drainSeconds} s)`);
    lines.push(`         bare receiver, same flood: received ${f.raw.received} of ${f.raw.sent} at ${f.raw.sendRate}/s, kernel drops ${f.raw.kernelDrops}; bridge received ${(f.received / Math.max(1, f.raw.received) * 100).toFixed(1)}% of what it did`);
  }
  if (r.latency) {
    for (const l of [r.latency.warm, r.latency.cold]) {
      lines.push(`latency  ${l.mode.padEnd(4)} ${l.ratePerSecond}/s: p50 ${l.p50Ms} ms, p90 ${l.p90Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms; QRS calls/event ${l.qrsCallsPerEvent} (${l.delivered}/${l.events} delivered)`);
    }
  }
  if (r.footprint) {
    const f = r.footprint;
    lines.push(`start    ready after ${f.readyMs.join(', ')} ms (median ${f.readyMedianMs}; all parts started ${f.startedMedianMs} ms); RSS 2 s after ready ${f.rssStartMB.join(', ')} MB, ${f.idleSeconds} s after ${f.rssIdleMB.join(', ')} MB`);
    if (f.sources) {
      const b = f.sources;
      lines.push(`         TypeScript sources through tsx (no build): ready after ${b.readyMs.join(', ')} ms (median ${b.readyMedianMs}); RSS 2 s after ready ${b.rssStartMB.join(', ')} MB, ${f.idleSeconds} s after ${b.rssIdleMB.join(', ')} MB`);
    }
  }
  if (r.storm) {
    const b = r.storm.first.bridge;
    lines.push(`memory   storm bridge: RSS idle ${b.rssIdleMB} MB, 2 s after the storm ${b.rssAfterMB} MB, peak ${b.rssPeakMB} MB`);
  }
  lines.push('');
  for (const t of r.targets) lines.push(`${t.met ? 'met   ' : 'MISSED'}  ${t.name.padEnd(28)} target ${t.target.padEnd(18)} measured ${t.measured}`);
  lines.push('');
  lines.push(`results: ${path.relative(process.cwd(), file)}`);
  return lines.join('\n') + '\n';
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  // A benchmark reports; only a broken harness exits non-zero.
  process.exit(1);
});
