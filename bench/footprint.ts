// Footprint: the bridge started as a child process (fresh outbox) several times; time from spawn()
// to the first 200 of GET /ready (connected to the broker, outbox below its high-water mark) and the
// resident memory once it has been idle for two seconds. For comparison, the same sources bundled to
// one JavaScript file and run without the TypeScript loader: what a build step would change.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../test/support/bridge.ts';
import { sleep } from '../test/support/wait.ts';
import { launchBridge, type BridgeTuning, type Resources, type Stack } from './lib/stack.ts';
import { round } from './lib/traffic.ts';

export interface StartFigures {
  readyMs: number[];
  readyMedianMs: number;
  /** Time to the "butler-mqtt started" log line (every part started). */
  startedMedianMs: number;
  rssIdleMB: number[];
  rssIdleMaxMB: number;
}

export interface FootprintResult extends StartFigures {
  starts: number;
  /** The same, bundled to JavaScript (null: not measured). */
  bundled: StartFigures | null;
}

const MB = 1024 * 1024;

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

async function measure(stack: Stack, res: Resources, tuning: BridgeTuning, starts: number, entry?: string): Promise<StartFigures> {
  const readyMs: number[] = [];
  const startedMs: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < starts; i++) {
    const bridge = await launchBridge(stack, res, `footprint-${entry ? 'bundle' : 'tsx'}-${i}`, tuning, {}, [], entry);
    let startedAt: number | null = null;
    bridge.child.stdout?.on('data', (d: Buffer) => {
      if (startedAt === null && d.toString().includes('butler-mqtt started')) startedAt = performance.now();
    });
    try {
      readyMs.push(await bridge.waitReady());
      await sleep(2000);
      rss.push(bridge.rssBytes());
      if (startedAt !== null) startedMs.push(startedAt - bridge.spawnedAt);
    } finally {
      await bridge.stop();
    }
  }
  return {
    readyMs: readyMs.map((v) => Math.round(v)),
    readyMedianMs: Math.round(median(readyMs)),
    startedMedianMs: Math.round(median(startedMs)),
    rssIdleMB: rss.map((v) => round(v / MB)),
    rssIdleMaxMB: round(Math.max(...rss) / MB),
  };
}

/**
 * src/main.ts bundled with esbuild (dependencies stay in node_modules), laid out so the paths the
 * sources read relative to themselves (package.json, the status page files) resolve.
 */
async function bundle(res: Resources): Promise<string> {
  // esbuild comes with tsx; loaded here only, so the other benchmarks run where it cannot be resolved.
  const { build } = await import('esbuild');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bm-bundle-'));
  res.add('bundle directory', () => rmSync(dir, { recursive: true, force: true }));
  const entry = path.join(dir, 'src', 'http', 'main.mjs');
  await build({ entryPoints: [path.join(REPO_ROOT, 'src/main.ts')], outfile: entry, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
  mkdirSync(path.join(dir, 'src', 'status'), { recursive: true });
  for (const p of [path.join(dir, 'package.json'), path.join(dir, 'src', 'package.json')]) copyFileSync(path.join(REPO_ROOT, 'package.json'), p);
  cpSync(path.join(REPO_ROOT, 'src/http/status'), path.join(dir, 'src', 'status'), { recursive: true });
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return entry;
}

export async function runFootprint(stack: Stack, res: Resources, tuning: BridgeTuning, o: { starts: number; compareBundle: boolean }): Promise<FootprintResult> {
  const figures = await measure(stack, res, tuning, o.starts);
  const bundled = o.compareBundle ? await measure(stack, res, tuning, o.starts, await bundle(res)) : null;
  return { starts: o.starts, ...figures, bundled };
}
