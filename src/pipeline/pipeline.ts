// The one pipeline: every source's input walks it (src/pipeline/lane.ts has the policies). It owns
// nothing but the shared parts a lane needs — the inbox, the outbox's room signal, logger, metrics,
// activity — and gives each source its lane. Timer-driven sources (the monitors) have no input to
// store: their messages go through `timerSink`, which commits them with the same full-outbox policy.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ActivityLog } from '../observability/activity.ts';
import type { Inbox } from '../store/inbox.ts';
import type { Outbox } from '../store/outbox.ts';
import { MessageRejectedError, OutboxFullError, type MessageSink, type OutgoingMessage } from '../store/types.ts';
import { Lane, type LaneHandlers, type LaneOptions } from './lane.ts';

export interface PipelineDeps {
  inbox: Inbox;
  outbox: Outbox;
  logger: Logger;
  metrics: Metrics;
  activity?: ActivityLog;
}

/** Batches a timer source may have waiting for room in a full outbox; more are refused and counted. */
const TIMER_BACKLOG = 100;

export class Pipeline {
  readonly room: { hasRoom(): boolean; waitForRoom(): Promise<void> };
  private readonly lanes: Lane<unknown>[] = [];

  constructor(private readonly deps: PipelineDeps) {
    const outbox = deps.outbox;
    this.room = {
      hasRoom: () => outbox.depth < outbox.limits.maxMessages && outbox.byteSize < outbox.limits.maxBytes,
      waitForRoom: () => outbox.waitForRoom(),
    };
  }

  get inbox(): Inbox {
    return this.deps.inbox;
  }

  /** A new lane for one source. Its owner starts and stops it (after its input opens, before it closes). */
  lane<E>(options: LaneOptions, handlers: LaneHandlers<E>): Lane<E> {
    const lane = new Lane<E>(options, handlers, { inbox: this.deps.inbox, room: this.room, logger: this.deps.logger, metrics: this.deps.metrics, activity: this.deps.activity });
    this.lanes.push(lane as Lane<unknown>);
    return lane;
  }

  /**
   * Where a timer source (license and service monitors) stores its messages: committed in order, a
   * full outbox waited out (counted), a message the broker would never take refused with
   * MessageRejectedError (counted here, once). Resolves when the messages are on disk.
   */
  timerSink(source: string, describe: (messages: OutgoingMessage[]) => string): MessageSink {
    let chain: Promise<unknown> = Promise.resolve();
    let backlog = 0;
    const { inbox, metrics, logger, activity } = this.deps;
    const store = async (messages: OutgoingMessage[]): Promise<void> => {
      for (;;) {
        try {
          const outcome = await inbox.acceptHandled(null, messages);
          if (outcome.status === 'accepted') {
            metrics.eventsAccepted.inc({ source });
            if (activity) activity.messages(activity.event({ source, summary: describe(messages) }), outcome.ids, messages.map((m) => m.topic));
          }
          return;
        } catch (err) {
          if (err instanceof OutboxFullError) {
            metrics.outboxWaits.inc({ source });
            logger.warn(`${source}: ${err.message}; its messages wait until the outbox has room`);
            while (!this.room.hasRoom()) await this.room.waitForRoom();
            continue;
          }
          if (err instanceof MessageRejectedError) for (const m of messages) metrics.messagesRefused.inc({ kind: m.kind ?? source, reason: err.reason });
          throw err;
        }
      }
    };
    return {
      enqueue: (messages: OutgoingMessage[]) => {
        metrics.eventsReceived.inc({ source });
        if (backlog >= TIMER_BACKLOG) {
          for (const m of messages) metrics.messagesRefused.inc({ kind: m.kind ?? source, reason: 'outbox_full' });
          return Promise.reject(new OutboxFullError('messages', this.deps.outbox.depth, this.deps.outbox.limits.maxMessages));
        }
        backlog += 1;
        const run = chain.then(() => store(messages));
        chain = run.catch(() => undefined).finally(() => (backlog -= 1));
        return run;
      },
    };
  }
}
