// Footprint: the bridge started as a child process (fresh outbox) several times, the way the package's
// command starts it (bin/butler-mqtt.js running the JavaScript build); time from spawn() to the first
// 200 of GET /ready (connected to the broker, outbox below its high-water mark), and resident memory
// 2 s after ready and once idle for `idleSeconds` (V8 gives its start-up young generation back about
// ten seconds after the last allocation burst, so the first figure is start-up, the second is idle).
// For comparison, the same run from the TypeScript sources through tsx (a checkout without a build).
import { launchBridge, type BridgeTuning, type Resources, type Stack } from './lib/stack.ts';
import { sleep } from '../test/support/wait.ts';
import { round } from './lib/traffic.ts';

export interface StartFigures {
  readyMs: number[];
  readyMedianMs: number;
  /** Time to the "butler-mqtt started" log line (every part started). */
  startedMedianMs: number;
  /** RSS 2 s after ready. */
  rssStartMB: number[];
  /** RSS after `idleSeconds` of idling after ready. */
  rssIdleMB: number[];
  rssIdleMaxMB: number;
}

export interface FootprintResult extends StartFigures {
  starts: number;
  idleSeconds: number;
  /** The same from the TypeScript sources through tsx (null: not measured). */
  sources: StartFigures | null;
}

const MB = 1024 * 1024;

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

async function measure(stack: Stack, res: Resources, tuning: BridgeTuning, starts: number, idleSeconds: number, entry: 'build' | 'sources'): Promise<StartFigures> {
  const readyMs: number[] = [];
  const startedMs: number[] = [];
  const rssStart: number[] = [];
  const rssIdle: number[] = [];
  for (let i = 0; i < starts; i++) {
    const bridge = await launchBridge(stack, res, `footprint-${entry}-${i}`, tuning, {}, [], entry);
    let startedAt: number | null = null;
    bridge.child.stdout?.on('data', (d: Buffer) => {
      if (startedAt === null && d.toString().includes('butler-mqtt started')) startedAt = performance.now();
    });
    try {
      readyMs.push(await bridge.waitReady());
      await sleep(2000);
      rssStart.push(bridge.rssBytes());
      await sleep(Math.max(0, idleSeconds * 1000 - 2000));
      rssIdle.push(bridge.rssBytes());
      if (startedAt !== null) startedMs.push(startedAt - bridge.spawnedAt);
    } finally {
      await bridge.stop();
    }
  }
  return {
    readyMs: readyMs.map((v) => Math.round(v)),
    readyMedianMs: Math.round(median(readyMs)),
    startedMedianMs: Math.round(median(startedMs)),
    rssStartMB: rssStart.map((v) => round(v / MB)),
    rssIdleMB: rssIdle.map((v) => round(v / MB)),
    rssIdleMaxMB: round(Math.max(...rssIdle) / MB),
  };
}

export async function runFootprint(stack: Stack, res: Resources, tuning: BridgeTuning, o: { starts: number; idleSeconds: number; compareSources: boolean }): Promise<FootprintResult> {
  const figures = await measure(stack, res, tuning, o.starts, o.idleSeconds, 'build');
  const sources = o.compareSources ? await measure(stack, res, tuning, o.starts, o.idleSeconds, 'sources') : null;
  return { starts: o.starts, idleSeconds: o.idleSeconds, ...figures, sources };
}
