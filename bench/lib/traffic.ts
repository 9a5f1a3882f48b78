// The traffic side of a benchmark: reload-failure datagrams, a sender that paces them (a fixed rate,
// or a window of events in the pipeline), and a subscriber that counts what was delivered and when.
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { schedulerDatagram } from '../../test/support/udp.ts';
import { SAMPLE_APP_ID, SAMPLE_TASK_ID } from '../../test/support/qrs-simulator.ts';

export const FAILED = 'qliksense/task_failure';
export const FAILED_FULL = 'qliksense/task_failure_full';

export interface BenchEvent {
  executionId: string;
  datagram: Buffer;
}

/** A reload-failed datagram as Sense sends it (sample task and app unless given), unique executionId. */
export function failureEvent(i: number, ids: { taskId?: string; appId?: string; taskName?: string } = {}): BenchEvent {
  const executionId = randomUUID();
  const text = schedulerDatagram({
    taskId: ids.taskId ?? SAMPLE_TASK_ID,
    appId: ids.appId ?? SAMPLE_APP_ID,
    taskName: ids.taskName ?? 'Nightly finance reload',
    executionId,
    message: `Max retries reached (bench event ${i})`,
  });
  return { executionId, datagram: Buffer.from(text, 'utf8') };
}

const EXEC_KEY = '"executionId":"';

/** Counts basic and full failure messages; records when each executionId's full message arrived. */
export class DeliveryCounter {
  basic = 0;
  full = 0;
  /** executionId → performance.now() of the first full message. */
  readonly fullAt = new Map<string, number>();
  duplicates = 0;
  private waiters: (() => void)[] = [];

  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, topics: string[] = [FAILED, FAILED_FULL]): Promise<DeliveryCounter> {
    const client = await mqtt.connectAsync(url, { clientId: `bench-sub-${randomUUID().slice(0, 8)}`, clean: true, reconnectPeriod: 200 });
    const counter = new DeliveryCounter(client);
    client.on('message', (topic, payload) => counter.onMessage(topic, payload));
    await client.subscribeAsync(topics, { qos: 1 });
    return counter;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const now = performance.now();
    if (topic === FAILED) {
      this.basic++;
    } else if (topic === FAILED_FULL) {
      this.full++;
      // A substring search, not JSON.parse: the subscriber must not be the slowest part of the run.
      const text = payload.toString('utf8');
      const at = text.indexOf(EXEC_KEY);
      const id = at < 0 ? '' : text.slice(at + EXEC_KEY.length, text.indexOf('"', at + EXEC_KEY.length));
      if (this.fullAt.has(id)) this.duplicates++;
      else this.fullAt.set(id, now);
    } else {
      return;
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next counted message (or after `ms`). */
  progress(ms = 200): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Waits until `basic` and `full` both reach n; false on timeout. */
  async waitFor(n: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.basic < n || this.full < n) {
      if (performance.now() > deadline) return false;
      await this.progress(250);
    }
    return true;
  }

  reset(): void {
    this.basic = 0;
    this.full = 0;
    this.duplicates = 0;
    this.fullAt.clear();
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

export class DatagramSender {
  private readonly socket = dgram.createSocket('udp4');
  private outstanding = 0;
  private drained: (() => void) | null = null;
  /** executionId → performance.now() when handed to the socket. */
  readonly sentAt = new Map<string, number>();

  constructor(private readonly port: number) {}

  send(e: BenchEvent): void {
    this.outstanding++;
    this.sentAt.set(e.executionId, performance.now());
    this.socket.send(e.datagram, this.port, '127.0.0.1', () => {
      this.outstanding--;
      if (this.outstanding === 0 && this.drained) this.drained();
    });
  }

  /** Resolves when every datagram handed over was written by the OS. */
  async flush(): Promise<void> {
    if (this.outstanding === 0) return;
    await new Promise<void>((resolve) => (this.drained = resolve));
    this.drained = null;
  }

  /**
   * Sends every event, keeping at most `window` events between "sent" and "delivered" (full message
   * received): as fast as the pipeline takes them, without overrunning the socket's receive buffer.
   */
  async sendWindowed(events: BenchEvent[], window: number, counter: DeliveryCounter, deliveredBefore: number): Promise<void> {
    let i = 0;
    while (i < events.length) {
      const delivered = counter.fullAt.size - deliveredBefore;
      const room = Math.min(window - (i - delivered), 256, events.length - i);
      if (room <= 0) {
        await counter.progress(50);
        continue;
      }
      for (let k = 0; k < room; k++) this.send(events[i++]!);
      await this.flush();
    }
  }

  /** Sends at `perSecond`, in 10 ms slices. */
  async sendAtRate(events: BenchEvent[], perSecond: number): Promise<void> {
    const start = performance.now();
    let i = 0;
    while (i < events.length) {
      const due = Math.min(events.length, Math.floor(((performance.now() - start) / 1000) * perSecond) + 1);
      while (i < due) this.send(events[i++]!);
      await this.flush();
      if (i < events.length) await new Promise((r) => setTimeout(r, Math.max(1, Math.min(10, ((i / perSecond) * 1000 - (performance.now() - start))))));
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Nearest-rank percentile of already sorted values. */
/**
 * One event for the sample task and app, delivered before the measurement starts: the bridge has its
 * QRS answers cached and its connections warm. The counter is reset afterwards.
 */
export async function warmUp(sender: DatagramSender, counter: DeliveryCounter): Promise<void> {
  sender.send(failureEvent(-1));
  await sender.flush();
  if (!(await counter.waitFor(1, 15_000))) throw new Error('the warm-up event was not delivered');
  counter.reset();
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Hands `count` unique failure events to the socket as fast as it takes them; the events and the time it took. */
export async function sendUnpaced(sender: DatagramSender, count: number): Promise<{ events: BenchEvent[]; sendMs: number }> {
  const events = Array.from({ length: count }, (_, i) => failureEvent(i));
  const t0 = performance.now();
  for (const e of events) sender.send(e);
  await sender.flush();
  return { events, sendMs: performance.now() - t0 };
}
