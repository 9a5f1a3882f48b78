// Runs butler-mqtt for tests: a config file written to a temp dir, and the bridge either in this
// process (App) or as a real child process (for SIGKILL and signal tests), with its log lines kept.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../src/config/load.ts';
import { App } from '../../src/app.ts';
import { waitFor } from './wait.ts';
import { noteBridgeConfig } from './contract.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Json, v) : v;
  return out;
}

export function tempDir(prefix = 'bm-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A minimal Butler config for tests: MQTT on the given broker, everything else off. */
export function baseButler(brokerPort: number): Json {
  return {
    logLevel: 'info',
    mqttConfig: {
      enable: true,
      brokerHost: '127.0.0.1',
      brokerPort,
      clientId: `bridge-${Math.random().toString(16).slice(2, 10)}`,
      reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
      delivery: { outboxFile: 'outbox.sqlite', shutdownFlushSeconds: 2 },
      bridgeTopicRoot: '', // no bridge info/health messages unless a test asks for them
    },
    udpServerConfig: { enable: false },
    restServerConfig: { enable: false },
  };
}

export function writeConfig(dir: string, butler: Json, name = 'config.yaml'): string {
  const file = path.join(dir, name);
  const text = stringify({ Butler: butler });
  writeFileSync(file, text);
  noteBridgeConfig(text, file, butler); // collectors check messages against this config's topics
  return file;
}

export interface InProcessBridge {
  app: App;
  logs: string[];
  stop(): Promise<void>;
}

export async function startInProcess(configFile: string): Promise<InProcessBridge> {
  const logs: string[] = [];
  const config = loadConfigFile(configFile);
  const app = new App(config, { logDestination: { write: (l: string) => logs.push(l) }, logPretty: false });
  await app.start();
  return { app, logs, stop: () => app.stop() };
}

export interface ChildBridge {
  child: ChildProcess;
  lines: string[];
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exit: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `butler-mqtt run --config <file>` as a child process; resolves once it logged that it started. */
/**
 * The non-empty lines a child process writes to stdout and stderr, as they come. With `keep`, only
 * about the last `keep` lines are held (a long run, e.g. a benchmark).
 */
export function collectLines(child: ChildProcess, keep = Infinity): string[] {
  const lines: string[] = [];
  let partial = '';
  const onData = (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) if (l.length > 0) lines.push(l);
    if (lines.length > 2 * keep) lines.splice(0, lines.length - keep);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return lines;
}

export async function spawnBridge(configFile: string, args: string[] = ['run'], env: NodeJS.ProcessEnv = {}): Promise<ChildBridge> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/main.ts'), ...args, '--config', configFile], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const lines = collectLines(child);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const bridge: ChildBridge = {
    child,
    lines,
    exit,
    waitForLine: async (pattern, timeoutMs = 15_000) => {
      await waitFor(() => lines.some((l) => pattern.test(l)) || child.exitCode !== null, timeoutMs, `a log line matching ${pattern}`);
      const line = lines.find((l) => pattern.test(l));
      if (!line) throw new Error(`bridge exited (${child.exitCode}) before logging ${pattern}:\n${lines.join('\n')}`);
      return line;
    },
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
  if (args[0] === 'run') await bridge.waitForLine(/butler-mqtt started/);
  return bridge;
}

/**
 * The Sense connection part of a Butler config for a bridge talking to the QRS simulator: configQRS
 * on the simulator's port with the test client certificate; `qrs` overrides keys of configQRS.
 */
export function senseConnection(qrsPort: number, pki: { caCert: string; client(name: string): { cert: string; key: string } }, qrs: Json = {}): Json {
  const client = pki.client('butler-mqtt');
  return {
    configQRS: {
      host: 'localhost',
      port: qrsPort,
      useSSL: true,
      rejectUnauthorized: true,
      headers: { static: [{ name: 'X-Qlik-User', value: 'UserDirectory=Internal; UserId=sa_api' }] },
      ...qrs,
    },
    cert: { clientCert: client.cert, clientCertKey: client.key, clientCertCA: pki.caCert },
  };
}
