// An alert bridge is idle most of the time. Start-up is one long burst of allocation (modules,
// config, schemas) whose objects mostly live on; left alone, V8 answers it by growing its young
// generation to the limit (two 16 MB semi-spaces on Node.js 20) and keeps it until about ten seconds
// after the bridge falls idle. So the command (bin/butler-mqtt.js) slows the young generation's growth
// (factor 1) before it loads anything: it still doubles twice while the bridge starts (8 MB at ready,
// against 32 MB), then stays there while the bridge is quiet. The first time the event loop is busy
// for a quarter of a 250 ms span, this gives V8 its default growth factor (2) back for the rest of
// the process's life, so a working bridge has its larger young generation as before. V8 reads the
// factor each time it considers growing, so setting it at run time takes effect; run without the
// command (the sources through tsx), V8 has its default from the start.
//
// (Asking V8 to favour memory over speed at start-up as well, --optimize-for-size, took another 5 MB
// off but cost about 10% of storm throughput even after it was switched off again: code compiled
// while it was on stays.)
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';

const CHECK_MS = 250;
const BUSY = 0.25;

let watching = false;

/** Start-up is over: the young generation may grow again as soon as the bridge has work. */
export function startupDone(): void {
  if (watching) return;
  watching = true;
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    if (performance.eventLoopUtilization(now, last).utilization >= BUSY) {
      v8.setFlagsFromString('--semi-space-growth-factor=2');
      clearInterval(timer);
    }
    last = now;
  }, CHECK_MS);
  timer.unref();
}
