// An independent MQTT subscriber for tests: collects every message (topic, exact payload bytes,
// retain flag) so assertions compare what really crossed the broker.
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { waitFor } from './wait.ts';

export interface Received {
  topic: string;
  payload: Buffer;
  text: string;
  retain: boolean;
  qos: number;
}

export interface Collector {
  client: MqttClient;
  messages: Received[];
  on(topic: string): Received[];
  texts(topic: string): string[];
  waitForCount(n: number, timeoutMs?: number, topic?: string): Promise<void>;
  close(): Promise<void>;
}

export async function collect(url: string, filters: string | string[], options: IClientOptions = {}): Promise<Collector> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, clientId: `test-sub-${Math.random().toString(16).slice(2, 10)}`, clean: true, ...options });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, text: payload.toString('utf8'), retain: packet.retain, qos: packet.qos });
  });
  await client.subscribeAsync(filters, { qos: 1 });
  const on = (topic: string) => messages.filter((m) => m.topic === topic);
  return {
    client,
    messages,
    on,
    texts: (topic) => on(topic).map((m) => m.text),
    waitForCount: (n, timeoutMs = 10_000, topic) =>
      waitFor(() => (topic ? on(topic).length : messages.length) >= n, timeoutMs, `${n} messages${topic ? ` on ${topic}` : ''} (have ${topic ? on(topic).length : messages.length})`),
    close: () => client.endAsync(true),
  };
}
