// An alert bridge is idle most of the time. Start-up is one long burst of allocation (modules,
// config, schemas) whose objects mostly live on; left alone, V8 answers it by growing its young
// generation to the limit (two 16 MB semi-spaces on Node.js 20) and keeps that, and the code and
// heap layout it chose for speed, until about ten seconds after the bridge falls idle. So the command
// (bin/butler-mqtt.js) starts V8 lean before it loads anything: the young generation does not grow
// (1 MB semi-spaces) and V8 favours memory over speed (--optimize-for-size). That costs nothing
// while the bridge is quiet. The first time its event loop is busy for a quarter of a 250 ms span,
// this gives V8 its defaults back (growth factor 2, optimised for speed) for the rest of the
// process's life. V8 reads both flags where it decides, so setting them at run time takes effect;
// run without the command (the sources through tsx), V8 has its defaults from the start.
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';

const CHECK_MS = 250;
const BUSY = 0.25;

let watching = false;

/** Start-up is over: V8 gets its defaults back as soon as the bridge has work. */
export function startupDone(): void {
  if (watching) return;
  watching = true;
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, last).utilization >= BUSY) {
      v8.setFlagsFromString('--semi-space-growth-factor=2');
      v8.setFlagsFromString('--no-optimize-for-size');
      clearInterval(timer);
    }
    last = now;
  }, CHECK_MS);
  timer.unref();
}
