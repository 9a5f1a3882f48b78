// The shapes that cross the outbox boundary. Every feature publishes by handing
// OutgoingMessage values to a MessageSink; only the Publisher talks to the broker.

export type QoS = 0 | 1 | 2;

export interface OutgoingMessage {
  topic: string;
  payload: string | Buffer;
  /** Defaults to the configured delivery QoS (mqttConfig.delivery.qos). */
  qos?: QoS;
  /** Defaults to false. */
  retain?: boolean;
  /** A short label for metrics and the status page, e.g. "task_failure", "rest". */
  kind?: string;
}

export interface MessageSink {
  /** Resolves once every message is durably stored; rejects (OutboxFullError, MessageRejectedError) otherwise. */
  enqueue(messages: OutgoingMessage[]): Promise<unknown>;
}

/** Thrown by enqueue when the outbox is at its count or byte bound. Nothing already stored is touched. */
export class OutboxFullError extends Error {
  override readonly name = 'OutboxFullError';
  constructor(
    readonly limit: 'messages' | 'bytes',
    readonly current: number,
    readonly max: number,
  ) {
    super(`outbox full: ${limit} limit ${max} reached (currently ${current}); message refused, nothing stored`);
  }
}

/** Thrown by enqueue when a message can never be delivered (too large for the broker, bad topic). */
export class MessageRejectedError extends Error {
  override readonly name = 'MessageRejectedError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}
