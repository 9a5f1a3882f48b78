// Contract checks for integration tests: a message seen on the broker must belong to a channel of the
// message contract (src/contract/channels.ts) under the config of a bridge the test runs, and fit it:
// payload schema, retain flag, QoS. A topic no channel describes is a violation.
//
// The configs come from the files tests write (test/support/bridge.ts `writeConfig` notes each one);
// with none noted, the defaults and the shipped config (config/butler-mqtt.yaml) apply. Messages a test puts into the outbox itself
// to exercise delivery (arbitrary topics, `kind: 'test'`) are not the bridge's channels: the collector
// is told their topics (`testTopics`) and skips them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Value from 'typebox/value';
import { ConfigSchema, type ButlerConfig } from '../../src/config/schema.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { CHANNELS, channelMatches, channelMessages, channelQos, channelRetain, payloadProblem, type ChannelDef } from '../../src/contract/channels.ts';
import { topicMatches } from '../../src/mqtt/topics.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
  qos: number;
}

const noted: ButlerConfig[] = [];

/**
 * Remembers the config of a bridge a test runs (called by writeConfig). A config the loader refuses
 * (tests of config errors) still counts with its defaults filled in, so its topics are known.
 */
export function noteBridgeConfig(yamlText: string, file: string, butler: Record<string, unknown>): void {
  try {
    noted.push(parseConfigText(yamlText, file).butler);
  } catch {
    const root = { Butler: structuredClone(butler) };
    Value.Default(ConfigSchema, root);
    noted.push(root.Butler as unknown as ButlerConfig);
  }
}

let fallback: ButlerConfig[] | undefined;

/** The configs messages are checked against: every noted one, else the defaults and the shipped config. */
export function contractConfigs(): ButlerConfig[] {
  if (noted.length > 0) return noted;
  const shipped = path.join(REPO_ROOT, 'config/butler-mqtt.yaml');
  fallback ??= [parseConfigText('Butler: {}\n', 'defaults.yaml').butler, parseConfigText(readFileSync(shipped, 'utf8'), shipped).butler];
  return fallback;
}

function channelProblem(def: ChannelDef, b: ButlerConfig, m: ReceivedMessage, subscribedQos: number): string | null {
  // The bridge reads these; tests send bad ones on purpose to see them refused.
  if (def.action === 'receive') return null;
  const problems: string[] = [];
  if (m.retain && !channelRetain(def, b)) problems.push('retained, but the channel is not');
  const expectedQos = Math.min(channelQos(def, b), subscribedQos);
  if (m.qos !== expectedQos) problems.push(`QoS ${m.qos}, expected ${expectedQos}`);
  const messages = channelMessages(def, b);
  const payloadProblems = messages.map((msg) => payloadProblem(msg, m.payload));
  if (!payloadProblems.includes(null)) problems.push(`payload fits no message of the channel (${messages.map((msg, i) => `${msg.name}: ${payloadProblems[i]}`).join('; ')})`);
  return problems.length === 0 ? null : `channel ${def.id}: ${problems.join(', ')}`;
}

/**
 * Null when the message fits a channel of the contract under one of the configs; otherwise what is
 * wrong with it. `subscribedQos` is the QoS the subscriber asked for (the broker delivers at most that).
 */
export function contractViolation(m: ReceivedMessage, configs: ButlerConfig[] = contractConfigs(), subscribedQos = 1): string | null {
  const problems: string[] = [];
  for (const b of configs) {
    for (const def of CHANNELS) {
      if (!channelMatches(def, b, m.topic)) continue;
      const problem = channelProblem(def, b, m, subscribedQos);
      if (problem === null) return null;
      problems.push(problem);
    }
  }
  const shown = JSON.stringify(m.payload.toString('utf8').slice(0, 200));
  if (problems.length === 0) return `topic ${JSON.stringify(m.topic)} is in no channel of the message contract (payload ${shown})`;
  return `message on ${JSON.stringify(m.topic)} breaks the contract: ${[...new Set(problems)].join(' | ')} (payload ${shown})`;
}

/** Is the topic one of the test's own (filters given to the collector)? */
/**
 * A message the test itself put on the broker or into the outbox, not one of the bridge's channels:
 * a topic under `test/` (the tests' own namespace, which no channel uses), or one the test names.
 */
export function isTestTopic(topic: string, testTopics: readonly string[]): boolean {
  return topic.startsWith('test/') || testTopics.some((f) => topicMatches(f, topic));
}
