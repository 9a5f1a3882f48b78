// On Linux the nice value belongs to a thread, not to the process. Raising the main thread's (it
// enriches, stores and publishes) leaves the UDP receive threads at the priority the service was
// started with, so when the CPU is busy they are scheduled first and the sockets are emptied before
// the kernel's receive buffer overflows. Nothing is lost by the lower priority: what the receive
// threads read waits in their ring until the main thread takes it.
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import type { Logger } from '../observability/logger.ts';

let done = false;

/** Adds `by` to the calling (main) thread's nice value, once per process; Linux only. */
export function lowerProcessingPriority(by: number, logger: Logger): void {
  if (done || by <= 0 || process.platform !== 'linux' || !isMainThread) return;
  done = true;
  try {
    const before = os.getPriority();
    const after = Math.min(19, before + by);
    if (after === before) return;
    os.setPriority(after);
    logger.info({ niceBefore: before, niceAfter: after }, `processing thread nice ${before} → ${after} (udpServerConfig.processingNice): the UDP receive threads keep nice ${before} and are scheduled first`);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, `could not lower the processing thread's priority: ${(err as Error).message}`);
  }
}
