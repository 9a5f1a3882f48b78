// What a benchmark runs against: a real broker, the QRS simulator over HTTPS with client
// certificates, and the bridge as a child process (its own CPU, RSS and start-up, as in production),
// watched through its /metrics endpoint and /proc. Everything started here is stopped by `close()`.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker, type TestBroker } from '../../test/support/broker.ts';
import { createTestPki, type TestPki } from '../../test/support/certs.ts';
import { QrsSimulator } from '../../test/support/qrs-simulator.ts';
import { REPO_ROOT, baseButler, collectLines, deepMerge, writeConfig } from '../../test/support/bridge.ts';
import { freeUdpPort } from '../../test/support/udp.ts';
import { freePort, sleep } from '../../test/support/wait.ts';

type Json = Record<string, unknown>;

/** Closers run in reverse order of registration; also on Ctrl-C, so no process outlives a run. */
export class Resources {
  private readonly closers: { name: string; close: () => Promise<void> | void }[] = [];

  add(name: string, close: () => Promise<void> | void): void {
    this.closers.push({ name, close });
  }

  async closeAll(): Promise<void> {
    while (this.closers.length > 0) {
      const c = this.closers.pop()!;
      try {
        await c.close();
      } catch (err) {
        process.stderr.write(`bench: could not close ${c.name}: ${(err as Error).message}\n`);
      }
    }
  }
}

export interface Stack {
  broker: TestBroker;
  pki: TestPki;
  qrs: QrsSimulator;
  /** A scratch directory for configs and outbox files. */
  dir: string;
}

export async function startStack(res: Resources): Promise<Stack> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bm-bench-'));
  res.add('scratch directory', () => rmSync(dir, { recursive: true, force: true }));
  const pki = await createTestPki();
  res.add('certificates', () => pki.cleanup());
  const qrs = await QrsSimulator.start({ pki });
  res.add('QRS simulator', () => qrs.stop());
  const broker = await startBroker();
  res.add('broker', () => broker.stop());
  return { broker, pki, qrs, dir };
}

/** What every bridge of a run gets: log level, Butler config overrides, Node.js flags. */
export interface BridgeTuning {
  logLevel: string;
  /** Merged into the generated Butler config (after the benchmark's own settings). */
  over: Json;
  nodeArgs: string[];
}

export interface BridgeSettings {
  name: string;
  logLevel?: string;
  /** Overrides merged into the generated Butler config. */
  over?: Json;
}

export interface BridgePorts {
  udp: number;
  http: number;
}

/** A realistic bridge config: UDP task alerts, QRS = the simulator, HTTP for /metrics and /ready. */
export async function writeBridgeConfig(stack: Stack, s: BridgeSettings): Promise<{ file: string; ports: BridgePorts; outbox: string }> {
  const udp = await freeUdpPort();
  const http = await freePort();
  const client = stack.pki.client('butler-mqtt');
  const outbox = path.join(stack.dir, s.name, 'outbox.sqlite');
  const butler = deepMerge(
    deepMerge(baseButler(stack.broker.port), {
      logLevel: s.logLevel ?? 'info',
      mqttConfig: { delivery: { outboxFile: outbox, shutdownFlushSeconds: 2 } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udp },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: http, rateLimitPerMinute: 1_000_000 },
      restServerEndpointsEnable: { mqttPublishMessage: true },
      configQRS: {
        host: 'localhost',
        port: stack.qrs.port,
        useSSL: true,
        rejectUnauthorized: true,
        headers: { static: [{ name: 'X-Qlik-User', value: 'UserDirectory=Internal; UserId=sa_api' }] },
      },
      cert: { clientCert: client.cert, clientCertKey: client.key, clientCertCA: stack.pki.caCert },
    }),
    s.over ?? {},
  );
  return { file: writeConfig(stack.dir, butler, `${s.name}.yaml`), ports: { udp, http }, outbox };
}

/** Writes a config (the benchmark's `own` settings, then the run's tuning) and starts the bridge on it. */
export async function launchBridge(stack: Stack, res: Resources, name: string, tuning: BridgeTuning, own: Json = {}, extraNodeArgs: string[] = [], entry: BridgeEntry = 'build'): Promise<ChildBridge> {
  const { file, ports } = await writeBridgeConfig(stack, { name: `${name}-${Date.now()}`, logLevel: tuning.logLevel, over: deepMerge(own, tuning.over) });
  return spawnBridge(res, file, ports, [...tuning.nodeArgs, ...extraNodeArgs], entry);
}

export interface ChildBridge {
  child: ChildProcess;
  pid: number;
  ports: BridgePorts;
  /** performance.now() when spawn() was called. */
  spawnedAt: number;
  /** Last log lines (bounded). */
  lines: string[];
  metrics(): Promise<MetricSample[]>;
  /** Sum of a metric's samples whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  rssBytes(): number;
  /** Peak RSS (VmHWM). */
  peakRssBytes(): number;
  /** User + system CPU seconds used so far. */
  cpuSeconds(): number;
  /** Polls /ready until it answers 200; resolves with ms since spawn. */
  waitReady(timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

const CLK_TCK = 100;

/**
 * How the bridge is started: 'build' is the package's command (bin/butler-mqtt.js, which runs
 * dist/main.mjs; bench/run.ts builds it first), 'sources' the TypeScript sources through tsx.
 */
export type BridgeEntry = 'build' | 'sources';

/**
 * Starts `butler-mqtt run`. `nodeArgs` go before the script (e.g. --cpu-prof). The process is
 * registered for cleanup.
 */
export function spawnBridge(res: Resources, configFile: string, ports: BridgePorts, nodeArgs: string[] = [], entry: BridgeEntry = 'build'): ChildBridge {
  const spawnedAt = performance.now();
  const script = entry === 'build' ? [path.join(REPO_ROOT, 'bin/butler-mqtt.js')] : ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts')];
  const child = spawn(process.execPath, [...nodeArgs, ...script, 'run', '--config', configFile], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });
  const lines = collectLines(child, 200);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid ?? 0;
  const base = `http://127.0.0.1:${ports.http}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
    if (killed) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  res.add(`bridge ${pid}`, stop);
  const status = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  };
  const metrics = async () => parseMetrics(await (await fetch(`${base}/metrics`)).text());
  return {
    child,
    pid,
    ports,
    spawnedAt,
    lines,
    metrics,
    metric: async (name, labels = {}) => sumMetric(await metrics(), name, labels),
    rssBytes: () => status('VmRSS'),
    peakRssBytes: () => status('VmHWM'),
    cpuSeconds: () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    },
    waitReady: async (timeoutMs = 20_000) => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`bridge exited (${child.exitCode}) before it was ready:\n${lines.slice(-20).join('\n')}`);
        try {
          const r = await fetch(`${base}/ready`);
          await r.arrayBuffer();
          if (r.status === 200) return performance.now() - spawnedAt;
        } catch {
          // not listening yet
        }
        if (performance.now() > deadline) throw new Error(`bridge not ready within ${timeoutMs} ms:\n${lines.slice(-20).join('\n')}`);
        await sleep(5);
      }
    },
    stop,
  };
}

/** Busy share of all CPUs between two readings of /proc/stat (reading = cumulative busy and total jiffies). */
export function cpuReading(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export function busyPercent(from: { busy: number; total: number }, to: { busy: number; total: number }): number {
  const total = to.total - from.total;
  return total > 0 ? Math.round(((to.busy - from.busy) / total) * 1000) / 10 : NaN;
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, as much of it as /metrics uses (no escaped quotes in our label values). */
export function parseMetrics(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export function sumMetric(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}
