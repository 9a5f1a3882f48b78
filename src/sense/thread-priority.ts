// On Linux the nice value belongs to a thread, not to the process. Once every UDP port listens, the
// bridge lowers the priority of all its threads but the UDP receive threads: the main thread (it
// enriches, stores and publishes), V8's garbage-collection and compiler threads and libuv's pool
// (threads made later take their creator's value). When the CPU is busy the receive threads are then
// scheduled first and the sockets are emptied before the kernel's receive buffer overflows. Nothing
// is lost by the lower priority: what the receive threads read waits in their ring until the main
// thread takes it.
import { readdirSync } from 'node:fs';
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import type { Logger } from '../observability/logger.ts';

const receiveThreads = new Set<number>();
let done = false;

/** A UDP receive thread (its Linux thread id): it keeps its priority. */
export function registerReceiveThread(threadId: number): void {
  receiveThreads.add(threadId);
}

/** The process's threads (Linux thread ids), empty where /proc is not readable. */
function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number).filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/**
 * Adds `by` to the nice value of every thread but the receive threads, once per process; Linux
 * only, and only when a receive thread is known.
 */
export function lowerProcessingPriority(by: number, logger: Logger): void {
  if (done || by <= 0 || process.platform !== 'linux' || !isMainThread || receiveThreads.size === 0) return;
  done = true;
  try {
    const before = os.getPriority();
    const after = Math.min(19, before + by);
    if (after === before) return;
    let lowered = 0;
    for (const tid of threadIds()) {
      if (receiveThreads.has(tid) || tid === process.pid) continue;
      try {
        os.setPriority(tid, after);
        lowered += 1;
      } catch {
        // a thread that ended meanwhile
      }
    }
    os.setPriority(0, after); // the main thread itself
    logger.info(
      { niceBefore: before, niceAfter: after, receiveThreads: [...receiveThreads], otherThreadsLowered: lowered },
      `processing thread nice ${before} → ${after} (udpServerConfig.processingNice), and ${lowered} other thread(s): the ${receiveThreads.size} UDP receive thread(s) keep nice ${before} and are scheduled first`,
    );
  } catch (err) {
    logger.warn({ err: (err as Error).message }, `could not lower the processing threads' priority: ${(err as Error).message}`);
  }
}
