// An independent MQTT subscriber for tests: collects every message (topic, exact payload bytes,
// retain flag) so assertions compare what really crossed the broker. Every message is also checked
// against the message contract (test/support/contract.ts): once one breaks it, the next wait or read
// of the messages throws.
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { waitFor } from './wait.ts';
import { contractViolation, isTestTopic } from './contract.ts';

export interface Received {
  topic: string;
  payload: Buffer;
  text: string;
  retain: boolean;
  qos: number;
}

export interface CollectOptions extends IClientOptions {
  /** Topic filters of messages the test itself puts into the outbox (not channels of the bridge). */
  testTopics?: string[];
}

export interface Collector {
  client: MqttClient;
  readonly messages: Received[];
  /** Messages that broke the message contract, one line each. */
  violations: string[];
  on(topic: string): Received[];
  texts(topic: string): string[];
  waitForCount(n: number, timeoutMs?: number, topic?: string): Promise<void>;
  close(): Promise<void>;
}

export async function collect(url: string, filters: string | string[], options: CollectOptions = {}): Promise<Collector> {
  const { testTopics = [], ...clientOptions } = options;
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, clientId: `test-sub-${Math.random().toString(16).slice(2, 10)}`, clean: true, ...clientOptions });
  const messages: Received[] = [];
  const violations: string[] = [];
  client.on('message', (topic, payload, packet) => {
    const received = { topic, payload, text: payload.toString('utf8'), retain: packet.retain, qos: packet.qos };
    messages.push(received);
    if (isTestTopic(topic, testTopics)) return;
    const violation = contractViolation(received);
    if (violation !== null) violations.push(violation);
  });
  await client.subscribeAsync(filters, { qos: 1 });
  const on = (topic: string) => messages.filter((m) => m.topic === topic);
  const assertContract = () => {
    if (violations.length > 0) throw new Error(`${violations.length} message(s) broke the message contract (src/contract/):\n${violations.join('\n')}`);
  };
  // Checked whenever the test reads what arrived, so a violation fails inside the test's own try
  // block and its cleanup still runs (close() itself never throws).
  return {
    client,
    get messages() {
      assertContract();
      return messages;
    },
    violations,
    on: (topic) => {
      assertContract();
      return on(topic);
    },
    texts: (topic) => {
      assertContract();
      return on(topic).map((m) => m.text);
    },
    waitForCount: async (n, timeoutMs = 10_000, topic) => {
      await waitFor(() => violations.length > 0 || (topic ? on(topic).length : messages.length) >= n, timeoutMs, `${n} messages${topic ? ` on ${topic}` : ''} (have ${topic ? on(topic).length : messages.length})`);
      assertContract();
    },
    close: () => client.endAsync(true),
  };
}
